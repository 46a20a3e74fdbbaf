import { appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, unlinkSync, writeFileSync, openSync, writeSync, closeSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { useErpStandIn, runAgent, lastJsonLine, sampleOrder, logEvents, logEventsSoFar, stagingFiles, stopWhile } from "../support/agent";
import { FakeErp } from "../support/fakeErp";
import { freePort } from "../support/sshd";
import { TcpProxy } from "../support/tcpProxy";
import { spawnWatch, startWatch, until, rewriteConfig, type WatchProcess } from "../support/watchProcess";

const ctx = useErpStandIn();

/** Writes an order elsewhere and renames it into the outbox, as the web shop should. */
function renameIn(outbox: string, name: string, content: string): void {
  const temp = join(outbox, "..", "producer");
  mkdirSync(temp, { recursive: true });
  writeFileSync(join(temp, name), content);
  renameSync(join(temp, name), join(outbox, name));
}

const configWith = (overrides: Record<string, unknown>) => rewriteConfig(ctx.local.configPath, overrides);

async function stop(watch: WatchProcess): Promise<{ code: number | null; ms: number }> {
  const started = Date.now();
  watch.child.kill("SIGTERM");
  const { code } = await watch.exited;
  return { code, ms: Date.now() - started };
}

/** A TCP listener that accepts connections and never sends a byte (a hung or black-holed ERP). */
async function silentListener(): Promise<TcpProxy> {
  const proxy = await TcpProxy.start({ host: "127.0.0.1", port: ctx.erp.port });
  proxy.blackhole(true);
  return proxy;
}

/** Stops the watcher (SIGSTOP) at a moment one of its batches holds the pass lock; returns the lock's path. */
async function stopInsideBatch(watch: WatchProcess): Promise<string> {
  const lockPath = join(ctx.local.stateDir, "pass.lock");
  await stopWhile(watch.child, () => existsSync(lockPath), "a batch holds the pass lock");
  return lockPath;
}

/** inotify watches the process holds (one line per watch in its inotify descriptors' fdinfo). */
function inotifyWatches(pid: number): number {
  let watches = 0;
  for (const fd of readdirSync(`/proc/${pid}/fdinfo`)) {
    try {
      watches += readFileSync(`/proc/${pid}/fdinfo/${fd}`, "utf8").split("\n").filter((line) => line.startsWith("inotify wd:")).length;
    } catch {
      // closed meanwhile
    }
  }
  return watches;
}

const deliveredEvents = () => logEvents(ctx.local.logDir).filter((e) => e.event === "delivered").map((e) => e.file as string);

describe("plutus-sync watch against a real sshd", () => {
  let watch: WatchProcess | undefined;
  afterEach(async () => {
    if (watch && watch.child.exitCode === null && watch.child.signalCode === null) {
      watch.child.kill("SIGKILL");
      await watch.exited;
    }
    watch = undefined;
  });

  it("delivers orders renamed in and written in place, each once; a file still being written is not taken", async () => {
    const metricsPort = await freePort();
    watch = await startWatch(configWith({ minAgeSeconds: 60, metrics: { listen: `127.0.0.1:${metricsPort}` } }));
    renameIn(ctx.local.outbox, "renamed-1.json", sampleOrder(1));
    await until(() => existsSync(join(ctx.erp.inboxDir, "renamed-1.json")), 30_000, () => "renamed-1.json not delivered");

    // Written in place, slowly: the first half is on disk for a second before the rest.
    const body = sampleOrder(2);
    const fd = openSync(join(ctx.local.outbox, "in-place-2.json"), "w");
    writeSync(fd, body.slice(0, 40));
    await new Promise((r) => setTimeout(r, 1_000));
    expect(readdirSync(ctx.erp.inboxDir)).not.toContain("in-place-2.json");
    expect(readdirSync(ctx.local.outbox)).toContain("in-place-2.json");
    writeSync(fd, body.slice(40));
    closeSync(fd);
    await until(() => existsSync(join(ctx.erp.inboxDir, "in-place-2.json")), 30_000, () => "in-place-2.json not delivered");
    expect(readFileSync(join(ctx.erp.inboxDir, "in-place-2.json"), "utf8")).toBe(body);
    expect(readFileSync(join(ctx.erp.inboxDir, "renamed-1.json"), "utf8")).toBe(sampleOrder(1));

    // The latency histogram on /metrics counts both deliveries.
    let metrics = "";
    async function scrape(): Promise<void> {
      metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    }
    for (const deadline = Date.now() + 30_000; !/^plutus_sync_delivery_latency_seconds_count 2$/m.test(metrics) && Date.now() < deadline; ) {
      await scrape();
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(metrics).toMatch(/^plutus_sync_delivery_latency_seconds_count 2$/m);
    expect(metrics).toMatch(/^plutus_sync_delivery_latency_seconds_bucket\{le="\+Inf"\} 2$/m);
    // The watcher looks at the ERP inbox itself (with its first batch, then every minute): before any cron pass.
    const inboxSeen = join(ctx.local.stateDir, "erp-inbox.json");
    await until(() => existsSync(inboxSeen), 30_000, () => "the watcher never recorded the ERP inbox");
    // Taken with the first batch: the inbox then held none, one or both of the two orders.
    const seen = JSON.parse(readFileSync(inboxSeen, "utf8"));
    expect(seen).toEqual({ observedAt: expect.any(String), waiting: seen.waiting, oldestModifiedAt: seen.waiting === 0 ? null : expect.any(String), complete: true });
    expect([0, 1, 2]).toContain(seen.waiting);
    const status = await runAgent(["status", "--config", ctx.local.configPath]);
    expect(status.stdout).toMatch(new RegExp(`^watcher: running \\(pid ${watch.child.pid}, since \\S+, last delivery \\S+, connection connected\\)$`, "m"));

    // The cron pass still runs beside the watcher: it finds nothing left to do.
    const cron = await runAgent(["run", "--config", ctx.local.configPath, "--json"]);
    expect(cron.code).toBe(0);
    expect(lastJsonLine(cron.stdout)).toEqual(expect.objectContaining({ found: 0, delivered: 0 }));
    expect(lastJsonLine(cron.stdout).skippedLocked).toBeUndefined();

    const stopped = await stop(watch);
    expect(stopped.code).toBe(0);
    expect(watch.stdout()).toContain("plutus-sync: watch stopped on SIGTERM; 2 delivered");
    expect(deliveredEvents().sort()).toEqual(["in-place-2.json", "renamed-1.json"]);
    expect(readdirSync(ctx.erp.inboxDir).sort()).toEqual(["in-place-2.json", "renamed-1.json"]);
    expect(readdirSync(ctx.local.outbox)).toEqual([]);
    expect(stagingFiles(ctx.erp.stagingDir)).toEqual([]);
    const after = await runAgent(["status", "--config", ctx.local.configPath]);
    expect(after.stdout).toMatch(/^watcher: stopped at \S+ \(pid \d+, last delivery \S+\)$/m);
  }, 60_000);

  it("delivers an order written in place as '{...}' and then a newline once, not its prefix and then the whole", async () => {
    watch = await startWatch(configWith({ minAgeSeconds: 60 }));
    const n = 40;
    for (let i = 0; i < n; i++) {
      const fd = openSync(join(ctx.local.outbox, `nl-${i}.json`), "w");
      writeSync(fd, sampleOrder(i));
      // The producer's second write (PHP's unbuffered fwrite of "\n") comes a moment later: a
      // blocking wait, so that no turn of this process's event loop (nor a garbage collection)
      // can stretch the gap past the watcher's settle time on a loaded machine.
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 2 + (i % 10) * 2);
      writeSync(fd, "\n");
      closeSync(fd);
      await new Promise((r) => setTimeout(r, 50));
    }
    await until(() => readdirSync(ctx.local.outbox).length === 0, 30_000, () => `outbox: ${readdirSync(ctx.local.outbox).join(" ")}`);
    // A prefix taken too early comes back as a "replaced" file and is delivered again under a conflict name.
    await new Promise((r) => setTimeout(r, 1_000));
    const expected = Array.from({ length: n }, (_, i) => `nl-${i}.json`).sort();
    expect(readdirSync(ctx.erp.inboxDir).sort()).toEqual(expected);
    for (let i = 0; i < n; i++) expect(readFileSync(join(ctx.erp.inboxDir, `nl-${i}.json`), "utf8")).toBe(sampleOrder(i) + "\n");
    expect((await stop(watch)).code).toBe(0);
    expect(deliveredEvents().sort()).toEqual(expected);
  }, 60_000);

  it("SIGTERM while a batch waits for a connect: exits 0 within 10 s, releases the pass lock, records no failed run", async () => {
    // An ERP that accepts the TCP connection and never says a word: the connect waits for connectTimeoutSeconds (20).
    const silent = await silentListener();
    try {
      const config = JSON.parse(readFileSync(ctx.local.configPath, "utf8"));
      const configPath = configWith({ minAgeSeconds: 0, connectTimeoutSeconds: 20, remote: { ...config.remote, port: silent.port } });
      for (let i = 0; i < 20; i++) renameIn(ctx.local.outbox, `waiting-${i}.json`, sampleOrder(i));
      watch = await startWatch(configPath);
      await until(() => silent.connections > 0, 30_000, () => "the watcher never connected");
      await new Promise((r) => setTimeout(r, 1_000));
      const stopped = await stop(watch);
      expect(stopped.code).toBe(0);
      expect(stopped.ms).toBeLessThan(10_000);
      expect(existsSync(join(ctx.local.stateDir, "pass.lock"))).toBe(false);
      const status = await runAgent(["status", "--config", configPath, "--json"]);
      const report = JSON.parse(status.stdout);
      expect(report.consecutiveFailedRuns).toBe(0);
      expect(JSON.stringify(report.lastRun ?? null)).not.toContain("did not finish");
      expect(readdirSync(ctx.local.outbox)).toHaveLength(20);
    } finally {
      await silent.stop();
    }
  }, 60_000);

  it("SIGTERM while its first connection is still being made: the heartbeat says stopped, every time", async () => {
    // A heartbeat still being written for the connection's state change (the stop ends the
    // connect) used to land after the stop's own and drop its stoppedAt: about every other time.
    const silent = await silentListener();
    try {
      const config = JSON.parse(readFileSync(ctx.local.configPath, "utf8"));
      const configPath = configWith({ connectTimeoutSeconds: 20, remote: { ...config.remote, port: silent.port } });
      const heartbeatPath = join(ctx.local.stateDir, "watcher.json");
      for (let round = 0; round < 8; round++) {
        rmSync(heartbeatPath, { force: true });
        const watcher = spawnWatch(configPath);
        // Its first heartbeat is written as it starts, before it connects; the connect never ends by itself.
        await until(() => existsSync(heartbeatPath) || watcher.child.exitCode !== null, 30_000, () => `round ${round}: no heartbeat: ${watcher.stdout()} ${watcher.stderr()}`);
        watcher.child.kill("SIGTERM");
        const { code } = await watcher.exited;
        expect({ round, code, err: watcher.stderr(), stopped: watcher.stdout().includes("plutus-sync: watch stopped on SIGTERM; 0 delivered\n") }).toEqual({ round, code: 0, err: "", stopped: true });
        expect({ round, stoppedAt: JSON.parse(readFileSync(heartbeatPath, "utf8")).stoppedAt }).toEqual({ round, stoppedAt: expect.any(String) });
      }
      const status = await runAgent(["status", "--config", configPath]);
      expect(status.stdout).toMatch(/^watcher: stopped at \S+ \(pid \d+, last delivery none yet\)$/m);
    } finally {
      await silent.stop();
    }
  }, 120_000);

  it("ERP outage: one failed line per waiting file per rescan, the lock never held across a connect (cron says unreachable), all delivered once after", async () => {
    const config = JSON.parse(readFileSync(ctx.local.configPath, "utf8"));
    // Silent (a black-holed ERP: accepts, never answers) until it is opened, then it forwards.
    const front = await silentListener();
    try {
      const remote = { ...config.remote, port: front.port };
      const configPath = configWith({ minAgeSeconds: 0, connectTimeoutSeconds: 2, remote, watch: { rescanSeconds: 10 } });
      // The cron pass logs elsewhere, so that the watcher's lines can be counted.
      const cronConfig = join(ctx.local.root, "cron.json");
      writeFileSync(cronConfig, JSON.stringify({ ...JSON.parse(readFileSync(configPath, "utf8")), logDir: join(ctx.local.root, "cron-log") }));
      const before = Array.from({ length: 10 }, (_, i) => `before-${i}.json`);
      const during = Array.from({ length: 10 }, (_, i) => `during-${i}.json`);
      before.forEach((name, i) => renameIn(ctx.local.outbox, name, sampleOrder(i)));
      watch = await startWatch(configPath);
      // Read while the watcher writes: a line being written is left for the next look.
      const failedLines = () => logEventsSoFar(ctx.local.logDir).filter((e) => e.event === "failed").map((e) => e.file as string);
      // The start-up rescan could not connect (2 s): one line for each file it found.
      await until(() => failedLines().length >= 10, 30_000, () => `failed lines: ${failedLines().join(" ")}`);
      during.forEach((name, i) => renameIn(ctx.local.outbox, name, sampleOrder(100 + i)));
      // Once the rescan at 10 s has said so and let go of the lock, until the one at 20 s: no batch
      // is waiting for a connect with the lock held.
      const lockPath = join(ctx.local.stateDir, "pass.lock");
      await until(() => failedLines().length >= 30 && !existsSync(lockPath), 30_000, () => `failed lines: ${failedLines().length}`);
      const cron = await runAgent(["run", "--config", cronConfig, "--json"]);
      expect(cron.code).toBe(3);
      expect(lastJsonLine(cron.stdout).skippedLocked).toBeUndefined();
      // Rescans at 0, 10, 20 and 30 s: counted as soon as the one at 30 s has said so (10 + 20 +
      // 20 + 20 lines), 10 s before the next; sooner, or more per rescan, and the counts differ.
      await until(() => failedLines().length >= 70, 60_000, () => `failed lines: ${failedLines().length}`);
      const perFile = new Map<string, number>();
      for (const file of failedLines()) perFile.set(file, (perFile.get(file) ?? 0) + 1);
      expect(Object.fromEntries([...perFile].sort())).toEqual(Object.fromEntries([...before.map((n) => [n, 4]), ...during.map((n) => [n, 3])].sort()));
      expect(logEventsSoFar(ctx.local.logDir).filter((e) => e.event === "watch-disconnected")).toHaveLength(1);
      expect(readdirSync(ctx.erp.inboxDir)).toEqual([]);

      front.cutAll();
      front.blackhole(false);
      await until(() => readdirSync(ctx.erp.inboxDir).length === 20, 60_000, () => `delivered after the outage: ${readdirSync(ctx.erp.inboxDir).length}/20`);
      expect((await stop(watch)).code).toBe(0);
      expect(readdirSync(ctx.erp.inboxDir).sort()).toEqual([...before, ...during].sort());
      expect(deliveredEvents().sort()).toEqual([...before, ...during].sort());
      expect(logEvents(ctx.local.logDir).filter((e) => e.event === "watch-connected")).toHaveLength(1);
    } finally {
      await front.stop();
    }
  }, 120_000);

  it("says once that another pass holds the lock, however often it tries again; delivers once it is free", async () => {
    watch = await startWatch(configWith({ minAgeSeconds: 60 }));
    // A live pass of this host holds the lock (this test process stands in for a long cron pass).
    const lockPath = join(ctx.local.stateDir, "pass.lock");
    writeFileSync(lockPath, JSON.stringify({ pid: process.pid, host: hostname(), startedAt: Date.now() }));
    renameIn(ctx.local.outbox, "behind-lock.json", sampleOrder(1));
    // Read while the watcher writes: a line being written is left for the next look.
    const lockedLines = () => logEventsSoFar(ctx.local.logDir).filter((e) => e.event === "locked");
    await until(() => lockedLines().length > 0, 30_000, () => "the watcher never found the lock held");
    // The watcher tries again every 0.5 s: about 6 more tries in 3 s.
    await new Promise((r) => setTimeout(r, 3_000));
    expect(readdirSync(ctx.erp.inboxDir)).toEqual([]);
    expect(lockedLines().map((e) => e.message)).toEqual(["watch: another pass holds the lock; waiting for it"]);
    rmSync(lockPath);
    await until(() => existsSync(join(ctx.erp.inboxDir, "behind-lock.json")), 10_000, () => "not delivered after the lock was freed");
    expect((await stop(watch)).code).toBe(0);
    expect(logEvents(ctx.local.logDir).filter((e) => e.event === "locked")).toHaveLength(1);
  }, 60_000);

  it("past fs.inotify.max_user_watches (one watch per file): delivers everything, logs the error once and then a count", async () => {
    const erp = await FakeErp.start(ctx.erp.inboxDir);
    try {
      // The limit lowered to 300 in a user namespace of its own (nothing machine-wide changes).
      const limit = 'echo 300 > /proc/sys/user/max_inotify_watches && exec "$0" "$@"';
      // No rescan interval may pass before the stop (it would report the count early), however long delivery takes.
      watch = await startWatch(configWith({ minAgeSeconds: 60, watch: { rescanSeconds: 3_600 } }), { wrapper: ["unshare", "-U", "-r", "sh", "-c", limit] });
      // The start-up rescan runs with chokidar closed and what arrives meanwhile is never watched
      // (startScanFilter.ts): one order delivered first means chokidar is open and watching again.
      renameIn(ctx.local.outbox, "first.json", sampleOrder(9999));
      await until(() => erp.consumed.length >= 1, 30_000, () => "first.json not consumed");
      const names = Array.from({ length: 1_000 }, (_, i) => `many-${i}.json`);
      const temp = join(ctx.local.root, "producer");
      mkdirSync(temp, { recursive: true });
      for (const [i, name] of names.entries()) writeFileSync(join(temp, name), sampleOrder(i));
      for (const name of names) renameSync(join(temp, name), join(ctx.local.outbox, name));
      await until(() => erp.consumed.length >= names.length + 1, 120_000, () => `${erp.consumed.length - 1}/${names.length} consumed`);
      expect((await stop(watch)).code).toBe(0);
      expect(erp.consumed.map((c) => c.name).sort()).toEqual(["first.json", ...names].sort());
      const errors = logEvents(ctx.local.logDir).filter((e) => e.event === "watch-error" || e.event === "watch-errors");
      // The first in full; the rest counted, reported at the stop (no rescan interval passed).
      expect(errors.map((e) => [e.event, e.code])).toEqual([
        ["watch-error", "ENOSPC"],
        ["watch-errors", "ENOSPC"],
      ]);
      expect(errors[1].count).toBeGreaterThan(100);
      process.stdout.write(`watch with 300 inotify watches: 1,000 files, ${(errors[1].count as number) + 1} ENOSPC errors, 2 log lines\n`);
    } finally {
      await erp.stop();
    }
  }, 180_000);

  it("a flapping ERP connection leaves the watcher with one open connection, not one more per outage", async () => {
    // A proxy in front of sshd that cuts every connection and refuses new ones for a while, 8 times.
    const proxy = await TcpProxy.start({ host: "127.0.0.1", port: ctx.erp.port });
    const base = JSON.parse(readFileSync(ctx.local.configPath, "utf8"));
    let produced = 0;
    let producing = true;
    let producer: Promise<void> | undefined;
    try {
      watch = await startWatch(configWith({ minAgeSeconds: 60, remote: { ...base.remote, port: proxy.port } }));
      producer = (async () => {
        for (; producing; produced++) {
          renameIn(ctx.local.outbox, `flap-${produced}.json`, sampleOrder(produced));
          await new Promise((r) => setTimeout(r, 15));
        }
      })();
      await new Promise((r) => setTimeout(r, 1_000));
      for (let i = 0; i < 8; i++) {
        proxy.refuseNew = true;
        proxy.cutAll();
        await new Promise((r) => setTimeout(r, 300 + (i % 4) * 250));
        proxy.refuseNew = false;
        await new Promise((r) => setTimeout(r, 700 + (i % 3) * 400));
      }
      producing = false;
      await producer;
      await until(() => readdirSync(ctx.local.outbox).length === 0, 90_000, () => `outbox: ${readdirSync(ctx.local.outbox).length}`);
      expect(readdirSync(ctx.erp.inboxDir)).toHaveLength(produced);
      // A connection the watcher lost track of stays open for good; one being replaced (the idle
      // check, 1 s, and a reconnect) closes however slow the machine is.
      await until(() => proxy.openConnections === 1, 30_000, () => `${proxy.openConnections} connections open`);
      expect((await stop(watch)).code).toBe(0);
    } finally {
      producing = false;
      await producer;
      await proxy.stop();
    }
  }, 180_000);

  it("a backlog found at start costs no watch per file; a later change to one of its files is still an event (written in place, replaced, re-created)", async () => {
    // Written in place and left half done: not orders, so they stay (minAgeSeconds is 10 minutes).
    const n = 2_000;
    for (let i = 0; i < n; i++) writeFileSync(join(ctx.local.outbox, `half-${i}.json`), sampleOrder(i).slice(0, 40));
    // No rescan in the test's time but the one at start: what is delivered was an event.
    watch = await startWatch(configWith({ minAgeSeconds: 600, watch: { rescanSeconds: 3_600 } }));
    const pid = watch.child.pid!;
    // The start-up rescan has judged them (settleMs 200): not orders, left alone.
    await new Promise((r) => setTimeout(r, 1_500));
    // chokidar used to watch every file it found (2,001 watches here); now only the folder.
    const atStart = inotifyWatches(pid);
    expect(atStart).toBe(1);

    appendFileSync(join(ctx.local.outbox, "half-7.json"), sampleOrder(7).slice(40));
    renameIn(ctx.local.outbox, "half-8.json", sampleOrder(8));
    unlinkSync(join(ctx.local.outbox, "half-9.json"));
    writeFileSync(join(ctx.local.outbox, "half-9.json"), sampleOrder(9));
    const expected = ["half-7.json", "half-8.json", "half-9.json"];
    await until(() => expected.every((name) => existsSync(join(ctx.erp.inboxDir, name))), 15_000, () => `delivered: ${readdirSync(ctx.erp.inboxDir).join(" ")}`);
    for (const i of [7, 8, 9]) expect(readFileSync(join(ctx.erp.inboxDir, `half-${i}.json`), "utf8")).toBe(sampleOrder(i));

    // A file arriving now is watched as before, until it leaves the outbox.
    writeFileSync(join(ctx.local.outbox, "late-half.json"), sampleOrder(1).slice(0, 40));
    await until(() => inotifyWatches(pid) === 2, 10_000, () => `watches: ${inotifyWatches(pid)}`);
    appendFileSync(join(ctx.local.outbox, "late-half.json"), sampleOrder(1).slice(40));
    await until(() => existsSync(join(ctx.erp.inboxDir, "late-half.json")), 15_000, () => "late-half.json not delivered");
    await until(() => inotifyWatches(pid) === 1, 10_000, () => `watches after the delivery: ${inotifyWatches(pid)}`);

    expect((await stop(watch)).code).toBe(0);
    expect(deliveredEvents().sort()).toEqual([...expected, "late-half.json"]);
    expect(readdirSync(ctx.local.outbox)).toHaveLength(n - 3);
  }, 120_000);

  it("a file arriving while a big batch runs with chokidar closed is delivered after it, without a rescan; chokidar then watches again", async () => {
    const erp = await FakeErp.start(ctx.erp.inboxDir);
    try {
      watch = await startWatch(configWith({ minAgeSeconds: 60, watch: { rescanSeconds: 3_600 } }));
      const names = Array.from({ length: 5_000 }, (_, i) => `big-${i}.json`);
      const temp = join(ctx.local.root, "producer-big");
      mkdirSync(temp);
      for (const [i, name] of names.entries()) writeFileSync(join(temp, name), sampleOrder(i));
      for (const name of names) renameSync(join(temp, name), join(ctx.local.outbox, name));
      // A batch of at least QUIET_BATCH_NAMES (1,000) is under way: chokidar is closed, no watch at all.
      await until(() => inotifyWatches(watch!.child.pid!) === 0, 60_000, () => `chokidar never closed; ${erp.consumed.length} consumed`);
      renameIn(ctx.local.outbox, "during.json", sampleOrder(5_000));
      await until(() => erp.consumed.some((c) => c.name === "during.json"), 120_000, () => `during.json not delivered; ${erp.consumed.length} consumed`);
      await until(() => erp.consumed.length === names.length + 1, 60_000, () => `${erp.consumed.length}/${names.length + 1} consumed`);
      // Watching again: the folder's watch, and a file renamed in now is an event.
      await until(() => inotifyWatches(watch!.child.pid!) === 1, 10_000, () => `watches: ${inotifyWatches(watch!.child.pid!)}`);
      renameIn(ctx.local.outbox, "after.json", sampleOrder(5_001));
      await until(() => erp.consumed.some((c) => c.name === "after.json"), 10_000, () => "after.json not delivered");
      expect((await stop(watch)).code).toBe(0);
      expect(new Set(erp.consumed.map((c) => c.name)).size).toBe(names.length + 2);
      expect(deliveredEvents()).toHaveLength(names.length + 2);
    } finally {
      await erp.stop();
    }
  }, 300_000);

  it("started while another pass holds the lock: what arrives meanwhile is delivered once the lock is free", async () => {
    const lockPath = join(ctx.local.stateDir, "pass.lock");
    mkdirSync(ctx.local.stateDir, { recursive: true });
    writeFileSync(lockPath, JSON.stringify({ pid: process.pid, host: hostname(), startedAt: Date.now() }));
    watch = await startWatch(configWith({ minAgeSeconds: 60, watch: { rescanSeconds: 3_600 } }));
    // The start-up rescan waits for the lock, with chokidar closed.
    await until(() => logEvents(ctx.local.logDir).some((e) => e.event === "locked"), 10_000, () => "the watcher never found the lock held");
    renameIn(ctx.local.outbox, "while-locked.json", sampleOrder(1));
    await new Promise((r) => setTimeout(r, 1_500));
    expect(readdirSync(ctx.erp.inboxDir)).toEqual([]);
    rmSync(lockPath);
    await until(() => existsSync(join(ctx.erp.inboxDir, "while-locked.json")), 15_000, () => "while-locked.json not delivered after the lock was freed");
    renameIn(ctx.local.outbox, "after-lock.json", sampleOrder(2));
    await until(() => existsSync(join(ctx.erp.inboxDir, "after-lock.json")), 10_000, () => "after-lock.json not delivered");
    expect((await stop(watch)).code).toBe(0);
    expect(deliveredEvents().sort()).toEqual(["after-lock.json", "while-locked.json"]);
  }, 60_000);

  it("delivers what it never heard about through the rescan (events lost, as on an inotify overflow)", async () => {
    watch = await startWatch(configWith({ minAgeSeconds: 60, watch: { rescanSeconds: 2 } }), { env: { PLUTUS_WATCH_IGNORE_EVENTS: "1" } });
    for (let i = 0; i < 20; i++) renameIn(ctx.local.outbox, `lost-${i}.json`, sampleOrder(i));
    await until(() => readdirSync(ctx.erp.inboxDir).length === 20, 60_000, () => `rescan delivered ${readdirSync(ctx.erp.inboxDir).length}/20`);
    expect((await stop(watch)).code).toBe(0);
    expect(deliveredEvents()).toHaveLength(20);
    expect(new Set(deliveredEvents()).size).toBe(20);
  }, 60_000);

  it("stops on SIGTERM mid-batch within 10 s; what it did not finish is delivered once by the next pass", async () => {
    const erp = await FakeErp.start(ctx.erp.inboxDir);
    try {
      watch = await startWatch(configWith({ minAgeSeconds: 60 }));
      const names = Array.from({ length: 3_000 }, (_, i) => `burst-${i}.json`);
      const temp = join(ctx.local.root, "producer");
      mkdirSync(temp);
      for (const [i, name] of names.entries()) writeFileSync(join(temp, name), sampleOrder(i));
      for (const name of names) renameSync(join(temp, name), join(ctx.local.outbox, name));
      await until(() => erp.consumed.length >= 50, 30_000, () => `only ${erp.consumed.length} delivered before SIGTERM`);
      // Frozen while a batch holds the pass lock: the cron pass finds it held, does nothing, exits 0.
      await stopInsideBatch(watch);
      const locked = await runAgent(["run", "--config", ctx.local.configPath, "--json"]);
      watch.child.kill("SIGCONT");
      expect(locked).toMatchObject({ code: 0, stderr: "plutus-sync: another pass holds the lock; nothing done\n" });
      expect(lastJsonLine(locked.stdout)).toMatchObject({ found: 0, delivered: 0, skippedLocked: true });
      const stopped = await stop(watch);
      expect(stopped.code).toBe(0);
      expect(stopped.ms).toBeLessThan(10_000);
      const pass = await runAgent(["run", "--config", configWith({ minAgeSeconds: 0 }), "--json"]);
      expect(pass.code).toBe(0);
      await until(() => erp.consumed.length >= names.length, 60_000, () => `${erp.consumed.length}/${names.length} consumed`);
      await new Promise((r) => setTimeout(r, 500));
      expect(erp.consumed.map((c) => c.name).sort()).toEqual([...names].sort());
      expect(erp.temporarySeen).toEqual([]);
      expect(readdirSync(ctx.local.outbox)).toEqual([]);
    } finally {
      await erp.stop();
    }
  }, 120_000);
  it("a watcher frozen inside a batch does not disable cron: past the batch's bound with no heartbeat, the cron pass kills it and delivers everything once", async () => {
    watch = await startWatch(configWith({ minAgeSeconds: 0, passDeadlineSeconds: 30 }));
    const names = Array.from({ length: 3_000 }, (_, i) => `frozen-${i}.json`);
    const temp = join(ctx.local.root, "producer");
    mkdirSync(temp);
    for (const [i, name] of names.entries()) writeFileSync(join(temp, name), sampleOrder(i));
    for (const name of names) renameSync(join(temp, name), join(ctx.local.outbox, name));
    await until(() => readdirSync(ctx.erp.inboxDir).length >= 10, 30_000, () => `only ${readdirSync(ctx.erp.inboxDir).length} delivered before the freeze`);
    // Stopped (as a blocked event loop would be: no timer of its own runs) while a batch holds the lock.
    const lockPath = await stopInsideBatch(watch);
    const frozenLock = JSON.parse(readFileSync(lockPath, "utf8"));
    expect(frozenLock).toMatchObject({ pid: watch.child.pid, holder: "watcher" });

    // Within the bound (lock younger than passDeadlineSeconds + 15 s, heartbeat fresh): the cron pass leaves it alone.
    const early = await runAgent(["run", "--config", ctx.local.configPath, "--json"]);
    expect(early).toMatchObject({ code: 0, stderr: "plutus-sync: another pass holds the lock; nothing done\n" });
    expect(watch.child.signalCode).toBeNull();

    // 120 s later (the cron pass's wall clock stepped instead of waiting): lock older than 30 + 15 s,
    // heartbeat older than 60 s. The cron pass ends the watcher, breaks its lock, recovers, delivers.
    const late = await runAgent(["run", "--config", ctx.local.configPath, "--json"], {
      NODE_OPTIONS: `--require ${join(__dirname, "../support/clockStep.cjs")}`,
      PLUTUS_TEST_CLOCK_STEP_MS: "120000",
    });
    expect({ code: late.code, stderr: late.stderr }).toEqual({ code: 0, stderr: "" });
    expect(lastJsonLine(late.stdout).skippedLocked).toBeUndefined();
    expect(await watch.exited).toEqual({ code: null, signal: "SIGKILL" });
    const killed = logEvents(ctx.local.logDir).filter((e) => e.event === "watch-hung-killed");
    expect(killed).toEqual([expect.objectContaining({ level: "error", pid: watch.child.pid, lockHeldSince: new Date(frozenLock.startedAt).toISOString() })]);
    expect(lastJsonLine(late.stdout).delivered).toBeGreaterThan(0);
    expect(existsSync(lockPath)).toBe(false);

    // What one pass had no time for goes with the next ones; nothing is sent twice.
    for (let pass = 0; readdirSync(ctx.local.outbox).length > 0; pass++) {
      if (pass === 10) throw new Error(`${readdirSync(ctx.local.outbox).length} orders still in the outbox after 10 more passes`);
      const next = await runAgent(["run", "--config", ctx.local.configPath, "--json"]);
      expect({ code: next.code, stderr: next.stderr }).toEqual({ code: 0, stderr: "" });
    }
    const last = await runAgent(["run", "--config", ctx.local.configPath, "--json"]);
    expect(lastJsonLine(last.stdout)).toMatchObject({ found: 0, delivered: 0, recovered: 0, inDoubt: 0 });
    expect(readdirSync(ctx.erp.inboxDir).sort()).toEqual([...names].sort());
    for (const i of [0, 999, 1_999]) expect(readFileSync(join(ctx.erp.inboxDir, names[i]), "utf8")).toBe(sampleOrder(i));
    expect(stagingFiles(ctx.erp.stagingDir)).toEqual([]);
  }, 120_000);

  it("delivers 10,000 orders dropped at once, each exactly once, three times over in a 96 MiB heap (memory flat)", async () => {
    const erp = await FakeErp.start(ctx.erp.inboxDir);
    try {
      // A leak of even 1 KiB per file would exhaust this heap over 30,000 files.
      watch = await startWatch(configWith({ minAgeSeconds: 60 }), { nodeArgs: ["--max-old-space-size=96"] });
      const rssAfter: number[] = [];
      for (const round of [0, 1, 2]) {
        const names = Array.from({ length: 10_000 }, (_, i) => `mass-${round}-${i}.json`);
        const temp = join(ctx.local.root, `producer-${round}`);
        mkdirSync(temp);
        for (const [i, name] of names.entries()) writeFileSync(join(temp, name), sampleOrder(round * 10_000 + i));
        const started = Date.now();
        for (const name of names) renameSync(join(temp, name), join(ctx.local.outbox, name));
        const expected = (round + 1) * 10_000;
        await until(() => erp.consumed.length >= expected || watch!.child.exitCode !== null, 240_000, () => `round ${round}: ${erp.consumed.length}/${expected} consumed`);
        process.stdout.write(`watch: 10,000 files delivered in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
        // The heartbeat is rewritten within a second of a delivering batch; the one that counts the
        // round's last delivery shows the memory after the round.
        const heartbeat = () => JSON.parse(readFileSync(join(ctx.local.stateDir, "watcher.json"), "utf8"));
        await until(() => heartbeat().delivered >= expected, 30_000, () => `the heartbeat counts ${heartbeat().delivered}/${expected} delivered`);
        await until(() => readdirSync(ctx.local.outbox).length === 0, 30_000, () => `outbox not empty: ${readdirSync(ctx.local.outbox).length}`);
        rssAfter.push(heartbeat().rssBytes as number);
      }
      expect((await stop(watch)).code).toBe(0);
      const names = erp.consumed.map((c) => c.name);
      expect(names).toHaveLength(30_000);
      expect(new Set(names).size).toBe(30_000);
      expect(erp.temporarySeen).toEqual([]);
      process.stdout.write(`watch: resident size after each 10,000: ${rssAfter.map((b) => `${(b / 2 ** 20).toFixed(0)} MiB`).join(", ")}\n`);
      // No trend once warmed up: the third round leaves the process no larger than the second did (25% noise allowed).
      expect(rssAfter[2]).toBeLessThan(rssAfter[1] * 1.25);
    } finally {
      await erp.stop();
    }
  }, 600_000);
});
