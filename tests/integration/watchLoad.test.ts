import { spawn, type ChildProcess } from "node:child_process";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { useErpStandIn, BUNDLE } from "../support/agent";
import { freePort } from "../support/sshd";

/** Watch mode under load: a large outbox at start, growing files, a flapping ERP connection. */
const ctx = useErpStandIn();

interface WatchProcess {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function spawnWatch(configPath: string): WatchProcess {
  const child = spawn(process.execPath, [BUNDLE, "watch", "--config", configPath], { env: { PATH: process.env.PATH }, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  child.stdout!.on("data", (d) => (out += d));
  child.stderr!.on("data", (d) => (err += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on("close", (code, signal) => resolve({ code, signal })));
  return { child, stdout: () => out, stderr: () => err, exited };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function configWith(overrides: Record<string, unknown>): string {
  const config = { ...JSON.parse(readFileSync(ctx.local.configPath, "utf8")), ...overrides };
  writeFileSync(ctx.local.configPath, JSON.stringify(config, null, 2));
  return ctx.local.configPath;
}

describe("watch mode under load", () => {
  it("SIGTERM during start-up with 100,000 files in the outbox and the ERP unreachable: exit 0 within 10 s", async () => {
    // chokidar's initial scan stats and watches every entry (about 10-30 s for this many files on
    // a busy 2-core machine); the stop must not wait for it.
    const n = 100_000;
    for (let i = 0; i < n; i++) writeFileSync(join(ctx.local.outbox, `backlog-${i}.json`), "{}");
    const base = JSON.parse(readFileSync(ctx.local.configPath, "utf8"));
    const config = configWith({ remote: { ...base.remote, port: await freePort() } });
    const watch = spawnWatch(config);
    try {
      await sleep(1_000);
      const started = Date.now();
      watch.child.kill("SIGTERM");
      const { code } = await watch.exited;
      const ms = Date.now() - started;
      process.stdout.write(`SIGTERM during start-up with ${n} files: exit ${code} after ${ms} ms\n`);
      expect({ code, stopped: watch.stdout().includes("plutus-sync: watch stopped on SIGTERM; 0 delivered"), stderr: watch.stderr() }).toEqual({ code: 0, stopped: true, stderr: "" });
      expect(ms).toBeLessThan(10_000);
      // A stop during start-up is still a clean stop: the heartbeat says so.
      expect(JSON.parse(readFileSync(join(ctx.local.stateDir, "watcher.json"), "utf8")).stoppedAt).toEqual(expect.any(String));
      expect(readdirSync(ctx.local.outbox)).toHaveLength(n);
    } finally {
      if (watch.child.exitCode === null && watch.child.signalCode === null) watch.child.kill("SIGKILL");
      await watch.exited;
    }
  }, 120_000);
});
