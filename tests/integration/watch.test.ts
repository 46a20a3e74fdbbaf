import { spawn, ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync, openSync, writeSync, closeSync } from "node:fs";
import { join } from "node:path";
import { useErpStandIn, runAgent, lastJsonLine, sampleOrder, logEvents, stagingFiles, BUNDLE } from "../support/agent";
import { FakeErp } from "../support/fakeErp";
import { freePort } from "../support/sshd";

const ctx = useErpStandIn();

interface WatchProcess {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts `plutus-sync watch` and resolves once it says it is watching. */
async function startWatch(configPath: string, env: NodeJS.ProcessEnv = {}, nodeArgs: string[] = []): Promise<WatchProcess> {
  const child = spawn(process.execPath, [...nodeArgs, BUNDLE, "watch", "--config", configPath], { env: { PATH: process.env.PATH, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  child.stdout!.on("data", (d) => (out += d));
  child.stderr!.on("data", (d) => (err += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on("close", (code, signal) => resolve({ code, signal })));
  await until(() => out.includes("plutus-sync: watching"), 20_000, () => `watch did not start: ${out} ${err}`);
  return { child, stdout: () => out, stderr: () => err, exited };
}

async function until(condition: () => boolean, timeoutMs: number, what: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(what());
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Writes an order elsewhere and renames it into the outbox, as the web shop should. */
function renameIn(outbox: string, name: string, content: string): void {
  const temp = join(outbox, "..", "producer");
  mkdirSync(temp, { recursive: true });
  writeFileSync(join(temp, name), content);
  renameSync(join(temp, name), join(outbox, name));
}

function configWith(overrides: Record<string, unknown>): string {
  const config = { ...JSON.parse(readFileSync(ctx.local.configPath, "utf8")), ...overrides };
  writeFileSync(ctx.local.configPath, JSON.stringify(config, null, 2));
  return ctx.local.configPath;
}

async function stop(watch: WatchProcess): Promise<{ code: number | null; ms: number }> {
  const started = Date.now();
  watch.child.kill("SIGTERM");
  const { code } = await watch.exited;
  return { code, ms: Date.now() - started };
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
    await until(() => existsSync(join(ctx.erp.inboxDir, "renamed-1.json")), 10_000, () => "renamed-1.json not delivered");

    // Written in place, slowly: the first half is on disk for a second before the rest.
    const body = sampleOrder(2);
    const fd = openSync(join(ctx.local.outbox, "in-place-2.json"), "w");
    writeSync(fd, body.slice(0, 40));
    await new Promise((r) => setTimeout(r, 1_000));
    expect(readdirSync(ctx.erp.inboxDir)).not.toContain("in-place-2.json");
    expect(readdirSync(ctx.local.outbox)).toContain("in-place-2.json");
    writeSync(fd, body.slice(40));
    closeSync(fd);
    await until(() => existsSync(join(ctx.erp.inboxDir, "in-place-2.json")), 10_000, () => "in-place-2.json not delivered");
    expect(readFileSync(join(ctx.erp.inboxDir, "in-place-2.json"), "utf8")).toBe(body);
    expect(readFileSync(join(ctx.erp.inboxDir, "renamed-1.json"), "utf8")).toBe(sampleOrder(1));

    // The latency histogram on /metrics counts both deliveries.
    let metrics = "";
    async function scrape(): Promise<void> {
      metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    }
    for (let i = 0; i < 50 && !/^plutus_sync_delivery_latency_seconds_count 2$/m.test(metrics); i++) {
      await scrape();
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(metrics).toMatch(/^plutus_sync_delivery_latency_seconds_count 2$/m);
    expect(metrics).toMatch(/^plutus_sync_delivery_latency_seconds_bucket\{le="\+Inf"\} 2$/m);
    // The watcher looks at the ERP inbox itself (with its first batch, then every minute): before any cron pass.
    const inboxSeen = join(ctx.local.stateDir, "erp-inbox.json");
    await until(() => existsSync(inboxSeen), 10_000, () => "the watcher never recorded the ERP inbox");
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

  it("delivers what it never heard about through the rescan (events lost, as on an inotify overflow)", async () => {
    watch = await startWatch(configWith({ minAgeSeconds: 60, watch: { rescanSeconds: 2 } }), { PLUTUS_WATCH_IGNORE_EVENTS: "1" });
    for (let i = 0; i < 20; i++) renameIn(ctx.local.outbox, `lost-${i}.json`, sampleOrder(i));
    await until(() => readdirSync(ctx.erp.inboxDir).length === 20, 15_000, () => `rescan delivered ${readdirSync(ctx.erp.inboxDir).length}/20`);
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
      const lockPath = join(ctx.local.stateDir, "pass.lock");
      for (let attempt = 0; ; attempt++) {
        await until(() => existsSync(lockPath), 10_000, () => "no batch in flight");
        watch.child.kill("SIGSTOP");
        if (existsSync(lockPath)) break;
        watch.child.kill("SIGCONT");
        if (attempt > 50) throw new Error("could not catch the watcher inside a batch");
      }
      const locked = await runAgent(["run", "--config", ctx.local.configPath, "--json"]);
      watch.child.kill("SIGCONT");
      expect(locked).toMatchObject({ code: 0, stderr: "plutus-sync: another pass holds the lock; nothing done\n" });
      expect(lastJsonLine(locked.stdout)).toMatchObject({ found: 0, delivered: 0, skippedLocked: true });
      const stopped = await stop(watch);
      expect(stopped.code).toBe(0);
      expect(stopped.ms).toBeLessThan(10_000);
      const pass = await runAgent(["run", "--config", configWith({ minAgeSeconds: 0 }), "--json"]);
      expect(pass.code).toBe(0);
      await until(() => erp.consumed.length >= names.length, 20_000, () => `${erp.consumed.length}/${names.length} consumed`);
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
    const lockPath = join(ctx.local.stateDir, "pass.lock");
    for (let attempt = 0; ; attempt++) {
      await until(() => existsSync(lockPath), 10_000, () => "no batch in flight");
      watch.child.kill("SIGSTOP");
      if (existsSync(lockPath)) break;
      watch.child.kill("SIGCONT");
      if (attempt > 50) throw new Error("could not catch the watcher inside a batch");
    }
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
      watch = await startWatch(configWith({ minAgeSeconds: 60 }), {}, ["--max-old-space-size=96"]);
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
        // The heartbeat is rewritten after a delivering batch; the last one shows the memory after the round.
        await new Promise((r) => setTimeout(r, 1_500));
        await until(() => readdirSync(ctx.local.outbox).length === 0, 30_000, () => `outbox not empty: ${readdirSync(ctx.local.outbox).length}`);
        rssAfter.push(JSON.parse(readFileSync(join(ctx.local.stateDir, "watcher.json"), "utf8")).rssBytes as number);
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

  it("chaos: kill -9 of the watcher at random instants while orders stream in and cron passes run: 0 lost, 0 duplicated", async () => {
    const erp = await FakeErp.start(ctx.erp.inboxDir);
    const total = Number(process.env.PLUTUS_WATCH_CHAOS_ORDERS ?? 400);
    const config = configWith({ minAgeSeconds: 1, watch: { rescanSeconds: 2, settleMs: 100 } });
    const temp = join(ctx.local.root, "producer");
    mkdirSync(temp);
    let produced = 0;
    let kills = 0;
    let cronPasses = 0;
    const producing = (async () => {
      for (; produced < total; produced++) {
        const name = `chaos-${produced}.json`;
        if (produced % 5 === 0) {
          // Written in place, in two parts.
          const body = sampleOrder(produced);
          const fd = openSync(join(ctx.local.outbox, name), "w");
          writeSync(fd, body.slice(0, 30));
          await new Promise((r) => setTimeout(r, Math.random() * 30));
          writeSync(fd, body.slice(30));
          closeSync(fd);
        } else {
          writeFileSync(join(temp, name), sampleOrder(produced));
          renameSync(join(temp, name), join(ctx.local.outbox, name));
        }
        await new Promise((r) => setTimeout(r, Math.random() * 15));
      }
    })();
    const cron = (async () => {
      while (produced < total) {
        const pass = await runAgent(["run", "--config", config]);
        expect([0, 1, 3]).toContain(pass.code);
        cronPasses++;
        await new Promise((r) => setTimeout(r, 300 + Math.random() * 700));
      }
    })();
    try {
      while (produced < total) {
        watch = await startWatch(config);
        await new Promise((r) => setTimeout(r, 200 + Math.random() * 1_500));
        watch.child.kill("SIGKILL");
        await watch.exited;
        kills++;
      }
      await Promise.all([producing, cron]);
      // Recovery and the rest: a watcher, then cron passes, until the outbox is empty.
      watch = await startWatch(config);
      await until(() => erp.consumed.length >= total && readdirSync(ctx.local.outbox).length === 0, 120_000, () => `${erp.consumed.length}/${total} consumed, outbox ${readdirSync(ctx.local.outbox).join(" ")}`);
      expect((await stop(watch)).code).toBe(0);
      const last = await runAgent(["status", "--config", config, "--json"]);
      expect(JSON.parse(last.stdout)).toMatchObject({ inDoubt: 0, quarantined: 0, outbox: { waiting: 0 } });
      await new Promise((r) => setTimeout(r, 500));
      const names = erp.consumed.map((c) => c.name).sort();
      expect(names).toEqual(Array.from({ length: total }, (_, i) => `chaos-${i}.json`).sort());
      for (const c of erp.consumed) expect(c.size).toBe(Buffer.byteLength(sampleOrder(Number(/chaos-(\d+)/.exec(c.name)![1]))));
      expect(erp.temporarySeen).toEqual([]);
      expect(stagingFiles(ctx.erp.stagingDir)).toEqual([]);
      process.stdout.write(`watch chaos: ${total} orders, ${kills} kill -9, ${cronPasses} cron passes: 0 lost, 0 duplicated\n`);
      expect(kills).toBeGreaterThanOrEqual(2);
    } finally {
      await producing.catch(() => undefined);
      await erp.stop();
    }
  }, 300_000);
});
