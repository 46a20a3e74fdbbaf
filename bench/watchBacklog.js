/*
 * npm run bench -- --watch-backlog N[,N…] [--ab A.cjs,B.cjs] [--runs R] [--young] [--limit-seconds S] [--json]:
 * one `plutus-sync watch` started with a backlog of N orders already in the outbox (an ERP outage,
 * a watcher down for a while). Called by bench/run.js with its fixture (sshd on 127.0.0.1 with a
 * chrooted SFTP-only account, the 1–8 KB order documents).
 *
 * Each run: a fresh copy of N orders (mtime an hour old, so the start-up rescan's pass takes them;
 * `--young`: mtime now, so they go through the completeness rule instead), the watcher started
 * as its systemd unit starts it (`node --max-semi-space-size=8 plutus-sync.cjs watch`), VmHWM and
 * VmRSS read from /proc every 50 ms. Reported per run: when it said "watching" (chokidar ready),
 * when all N were in the ERP inbox, the peak resident size (VmHWM), the resident size 2 s after
 * the last delivery, exactly once (every name in the inbox, one delivery line each), SIGTERM's
 * exit code. With `--ab` the bundles run alternately on the same sizes (before/after side by side);
 * a run not done within `--limit-seconds` (default 900) is stopped and reported as such.
 */
"use strict";
const { spawn } = require("node:child_process");
const fs = require("node:fs");
const path = require("node:path");
const { agentConfig, deliveriesPerName } = require("./latency");
const { procMemory } = require("./soak");

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (...a) => process.stderr.write(a.join(" ") + "\n");
const load = () => fs.readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");

async function oneRun(fx, bundle, n, opts) {
  fx.resetRemote();
  const src = fx.freshSource(n);
  if (opts.young) {
    const now = new Date();
    for (const name of fs.readdirSync(src.outbox)) fs.utimesSync(path.join(src.outbox, name), now, now);
  }
  const names = fs.readdirSync(src.outbox);
  const { file: configFile, config } = agentConfig(fx, src.dir);
  const inbox = path.join(fx.jail, "Inbox");
  const t0 = Date.now();
  const child = spawn(process.execPath, ["--max-semi-space-size=8", bundle, "watch", "--config", configFile], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let watchingAt;
  child.stdout.on("data", (d) => {
    out = (out + d).slice(-20_000);
    if (watchingAt === undefined && out.includes("plutus-sync: watching")) watchingAt = Date.now() - t0;
  });
  child.stderr.on("data", (d) => (out = (out + d).slice(-20_000)));
  const exited = new Promise((r) => child.on("close", (code, signal) => r({ code, signal })));
  let hwmKiB = 0;
  const sampler = setInterval(() => (hwmKiB = Math.max(hwmKiB, procMemory(child.pid)?.hwmKiB ?? 0)), 50);
  let deliveredAt;
  const deadline = t0 + opts.limitSeconds * 1000;
  while (Date.now() < deadline && child.exitCode === null) {
    await sleep(500);
    if (fs.readdirSync(inbox).length >= n) {
      deliveredAt = Date.now() - t0;
      break;
    }
  }
  await sleep(2_000);
  const rssAfterKiB = procMemory(child.pid)?.rssKiB;
  hwmKiB = Math.max(hwmKiB, procMemory(child.pid)?.hwmKiB ?? 0);
  clearInterval(sampler);
  child.kill("SIGTERM");
  const stopped = await exited;
  const arrived = new Set(fs.readdirSync(inbox));
  const lines = deliveriesPerName(config.logDir);
  const exactlyOnce = names.every((name) => arrived.has(name) && lines.get(name) === 1) && arrived.size === n;
  fs.rmSync(src.dir, { recursive: true, force: true });
  if (deliveredAt === undefined) log(`  not all delivered within ${opts.limitSeconds} s: ${arrived.size}/${n}; output: ${out.slice(-2000)}`);
  return {
    files: n,
    young: opts.young,
    watchingAfterSeconds: watchingAt === undefined ? null : Number((watchingAt / 1000).toFixed(2)),
    allDeliveredAfterSeconds: deliveredAt === undefined ? null : Number((deliveredAt / 1000).toFixed(2)),
    peakRssMiB: Number((hwmKiB / 1024).toFixed(1)),
    rssAfterMiB: rssAfterKiB === undefined ? null : Number((rssAfterKiB / 1024).toFixed(1)),
    exactlyOnce,
    stopExit: stopped.code ?? stopped.signal,
    loadAtEnd: load(),
  };
}

async function watchBacklogBench(fx, opts) {
  const started = new Date();
  const loadAtStart = load();
  const bundles = opts.bundles.length ? opts.bundles : [fx.bundle];
  // Private copies: a rebuild during the run cannot change what is measured.
  const labels = new Map();
  const copies = bundles.map((b, i) => {
    if (b === fx.bundle) return b;
    const to = path.join(fx.root, `watch-backlog-${i}`, "plutus-sync.cjs");
    fs.mkdirSync(path.dirname(to), { recursive: true });
    fs.copyFileSync(path.resolve(b), to);
    labels.set(to, path.basename(b));
    return to;
  });
  const rows = [];
  for (const n of opts.sizes) {
    for (let rep = 0; rep < opts.runs; rep++) {
      for (const bundle of copies) {
        log(`watch backlog: ${n} files${opts.young ? " (young)" : ""}, ${labels.get(bundle) ?? "working tree"}, run ${rep + 1}/${opts.runs}, load ${load()}`);
        const row = { bundle: labels.get(bundle) ?? "working tree", ...(await oneRun(fx, bundle, n, opts)) };
        rows.push(row);
        log(`  watching after ${row.watchingAfterSeconds} s, all delivered after ${row.allDeliveredAfterSeconds} s, peak RSS ${row.peakRssMiB} MiB, RSS after ${row.rssAfterMiB} MiB, exactly once ${row.exactlyOnce ? "yes" : "NO"}, SIGTERM exit ${row.stopExit}`);
      }
    }
  }
  const lines = [
    `# Watcher started with a backlog (npm run bench -- --watch-backlog ${opts.sizes.join(",")}${opts.young ? " --young" : ""})`,
    `${started.toISOString()}; node ${process.version}; load at start ${loadAtStart}, at end ${load()} (2 CPUs shared with other test runs)`,
    `orders 1–8 KB (${Math.round(fx.meanBytes)} B mean), mtime ${opts.young ? "now (completeness rule)" : "an hour old (the start-up rescan's pass)"}; the watcher as its unit runs it (--max-semi-space-size=8), default settings`,
    "",
    "| bundle | files | \"watching\" after | all delivered after | peak RSS (VmHWM) | RSS 2 s after | exactly once | SIGTERM exit |",
    "|---|---:|---:|---:|---:|---:|---|---:|",
    ...rows.map((r) => `| ${r.bundle} | ${r.files.toLocaleString("en-US")} | ${r.watchingAfterSeconds ?? "-"} s | ${r.allDeliveredAfterSeconds ?? "not within limit"} s | ${r.peakRssMiB} MiB | ${r.rssAfterMiB ?? "-"} MiB | ${r.exactlyOnce ? "yes" : "NO"} | ${r.stopExit} |`),
    "",
  ];
  process.stdout.write(lines.join("\n"));
  if (opts.json) for (const r of rows) process.stdout.write(JSON.stringify(r) + "\n");
  if (rows.some((r) => !r.exactlyOnce || r.stopExit !== 0)) process.exitCode = 1;
  return rows;
}

module.exports = { watchBacklogBench };
