/*
 * npm run bench -- --soak [--minutes N] [--rate R] [--burst B] [--burst-every S] [--json]:
 * does one `plutus-sync watch` process stay flat in memory (issue 11: "Memory stays flat over
 * hours and across thousands of files")? Called by bench/run.js with its fixture (sshd on
 * 127.0.0.1 with a chrooted SFTP-only account).
 *
 * The watcher runs as its systemd unit runs it (`node --max-semi-space-size=8 plutus-sync.cjs watch
 * --config FILE`). A producer in this process renames a steady stream of orders into the outbox
 * (R a second, 1–8 KB) plus a burst of B every S seconds; a consumer plays the ERP and takes every
 * file out of the inbox (as the real ERP does), checking its content. Every few seconds the
 * watcher's resident size is read from /proc (VmRSS, VmHWM) and from its heartbeat (rssBytes).
 * `--watch-node-args "…"` replaces the unit's V8 flags (e.g. "" for none, as before the unit had one).
 * Reported: orders delivered, exactly once, RSS at start / after warm-up / at the end, the peak,
 * and the least-squares slope of VmRSS over time after the warm-up.
 */
"use strict";
const { spawn } = require("node:child_process");
const crypto = require("node:crypto");
const fs = require("node:fs");
const path = require("node:path");
const { agentConfig, deliveriesPerName } = require("./latency");

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (...a) => process.stderr.write(a.join(" ") + "\n");
const sha256 = (data) => crypto.createHash("sha256").update(data).digest("hex");
const MiB = 1024 * 1024;

/** Least-squares slope of y over x (units of y per unit of x). */
function slope(points) {
  const n = points.length;
  if (n < 2) return NaN;
  const mx = points.reduce((s, p) => s + p.x, 0) / n;
  const my = points.reduce((s, p) => s + p.y, 0) / n;
  let sxy = 0;
  let sxx = 0;
  for (const p of points) {
    sxy += (p.x - mx) * (p.y - my);
    sxx += (p.x - mx) ** 2;
  }
  return sxx === 0 ? NaN : sxy / sxx;
}

function procMemory(pid) {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, "utf8");
    const kib = (field) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)[1]);
    return { rssKiB: kib("VmRSS"), hwmKiB: kib("VmHWM") };
  } catch {
    return undefined;
  }
}

/** An order of 1–8 KB; its content is unique (name and nonce inside). */
function orderText(name, rnd) {
  const doc = { orderId: name.replace(/\.json$/, ""), createdAt: new Date().toISOString(), nonce: crypto.randomBytes(8).toString("hex"), customer: { name: "Kundin Soak", email: "soak@example.com" }, lines: [{ sku: "LAMP-ARC-01", qty: 1, price: 149 }], note: "" };
  doc.note = "x".repeat(Math.max(0, 1024 + Math.floor(rnd() * 7 * 1024) - JSON.stringify(doc).length));
  return JSON.stringify(doc);
}

/** The ERP: takes every final name out of the inbox, counting arrivals per name and checking content. */
class Consumer {
  constructor(inbox, produced) {
    this.inbox = inbox;
    this.produced = produced;
    this.arrivals = new Map();
    this.wrongContent = [];
    this.partialNames = [];
    this.timer = setInterval(() => this.drain(), 100);
  }
  drain() {
    for (const name of fs.readdirSync(this.inbox)) {
      const file = path.join(this.inbox, name);
      if (!name.endsWith(".json")) {
        if (!this.partialNames.includes(name)) this.partialNames.push(name);
        continue;
      }
      let content;
      try {
        content = fs.readFileSync(file);
        fs.unlinkSync(file);
      } catch {
        continue;
      }
      this.arrivals.set(name, (this.arrivals.get(name) || 0) + 1);
      if (this.produced.get(name) !== sha256(content)) this.wrongContent.push(name);
    }
  }
  stop() {
    clearInterval(this.timer);
    this.drain();
  }
}

/**
 * `--trace-gc` makes V8 print one line per collection; after a full (mark-compact) collection the
 * heap size is the live data, which is what grows when something leaks. The rest of the process's
 * resident size is V8's choice of how much heap to keep and native memory.
 */
const MARK_COMPACT = /\s(\d+) ms: Mark-Compact(?: \([a-z ]+\))? ([\d.]+) \(([\d.]+)\) -> ([\d.]+) \(([\d.]+)\) MB/;

function startWatcher(bundle, configFile, nodeArgs, onMarkCompact) {
  // As plutus-sync-watch.service runs it (install.sh: ExecStart=node --max-semi-space-size=8 plutus-sync.cjs watch --config …), plus --trace-gc.
  const child = spawn(process.execPath, ["--trace-gc", ...nodeArgs, bundle, "watch", "--config", configFile], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let partial = "";
  const keep = (text) => (out = (out + text).slice(-20_000));
  child.stdout.on("data", (d) => {
    const lines = (partial + d).split("\n");
    partial = lines.pop();
    for (const line of lines) {
      const gc = MARK_COMPACT.exec(line);
      if (gc) onMarkCompact({ liveMiB: Number(gc[4]), committedMiB: Number(gc[5]) });
      else if (!/ ms: (Scavenge|Mark-Compact|Minor)/.test(line)) keep(line + "\n");
    }
  });
  child.stderr.on("data", (d) => keep(String(d)));
  const exited = new Promise((r) => child.on("close", (code, signal) => r({ code, signal })));
  return {
    child,
    exited,
    output: () => out,
    async ready() {
      for (let i = 0; i < 1500 && !out.includes("plutus-sync: watching"); i++) await sleep(20);
      if (!out.includes("plutus-sync: watching")) throw new Error(`plutus-sync watch did not start: ${out}`);
    },
  };
}

/** Mean of the samples in each whole minute of the run. */
function perMinute(samples) {
  const minutes = [];
  for (const s of samples) {
    const m = Math.floor(s.t / 60);
    (minutes[m] ??= []).push(s.rssKiB);
  }
  return minutes.filter(Boolean).map((list) => list.reduce((a, b) => a + b, 0) / list.length);
}

const mib = (kib) => `${(kib / 1024).toFixed(1)} MiB`;

async function soakBench(fx, opts) {
  const started = new Date();
  const load = () => fs.readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
  const loadAtStart = load();
  const dir = path.join(fx.root, "soak");
  // The lab stack's minAgeSeconds; every other setting is the agent's default (concurrency 256).
  const { file: configFile, config } = agentConfig(fx, dir);
  const staging = path.join(dir, "producer-tmp");
  fs.mkdirSync(staging, { recursive: true });
  const inbox = path.join(fx.jail, "Inbox");

  const produced = new Map();
  const consumer = new Consumer(inbox, produced);
  let seq = 0;
  let seed = 20261201;
  const rnd = () => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed / 0x7fffffff;
  };
  const drop = () => {
    const name = `soak-${String(++seq).padStart(7, "0")}.json`;
    const text = orderText(name, rnd);
    produced.set(name, sha256(text));
    fs.writeFileSync(path.join(staging, name), text);
    fs.renameSync(path.join(staging, name), path.join(config.outbox, name));
  };

  const fullGcs = [];
  let t0 = Date.now();
  const watcher = startWatcher(fx.bundle, configFile, opts.nodeArgs, (gc) => fullGcs.push({ t: (Date.now() - t0) / 1000, ...gc }));
  await watcher.ready();
  const pid = watcher.child.pid;
  t0 = Date.now();
  const durationMs = opts.minutes * 60_000;
  // RSS climbs for about 5 minutes while V8 sizes its heap (measured over 25 minutes, bench/README.md).
  const warmupMs = Math.min(300_000, durationMs / 2);
  const samples = [];
  const sample = () => {
    const mem = procMemory(pid);
    let heartbeatRssKiB;
    try {
      heartbeatRssKiB = JSON.parse(fs.readFileSync(path.join(config.stateDir, "watcher.json"), "utf8")).rssBytes / 1024;
    } catch {
      heartbeatRssKiB = undefined;
    }
    if (mem) samples.push({ t: (Date.now() - t0) / 1000, ...mem, heartbeatRssKiB, delivered: consumer.arrivals.size });
  };
  sample();
  const sampler = setInterval(sample, opts.sampleSeconds * 1000);
  log(`soak: ${opts.minutes} min, ${opts.rate} orders/s steady, a burst of ${opts.burst} every ${opts.burstEverySeconds} s; warm-up ${warmupMs / 1000} s; watcher pid ${pid}`);

  // The stream: R orders a second at even spacing, and a burst every S seconds.
  let nextBurst = t0 + opts.burstEverySeconds * 1000;
  let nextLog = t0 + 60_000;
  const gapMs = 1000 / opts.rate;
  let next = t0;
  while (Date.now() - t0 < durationMs) {
    if (watcher.child.exitCode !== null || watcher.child.signalCode !== null) throw new Error(`the watcher ended during the soak: ${watcher.output().slice(-2000)}`);
    if (Date.now() >= nextBurst) {
      for (let i = 0; i < opts.burst; i++) drop();
      nextBurst += opts.burstEverySeconds * 1000;
    }
    drop();
    next += gapMs;
    if (Date.now() >= nextLog) {
      const last = samples[samples.length - 1];
      log(`soak: ${((Date.now() - t0) / 60_000).toFixed(0)} min, ${seq} produced, ${consumer.arrivals.size} delivered, VmRSS ${mib(last.rssKiB)}, load ${load()}`);
      nextLog += 60_000;
    }
    await sleep(Math.max(0, next - Date.now()));
  }
  const producedAll = seq;
  // Let it drain, then stop it as systemd does.
  const drainUntil = Date.now() + 120_000;
  while (consumer.arrivals.size < producedAll && Date.now() < drainUntil) await sleep(100);
  sample();
  clearInterval(sampler);
  const drainedAfterMs = Date.now() - t0 - durationMs;
  watcher.child.kill("SIGTERM");
  const stopped = await watcher.exited;
  consumer.stop();

  const perName = deliveriesPerName(config.logDir);
  const missing = [...produced.keys()].filter((n) => !consumer.arrivals.has(n));
  const twice = [...consumer.arrivals].filter(([, c]) => c > 1).map(([n]) => n);
  const loggedTwice = [...perName].filter(([, c]) => c > 1).map(([n]) => n);
  const foreign = [...consumer.arrivals.keys()].filter((n) => !produced.has(n));
  const left = fs.readdirSync(config.outbox).filter((n) => n.endsWith(".json"));
  const stagingLeft = fs.readdirSync(path.join(fx.jail, "Staging")).filter((n) => !n.endsWith(".sentinel"));
  const exactlyOnce = missing.length === 0 && twice.length === 0 && loggedTwice.length === 0 && foreign.length === 0 && consumer.wrongContent.length === 0 && consumer.partialNames.length === 0 && left.length === 0 && stagingLeft.length === 0;

  const afterWarmup = samples.filter((s) => s.t * 1000 >= warmupMs && s.t * 1000 <= durationMs);
  const rssSlope = slope(afterWarmup.map((s) => ({ x: s.t / 60, y: s.rssKiB })));
  const hb = afterWarmup.filter((s) => s.heartbeatRssKiB !== undefined);
  const hbSlope = slope(hb.map((s) => ({ x: s.t / 60, y: s.heartbeatRssKiB })));
  const atWarmup = afterWarmup[0];
  const end = samples[samples.length - 1];
  const peak = Math.max(...samples.map((s) => s.hwmKiB));
  const gcAfter = fullGcs.filter((g) => g.t * 1000 >= warmupMs && g.t * 1000 <= durationMs);
  const liveSlope = slope(gcAfter.map((g) => ({ x: g.t / 60, y: g.liveMiB * 1024 })));
  const liveAt = (list) => (list.length ? `${list[0].liveMiB.toFixed(1)} MiB` : "-");
  const meanAfterWarmup = afterWarmup.reduce((s, x) => s + x.rssKiB, 0) / afterWarmup.length;
  const minAfter = Math.min(...afterWarmup.map((s) => s.rssKiB));
  const maxAfter = Math.max(...afterWarmup.map((s) => s.rssKiB));
  const result = {
    minutes: opts.minutes,
    ratePerSecond: opts.rate,
    burst: opts.burst,
    burstEverySeconds: opts.burstEverySeconds,
    produced: producedAll,
    delivered: consumer.arrivals.size,
    exactlyOnce,
    stopExit: stopped.code,
    drainedAfterSeconds: Number((drainedAfterMs / 1000).toFixed(1)),
    samples: samples.length,
    rssStartMiB: Number((samples[0].rssKiB / 1024).toFixed(1)),
    rssAfterWarmupMiB: Number((atWarmup.rssKiB / 1024).toFixed(1)),
    rssEndMiB: Number((end.rssKiB / 1024).toFixed(1)),
    rssAfterWarmupMinMaxMiB: [Number((minAfter / 1024).toFixed(1)), Number((maxAfter / 1024).toFixed(1))],
    peakRssMiB: Number((peak / 1024).toFixed(1)),
    slopeKiBPerMin: Number(rssSlope.toFixed(1)),
    heartbeatSlopeKiBPerMin: Number(hbSlope.toFixed(1)),
    fullGcs: fullGcs.length,
    liveHeapAfterWarmupMiB: gcAfter.length ? gcAfter[0].liveMiB : null,
    liveHeapEndMiB: fullGcs.length ? fullGcs[fullGcs.length - 1].liveMiB : null,
    liveHeapMaxMiB: fullGcs.length ? Math.max(...fullGcs.map((g) => g.liveMiB)) : null,
    liveHeapSlopeKiBPerMin: Number.isFinite(liveSlope) ? Number(liveSlope.toFixed(1)) : null,
  };
  const lines = [
    `# Watch soak (npm run bench -- --soak --minutes ${opts.minutes})`,
    `${started.toISOString()}; bundle ${opts.bundleSha}; node ${process.version}; load at start ${loadAtStart}, at end ${load()} (2 CPUs shared with other test runs)`,
    `one \`plutus-sync watch\` (as its systemd unit runs it${opts.nodeArgs.length ? `, with ${opts.nodeArgs.join(" ")}` : ""}, default settings: concurrency 256, handles ≤ 100), ${opts.minutes} min: ${opts.rate} orders/s renamed in (1–8 KB) plus ${opts.burst} at once every ${opts.burstEverySeconds} s; the ERP takes each file out of the inbox`,
    "",
    `orders: ${producedAll} produced, ${consumer.arrivals.size} delivered; exactly once: ${exactlyOnce ? "yes" : "NO"}` +
      (exactlyOnce ? "" : ` (missing ${missing.length}, twice ${twice.length}, logged twice ${loggedTwice.length}, foreign ${foreign.length}, wrong content ${consumer.wrongContent.length}, partial names ${consumer.partialNames.length}, left in outbox ${left.length}, left in staging ${stagingLeft.length})`),
    `drained ${result.drainedAfterSeconds} s after the stream stopped; SIGTERM: exit ${stopped.code ?? stopped.signal}`,
    `VmRSS (from /proc, every ${opts.sampleSeconds} s, ${samples.length} samples): start ${mib(samples[0].rssKiB)}, after the ${warmupMs / 1000} s warm-up ${mib(atWarmup.rssKiB)}, end ${mib(end.rssKiB)}; after warm-up between ${mib(minAfter)} and ${mib(maxAfter)}, mean ${mib(meanAfterWarmup)}`,
    `VmRSS mean per minute: ${perMinute(samples).map((kib) => (kib / 1024).toFixed(0)).join(", ")} MiB`,
    `peak (VmHWM): ${mib(peak)}`,
    `slope of VmRSS after warm-up (least squares, ${afterWarmup.length} samples): ${rssSlope.toFixed(1)} KiB/min = ${((rssSlope * 60) / 1024).toFixed(1)} MiB/hour (${((rssSlope * 60 * 100) / meanAfterWarmup).toFixed(1)} % of the mean RSS per hour)`,
    `slope of the heartbeat's rssBytes after warm-up (${hb.length} samples): ${hbSlope.toFixed(1)} KiB/min`,
    `live heap after each full GC (--trace-gc, ${fullGcs.length} full GCs, ${gcAfter.length} after warm-up): first after warm-up ${liveAt(gcAfter)}, last ${liveAt(fullGcs.slice(-1))}, largest ${result.liveHeapMaxMiB ?? "-"} MiB; slope after warm-up ${Number.isFinite(liveSlope) ? `${liveSlope.toFixed(1)} KiB/min` : "- (fewer than 2 full GCs)"}`,
    "",
  ];
  process.stdout.write(lines.join("\n"));
  if (opts.json) process.stdout.write(JSON.stringify(result) + "\n");
  if (opts.samplesFile) {
    fs.writeFileSync(opts.samplesFile, samples.map((s) => `${s.t.toFixed(1)} ${s.rssKiB} ${s.hwmKiB} ${s.heartbeatRssKiB ?? ""} ${s.delivered}`).join("\n") + "\n");
    fs.writeFileSync(`${opts.samplesFile}.gc`, fullGcs.map((g) => `${g.t.toFixed(1)} ${g.liveMiB} ${g.committedMiB}`).join("\n") + "\n");
  }
  if (!exactlyOnce || stopped.code !== 0) process.exitCode = 1;
  return result;
}

module.exports = { soakBench, slope, procMemory };
