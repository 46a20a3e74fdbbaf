import { spawn, type ChildProcessByStdio } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import type { Readable, Writable } from "node:stream";

/** Process names of the cron daemons that read /etc/cron.d (Debian's cron, cronie and busybox crond). */
const CRON_DAEMONS = new Set(["cron", "crond"]);

/** The pids of the cron daemons running on this machine. */
export function cronDaemonPids(): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (CRON_DAEMONS.has(readFileSync(`/proc/${entry}/comm`, "utf8").trim())) pids.push(Number(entry));
    } catch {
      /* ended meanwhile */
    }
  }
  return pids;
}

/**
 * Holds the machine's cron daemons stopped (SIGSTOP), so a job a suite installs in /etc/cron.d
 * never runs beside the suite's own passes at a 5-minute mark. A child process sends SIGCONT when
 * its stdin closes: on resume(), and also when the suite's process dies, so a crashed run never
 * leaves cron stopped.
 */
export class CronPause {
  private resumer: ChildProcessByStdio<Writable, Readable, null> | undefined;
  paused: number[] = [];

  async pause(): Promise<void> {
    if (this.resumer) throw new Error("cron is already paused by this suite");
    const pids = cronDaemonPids();
    if (pids.length === 0) return;
    const resumer = spawn("sh", ["-c", 'kill -STOP "$@"; echo stopped; cat >/dev/null; kill -CONT "$@"', "sh", ...pids.map(String)], { stdio: ["pipe", "pipe", "inherit"] });
    await new Promise<void>((resolve, reject) => {
      resumer.stdout.once("data", () => resolve());
      resumer.once("close", (code) => reject(new Error(`sh ended (exit ${code}) before it had stopped the cron daemon(s) ${pids.join(", ")}`)));
    });
    this.resumer = resumer;
    this.paused = pids;
  }

  /** Resumes the daemons and waits until they have been sent SIGCONT. */
  async resume(): Promise<void> {
    const resumer = this.resumer;
    this.resumer = undefined;
    this.paused = [];
    if (!resumer || resumer.exitCode !== null || resumer.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      resumer.once("close", () => resolve());
      resumer.stdin.end();
    });
  }
}
