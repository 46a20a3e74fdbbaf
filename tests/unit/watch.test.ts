import { mkdtempSync, rmSync, writeFileSync, symlinkSync, mkdirSync, linkSync, utimesSync, lstatSync, appendFileSync, chmodSync, unlinkSync, renameSync, type Stats } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CompletenessRule, lookAt, type FileLook } from "../../agent/src/completeness";
import { BatchQueue, type Batch, type BatchOutcome } from "../../agent/src/batchQueue";
import { StartScanFilter } from "../../agent/src/startScanFilter";
import { readWatcherStatus, writeHeartbeat, describeWatcher } from "../../agent/src/heartbeat";
import { WatchErrorLog } from "../../agent/src/watchErrors";
import { processStartTime } from "../../agent/src/lock";
import winston from "winston";
import { Writable } from "node:stream";

const complete = (size = 10, mtimeMs = 1_000): FileLook => ({ size, mtimeMs, complete: true });
const partial = (size = 5, mtimeMs = 1_000): FileLook => ({ size, mtimeMs, complete: false });

describe("the completeness rule", () => {
  /** The rule, and how often it read a file's content (a look) rather than only its stamp. */
  function ruleWithReads(settleMs: number) {
    const rule = new CompletenessRule(settleMs);
    let reads = 0;
    return {
      rule,
      reads: () => reads,
      /** The file as it is now (its lstat and, if the rule reads it, its content): undefined when gone. */
      judge: (name: string, file: FileLook | undefined, now: number) =>
        rule.judge(name, file && { size: file.size, mtimeMs: file.mtimeMs }, now, () => (reads++, file)),
    };
  }

  it("takes a file complete at first sight (renamed in, or between two in-place writes) only once unchanged for settleMs", () => {
    const { rule, judge, reads } = ruleWithReads(200);
    expect(judge("a.json", complete(), 5_000)).toEqual({ take: false, recheckAt: 5_200 });
    expect(judge("a.json", complete(), 5_199)).toEqual({ take: false, recheckAt: 5_200 });
    expect(reads()).toBe(0);
    expect(judge("a.json", complete(), 5_200)).toEqual({ take: true });
    expect(reads()).toBe(1);
    expect(rule.tracked).toBe(0);
  });

  it("does not take a JSON-object prefix that the producer's next write extends ('{...}', then a newline)", () => {
    const { judge } = ruleWithReads(200);
    expect(judge("a.json", complete(10, 1_000), 5_000)).toEqual({ take: false, recheckAt: 5_200 });
    // The newline lands 5 ms later: the settle time starts again from the change.
    expect(judge("a.json", complete(11, 1_005), 5_010)).toEqual({ take: false, recheckAt: 5_210 });
    expect(judge("a.json", complete(11, 1_005), 5_200)).toEqual({ take: false, recheckAt: 5_210 });
    expect(judge("a.json", complete(11, 1_005), 5_210)).toEqual({ take: true });
  });

  it("takes a file written in place only once it is complete and unchanged for settleMs", () => {
    const { rule, judge } = ruleWithReads(200);
    expect(judge("a.json", partial(5, 1_000), 5_000)).toEqual({ take: false, recheckAt: 5_200 });
    // Complete now, but it just changed: the settle time starts again.
    expect(judge("a.json", complete(10, 1_100), 5_100)).toEqual({ take: false, recheckAt: 5_300 });
    expect(judge("a.json", complete(10, 1_100), 5_250)).toEqual({ take: false, recheckAt: 5_300 });
    expect(judge("a.json", complete(10, 1_100), 5_300)).toEqual({ take: true });
    expect(rule.tracked).toBe(0);
  });

  it("notices a change of size alone or of modification time alone", () => {
    const { judge } = ruleWithReads(200);
    judge("a.json", partial(5, 1_000), 0);
    expect(judge("a.json", complete(6, 1_000), 300)).toEqual({ take: false, recheckAt: 500 });
    expect(judge("a.json", complete(6, 1_001), 500)).toEqual({ take: false, recheckAt: 700 });
    expect(judge("a.json", complete(6, 1_001), 700)).toEqual({ take: true });
  });

  it("settles again when the file changed between its stamp and its read", () => {
    const rule = new CompletenessRule(200);
    rule.judge("a.json", { size: 5, mtimeMs: 1_000 }, 0, () => undefined);
    expect(rule.judge("a.json", { size: 5, mtimeMs: 1_000 }, 200, () => complete(9, 1_150))).toEqual({ take: false, recheckAt: 400 });
    expect(rule.judge("a.json", { size: 9, mtimeMs: 1_150 }, 400, () => complete(9, 1_150))).toEqual({ take: true });
  });

  it("reads a file growing in place not at all, and a stable non-order once (left to minAgeSeconds and quarantine)", () => {
    const { rule, judge, reads } = ruleWithReads(200);
    // 64 KiB more every 20 ms for 10 s: an lstat per look, no read.
    for (let t = 0; t < 10_000; t += 20) judge("growing.json", partial(65_536 * (t / 20 + 1), 1_000 + t), t);
    expect(reads()).toBe(0);
    judge("junk.json", partial(5), 0);
    expect(judge("junk.json", partial(5), 10_000)).toEqual({ take: false });
    expect(judge("junk.json", partial(5), 20_000)).toEqual({ take: false });
    expect(reads()).toBe(1);
    expect(rule.tracked).toBe(2);
  });

  it("forgets a file that is gone, so the tracked set stays bounded", () => {
    const { rule, judge } = ruleWithReads(200);
    judge("a.json", partial(), 0);
    expect(judge("a.json", undefined, 50)).toEqual({ take: false });
    expect(rule.tracked).toBe(0);
    // A new file under the name, complete at first sight: judged afresh.
    expect(judge("a.json", complete(), 60)).toEqual({ take: false, recheckAt: 260 });
  });

  it("forgets files a rescan no longer lists (a never-complete file the pass quarantined), keeps the others", () => {
    const { rule, judge } = ruleWithReads(200);
    judge("junk.json", partial(5), 0);
    judge("junk.json", partial(5), 10_000);
    judge("writing.json", partial(5), 10_000);
    expect(rule.tracked).toBe(2);
    // The rescan's pass moved junk.json to the quarantine: no event says so, the next listing does.
    rule.retainOnly(new Set(["writing.json", "other.json"]));
    expect(rule.tracked).toBe(1);
    expect(judge("writing.json", partial(5), 10_100)).toEqual({ take: false, recheckAt: 10_200 });
    // A new file under the old name is judged afresh, not against the forgotten entry.
    expect(judge("junk.json", complete(), 10_200)).toEqual({ take: false, recheckAt: 10_400 });
  });

  it("settleMs 0 takes a file on its next unchanged look", () => {
    const { judge } = ruleWithReads(0);
    expect(judge("a.json", partial(), 0)).toEqual({ take: false, recheckAt: 0 });
    expect(judge("a.json", complete(12, 2), 1)).toEqual({ take: false, recheckAt: 1 });
    expect(judge("a.json", complete(12, 2), 1)).toEqual({ take: true });
  });
});

describe("lookAt", () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), "plutus-look-"))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("sees a JSON object as complete, a prefix or a JSON array as not, a vanished file as undefined", () => {
    writeFileSync(join(dir, "full.json"), '{"orderId":"PL-1"}');
    writeFileSync(join(dir, "half.json"), '{"orderId":');
    writeFileSync(join(dir, "array.json"), "[1]");
    const when = new Date(1_700_000_000_000);
    utimesSync(join(dir, "full.json"), when, when);
    expect(lookAt(dir, "full.json", 1_000)).toEqual({ size: 18, mtimeMs: when.getTime(), complete: true });
    expect(lookAt(dir, "half.json", 1_000)).toMatchObject({ size: 11, complete: false });
    expect(lookAt(dir, "array.json", 1_000)).toMatchObject({ complete: false });
    expect(lookAt(dir, "gone.json", 1_000)).toBeUndefined();
  });

  it("hands links, folders and oversized files on at once (the pass quarantines them); waits on a second hard link", () => {
    writeFileSync(join(dir, "big.json"), `{"n":"${"x".repeat(100)}"}`);
    symlinkSync("/etc/passwd", join(dir, "link.json"));
    mkdirSync(join(dir, "folder.json"));
    writeFileSync(join(dir, "linked.json"), "{}");
    linkSync(join(dir, "linked.json"), join(dir, "other-name"));
    expect(lookAt(dir, "big.json", 50)).toMatchObject({ complete: true });
    expect(lookAt(dir, "link.json", 1_000)).toMatchObject({ complete: true });
    expect(lookAt(dir, "folder.json", 1_000)).toMatchObject({ complete: true });
    expect(lookAt(dir, "linked.json", 1_000)).toMatchObject({ complete: false });
  });
});

describe("the start-scan filter (chokidar's ignored)", () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), "plutus-scan-"))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));
  /** Waits past the file system clock's tick, so that a change gives a new ctime. */
  const nextTick = () => new Promise((r) => setTimeout(r, 20));

  it("ignores what the initial scan sees, until its ctime changes (write, rename over, chmod, unlink and create); never a new name", async () => {
    for (const name of ["a.json", "b.json", "c.json", "d.json", "e.json"]) writeFileSync(join(dir, name), "{");
    const filter = new StartScanFilter(dir);
    const asked = (name: string) => filter.ignored(join(dir, name), lstatSync(join(dir, name)));
    for (const name of ["a.json", "b.json", "c.json", "d.json", "e.json"]) expect(asked(name)).toBe(true);
    filter.scanDone();
    expect(filter.size).toBe(5);
    await nextTick();
    appendFileSync(join(dir, "a.json"), "}");
    writeFileSync(join(dir, "replacement"), "{}");
    renameSync(join(dir, "replacement"), join(dir, "b.json"));
    chmodSync(join(dir, "c.json"), 0o600);
    unlinkSync(join(dir, "d.json"));
    writeFileSync(join(dir, "d.json"), "{}");
    writeFileSync(join(dir, "new.json"), "{}");
    expect(["a.json", "b.json", "c.json", "d.json", "e.json", "new.json"].map(asked)).toEqual([false, false, false, false, true, false]);
    // Once changed, forgotten: not ignored again, even with the ctime it had at the scan.
    expect(filter.size).toBe(1);
    expect(asked("a.json")).toBe(false);
  });

  it("with whole-second timestamps (ext3, ext4 -I 128) a file completed in place within the same second is still a change: it grew", () => {
    writeFileSync(join(dir, "half.json"), '{"order":');
    const filter = new StartScanFilter(dir);
    const atScan = lstatSync(join(dir, "half.json"));
    const inTheSameSecond = (stats: Stats, size: number): Stats => Object.assign(Object.create(Object.getPrototypeOf(stats)), stats, { size, ctimeMs: Math.floor(atScan.ctimeMs / 1000) * 1000 });
    expect(filter.ignored(join(dir, "half.json"), inTheSameSecond(atScan, atScan.size))).toBe(true);
    filter.scanDone();
    expect(filter.ignored(join(dir, "half.json"), inTheSameSecond(atScan, atScan.size))).toBe(true);
    expect(filter.ignored(join(dir, "half.json"), inTheSameSecond(atScan, atScan.size + 4))).toBe(false);
    expect(filter.size).toBe(0);
  });

  it("never ignores the outbox itself, anything outside it, or a path asked about without Stats", () => {
    writeFileSync(join(dir, "a.json"), "{");
    const filter = new StartScanFilter(dir);
    expect(filter.ignored(dir, lstatSync(dir))).toBe(false);
    expect(filter.ignored(join(dir, "a.json"))).toBe(false);
    expect(filter.ignored(join(dir, "sub", "a.json"), lstatSync(join(dir, "a.json")))).toBe(false);
    expect(filter.size).toBe(0);
  });

  it("forgets entries a fresh listing no longer holds (delivered, quarantined), keeps the others", () => {
    for (const name of ["a.json", "b.json", "junk name"]) writeFileSync(join(dir, name), "{");
    const filter = new StartScanFilter(dir);
    for (const name of ["a.json", "b.json", "junk name"]) filter.ignored(join(dir, name), lstatSync(join(dir, name)));
    filter.scanDone();
    filter.retainOnly(new Set(["b.json", "junk name", "other.json"]));
    expect(filter.size).toBe(2);
    expect(filter.ignored(join(dir, "b.json"), lstatSync(join(dir, "b.json")))).toBe(true);
    expect(filter.ignored(join(dir, "a.json"), lstatSync(join(dir, "a.json")))).toBe(false);
  });
});

describe("the batch queue", () => {
  const options = { lockedRetryMs: 30, firstBackoffMs: 20, maxBackoffMs: 80 };

  it("puts names arriving together into one batch and what arrives meanwhile into the next; duplicates once", async () => {
    const batches: Batch[] = [];
    let release: () => void = () => undefined;
    let firstStarted: () => void = () => undefined;
    const firstRunning = new Promise<void>((r) => (firstStarted = r));
    const queue = new BatchQueue(async (batch) => {
      batches.push(batch);
      if (batches.length === 1) {
        firstStarted();
        await new Promise<void>((r) => (release = r));
      }
      return { locked: false, retry: [] };
    }, options);
    queue.add("a.json");
    queue.add("b.json");
    queue.add("a.json");
    // Meanwhile: while the first batch runs (a fixed wait could end before it started).
    await firstRunning;
    queue.add("c.json");
    queue.add("c.json");
    queue.requestRescan();
    release();
    await queue.idle();
    expect(batches).toEqual([
      { names: ["a.json", "b.json"], rescan: false },
      { names: ["c.json"], rescan: true },
    ]);
  });

  it("tries a locked batch again, and failed names after a growing back-off, until they succeed", async () => {
    const calls: { at: number; batch: Batch }[] = [];
    const started = Date.now();
    const outcomes: BatchOutcome[] = [
      { locked: true, retry: [] },
      { locked: false, retry: ["a.json"] },
      { locked: false, retry: ["a.json"] },
      { locked: false, retry: [] },
    ];
    const queue = new BatchQueue(async (batch) => {
      calls.push({ at: Date.now() - started, batch });
      return outcomes.shift()!;
    }, options);
    queue.add("a.json");
    for (let i = 0; i < 100 && calls.length < 4; i++) {
      await new Promise((r) => setTimeout(r, 10));
      await queue.idle();
    }
    expect(calls.map((c) => c.batch)).toEqual(Array(4).fill({ names: ["a.json"], rescan: false }));
    // lockedRetryMs, then firstBackoffMs, then twice that. libuv's timers and Date.now() both count
    // whole milliseconds, so a wait can measure 1 ms short (seen: 39 for 40).
    expect(calls[1].at - calls[0].at).toBeGreaterThanOrEqual(30 - 1);
    expect(calls[2].at - calls[1].at).toBeGreaterThanOrEqual(20 - 1);
    expect(calls[3].at - calls[2].at).toBeGreaterThanOrEqual(40 - 1);
  });

  it("holds names while they may not be delivered (no connection): a rescan still runs without them; wake() sends them", async () => {
    let mayDeliver = false;
    const batches: Batch[] = [];
    const queue = new BatchQueue(async (batch) => {
      batches.push(batch);
      return { locked: false, retry: [] };
    }, { ...options, mayDeliverNames: () => mayDeliver });
    queue.add("a.json");
    queue.add("b.json");
    await new Promise((r) => setTimeout(r, 50));
    await queue.idle();
    expect(batches).toEqual([]);
    expect(queue.waiting).toBe(2);
    queue.requestRescan();
    await new Promise((r) => setTimeout(r, 10));
    await queue.idle();
    expect(batches).toEqual([{ names: [], rescan: true }]);
    mayDeliver = true;
    queue.wake();
    await new Promise((r) => setTimeout(r, 10));
    await queue.idle();
    expect(batches).toEqual([
      { names: [], rescan: true },
      { names: ["a.json", "b.json"], rescan: false },
    ]);
    expect(queue.waiting).toBe(0);
  });

  it("takes back the names a batch could not send for want of a connection: no retry loop, sent once wake() comes", async () => {
    let connected = true;
    const batches: Batch[] = [];
    const queue = new BatchQueue(async (batch) => {
      batches.push(batch);
      if (batches.length === 1) {
        // The connect failed: the connection counts as down from now on.
        connected = false;
        return { locked: false, retry: [], held: batch.names };
      }
      return { locked: false, retry: [] };
    }, { ...options, mayDeliverNames: () => connected });
    queue.add("a.json");
    // Long past firstBackoffMs (20): the queue looked again once, saw no connection, and waits.
    await new Promise((r) => setTimeout(r, 150));
    await queue.idle();
    expect(batches).toEqual([{ names: ["a.json"], rescan: false }]);
    expect(queue.waiting).toBe(1);
    connected = true;
    queue.wake();
    await new Promise((r) => setTimeout(r, 10));
    await queue.idle();
    expect(batches).toEqual([
      { names: ["a.json"], rescan: false },
      { names: ["a.json"], rescan: false },
    ]);
  });

  it("starts no batch after stop, and drops pending retries", async () => {
    const batches: Batch[] = [];
    const queue = new BatchQueue(async (batch) => {
      batches.push(batch);
      return { locked: false, retry: ["a.json"] };
    }, options);
    queue.add("a.json");
    await queue.idle();
    await queue.stop();
    queue.add("b.json");
    await new Promise((r) => setTimeout(r, 100));
    expect(batches).toEqual([{ names: ["a.json"], rescan: false }]);
  });
});

describe("the watcher heartbeat", () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), "plutus-hb-"))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));
  const beat = { pid: process.pid, startedAt: "2026-01-01T00:00:00.000Z", heartbeatAt: "2026-01-01T00:10:00.000Z", lastDeliveryAt: null, connection: "connected" as const, delivered: 0, rssBytes: 1 };

  it("is running while fresh and its process lives, stale when old or its process is gone, stopped after a clean stop", async () => {
    expect(await readWatcherStatus(dir)).toBeUndefined();
    await writeHeartbeat(dir, beat);
    const at = Date.parse(beat.heartbeatAt);
    const running = await readWatcherStatus(dir, at + 30_000);
    expect(running?.state).toBe("running");
    expect(describeWatcher(running)).toBe(`watcher: running (pid ${process.pid}, since 2026-01-01T00:00:00.000Z, last delivery none yet, connection connected)`);
    expect((await readWatcherStatus(dir, at + 61_000))?.state).toBe("stale");
    await writeHeartbeat(dir, { ...beat, pid: 2 ** 22 + 1 });
    expect((await readWatcherStatus(dir, at + 1_000))?.state).toBe("stale");
    // The PID lives, but it is another process now (the watcher was killed and its PID reused).
    await writeHeartbeat(dir, { ...beat, procStart: "1" });
    expect((await readWatcherStatus(dir, at + 1_000))?.state).toBe("stale");
    await writeHeartbeat(dir, { ...beat, procStart: processStartTime(process.pid) });
    expect((await readWatcherStatus(dir, at + 1_000))?.state).toBe("running");
    await writeHeartbeat(dir, { ...beat, stoppedAt: "2026-01-01T00:10:05.000Z" });
    const stopped = await readWatcherStatus(dir, at + 600_000);
    expect(describeWatcher(stopped)).toBe(`watcher: stopped at 2026-01-01T00:10:05.000Z (pid ${process.pid}, last delivery none yet)`);
  });
});

describe("the watcher's file event errors", () => {
  it("logs each error code once, then a count per report (a flood of ENOSPC, one per file, is not a flood of lines)", () => {
    const lines: Record<string, unknown>[] = [];
    const sink = new Writable({ objectMode: true, write: (info, _enc, done) => (lines.push(info), done()) });
    const log = winston.createLogger({ level: "debug", transports: [new winston.transports.Stream({ stream: sink })] });
    const errors = new WatchErrorLog(log);
    const enospc = (i: number) => Object.assign(new Error(`ENOSPC: System limit for number of file watchers reached, watch '/outbox/o-${i}.json'`), { code: "ENOSPC" });
    for (let i = 0; i < 1_000; i++) errors.note(enospc(i));
    errors.note(Object.assign(new Error("EACCES: permission denied"), { code: "EACCES" }));
    errors.note(Object.assign(new Error("EACCES: permission denied"), { code: "EACCES" }));
    const fields = (l: Record<string, unknown>) => ({ level: l.level, event: l.event, code: l.code, count: l.count, error: l.error, hint: l.hint });
    expect(lines.map(fields)).toEqual([
      { level: "warn", event: "watch-error", code: "ENOSPC", count: undefined, error: "ENOSPC: System limit for number of file watchers reached, watch '/outbox/o-0.json'", hint: "one inotify watch per outbox file: raise fs.inotify.max_user_watches (see the operations guide)" },
      { level: "warn", event: "watch-error", code: "EACCES", count: undefined, error: "EACCES: permission denied", hint: undefined },
    ]);
    errors.report();
    expect(lines.slice(2).map(fields)).toEqual([
      { level: "warn", event: "watch-errors", code: "ENOSPC", count: 999, error: undefined, hint: undefined },
      { level: "warn", event: "watch-errors", code: "EACCES", count: 1, error: undefined, hint: undefined },
    ]);
    // Nothing new: nothing said. Later errors of a known code are only counted.
    errors.report();
    errors.note(enospc(1_000));
    expect(lines).toHaveLength(4);
    errors.report();
    expect(lines.slice(4).map(fields)).toEqual([{ level: "warn", event: "watch-errors", code: "ENOSPC", count: 1, error: undefined, hint: undefined }]);
  });
});
