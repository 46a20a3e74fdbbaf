#!/usr/bin/env node
/*
 * npm run bench — plutus-sync against the per-file scp loop, scp, rsync and rclone (issue 6).
 *
 *   node bench/run.js [--quick] [--runs N] [--only plutus,rsync,rclone,scp,scp-loop,floor,scaling]
 *                     [--no-50k] [--keep] [--save] [--tune-rclone] [--rtt MS]
 *                     [--json]
 *   node bench/run.js --latency [--quick] [--json] [--no-lsyncd]
 *   node bench/run.js --soak [--minutes N] [--rate R] [--burst B] [--burst-every S] [--watch-node-args "…"] [--json]
 *   node bench/run.js --watch-backlog N[,N…] [--ab A.cjs,B.cjs] [--runs R] [--young] [--json]
 *
 * --concurrency N sets the agent's files in flight (default: the agent's own, 256).
 * --scaling N[,N…] backlog sizes for the scaling rows (default 100,1000,10000,50000); with
 * `--only scaling` only those are measured (e.g. `--only scaling --scaling 50000`).
 *
 * --soak runs one `plutus-sync watch` for N minutes (default 9) under a steady stream of orders
 * plus bursts and samples its resident size (bench/soak.js): does memory stay flat?
 *
 * --watch-backlog starts `plutus-sync watch` with N orders already in the outbox and reports when
 * it was watching, when all were delivered and its peak resident size (bench/watchBacklog.js); with
 * --ab the bundles run alternately (before/after).
 *
 * --latency measures file-to-inbox latency instead (bench/latency.js): plutus-sync watch idle, in
 * bursts, during an sshd restart, killed and restarted; cron only (computed); lsyncd + rsync.
 * --json (both modes) prints one JSON object per measured row as the last lines.
 *
 * --rtt MS puts a proxy in front of sshd that delays each direction by MS/2, for every tool.
 *
 * Needs root (it starts a real OpenSSH sshd on 127.0.0.1 with a chrooted SFTP-only account, like
 * tests/support/sshd.ts, plus a shell account for rsync). Missing Debian packages (openssh-server,
 * openssh-client, rsync, rclone, time) are installed with apt-get.
 *
 * Environment: BENCH_BUNDLE=path   measure another build of the agent (e.g. a prototype)
 *              BENCH_NODE_ARGS="…"  extra node flags for the agent (e.g. --cpu-prof)
 *              BENCH_ROOT=/srv/…   where the fixture lives (default /srv/plutus-bench)
 * Everything in this file is plain Node (>= 18), no dependencies.
 */
"use strict";
const { spawn, spawnSync, execFileSync } = require("node:child_process");
const fs = require("node:fs");
const net = require("node:net");
const os = require("node:os");
const path = require("node:path");
const crypto = require("node:crypto");

const REPO = path.resolve(__dirname, "..");
const ARGV = process.argv.slice(2);
const flag = (name) => ARGV.includes(name);
const option = (name, fallback) => {
  const i = ARGV.indexOf(name);
  return i >= 0 && ARGV[i + 1] !== undefined ? ARGV[i + 1] : fallback;
};
const QUICK = flag("--quick");
const ONLY = option("--only", "plutus,rsync,rclone,scp,scp-loop,floor,scaling").split(",");
const RUNS = Number(option("--runs", QUICK ? 2 : 3));
const SKIP_50K = flag("--no-50k");
const RTT_MS = Number(option("--rtt", 0));

/** Sizes of the experiment. */
const PLAN = QUICK
  ? { compare: 300, loopSubset: 10, scaling: [100, 1000, 3000], runsBig: 1, bigFrom: 3000 }
  : { compare: 2000, loopSubset: 100, scaling: [100, 1000, 10000, 50000], runsBig: 1, bigFrom: 50000 };
if (option("--scaling")) PLAN.scaling = option("--scaling").split(",").map(Number);
if (SKIP_50K) PLAN.scaling = PLAN.scaling.filter((n) => n < 50000);

const SSHD = "/usr/sbin/sshd";
/** bench/floor.js variants (see floorTools): measured with --only …,floor (the default). */
const FLOORS = ["floor", "floor-coalesced", "floor-verified"];
const ERP_USER = "plutus-bench-erp"; // SFTP-only, chrooted: what the ERP offers
const SHELL_USER = "plutus-bench-sh"; // a shell and rsync: what rsync needs
const BASE = process.env.BENCH_ROOT || "/srv/plutus-bench";
const CLK_TCK = 100;

// ---------------------------------------------------------------- small helpers

const log = (...a) => process.stderr.write(a.join(" ") + "\n");
const sh = (cmd, args, opts = {}) => execFileSync(cmd, args, { stdio: ["ignore", "pipe", "pipe"], ...opts }).toString();
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const loadavg = () => fs.readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");

function which(bin) {
  const r = spawnSync("sh", ["-c", `command -v ${bin}`]);
  return r.status === 0 ? r.stdout.toString().trim() : undefined;
}

function ensurePackages() {
  const wanted = [
    ["/usr/sbin/sshd", "openssh-server"],
    ["/usr/bin/ssh", "openssh-client"],
    ["/usr/bin/scp", "openssh-client"],
    ["/usr/bin/rsync", "rsync"],
    ["/usr/bin/rclone", "rclone"],
    ["/usr/bin/time", "time"],
    ...(flag("--latency") && !flag("--no-lsyncd") ? [["/usr/bin/lsyncd", "lsyncd"]] : []),
  ];
  const missing = [...new Set(wanted.filter(([file]) => !fs.existsSync(file)).map(([, pkg]) => pkg))];
  if (missing.length === 0) return;
  log(`installing ${missing.join(" ")} (apt-get)`);
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  let r = spawnSync("apt-get", ["install", "-y", "--no-install-recommends", ...missing], { stdio: "inherit", env });
  if (r.status !== 0) {
    spawnSync("apt-get", ["update"], { stdio: "inherit", env });
    r = spawnSync("apt-get", ["install", "-y", "--no-install-recommends", ...missing], { stdio: "inherit", env });
  }
  if (r.status !== 0) throw new Error(`apt-get install ${missing.join(" ")} failed`);
}

/** useradd/usermod take /etc/passwd locks that a concurrent test run may hold for a moment. */
function retrying(fn) {
  for (let i = 0; ; i++) {
    try {
      return fn();
    } catch (error) {
      if (i >= 20) throw error;
      spawnSync("sleep", ["0.3"]);
    }
  }
}

function ensureAccount(name, shell, home) {
  if (spawnSync("id", ["-u", name]).status !== 0) {
    retrying(() => sh("useradd", ["--system", "--no-create-home", "--home-dir", home, "--shell", shell, name]));
  }
  // --system locks the account ("!"); without PAM sshd refuses a locked account even with a key.
  retrying(() => sh("usermod", ["-p", "*", "-s", shell, "-d", home, name]));
  return { uid: Number(sh("id", ["-u", name]).trim()), gid: Number(sh("id", ["-g", name]).trim()) };
}

function keygen(file) {
  sh("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "plutus-bench", "-f", file]);
  fs.chmodSync(file, 0o600);
}

function fingerprint(pub) {
  return /\b(SHA256:[A-Za-z0-9+/]{43})\b/.exec(sh("ssh-keygen", ["-lf", pub]))[1];
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function waitForBanner(port) {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const ok = await new Promise((resolve) => {
      const sock = net.connect(port, "127.0.0.1");
      const t = setTimeout(() => (sock.destroy(), resolve(false)), 1000);
      sock.once("data", (d) => (clearTimeout(t), sock.destroy(), resolve(d.toString().startsWith("SSH-2.0"))));
      sock.once("error", () => (clearTimeout(t), resolve(false)));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`sshd on port ${port} did not answer`);
    await sleep(50);
  }
}

/**
 * Server CPU: sshd is put in its own cpuacct cgroup (v1, or v2 when that is what is mounted), so
 * every connection process, the chrooted internal-sftp session and rsync's server side are
 * counted, exited ones included. Without cgroups: the listener's cutime+cstime, which misses
 * sessions whose monitor does not wait for them (an undercount, said so in the report).
 */
function serverCpuMeter(pid) {
  const candidates = [
    { dir: "/sys/fs/cgroup/cpuacct", read: (d) => Number(fs.readFileSync(path.join(d, "cpuacct.usage"), "utf8")) / 1e9 },
    { dir: "/sys/fs/cgroup/unified", read: (d) => Number(/usage_usec (\d+)/.exec(fs.readFileSync(path.join(d, "cpu.stat"), "utf8"))[1]) / 1e6 },
    { dir: "/sys/fs/cgroup", read: (d) => Number(/usage_usec (\d+)/.exec(fs.readFileSync(path.join(d, "cpu.stat"), "utf8"))[1]) / 1e6 },
  ];
  for (const c of candidates) {
    const dir = path.join(c.dir, `plutus-bench-sshd-${process.pid}`);
    try {
      if (!fs.existsSync(c.dir)) continue;
      fs.mkdirSync(dir);
      fs.writeFileSync(path.join(dir, "cgroup.procs"), String(pid));
      c.read(dir);
      return { how: `cgroup ${dir}`, read: () => c.read(dir), remove: () => fs.rmdirSync(dir) };
    } catch {
      try {
        fs.rmdirSync(dir);
      } catch {}
    }
  }
  return { how: "sshd listener cutime+cstime (no cgroup; undercounts)", read: () => reapedChildCpu(pid), remove: () => undefined };
}

/** CPU seconds (user+sys) that sshd's finished connection processes used: the listener's cutime+cstime. */
function reapedChildCpu(pid) {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[13]) + Number(fields[14])) / CLK_TCK; // cutime, cstime (fields 16, 17)
}

// ---------------------------------------------------------------- the fixture

/** Deterministic, realistic order documents: 1–8 KB of JSON with a few order lines. */
function orderDocument(i, rnd) {
  const target = 1024 + Math.floor(rnd() * 7 * 1024);
  const lines = [];
  const doc = {
    orderId: `PL-${String(i).padStart(7, "0")}`,
    createdAt: new Date(1_700_000_000_000 + i * 37_000).toISOString(),
    shop: "plutus-webshop",
    currency: "EUR",
    customer: {
      id: `C${100000 + (i % 90000)}`,
      name: `Kundin ${i}`,
      email: `kunde${i}@example.com`,
      phone: `+49 30 ${1000000 + i}`,
      billing: { street: `Lindenstraße ${1 + (i % 120)}`, zip: String(10000 + (i % 89999)), city: "Berlin", country: "DE" },
      shipping: { street: `Lindenstraße ${1 + (i % 120)}`, zip: String(10000 + (i % 89999)), city: "Berlin", country: "DE" },
    },
    lines,
    payment: { method: i % 3 ? "card" : "invoice", reference: crypto.createHash("sha1").update(String(i)).digest("hex") },
    notes: "",
  };
  let k = 0;
  while (JSON.stringify(doc, null, 2).length < target - 200) {
    lines.push({ pos: ++k, sku: `SKU-${(i * 7 + k * 13) % 9973}`, title: `Artikel ${(i + k) % 500} – Leuchte, Messing`, qty: 1 + ((i + k) % 4), unitPrice: Math.round(rnd() * 50000) / 100, vatRate: 19 });
  }
  let text = JSON.stringify(doc, null, 2);
  if (text.length < target) {
    doc.notes = "x".repeat(target - text.length);
    text = JSON.stringify(doc, null, 2);
  }
  return text;
}

/**
 * --rtt MS: a TCP proxy on 127.0.0.1 that holds every chunk MS/2 in each direction, so every tool
 * sees a link with that round-trip time (this kernel has no netem). Timers of one duration fire in
 * the order they were set, so bytes keep their order.
 */
function startDelayProxy(upstreamPort, oneWayMs) {
  const pipeDelayed = (from, to) => {
    from.on("data", (chunk) => setTimeout(() => to.destroyed || to.write(chunk), oneWayMs));
    from.on("end", () => setTimeout(() => to.destroyed || to.end(), oneWayMs));
  };
  const server = net.createServer((client) => {
    client.setNoDelay(true);
    const upstream = net.connect({ host: "127.0.0.1", port: upstreamPort });
    upstream.setNoDelay(true);
    pipeDelayed(client, upstream);
    pipeDelayed(upstream, client);
    const close = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on("error", close);
    upstream.on("error", close);
    client.on("close", () => setTimeout(close, oneWayMs + 50));
    upstream.on("close", () => setTimeout(close, oneWayMs + 50));
  });
  server.unref();
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve(server.address().port));
  });
}

function mulberry32(seed) {
  return () => {
    seed |= 0;
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const nameOf = (i) => `order-PL-${String(i).padStart(7, "0")}.json`;

class Fixture {
  async setup(maxFiles) {
    for (const dir of ["/run/sshd", BASE]) fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
    fs.chmodSync(BASE, 0o755);
    this.root = path.join(BASE, `run-${process.pid}`);
    fs.rmSync(this.root, { recursive: true, force: true });
    fs.mkdirSync(this.root, { mode: 0o755 });
    const home = path.join(BASE, "home");
    fs.mkdirSync(home, { recursive: true, mode: 0o755 });
    this.erp = ensureAccount(ERP_USER, "/usr/sbin/nologin", "/");
    this.shell = ensureAccount(SHELL_USER, "/bin/sh", home);

    // Remote side. The ERP jail: root-owned chain, writable Inbox and Staging inside.
    this.jail = path.join(this.root, "jail");
    fs.mkdirSync(this.jail, { mode: 0o755 });
    // The shell account's target folder, on the same file system.
    this.shellDest = path.join(this.root, "shell-dest");
    this.resetRemote();

    this.hostKey = path.join(this.root, "ssh_host_ed25519_key");
    keygen(this.hostKey);
    this.clientKey = path.join(this.root, "client_ed25519");
    keygen(this.clientKey);
    const akDir = path.join(this.root, "authorized_keys");
    fs.mkdirSync(akDir, { mode: 0o755 });
    for (const user of [ERP_USER, SHELL_USER]) fs.writeFileSync(path.join(akDir, user), fs.readFileSync(`${this.clientKey}.pub`), { mode: 0o644 });
    // Clients connect to `port`; with --rtt that is a delaying proxy in front of sshd's port.
    this.sshdPort = await freePort();
    this.port = RTT_MS > 0 ? await startDelayProxy(this.sshdPort, RTT_MS / 2) : this.sshdPort;
    this.knownHosts = path.join(this.root, "known_hosts");
    fs.writeFileSync(this.knownHosts, `[127.0.0.1]:${this.port} ${fs.readFileSync(`${this.hostKey}.pub`, "utf8").split(" ").slice(0, 2).join(" ")}\n`);
    this.hostKeySha256 = fingerprint(`${this.hostKey}.pub`);
    const config = path.join(this.root, "sshd_config");
    fs.writeFileSync(
      config,
      [
        `Port ${this.sshdPort}`,
        "ListenAddress 127.0.0.1",
        `HostKey ${this.hostKey}`,
        `PidFile ${path.join(this.root, "sshd.pid")}`,
        `AuthorizedKeysFile ${akDir}/%u`,
        "AuthenticationMethods publickey",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        "PermitRootLogin no",
        `AllowUsers ${ERP_USER} ${SHELL_USER}`,
        "LogLevel ERROR",
        "MaxStartups 100:30:200",
        "MaxSessions 50",
        "Subsystem sftp internal-sftp",
        // Ciphers, MACs, KEX: OpenSSH's defaults for every account and every tool.
        `Match User ${ERP_USER}`,
        "  ForceCommand internal-sftp",
        `  ChrootDirectory ${this.jail}`,
        "  AllowTcpForwarding no",
        "  X11Forwarding no",
        "",
      ].join("\n"),
      { mode: 0o600 },
    );
    sh(SSHD, ["-t", "-f", config]);
    this.sshdConfig = config;
    this.sshdLog = path.join(this.root, "sshd.log");
    this.erpUser = ERP_USER;
    this.shellUser = SHELL_USER;
    await this.startSshd();
    this.cpuMeter = serverCpuMeter(this.sshd.pid);

    // Local side: one master copy of every order; each measured run gets a fresh copy.
    this.master = path.join(this.root, "master");
    fs.mkdirSync(this.master);
    const rnd = mulberry32(20240601);
    let bytes = 0;
    const old = new Date(Date.now() - 3600_000);
    for (let i = 1; i <= maxFiles; i++) {
      const text = orderDocument(i, rnd);
      bytes += Buffer.byteLength(text);
      const file = path.join(this.master, nameOf(i));
      fs.writeFileSync(file, text);
      fs.utimesSync(file, old, old);
    }
    this.meanBytes = bytes / maxFiles;
    this.runCount = 0;
  }

  async startSshd() {
    this.sshd = spawn(SSHD, ["-D", "-e", "-f", this.sshdConfig], { stdio: ["ignore", "ignore", "pipe"] });
    this.sshd.stderr.on("data", (d) => fs.appendFileSync(this.sshdLog, d));
    await waitForBanner(this.sshdPort);
  }

  /** Stops sshd and every session it forked (connections drop), waits `downMs`, starts it again. */
  async restartSshd(downMs) {
    // Every process below the listener (per connection: [priv] -> @notty -> internal-sftp).
    const parents = new Map();
    for (const line of sh("ps", ["-eo", "pid=,ppid="]).trim().split("\n")) {
      const [pid, ppid] = line.trim().split(/\s+/).map(Number);
      parents.set(pid, ppid);
    }
    const below = (pid) => [...parents].filter(([, ppid]) => ppid === pid).flatMap(([child]) => [child, ...below(child)]);
    const sessions = below(this.sshd.pid);
    await new Promise((r) => (this.sshd.once("exit", r), this.sshd.kill("SIGTERM")));
    for (const pid of sessions) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {}
    }
    this.sessionsKilled = sessions.length;
    await sleep(downMs);
    await this.startSshd();
  }

  /** Empty Inbox/Staging in the jail and an empty target folder for the shell account. */
  resetRemote() {
    for (const dir of [path.join(this.jail, "Inbox"), path.join(this.jail, "Staging"), this.shellDest]) {
      fs.rmSync(dir, { recursive: true, force: true });
      fs.mkdirSync(dir, { mode: 0o755 });
      const owner = dir === this.shellDest ? this.shell : this.erp;
      fs.chownSync(dir, owner.uid, owner.gid);
    }
  }

  /** A fresh local folder with the first n orders (contents and mtimes of the master). */
  freshSource(n) {
    const dir = path.join(this.root, `local-${++this.runCount}`);
    const outbox = path.join(dir, "outbox");
    fs.mkdirSync(outbox, { recursive: true });
    const old = new Date(Date.now() - 3600_000);
    for (let i = 1; i <= n; i++) {
      const to = path.join(outbox, nameOf(i));
      fs.copyFileSync(path.join(this.master, nameOf(i)), to);
      fs.utimesSync(to, old, old);
    }
    return { dir, outbox };
  }

  remoteCount(where) {
    const dir = where === "shell" ? this.shellDest : path.join(this.jail, "Inbox");
    return fs.readdirSync(dir).filter((n) => n.endsWith(".json")).length;
  }

  sshArgs() {
    return ["-F", "/dev/null", "-i", this.clientKey, "-o", `UserKnownHostsFile=${this.knownHosts}`, "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "LogLevel=ERROR"];
  }

  async destroy(keep) {
    if (this.sshd && this.sshd.exitCode === null) {
      await new Promise((r) => (this.sshd.once("exit", r), this.sshd.kill("SIGTERM")));
    }
    if (this.cpuMeter) {
      await sleep(200); // connection processes end after the listener
      try {
        this.cpuMeter.remove();
      } catch {}
    }
    if (!keep && this.root) fs.rmSync(this.root, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------- measuring one run

/**
 * Runs argv under /usr/bin/time (which execs it directly, so %M is the tool's own peak RSS, the
 * largest of it and the children it waited for). Wall time is measured here around the spawn.
 */
function timed(argv, { env, cwd } = {}) {
  const timeFile = path.join(os.tmpdir(), `plutus-bench-time-${process.pid}`);
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn("/usr/bin/time", ["-f", "%e %M %U %S", "-o", timeFile, ...argv], { env: env || process.env, cwd, stdio: ["ignore", "pipe", "pipe"] });
    // The same peak read from /proc as the kernel keeps it (VmHWM of the tool's process under time).
    let hwmKb = 0;
    const sampler = setInterval(() => {
      for (const pid of descendantsOf(child.pid)) hwmKb = Math.max(hwmKb, vmHwmKb(pid));
    }, 20);
    let out = "";
    let err = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (err += d));
    child.on("error", reject);
    child.on("close", (code) => {
      clearInterval(sampler);
      const wall = Number(process.hrtime.bigint() - started) / 1e9;
      const [, maxKb, user, sys] = fs.readFileSync(timeFile, "utf8").trim().split("\n").pop().split(" ").map(Number);
      fs.rmSync(timeFile, { force: true });
      resolve({ code, wall, rssMb: maxKb / 1024, hwmMb: hwmKb / 1024, cpu: user + sys, stdout: out, stderr: err });
    });
  });
}

/** The processes below pid (sync_plutus.sh runs node under timeout(1)). */
function descendantsOf(pid) {
  let children = [];
  try {
    children = fs.readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {}
  return children.flatMap((c) => [c, ...descendantsOf(c)]);
}

function vmHwmKb(pid) {
  try {
    return Number(/VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))[1]);
  } catch {
    return 0;
  }
}

function dropDirInBackground(dir) {
  fs.rmSync(dir, { recursive: true, force: true });
}

async function measure(fx, tool, n, variant) {
  fx.resetRemote();
  const src = fx.freshSource(tool.id === "scp-loop" ? fx.loopSubset : n);
  spawnSync("sync");
  const cpuBefore = fx.cpuMeter.read();
  const r = await tool.run(fx, src, variant);
  await sleep(50); // let sshd reap the connection processes
  const serverCpu = fx.cpuMeter.read() - cpuBefore;
  const expected = tool.id === "scp-loop" ? fx.loopSubset : n;
  const got = fx.remoteCount(tool.target);
  if (r.code !== 0 || got !== expected) {
    throw new Error(`${tool.id} (${n} files) failed: exit ${r.code}, ${got}/${expected} files arrived\n${r.stdout.slice(-2000)}\n${r.stderr.slice(-2000)}`);
  }
  dropDirInBackground(src.dir);
  return { ...r, serverCpu };
}

// ---------------------------------------------------------------- the tools

const BUNDLE_SRC = process.env.BENCH_BUNDLE ? path.resolve(process.env.BENCH_BUNDLE) : path.join(REPO, "agent/dist/plutus-sync.cjs");
const NODE_ARGS = (process.env.BENCH_NODE_ARGS || "").split(" ").filter(Boolean);
const CRON_SCRIPT_SRC = path.join(REPO, "agent/dist/bundle/sync_plutus.sh");

/**
 * The node sync_plutus.sh is told to run (PLUTUS_NODE): this one, or, for profiling with
 * BENCH_NODE_ARGS, a wrapper that adds those flags in front of the cron script's own.
 */
function nodeCommand(root) {
  if (NODE_ARGS.length === 0) return process.execPath;
  const wrapper = path.join(root, "node-with-bench-args");
  const quoted = [process.execPath, ...NODE_ARGS].map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(" ");
  fs.writeFileSync(wrapper, `#!/bin/sh\nexec ${quoted} "$@"\n`, { mode: 0o755 });
  return wrapper;
}

/** Profiling only: a command put in front of the cron script (which execs node), e.g. BENCH_WRAP="strace -c -f -o /tmp/s". */
const WRAP = (process.env.BENCH_WRAP || "").split(" ").filter(Boolean);

/** rclone: chosen by --tune-rclone on 2,000 files (see README). */
const RCLONE_BEST = { transfers: 16, checkers: 16, extra: ["--sftp-set-modtime=false", "--no-check-dest"] };

const TOOLS = {
  plutus: {
    id: "plutus",
    label: "plutus-sync run",
    target: "erp",
    async run(fx, src) {
      const config = path.join(src.dir, "agent.json");
      fs.writeFileSync(
        config,
        JSON.stringify({
          outbox: src.outbox,
          archive: path.join(src.dir, "archive"),
          quarantine: path.join(src.dir, "quarantine"),
          stateDir: path.join(src.dir, "state"),
          logDir: path.join(src.dir, "log"),
          minAgeSeconds: 10,
          ...(option("--concurrency") ? { concurrency: Number(option("--concurrency")) } : {}),
          remote: { host: "127.0.0.1", port: fx.port, username: ERP_USER, privateKeyPath: fx.clientKey, hostKeySha256: fx.hostKeySha256, inbox: "/Inbox", staging: "/Staging" },
        }),
      );
      // As cron runs it: the bundle's sync_plutus.sh, which execs node (so /usr/bin/time's %M is
      // node's own peak), with the agent beside it as PLUTUS_HOME/plutus-sync.cjs.
      const env = { PATH: process.env.PATH, PLUTUS_HOME: path.dirname(fx.bundle), PLUTUS_CONFIG: config, PLUTUS_NODE: fx.node };
      const r = await timed([...WRAP, fx.cronScript, "--json"], { cwd: src.dir, env });
      const summary = JSON.parse(r.stdout.trim().split("\n").pop() || "{}");
      if (r.code === 0 && summary.delivered !== summary.found) r.code = 99;
      return r;
    },
  },
  rsync: {
    id: "rsync",
    label: "rsync -a (ssh)",
    target: "shell",
    run: (fx, src) => timed(["rsync", "-a", "-e", ["ssh", "-p", String(fx.port), ...fx.sshArgs()].join(" "), `${src.outbox}/`, `${SHELL_USER}@127.0.0.1:${fx.shellDest}/`]),
  },
  rclone: {
    id: "rclone",
    label: "rclone copy (sftp)",
    target: "erp",
    run(fx, src, v = RCLONE_BEST) {
      const env = {
        PATH: process.env.PATH,
        HOME: src.dir,
        RCLONE_CONFIG: path.join(src.dir, "rclone-none.conf"), // no user config: everything below
        RCLONE_CONFIG_ERP_TYPE: "sftp",
        RCLONE_CONFIG_ERP_HOST: "127.0.0.1",
        RCLONE_CONFIG_ERP_PORT: String(fx.port),
        RCLONE_CONFIG_ERP_USER: ERP_USER,
        RCLONE_CONFIG_ERP_KEY_FILE: fx.clientKey,
        RCLONE_CONFIG_ERP_KNOWN_HOSTS_FILE: fx.knownHosts,
        // SFTP-only account: no shell to run md5sum in; say so instead of letting rclone probe.
        RCLONE_CONFIG_ERP_SHELL_TYPE: "none",
        RCLONE_CONFIG_ERP_DISABLE_HASHCHECK: "true",
      };
      return timed(["rclone", "copy", src.outbox, "erp:/Inbox", "--transfers", String(v.transfers), "--checkers", String(v.checkers), ...(v.extra || []), "-q"], { env });
    },
  },
  scp: {
    id: "scp",
    label: "scp, all files in one command",
    target: "erp",
    run(fx, src) {
      const files = fs.readdirSync(src.outbox).sort().map((f) => path.join(src.outbox, f));
      return timed(["scp", "-q", "-P", String(fx.port), ...fx.sshArgs(), ...files, `${ERP_USER}@127.0.0.1:/Inbox/`]);
    },
  },
  "scp-loop": {
    id: "scp-loop",
    label: "scp per file (bash loop)",
    target: "erp",
    run(fx, src) {
      // The customer's first design, literally: a Bash loop, one scp (one SSH connection) per file.
      const ssh = fx.sshArgs().map((a) => `'${a}'`).join(" ");
      const script = `for f in "$1"/*.json; do scp -q -P ${fx.port} ${ssh} "$f" ${ERP_USER}@127.0.0.1:/Inbox/ || exit 1; done`;
      return timed(["bash", "-c", script, "loop", src.outbox]);
    },
  },
  ...floorTools(),
};

/** agent/src/channelCoalescer.ts as CommonJS for bench/floor.js, compiled once per fixture (not in the measured run). */
function coalescerModule(fx) {
  const out = path.join(fx.root, "channelCoalescer.cjs");
  if (!fs.existsSync(out)) {
    require("esbuild").buildSync({ entryPoints: [path.join(REPO, "agent/src/channelCoalescer.ts")], outfile: out, format: "cjs", platform: "node", logLevel: "warning" });
  }
  return out;
}

/**
 * bench/floor.js: the least a Node.js + ssh2 client does per file (no journal, fsync, logs or
 * recovery), started cold like the agent: what plutus-sync's speed rests on, to show what its
 * guarantees cost on top. Not a delivery tool.
 */
function floorTools() {
  const variants = [
    ["floor", "ssh2 floor: open, write, close, rename", []],
    ["floor-coalesced", "ssh2 floor + requests coalesced", ["--coalesce"]],
    ["floor-verified", "ssh2 floor + coalesced + JSON, read-back, SHA-256, archive", ["--coalesce", "--verify"]],
  ];
  return Object.fromEntries(
    variants.map(([id, label, flags]) => [
      id,
      {
        id,
        label,
        target: "erp",
        run(fx, src) {
          const config = path.join(src.dir, "floor.json");
          const remote = { host: "127.0.0.1", port: fx.port, username: ERP_USER, privateKeyPath: fx.clientKey, hostKeySha256: fx.hostKeySha256 };
          fs.writeFileSync(config, JSON.stringify({ outbox: src.outbox, archive: path.join(src.dir, "archive"), staging: "/Staging", inbox: "/Inbox", coalescerModule: coalescerModule(fx), ...remote }));
          // With the V8 flag sync_plutus.sh gives the agent, so only the work differs.
          return timed([process.execPath, "--max-semi-space-size=8", path.join(__dirname, "floor.js"), config, ...flags]);
        },
      },
    ]),
  );
}

// ---------------------------------------------------------------- the experiment

async function main() {
  if (process.getuid() !== 0) throw new Error("run as root: the benchmark starts sshd with a chrooted account");
  ensurePackages();
  if (!fs.existsSync(BUNDLE_SRC)) {
    log(`${BUNDLE_SRC} missing: building (npm run build)`);
    execFileSync("npm", ["run", "build"], { cwd: REPO, stdio: "inherit" });
  }
  const backlogSizes = option("--watch-backlog") ? option("--watch-backlog").split(",").map(Number) : [];
  const maxFiles = backlogSizes.length ? Math.max(...backlogSizes) : flag("--latency") || flag("--soak") ? 1 : Math.max(PLAN.compare, Number(option("--ab-files", 0)), ...(ONLY.includes("scaling") ? PLAN.scaling : [0]));
  const fx = new Fixture();
  fx.loopSubset = PLAN.loopSubset;
  const cleanup = () => fx.destroy(flag("--keep"));
  process.once("SIGINT", () => cleanup().finally(() => process.exit(130)));
  const startedLoad = loadavg();
  const started = new Date();
  try {
    log(`setting up: ${maxFiles} order files, sshd on 127.0.0.1 …`);
    await fx.setup(maxFiles);
    // A private copy: a rebuild by someone else during the run cannot change what is measured.
    fx.bundle = path.join(fx.root, "agent", "plutus-sync.cjs");
    fs.mkdirSync(path.dirname(fx.bundle));
    fx.cronScript = path.join(fx.root, "sync_plutus.sh");
    fx.node = nodeCommand(fx.root);
    // (agent/build.js empties dist/ first: when a concurrent build is under way, wait for it.)
    for (let i = 0; ; i++) {
      try {
        fs.copyFileSync(BUNDLE_SRC, fx.bundle);
        fs.copyFileSync(CRON_SCRIPT_SRC, fx.cronScript);
        fs.chmodSync(fx.cronScript, 0o755);
        break;
      } catch (error) {
        if (i > 120) throw error;
        await sleep(500);
      }
    }
    const bundleSha = crypto.createHash("sha256").update(fs.readFileSync(fx.bundle)).digest("hex").slice(0, 12);
    const head = spawnSync("git", ["rev-parse", "--short", "HEAD"], { cwd: REPO }).stdout.toString().trim();
    log(`ready: port ${fx.port}, mean file ${Math.round(fx.meanBytes)} B, load ${startedLoad}`);

    if (flag("--tune-rclone")) return await tuneRclone(fx);
    if (flag("--latency")) {
      const quick = QUICK || process.env.CI === "true";
      return await require("./latency").latencyBench(fx, {
        quick,
        json: flag("--json"),
        bundleSha,
        idle: quick ? 40 : 200,
        idleGapMs: 300,
        sparse: quick ? 3 : 8,
        sparseGapMs: [5_000, 20_000],
        besideCron: quick ? 30 : 100,
        bursts: quick ? 3 : 10,
        restartOrders: 40,
        lsyncd: !flag("--no-lsyncd"),
        lsyncdOrders: quick ? 10 : 30,
        lsyncdDefaultOrders: quick ? 4 : 12,
      });
    }
    if (flag("--soak")) {
      return await require("./soak").soakBench(fx, {
        minutes: Number(option("--minutes", 9)),
        rate: Number(option("--rate", 10)),
        burst: Number(option("--burst", 500)),
        burstEverySeconds: Number(option("--burst-every", 60)),
        sampleSeconds: Number(option("--sample", 2)),
        samplesFile: option("--samples-file"),
        // The unit's V8 flags (install.sh's ExecStart), unless replaced.
        nodeArgs: option("--watch-node-args", "--max-semi-space-size=8").split(" ").filter(Boolean),
        json: flag("--json"),
        bundleSha,
      });
    }
    if (backlogSizes.length) {
      return await require("./watchBacklog").watchBacklogBench(fx, {
        sizes: backlogSizes,
        bundles: option("--ab") ? option("--ab").split(",") : [],
        runs: Number(option("--runs", 1)),
        young: flag("--young"),
        limitSeconds: Number(option("--limit-seconds", 900)),
        json: flag("--json"),
      });
    }
    if (option("--ab")) return await compareBundles(fx, option("--ab").split(","), Number(option("--ab-files", PLAN.compare)));

    /** results[key] = list of runs */
    const results = new Map();
    const add = (key, r) => (results.get(key) || results.set(key, []).get(key)).push(r);
    const runOne = async (toolId, n) => {
      const r = await measure(fx, TOOLS[toolId], n);
      add(`${toolId}:${n}`, r);
      log(`  ${toolId.padEnd(8)} ${String(toolId === "scp-loop" ? fx.loopSubset : n).padStart(6)} files  ${r.wall.toFixed(2)} s  rss ${r.rssMb.toFixed(0)} MB (VmHWM ${r.hwmMb.toFixed(0)} MB)  cpu ${r.cpu.toFixed(2)} s  sshd cpu ${r.serverCpu.toFixed(2)} s  load ${loadavg()}`);
    };

    // Comparison at PLAN.compare files; repetitions interleaved so load noise hits every tool alike.
    const compareTools = ["plutus", "rsync", "rclone", "scp", "scp-loop"].filter((t) => ONLY.includes(t));
    if (ONLY.includes("floor")) compareTools.push(...FLOORS);
    for (let rep = 0; rep < RUNS; rep++) {
      log(`comparison, round ${rep + 1}/${RUNS}`);
      for (const t of compareTools) await runOne(t, PLAN.compare);
    }
    // Backlog scaling for plutus-sync.
    if (ONLY.includes("scaling")) {
      for (const n of PLAN.scaling) {
        if (n === PLAN.compare && results.has(`plutus:${n}`)) continue;
        const runs = n >= PLAN.bigFrom ? PLAN.runsBig : RUNS;
        log(`scaling: ${n} files × ${runs}`);
        for (let rep = 0; rep < runs; rep++) await runOne("plutus", n);
      }
    }

    const report = renderReport(fx, results, { startedLoad, started, bundleSha, head });
    process.stdout.write(report);
    if (flag("--save")) {
      fs.mkdirSync(path.join(__dirname, "results"), { recursive: true });
      fs.writeFileSync(path.join(__dirname, "results", QUICK ? "latest-quick.txt" : "latest.txt"), report);
    }
  } finally {
    await cleanup();
  }
}

function renderReport(fx, results, meta) {
  const C = PLAN.compare;
  const row = (toolId, n) => {
    const runs = results.get(`${toolId}:${n}`);
    if (!runs) return undefined;
    const measuredFiles = toolId === "scp-loop" ? fx.loopSubset : n;
    const scale = n / measuredFiles;
    return {
      toolId,
      n,
      runs: runs.length,
      wall: median(runs.map((r) => r.wall)) * scale,
      rssMb: Math.max(...runs.map((r) => r.rssMb)),
      hwmMb: Math.max(...runs.map((r) => r.hwmMb || 0)),
      cpu: median(runs.map((r) => r.cpu)) * scale,
      serverCpu: median(runs.map((r) => r.serverCpu)) * scale,
      extrapolated: scale !== 1 ? measuredFiles : undefined,
    };
  };
  const base = row("plutus", C);
  const rows = [];
  for (const t of ["plutus", "rsync", "rclone", "scp", "scp-loop", ...FLOORS]) {
    const r = row(t, C);
    if (r) rows.push(r);
  }
  const scaling = PLAN.scaling.map((n) => row("plutus", n)).filter(Boolean);
  const head = ["tool", "files", "runs", "wall s (median)", "files/s", "ms/file", "× plutus-sync time", "peak RSS MB", "client CPU s", "sshd CPU s"];
  const fmt = (r, label) => [
    label,
    r.n.toLocaleString("en-US"),
    String(r.runs),
    r.wall.toFixed(2) + (r.extrapolated ? "*" : ""),
    (r.n / r.wall).toFixed(0),
    ((r.wall * 1000) / r.n).toFixed(2),
    base ? (r.wall / (base.n === r.n ? base.wall : (base.wall * r.n) / base.n)).toFixed(2) : "-",
    r.rssMb.toFixed(0),
    r.cpu.toFixed(2),
    r.serverCpu.toFixed(2),
  ];
  const lines = [];
  lines.push(`plutus-sync benchmark — ${meta.started.toISOString()}  ${QUICK ? "(--quick: smaller counts)" : ""}`);
  lines.push(`host: ${os.cpus().length} CPU ${os.cpus()[0].model.trim()}, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB, ${os.release()}; node ${process.version}; load average at start ${meta.startedLoad}, at end ${loadavg()}`);
  lines.push(`agent bundle sha256 ${meta.bundleSha}… (git ${meta.head}${process.env.BENCH_BUNDLE ? `, BENCH_BUNDLE=${process.env.BENCH_BUNDLE}` : ""}); ${sh("ssh", ["-V"], { stdio: ["ignore", "pipe", "pipe"] }).trim() || spawnSync("ssh", ["-V"]).stderr.toString().trim()}; ${sh("rsync", ["--version"]).split("\n")[0]}; ${sh("rclone", ["version"]).split("\n")[0]}`);
  lines.push(`order files: ${Math.round(fx.meanBytes)} B mean (1–8 KB JSON); every run on a fresh copy, into an empty target; page cache warm`);
  if (RTT_MS > 0) lines.push(`network: every tool through a proxy adding ${RTT_MS} ms round-trip time (--rtt ${RTT_MS})`);
  lines.push("");
  const body = [
    ...rows.map((r) => fmt(r, TOOLS[r.toolId].label + (r.toolId === "rclone" ? ` --transfers ${RCLONE_BEST.transfers} --checkers ${RCLONE_BEST.checkers}` : ""))),
    ...scaling.map((r) => fmt(r, "plutus-sync run (backlog)")),
  ];
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cells) => "| " + cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join(" | ") + " |";
  lines.push(line(head));
  lines.push("|" + widths.map((w, i) => (i === 0 ? "-".repeat(w + 1) + "-" : "-".repeat(w + 1) + ":")).join("|") + "|");
  for (const b of body) lines.push(line(b));
  const loop = rows.find((r) => r.toolId === "scp-loop");
  if (loop) lines.push(`* scp per file: measured on ${loop.extrapolated} files, extrapolated linearly to ${C.toLocaleString("en-US")} (EXTRAPOLATED)`);
  lines.push("× plutus-sync time: the tool's wall time divided by plutus-sync's on the same number of files (> 1: plutus-sync is faster).");
  if (rows.some((r) => FLOORS.includes(r.toolId))) {
    lines.push("ssh2 floor: bench/floor.js, the least a cold Node.js + ssh2 process does per file (no journal, fsync, logs, recovery or quarantine); not a delivery tool. The gap to plutus-sync is what its guarantees cost.");
  }
  lines.push(`peak RSS: the measured process's own peak (/usr/bin/time %M; for the agent, the node process). sshd CPU: user+sys of sshd and all its connection processes (incl. internal-sftp / rsync server side), via ${fx.cpuMeter.how}.`);
  lines.push("");
  // Targets.
  const verdict = (ok) => (ok === undefined ? "n/a " : ok ? "PASS" : "MISS");
  const rs = rows.find((r) => r.toolId === "rsync");
  const s1k = scaling.find((r) => r.n === 1000);
  const sBig = scaling[scaling.length - 1];
  const perFile = (r) => (r.wall * 1000) / r.n;
  lines.push("targets:");
  lines.push(`  ${verdict(base && rs ? base.wall <= rs.wall : undefined)}  plutus-sync at least as fast as rsync on ${C} files: ${base ? base.wall.toFixed(2) : "-"} s vs ${rs ? rs.wall.toFixed(2) : "-"} s`);
  lines.push(`  ${verdict(base && loop ? loop.wall / base.wall >= 100 : undefined)}  ≥ 100× the per-file scp loop: ${base && loop ? (loop.wall / base.wall).toFixed(0) : "-"}× (loop extrapolated)`);
  lines.push(`  ${verdict(s1k && sBig && sBig !== s1k ? perFile(sBig) <= 1.5 * perFile(s1k) : undefined)}  time per file at ${sBig ? sBig.n : "-"} within 1.5× of that at 1,000: ${sBig ? perFile(sBig).toFixed(2) : "-"} ms vs ${s1k ? perFile(s1k).toFixed(2) : "-"} ms (${s1k && sBig ? (perFile(sBig) / perFile(s1k)).toFixed(2) : "-"}×)`);
  lines.push(`  ${verdict(sBig ? sBig.rssMb < 150 : undefined)}  peak RSS under 150 MB at ${sBig ? sBig.n : "-"}: ${sBig ? sBig.rssMb.toFixed(0) : "-"} MB`);
  if (RTT_MS > 0) lines.push(`  ${verdict(base && rs ? base.wall <= 1.5 * rs.wall : undefined)}  at --rtt ${RTT_MS}, plutus-sync within 1.5× of rsync's time: ${base && rs ? (base.wall / rs.wall).toFixed(2) : "-"}×`);
  if (QUICK) lines.push("  (--quick: counts are smaller than the targets name; verdicts are indicative only)");
  if (flag("--json")) {
    // One object per measured row, last, so a program can read the figures.
    for (const r of [...rows, ...scaling]) {
      lines.push(JSON.stringify({
        tool: r.toolId,
        label: TOOLS[r.toolId].label,
        files: r.n,
        runs: r.runs,
        wallSeconds: Number(r.wall.toFixed(3)),
        peakRssMb: Math.round(r.rssMb),
        peakVmHwmMb: Math.round(r.hwmMb),
        clientCpuSeconds: Number(r.cpu.toFixed(3)),
        sshdCpuSeconds: Number(r.serverCpu.toFixed(3)),
        rttMs: RTT_MS,
        ...(r.extrapolated ? { extrapolatedFrom: r.extrapolated } : {}),
      }));
    }
  }
  return lines.join("\n") + "\n";
}

/**
 * A/B of agent builds (e.g. a prototype against the current bundle): the same files, the same
 * sshd, rounds interleaved. --ab a.cjs,b.cjs [--ab-files N] [--runs R]
 */
async function compareBundles(fx, bundles, n) {
  const copies = bundles.map((b, i) => {
    const to = path.join(fx.root, `ab-${i}`, "plutus-sync.cjs");
    fs.mkdirSync(path.dirname(to));
    fs.copyFileSync(path.resolve(b), to);
    return to;
  });
  const walls = copies.map(() => []);
  const rss = copies.map(() => []);
  const cpu = copies.map(() => []);
  const scpu = copies.map(() => []);
  for (let rep = 0; rep < RUNS; rep++) {
    for (let i = 0; i < copies.length; i++) {
      fx.bundle = copies[i];
      const r = await measure(fx, TOOLS.plutus, n);
      walls[i].push(r.wall);
      rss[i].push(r.rssMb);
      cpu[i].push(r.cpu);
      scpu[i].push(r.serverCpu);
      log(`  ${path.basename(bundles[i]).padEnd(24)} ${n} files  ${r.wall.toFixed(2)} s  rss ${r.rssMb.toFixed(0)} MB  cpu ${r.cpu.toFixed(2)} s  load ${loadavg()}`);
    }
  }
  for (let i = 0; i < copies.length; i++) {
    process.stdout.write(`${path.basename(bundles[i]).padEnd(24)} ${n} files: median ${median(walls[i]).toFixed(2)} s (${walls[i].map((w) => w.toFixed(2)).join(", ")}), ${((median(walls[i]) * 1000) / n).toFixed(2)} ms/file, agent CPU ${median(cpu[i]).toFixed(2)} s, sshd CPU ${median(scpu[i]).toFixed(2)} s, peak RSS ${Math.max(...rss[i]).toFixed(0)} MB\n`);
  }
}

/** One run per setting on the comparison size; prints wall times so the best can be chosen. */
async function tuneRclone(fx) {
  const variants = [
    { transfers: 4, checkers: 8, extra: [] },
    { transfers: 8, checkers: 8, extra: [] },
    { transfers: 16, checkers: 16, extra: [] },
    { transfers: 32, checkers: 32, extra: [] },
    { transfers: 16, checkers: 16, extra: ["--sftp-set-modtime=false"] },
    { transfers: 16, checkers: 16, extra: ["--sftp-set-modtime=false", "--no-check-dest"] },
    { transfers: 32, checkers: 16, extra: ["--sftp-set-modtime=false", "--no-check-dest"] },
    { transfers: 16, checkers: 16, extra: ["--sftp-set-modtime=false", "--no-check-dest", "--sftp-concurrency", "4"] },
    { transfers: 16, checkers: 16, extra: ["--sftp-set-modtime=false", "--no-check-dest", "--sftp-disable-concurrent-writes"] },
  ];
  for (let rep = 0; rep < RUNS; rep++) {
    for (const v of variants) {
      const r = await measure(fx, TOOLS.rclone, PLAN.compare, v);
      process.stdout.write(`rclone --transfers ${v.transfers} --checkers ${v.checkers} ${v.extra.join(" ")}: ${r.wall.toFixed(2)} s, rss ${r.rssMb.toFixed(0)} MB, cpu ${r.cpu.toFixed(2)} s, sshd ${r.serverCpu.toFixed(2)} s\n`);
    }
  }
}

main().catch((error) => {
  process.stderr.write(`bench: ${error.stack || error}\n`);
  process.exitCode = 1;
});
