import { mkdtempSync, rmSync, writeFileSync, readFileSync } from "node:fs";
import { tmpdir, hostname } from "node:os";
import { join } from "node:path";
import { spawn, type ChildProcess } from "node:child_process";
import { acquirePassLock, type HungWatcherOutcome, type HungWatcherPolicy } from "../../agent/src/lock";
import { watcherBeatsRecently } from "../../agent/src/heartbeat";

// The cron pass's outside bound on a watcher hung inside a batch: only a watcher's lock, only past
// the batch's bound, only with no fresh heartbeat from that very process, and never another process.

let dir: string;
let holder: ChildProcess;
let holderExit: Promise<NodeJS.Signals | null>;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "plutus-hung-"));
  holder = spawn("sleep", ["600"], { stdio: "ignore" });
  holderExit = new Promise((resolve) => holder.on("exit", (_code, signal) => resolve(signal)));
});
afterEach(async () => {
  holder.kill("SIGKILL");
  await holderExit;
  rmSync(dir, { recursive: true, force: true });
});

function procStart(pid: number): string {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
}

function writeLock(fields: Record<string, unknown>): Record<string, unknown> {
  const owner = { pid: holder.pid, host: hostname(), startedAt: Date.now() - 30_000, procStart: procStart(holder.pid!), holder: "watcher", ...fields };
  writeFileSync(join(dir, "pass.lock"), JSON.stringify(owner));
  return owner;
}

function policy(beats: boolean, reports: HungWatcherOutcome[]): HungWatcherPolicy {
  return { lockOlderThanMs: 20_000, beatsRecently: async () => beats, report: (outcome) => reports.push(outcome) };
}

const lockOwner = () => JSON.parse(readFileSync(join(dir, "pass.lock"), "utf8"));

describe("acquirePassLock with a hung-watcher bound (the cron pass)", () => {
  it("kills a watcher whose lock outlived the bound and whose heartbeat stopped, breaks its lock and takes it", async () => {
    const owner = writeLock({});
    const reports: HungWatcherOutcome[] = [];
    const lock = await acquirePassLock(dir, 60_000, { holder: "pass", hungWatcher: policy(false, reports) });
    expect(lock).toBeDefined();
    expect(await holderExit).toBe("SIGKILL");
    expect(reports).toEqual([{ pid: holder.pid, lockStartedAt: owner.startedAt, result: "killed" }]);
    expect(lockOwner()).toMatchObject({ pid: process.pid, holder: "pass" });
    await lock!.release();
  });

  it("kills a stopped watcher too (SIGSTOP: SIGKILL still ends it)", async () => {
    holder.kill("SIGSTOP");
    writeLock({});
    const reports: HungWatcherOutcome[] = [];
    const lock = await acquirePassLock(dir, 60_000, { hungWatcher: policy(false, reports) });
    expect(lock).toBeDefined();
    expect(await holderExit).toBe("SIGKILL");
    expect(reports.map((r) => r.result)).toEqual(["killed"]);
    await lock!.release();
  });

  it("spares a watcher whose heartbeat is fresh, a lock younger than the bound, a pass's lock, and locks without a start time", async () => {
    const reports: HungWatcherOutcome[] = [];
    const cases: [Record<string, unknown>, boolean][] = [
      [{}, true],
      [{ startedAt: Date.now() - 15_000 }, false],
      [{ holder: "pass" }, false],
      [{ holder: undefined }, false],
      [{ procStart: undefined }, false],
    ];
    for (const [fields, beats] of cases) {
      const owner = writeLock(fields);
      expect(await acquirePassLock(dir, 60_000, { hungWatcher: policy(beats, reports) })).toBeUndefined();
      expect(lockOwner()).toEqual(owner);
    }
    expect(reports).toEqual([]);
    expect(holder.exitCode).toBeNull();
    expect(holder.signalCode).toBeNull();
  });

  it("without the bound (the watcher's own batches, resolve, repair) a hung watcher's lock is left alone", async () => {
    const owner = writeLock({ startedAt: Date.now() - 86_400_000 });
    expect(await acquirePassLock(dir, 60_000, { holder: "watcher" })).toBeUndefined();
    expect(await acquirePassLock(dir, 60_000)).toBeUndefined();
    expect(lockOwner()).toEqual(owner);
    expect(holder.signalCode).toBeNull();
  });

  it("records who holds the lock: a watcher's batch or a pass", async () => {
    const watcherLock = await acquirePassLock(dir, 60_000, { holder: "watcher" });
    expect(lockOwner()).toMatchObject({ pid: process.pid, holder: "watcher" });
    await watcherLock!.release();
    const passLock = await acquirePassLock(dir, 60_000);
    expect(lockOwner()).toMatchObject({ pid: process.pid, holder: "pass" });
    await passLock!.release();
  });
});

describe("watcherBeatsRecently", () => {
  const beat = (fields: Record<string, unknown>) =>
    writeFileSync(join(dir, "watcher.json"), JSON.stringify({ pid: 4242, startedAt: "2026-01-01T00:00:00.000Z", heartbeatAt: new Date(Date.now() - 5_000).toISOString(), lastDeliveryAt: null, connection: "connected", delivered: 0, rssBytes: 1, ...fields }));

  it("is true only for a heartbeat of that pid, not stopped, at most 60 s old", async () => {
    expect(await watcherBeatsRecently(dir, 4242)).toBe(false);
    beat({});
    expect(await watcherBeatsRecently(dir, 4242)).toBe(true);
    expect(await watcherBeatsRecently(dir, 4243)).toBe(false);
    beat({ heartbeatAt: new Date(Date.now() - 61_000).toISOString() });
    expect(await watcherBeatsRecently(dir, 4242)).toBe(false);
    beat({ stoppedAt: new Date().toISOString() });
    expect(await watcherBeatsRecently(dir, 4242)).toBe(false);
    writeFileSync(join(dir, "watcher.json"), "{\"pid\":42");
    expect(await watcherBeatsRecently(dir, 4242)).toBe(false);
  });
});
