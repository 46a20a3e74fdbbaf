/*
 * npm run bench -- --latency [--quick] [--json]: how long an order takes from the outbox to the
 * ERP's inbox (issue 11). Called by bench/run.js with its fixture (sshd on 127.0.0.1, a chrooted
 * SFTP account and a shell account for rsync).
 *
 * One clock: the producer (this process) renames an order into the outbox and takes t0 when the
 * rename returns; an observer in this process takes t1 when the final name appears in the inbox
 * folder (inotify through fs.watch, plus a 10 ms poll as a backstop). Latency = t1 - t0.
 */
"use strict";
const { spawn, spawnSync } = require("node:child_process");
const fs = require("node:fs");
const path = require("node:path");
const { performance } = require("node:perf_hooks");

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (...a) => process.stderr.write(a.join(" ") + "\n");

function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

function summarise(row, latenciesMs, extra = {}) {
  const s = [...latenciesMs].sort((a, b) => a - b);
  return { row, n: s.length, p50: percentile(s, 50), p95: percentile(s, 95), p99: percentile(s, 99), max: s[s.length - 1], ...extra };
}

/** Sees final names appear in a folder; `arrival(name)` resolves with t1 (performance.now()). */
class Observer {
  constructor(dir, isFinal) {
    this.dir = dir;
    this.isFinal = isFinal;
    this.seen = new Map();
    this.waiters = new Map();
    this.watcher = fs.watch(dir, (_event, name) => name && this.look(name));
    this.poll = setInterval(() => {
      for (const name of fs.readdirSync(dir)) this.look(name);
    }, 10);
  }
  look(name) {
    if (this.seen.has(name) || !this.isFinal(name) || !fs.existsSync(path.join(this.dir, name))) return;
    const t1 = performance.now();
    this.seen.set(name, t1);
    const waiter = this.waiters.get(name);
    if (waiter) {
      this.waiters.delete(name);
      waiter(t1);
    }
  }
  arrival(name) {
    if (this.seen.has(name)) return Promise.resolve(this.seen.get(name));
    return new Promise((resolve) => this.waiters.set(name, resolve));
  }
  close() {
    this.watcher.close();
    clearInterval(this.poll);
  }
}

const orderText = (i) => JSON.stringify({ orderId: `PL-LAT-${i}`, createdAt: new Date().toISOString(), lines: [{ sku: "LAMP-ARC-01", qty: 1, price: 149 }], note: "x".repeat(200) });

/** The web shop's recommended contract: write under a temporary folder, rename into the outbox. */
class Producer {
  constructor(root, outbox) {
    this.temp = path.join(root, "producer-tmp");
    this.outbox = outbox;
    fs.mkdirSync(this.temp, { recursive: true });
    this.count = 0;
  }
  /** Returns { name, t0 }. */
  drop(prefix) {
    const name = `${prefix}-${String(++this.count).padStart(6, "0")}.json`;
    fs.writeFileSync(path.join(this.temp, name), orderText(this.count));
    fs.renameSync(path.join(this.temp, name), path.join(this.outbox, name));
    return { name, t0: performance.now() };
  }
}

async function waitAll(observer, drops, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  const latencies = [];
  let lost = 0;
  for (const d of drops) {
    const left = deadline - Date.now();
    const t1 = await Promise.race([observer.arrival(d.name), sleep(Math.max(0, left)).then(() => undefined)]);
    if (t1 === undefined) lost++;
    else latencies.push(t1 - d.t0);
  }
  return { latencies, lost };
}

/** Random intervals (exponential, mean `meanMs`, at least 20 ms). */
const randomGap = (meanMs) => Math.max(20, -Math.log(1 - Math.random()) * meanMs);

/** The agent's configuration for a bench run in `dir` (outbox made); returns its file and content. */
function agentConfig(fx, dir) {
  const config = {
    outbox: path.join(dir, "outbox"),
    archive: path.join(dir, "archive"),
    quarantine: path.join(dir, "quarantine"),
    stateDir: path.join(dir, "state"),
    logDir: path.join(dir, "log"),
    // The lab stack's default.
    minAgeSeconds: 30,
    remote: { host: "127.0.0.1", port: fx.port, username: fx.erpUser, privateKeyPath: fx.clientKey, hostKeySha256: fx.hostKeySha256, inbox: "/Inbox", staging: "/Staging" },
  };
  fs.mkdirSync(config.outbox, { recursive: true });
  const file = path.join(dir, "agent.json");
  fs.writeFileSync(file, JSON.stringify(config));
  return { file, config };
}

function startWatcher(fx, configFile) {
  const child = spawn(process.execPath, [fx.bundle, "watch", "--config", configFile], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout.on("data", (d) => (out += d));
  child.stderr.on("data", (d) => (out += d));
  const exited = new Promise((r) => child.on("close", (code, signal) => r({ code, signal })));
  return {
    child,
    exited,
    output: () => out,
    async ready() {
      for (let i = 0; i < 600 && !out.includes("plutus-sync: watching"); i++) await sleep(20);
      if (!out.includes("plutus-sync: watching")) throw new Error(`plutus-sync watch did not start: ${out}`);
      // Let the start-up rescan and the first connection finish.
      await sleep(1_000);
    },
    async stop() {
      child.kill("SIGTERM");
      return exited;
    },
  };
}

function logEvents(logDir) {
  return fs
    .readdirSync(logDir)
    .filter((f) => f.endsWith(".log"))
    .flatMap((f) => fs.readFileSync(path.join(logDir, f), "utf8").split("\n").filter(Boolean))
    .map((line) => JSON.parse(line));
}

/** How many delivery lines (delivered, recovered after a crash, presumed delivered) the agent logged per name. */
function deliveriesPerName(logDir) {
  const delivered = new Map();
  for (const e of logEvents(logDir)) {
    if (e.event === "delivered" || e.event === "presumed-delivered" || e.event === "recovered") delivered.set(e.file, (delivered.get(e.file) || 0) + 1);
  }
  return delivered;
}

/** Each produced name delivered exactly once: every name arrived, and the agent logged one delivery per name. */
function exactlyOnce(logDir, names, inboxDir) {
  const delivered = deliveriesPerName(logDir);
  const inbox = new Set(fs.readdirSync(inboxDir));
  return names.every((n) => inbox.has(n) && delivered.get(n) === 1);
}

async function plutusRows(fx, opts) {
  const rows = [];
  const dir = path.join(fx.root, "latency-watch");
  const { file, config } = agentConfig(fx, dir);
  const inbox = path.join(fx.jail, "Inbox");
  const observer = new Observer(inbox, (n) => n.endsWith(".json"));
  const producer = new Producer(dir, config.outbox);
  const all = [];
  let watcher = startWatcher(fx, file);
  await watcher.ready();
  try {
    // Idle: single orders at random intervals.
    log(`latency: plutus-sync watch, ${opts.idle} single orders at random intervals (mean ${opts.idleGapMs} ms)`);
    const idle = [];
    for (let i = 0; i < opts.idle; i++) {
      idle.push(producer.drop("idle"));
      await sleep(randomGap(opts.idleGapMs));
    }
    let r = await waitAll(observer, idle, 30_000);
    all.push(...idle.map((d) => d.name));
    rows.push(summarise("plutus-sync watch, idle (single orders, random intervals)", r.latencies, { lost: r.lost, names: idle.map((d) => d.name) }));

    // Sparse: long quiet gaps, across the connection's keep-alives and the watcher's rescans (60 s).
    log(`latency: plutus-sync watch, ${opts.sparse} orders ${opts.sparseGapMs[0] / 1000}-${opts.sparseGapMs[1] / 1000} s apart`);
    const sparse = [];
    for (let i = 0; i < opts.sparse; i++) {
      await sleep(opts.sparseGapMs[0] + Math.random() * (opts.sparseGapMs[1] - opts.sparseGapMs[0]));
      sparse.push(producer.drop("sparse"));
    }
    r = await waitAll(observer, sparse, 30_000);
    all.push(...sparse.map((d) => d.name));
    rows.push(summarise(`plutus-sync watch, sparse (single orders ${opts.sparseGapMs[0] / 1000}-${opts.sparseGapMs[1] / 1000} s apart)`, r.latencies, { lost: r.lost, names: sparse.map((d) => d.name) }));

    // Cron passes beside the watcher: while a pass holds the lock, the watcher's batch waits for it.
    // Real cron runs a pass every 5 minutes; here one starts every 2 s, so far more orders meet one.
    log(`latency: plutus-sync watch with a cron pass started every 2 s beside it, ${opts.besideCron} orders`);
    const besideCron = [];
    let passes = 0;
    let cronRunning = true;
    const cronLoop = (async () => {
      while (cronRunning) {
        await new Promise((done) => spawn(process.execPath, [fx.bundle, "run", "--config", file], { stdio: "ignore" }).on("close", done));
        passes++;
        await sleep(2_000);
      }
    })();
    for (let i = 0; i < opts.besideCron; i++) {
      besideCron.push(producer.drop("beside"));
      await sleep(randomGap(opts.idleGapMs));
    }
    r = await waitAll(observer, besideCron, 30_000);
    cronRunning = false;
    await cronLoop;
    all.push(...besideCron.map((d) => d.name));
    rows.push(summarise(`plutus-sync watch, with cron passes beside it (${passes} passes, one every 2 s)`, r.latencies, { lost: r.lost, names: besideCron.map((d) => d.name) }));

    // Bursts of 100.
    log(`latency: plutus-sync watch, ${opts.bursts} bursts of 100`);
    const burstLatencies = [];
    let burstLost = 0;
    for (let b = 0; b < opts.bursts; b++) {
      const burst = [];
      for (let i = 0; i < 100; i++) burst.push(producer.drop(`burst${b}`));
      r = await waitAll(observer, burst, 60_000);
      burstLatencies.push(...r.latencies);
      burstLost += r.lost;
      all.push(...burst.map((d) => d.name));
      await sleep(1_000);
    }
    rows.push(summarise("plutus-sync watch, bursts of 100", burstLatencies, { lost: burstLost, names: all.filter((n) => n.startsWith("burst")) }));

    // During an sshd restart: sessions dropped, 1 s with nothing listening.
    log("latency: plutus-sync watch during an sshd restart (sessions killed, 1 s down)");
    const during = [];
    const restarting = (async () => {
      await sleep(500);
      await fx.restartSshd(1_000);
    })();
    for (let i = 0; i < opts.restartOrders; i++) {
      during.push(producer.drop("restart"));
      await sleep(100);
    }
    await restarting;
    r = await waitAll(observer, during, 60_000);
    all.push(...during.map((d) => d.name));
    const disconnects = logEvents(config.logDir).filter((e) => e.event === "watch-disconnected").length;
    rows.push(summarise(`plutus-sync watch, during an sshd restart (${fx.sessionsKilled} session processes killed, 1 s down; watcher saw ${disconnects} disconnect)`, r.latencies, { lost: r.lost, names: during.map((d) => d.name) }));

    // The watcher killed with -9 and restarted 5 s later (systemd's RestartSec=5): orders written meanwhile.
    log("latency: plutus-sync watch killed -9, restarted after 5 s");
    watcher.child.kill("SIGKILL");
    await watcher.exited;
    const killedAt = performance.now();
    const whileDead = [];
    while (performance.now() - killedAt < 5_000) {
      whileDead.push(producer.drop("dead"));
      await sleep(randomGap(300));
    }
    watcher = startWatcher(fx, file);
    r = await waitAll(observer, whileDead, 60_000);
    all.push(...whileDead.map((d) => d.name));
    rows.push(summarise("plutus-sync watch, killed -9 and restarted after 5 s (RestartSec=5)", r.latencies, { lost: r.lost, names: whileDead.map((d) => d.name) }));
    await watcher.ready();
  } finally {
    await watcher.stop();
    observer.close();
  }
  // Judged per row: every name the row produced is in the inbox, with one delivery logged for it.
  for (const row of rows) {
    row.exactlyOnce = exactlyOnce(config.logDir, row.names, inbox);
    delete row.names;
  }

  // Cron only (the watcher not running): the 5-minute interval is computed, the pass is measured.
  log("latency: plutus-sync run (cron only): one real pass measured, the 5-minute schedule computed");
  const passDrops = [];
  for (let i = 0; i < 20; i++) passDrops.push(producer.drop("cron"));
  const old = new Date(Date.now() - 3600_000);
  for (const d of passDrops) fs.utimesSync(path.join(config.outbox, d.name), old, old);
  const passStart = performance.now();
  const pass = spawnSync(process.execPath, [fx.bundle, "run", "--config", file, "--json"], { encoding: "utf8" });
  const passMs = performance.now() - passStart;
  const summary = JSON.parse(pass.stdout.trim().split("\n").pop());
  if (summary.delivered !== passDrops.length) throw new Error(`cron pass delivered ${summary.delivered}/${passDrops.length}`);
  // An order written at a uniformly random instant of the 300 s cycle is taken by the first tick at
  // which it is minAgeSeconds old: latency = wait for that tick + the pass's time.
  const cronLatencies = [];
  const samples = 10_000;
  for (let i = 0; i < samples; i++) {
    const written = ((i + 0.5) / samples) * 300_000;
    let tick = 300_000;
    while (tick - written < config.minAgeSeconds * 1000) tick += 300_000;
    cronLatencies.push(tick - written + passMs);
  }
  rows.push(summarise(`plutus-sync under cron only, as when the watcher is killed and not restarted (a pass every 5 min, minAgeSeconds ${config.minAgeSeconds}): COMPUTED schedule + measured pass of ${passMs.toFixed(0)} ms`, cronLatencies, { computed: true, lost: 0 }));
  rows[rows.length - 1].n = samples;
  return rows;
}

function lsyncdConfig(fx, dir, delay) {
  const ssh = ["ssh", "-p", String(fx.port), ...fx.sshArgs()].join(" ");
  const lines = [
    "settings {",
    `  logfile = "${path.join(dir, "lsyncd.log")}",`,
    `  statusFile = "${path.join(dir, "lsyncd.status")}",`,
    "  nodaemon = true,",
    "  insist = true,",
    "}",
    "sync {",
    "  default.rsync,",
    `  source = "${path.join(dir, "outbox")}",`,
    `  target = "${fx.shellUser}@127.0.0.1:${fx.shellDest}/",`,
    ...(delay === undefined ? [] : [`  delay = ${delay},`]),
    "  rsync = {",
    "    archive = true,",
    `    rsh = "${ssh}",`,
    "  },",
    "}",
  ];
  const file = path.join(dir, "lsyncd.conf.lua");
  fs.writeFileSync(file, lines.join("\n") + "\n");
  return file;
}

async function lsyncdRow(fx, delay, count, gapMs) {
  const dir = path.join(fx.root, `latency-lsyncd-${delay === undefined ? "default" : delay}`);
  fs.mkdirSync(path.join(dir, "outbox"), { recursive: true });
  fx.resetRemote();
  const config = lsyncdConfig(fx, dir, delay);
  const child = spawn("lsyncd", [config], { stdio: ["ignore", "ignore", "pipe"] });
  let err = "";
  child.stderr.on("data", (d) => (err += d));
  const observer = new Observer(fx.shellDest, (n) => n.endsWith(".json") && !n.startsWith("."));
  const producer = new Producer(dir, path.join(dir, "outbox"));
  try {
    // lsyncd's start-up full sync, then watching.
    await sleep(2_000);
    if (child.exitCode !== null) throw new Error(`lsyncd ended: ${err}`);
    const drops = [];
    for (let i = 0; i < count; i++) {
      drops.push(producer.drop(`lsyncd${delay ?? "d"}`));
      await sleep(randomGap(gapMs));
    }
    const r = await waitAll(observer, drops, 60_000);
    const label = delay === undefined ? "lsyncd + rsync, default delay (15 s)" : `lsyncd + rsync, delay = ${delay}`;
    return summarise(label + " (single orders, random intervals)", r.latencies, { lost: r.lost });
  } finally {
    child.kill("SIGTERM");
    await new Promise((r) => (child.exitCode !== null ? r() : child.once("close", r)));
    observer.close();
  }
}

function render(rows, meta) {
  const f = (ms) => (Number.isFinite(ms) ? (ms >= 10_000 ? `${(ms / 1000).toFixed(1)} s` : `${ms.toFixed(0)} ms`) : "-");
  const lines = [
    `# File-to-inbox latency (npm run bench -- --latency${meta.quick ? " --quick" : ""})`,
    `${meta.started.toISOString()}, load at start ${meta.load}; bundle ${meta.bundleSha}; ${meta.cpus} CPUs`,
    "t0: the producer's rename into the outbox returned; t1: the final name seen in the inbox folder",
    "(inotify via fs.watch, 10 ms poll backstop; one process, one clock).",
    "",
    "| scenario | n | p50 | p95 | p99 | max | lost | exactly once |",
    "|---|---:|---:|---:|---:|---:|---:|---|",
    ...rows.map((r) => `| ${r.row} | ${r.n} | ${f(r.p50)} | ${f(r.p95)} | ${f(r.p99)} | ${f(r.max)} | ${r.lost ?? 0} | ${r.exactlyOnce === undefined ? "-" : r.exactlyOnce ? "yes" : "NO"} |`),
    "",
  ];
  return lines.join("\n");
}

async function latencyBench(fx, opts) {
  const started = new Date();
  const load = fs.readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
  const rows = await plutusRows(fx, opts);
  if (opts.lsyncd) {
    log(`latency: lsyncd delay = 1, ${opts.lsyncdOrders} orders`);
    rows.push(await lsyncdRow(fx, 1, opts.lsyncdOrders, 1_000));
    log(`latency: lsyncd default delay, ${opts.lsyncdDefaultOrders} orders`);
    rows.push(await lsyncdRow(fx, undefined, opts.lsyncdDefaultOrders, 3_000));
  }
  process.stdout.write(render(rows, { ...opts, started, load, cpus: require("node:os").cpus().length }));
  if (opts.json) for (const r of rows) process.stdout.write(JSON.stringify(r) + "\n");
  return rows;
}

module.exports = { latencyBench, percentile, summarise, agentConfig, deliveriesPerName };
