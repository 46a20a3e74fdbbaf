import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import TransportStream from "winston-transport";

/** syslog severities (RFC 5424) of the agent's log levels. */
const SEVERITY: Record<string, number> = { error: 3, warn: 4, info: 6, debug: 7 };
const LOGGER = "/usr/bin/logger";
const MESSAGE = Symbol.for("message");

/**
 * Sends every log line, the same JSON as the daily files, to the local syslog socket with tag
 * plutus-sync and the level's severity. Node has no Unix datagram sockets, so one util-linux
 * `logger` process per agent run carries the lines (`--prio-prefix`: the severity leads each line).
 * A syslog that is not there is reported once on stderr and never fails a pass.
 */
export class SyslogTransport extends TransportStream {
  private readonly child: ChildProcessWithoutNullStreams;
  private failed = false;

  constructor(socketPath: string, level?: string) {
    super({ level });
    this.child = spawn(LOGGER, ["--prio-prefix", "--tag", "plutus-sync", `--id=${process.pid}`, "--size", "8192", "--socket-errors=on", "--socket", socketPath], {
      stdio: ["pipe", "pipe", "pipe"],
    });
    let said = "";
    this.child.stderr.on("data", (chunk: Buffer) => (said += chunk.toString("utf8")));
    this.child.stdout.resume();
    this.child.on("error", (error) => this.fail(error.message));
    this.child.on("exit", (code) => {
      if (code !== 0) this.fail(said.trim() || `logger exited with ${code}`);
    });
    this.child.stdin.on("error", (error) => this.fail(error.message));
  }

  private fail(reason: string): void {
    if (this.failed) return;
    this.failed = true;
    process.stderr.write(`plutus-sync: cannot log to syslog: ${reason.split("\n")[0]}\n`);
  }

  override log(info: Record<string | symbol, unknown>, next: () => void): void {
    if (!this.failed) {
      const line = typeof info[MESSAGE] === "string" ? (info[MESSAGE] as string) : JSON.stringify(info);
      this.child.stdin.write(`<${SEVERITY[String(info.level)] ?? 6}>${line.replace(/\n/g, " ")}\n`);
    }
    next();
  }

  /** Waits (briefly) for logger to pass on the last lines before the process ends. */
  override _final(callback: (error?: Error | null) => void): void {
    if (this.child.exitCode !== null || this.failed) return callback();
    const timer = setTimeout(() => {
      this.child.kill();
      callback();
    }, 3_000);
    this.child.once("exit", () => {
      clearTimeout(timer);
      callback();
    });
    this.child.stdin.end();
  }
}
