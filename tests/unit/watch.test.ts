import { mkdtempSync, rmSync, writeFileSync, symlinkSync, mkdirSync, linkSync, utimesSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CompletenessRule, lookAt, type FileLook } from "../../agent/src/completeness";
import { BatchQueue, type Batch, type BatchOutcome } from "../../agent/src/batchQueue";
import { readWatcherStatus, writeHeartbeat, describeWatcher } from "../../agent/src/heartbeat";

const complete = (size = 10, mtimeMs = 1_000): FileLook => ({ size, mtimeMs, complete: true });
const partial = (size = 5, mtimeMs = 1_000): FileLook => ({ size, mtimeMs, complete: false });

describe("the completeness rule", () => {
  it("takes a file complete at first sight at once (renamed in)", () => {
    const rule = new CompletenessRule(200);
    expect(rule.judge("a.json", complete(), 5_000)).toEqual({ take: true });
    expect(rule.tracked).toBe(0);
  });

  it("takes a file written in place only once it is complete and unchanged for settleMs", () => {
    const rule = new CompletenessRule(200);
    expect(rule.judge("a.json", partial(5, 1_000), 5_000)).toEqual({ take: false, recheckAt: 5_200 });
    // Complete now, but it just changed: the settle time starts again.
    expect(rule.judge("a.json", complete(10, 1_100), 5_100)).toEqual({ take: false, recheckAt: 5_300 });
    expect(rule.judge("a.json", complete(10, 1_100), 5_250)).toEqual({ take: false, recheckAt: 5_300 });
    expect(rule.judge("a.json", complete(10, 1_100), 5_300)).toEqual({ take: true });
    expect(rule.tracked).toBe(0);
  });

  it("notices a change of size alone or of modification time alone", () => {
    const rule = new CompletenessRule(200);
    rule.judge("a.json", partial(5, 1_000), 0);
    expect(rule.judge("a.json", complete(6, 1_000), 300)).toEqual({ take: false, recheckAt: 500 });
    expect(rule.judge("a.json", complete(6, 1_001), 500)).toEqual({ take: false, recheckAt: 700 });
    expect(rule.judge("a.json", complete(6, 1_001), 700)).toEqual({ take: true });
  });

  it("never takes a stable file that is not a JSON object (left to minAgeSeconds and quarantine)", () => {
    const rule = new CompletenessRule(200);
    rule.judge("junk.json", partial(5), 0);
    expect(rule.judge("junk.json", partial(5), 10_000)).toEqual({ take: false });
    expect(rule.tracked).toBe(1);
  });

  it("forgets a file that is gone, so the tracked set stays bounded", () => {
    const rule = new CompletenessRule(200);
    rule.judge("a.json", partial(), 0);
    expect(rule.judge("a.json", undefined, 50)).toEqual({ take: false });
    expect(rule.tracked).toBe(0);
    // A new file under the name, complete at first sight: at once.
    expect(rule.judge("a.json", complete(), 60)).toEqual({ take: true });
  });

  it("forgets files a rescan no longer lists (a never-complete file the pass quarantined), keeps the others", () => {
    const rule = new CompletenessRule(200);
    rule.judge("junk.json", partial(5), 0);
    rule.judge("junk.json", partial(5), 10_000);
    rule.judge("writing.json", partial(5), 10_000);
    expect(rule.tracked).toBe(2);
    // The rescan's pass moved junk.json to the quarantine: no event says so, the next listing does.
    rule.retainOnly(new Set(["writing.json", "other.json"]));
    expect(rule.tracked).toBe(1);
    expect(rule.judge("writing.json", partial(5), 10_100)).toEqual({ take: false, recheckAt: 10_200 });
    // A new file under the old name is judged afresh, not against the forgotten entry.
    expect(rule.judge("junk.json", complete(), 10_200)).toEqual({ take: true });
  });

  it("settleMs 0 takes an in-place file on its next unchanged look", () => {
    const rule = new CompletenessRule(0);
    expect(rule.judge("a.json", partial(), 0)).toEqual({ take: false, recheckAt: 0 });
    expect(rule.judge("a.json", complete(12, 2), 1)).toEqual({ take: false, recheckAt: 1 });
    expect(rule.judge("a.json", complete(12, 2), 1)).toEqual({ take: true });
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

describe("the batch queue", () => {
  const options = { lockedRetryMs: 30, firstBackoffMs: 20, maxBackoffMs: 80 };

  it("puts names arriving together into one batch and what arrives meanwhile into the next; duplicates once", async () => {
    const batches: Batch[] = [];
    let release: () => void = () => undefined;
    const queue = new BatchQueue(async (batch) => {
      batches.push(batch);
      if (batches.length === 1) await new Promise<void>((r) => (release = r));
      return { locked: false, retry: [] };
    }, options);
    queue.add("a.json");
    queue.add("b.json");
    queue.add("a.json");
    await new Promise((r) => setTimeout(r, 10));
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
    await writeHeartbeat(dir, { ...beat, stoppedAt: "2026-01-01T00:10:05.000Z" });
    const stopped = await readWatcherStatus(dir, at + 600_000);
    expect(describeWatcher(stopped)).toBe(`watcher: stopped at 2026-01-01T00:10:05.000Z (pid ${process.pid}, last delivery none yet)`);
  });
});
