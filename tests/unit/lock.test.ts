import { mkdtempSync, rmSync, writeFileSync, readFileSync, existsSync, utimesSync } from "node:fs";
import { tmpdir, hostname } from "node:os";
import { join } from "node:path";
import { spawnSync } from "node:child_process";
import { acquirePassLock } from "../../agent/src/lock";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "plutus-lock-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function deadPid(): number {
  const child = spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"]);
  return Number(child.stdout.toString());
}

describe("acquirePassLock", () => {
  it("lets one holder in at a time and frees the lock on release", async () => {
    const first = await acquirePassLock(dir, 60_000);
    expect(first).toBeDefined();
    expect(await acquirePassLock(dir, 60_000)).toBeUndefined();
    await first!.release();
    expect(existsSync(join(dir, "pass.lock"))).toBe(false);
    const again = await acquirePassLock(dir, 60_000);
    expect(again).toBeDefined();
    await again!.release();
  });

  it("breaks a lock whose owner process is dead", async () => {
    writeFileSync(join(dir, "pass.lock"), JSON.stringify({ pid: deadPid(), host: hostname(), startedAt: Date.now() }));
    const lock = await acquirePassLock(dir, 60_000);
    expect(lock).toBeDefined();
    expect(JSON.parse(readFileSync(join(dir, "pass.lock"), "utf8")).pid).toBe(process.pid);
    await lock!.release();
  });

  it("respects a live owner until the lock is older than the stale limit", async () => {
    writeFileSync(join(dir, "pass.lock"), JSON.stringify({ pid: process.ppid, host: hostname(), startedAt: Date.now() - 5_000 }));
    expect(await acquirePassLock(dir, 60_000)).toBeUndefined();
    const lock = await acquirePassLock(dir, 4_000);
    expect(lock).toBeDefined();
    await lock!.release();
  });

  it("treats a torn lock file as dead once it is a few seconds old", async () => {
    writeFileSync(join(dir, "pass.lock"), '{"pid":12');
    expect(await acquirePassLock(dir, 60_000)).toBeUndefined();
    const old = new Date(Date.now() - 10_000);
    utimesSync(join(dir, "pass.lock"), old, old);
    const lock = await acquirePassLock(dir, 60_000);
    expect(lock).toBeDefined();
    await lock!.release();
  });

  it("a second process cannot break a lock while the first is breaking it", async () => {
    writeFileSync(join(dir, "pass.lock"), JSON.stringify({ pid: deadPid(), host: hostname(), startedAt: Date.now() }));
    writeFileSync(join(dir, "pass.lock.break"), "1");
    expect(await acquirePassLock(dir, 60_000)).toBeUndefined();
  });

  it("under the break guard, removes only the lock it judged stale, never one taken meanwhile", async () => {
    const lockPath = join(dir, "pass.lock");
    writeFileSync(lockPath, JSON.stringify({ pid: deadPid(), host: hostname(), startedAt: Date.now() }));
    const fsPromises = require("node:fs").promises as typeof import("node:fs").promises;
    const realReadFile = fsPromises.readFile.bind(fsPromises);
    let reads = 0;
    const spy = jest.spyOn(fsPromises, "readFile").mockImplementation(async (...args: Parameters<typeof realReadFile>) => {
      // The re-read under the guard happens just as another pass has broken the stale lock (gone)
      // and, an instant later, taken it for itself.
      if (String(args[0]) === lockPath && ++reads === 2) {
        writeFileSync(lockPath, JSON.stringify({ pid: process.ppid, host: hostname(), startedAt: Date.now() }));
        throw Object.assign(new Error("ENOENT: no such file or directory"), { code: "ENOENT" });
      }
      return realReadFile(...args);
    });
    try {
      expect(await acquirePassLock(dir, 60_000)).toBeUndefined();
    } finally {
      spy.mockRestore();
    }
    expect(JSON.parse(readFileSync(lockPath, "utf8")).pid).toBe(process.ppid);
  });

  it("a live process that reused a dead owner's PID does not hold the lock", async () => {
    const parentStart = readFileSync(`/proc/${process.ppid}/stat`, "utf8");
    const realStart = parentStart.slice(parentStart.lastIndexOf(")") + 2).split(" ")[19];
    writeFileSync(join(dir, "pass.lock"), JSON.stringify({ pid: process.ppid, host: hostname(), startedAt: Date.now(), procStart: realStart }));
    expect(await acquirePassLock(dir, 60_000)).toBeUndefined();
    writeFileSync(join(dir, "pass.lock"), JSON.stringify({ pid: process.ppid, host: hostname(), startedAt: Date.now(), procStart: String(Number(realStart) - 1) }));
    const lock = await acquirePassLock(dir, 60_000);
    expect(lock).toBeDefined();
    const mine = JSON.parse(readFileSync(join(dir, "pass.lock"), "utf8"));
    const ownStat = readFileSync(`/proc/${process.pid}/stat`, "utf8");
    expect(mine).toMatchObject({ pid: process.pid, procStart: ownStat.slice(ownStat.lastIndexOf(")") + 2).split(" ")[19] });
    await lock!.release();
  });

  it("on this host a live owner keeps its lock however old it is (suspended, clock stepped)", async () => {
    const parentStat = readFileSync(`/proc/${process.ppid}/stat`, "utf8");
    const procStart = parentStat.slice(parentStat.lastIndexOf(")") + 2).split(" ")[19];
    writeFileSync(join(dir, "pass.lock"), JSON.stringify({ pid: process.ppid, host: hostname(), startedAt: Date.now() - 86_400_000, procStart }));
    expect(await acquirePassLock(dir, 60_000)).toBeUndefined();
    expect(JSON.parse(readFileSync(join(dir, "pass.lock"), "utf8")).pid).toBe(process.ppid);
  });

  it("an owner on another host is judged by age only", async () => {
    const other = { pid: process.ppid, host: `${hostname()}-elsewhere`, startedAt: Date.now() - 5_000 };
    writeFileSync(join(dir, "pass.lock"), JSON.stringify(other));
    expect(await acquirePassLock(dir, 60_000)).toBeUndefined();
    const lock = await acquirePassLock(dir, 4_000);
    expect(lock).toBeDefined();
    await lock!.release();
  });

  it("a break guard left by a pass killed while breaking does not block the next passes", async () => {
    writeFileSync(join(dir, "pass.lock"), JSON.stringify({ pid: deadPid(), host: hostname(), startedAt: Date.now() }));
    writeFileSync(join(dir, "pass.lock.break"), "");
    const old = new Date(Date.now() - 6_000);
    utimesSync(join(dir, "pass.lock.break"), old, old);
    const lock = await acquirePassLock(dir, 60_000);
    expect(lock).toBeDefined();
    expect(existsSync(join(dir, "pass.lock.break"))).toBe(false);
    await lock!.release();
  });
});
