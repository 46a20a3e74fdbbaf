import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { promises as fsp, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, utimesSync, renameSync, chownSync, chmodSync, copyFileSync, lstatSync, watch, openSync, writeSync, closeSync, fchownSync } from "node:fs";
import { createHash } from "node:crypto";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import type { AgentConfigInput } from "@plutus/shared";
import { startErpServer, ensureSystemAccount, uidOf, ErpServer, SshdOptions, ERP_USER } from "../support/sshd";
import { FakeErp, FakeErpOptions } from "../support/fakeErp";
import { TcpProxy } from "../support/tcpProxy";
import { localFolders, STAGING_SENTINEL } from "../support/agent";
import { Journal } from "../../agent/src/journal";

/** The repository root, found from this file (works from ts-jest and from the esbuild bootstrap). */
export function repoRoot(): string {
  let dir = __dirname;
  for (;;) {
    const manifest = join(dir, "package.json");
    if (existsSync(manifest) && JSON.parse(readFileSync(manifest, "utf8")).name === "plutus-order-sync") return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`no plutus-order-sync package.json above ${__dirname}`);
    dir = parent;
  }
}

export const BUNDLE = join(repoRoot(), "agent", "dist", "plutus-sync.cjs");

let snapshot: { path: string; sha256: string } | undefined;
/**
 * A private copy of the bundle, taken once: others rebuild agent/dist in the same tree while the
 * suite runs (the build empties the folder first), and every pass must run the same file.
 */
export function agentBundle(): { path: string; sha256: string } {
  if (snapshot && existsSync(snapshot.path)) return snapshot;
  let content: Buffer | undefined;
  for (let i = 0; i < 100 && !content; i++) {
    try {
      content = readFileSync(BUNDLE);
    } catch {
      execFileSync("sleep", ["0.2"]);
    }
  }
  if (!content) throw new Error(`${BUNDLE} not found: run npm run build first`);
  const dir = mkdtempSync(join(tmpdir(), "plutus-chaos-bundle-"));
  chmodSync(dir, 0o755);
  const path = join(dir, "plutus-sync.cjs");
  writeFileSync(path, content, { mode: 0o755 });
  snapshot = { path, sha256: sha256(content) };
  process.on("exit", () => rmSync(dir, { recursive: true, force: true }));
  return snapshot;
}
/** The unprivileged account the agent runs as where root would hide the fault. */
export const AGENT_USER = "plutus-chaos";

/** A running `plutus-sync watch` started by Rig.watcher(). */
export interface WatcherProcess {
  child: ChildProcess;
  pid: number;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stdout(): string;
  stderr(): string;
}

/** One line of the table. */
export interface Row {
  scenario: string;
  passes: number;
  faults: number;
  produced: number;
  delivered: number;
  quarantined: number;
  lost: number;
  duplicated: number;
  partial: number;
  longestPassMs: number;
  /** Every broken invariant or failed expectation, in words. Empty when the scenario passed. */
  problems: string[];
  /** What the scenario observed beyond the counts (shown under the table). */
  notes: string[];
}

export function newRow(scenario: string): Row {
  return { scenario, passes: 0, faults: 0, produced: 0, delivered: 0, quarantined: 0, lost: 0, duplicated: 0, partial: 0, longestPassMs: 0, problems: [], notes: [] };
}

/** Small seeded PRNG (mulberry32) so a failing run can be replayed with --seed. */
export class Rng {
  constructor(private state: number) {}
  next(): number {
    this.state = (this.state + 0x6d2b79f5) | 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)];
  }
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** What a pass may take past its deadline, by its own clock: the teardown, compaction, status file and log flush. */
export const DEADLINE_MARGIN_MS = 3_000;

/**
 * How long a pass spawned at `spawnedAt` took by its own clock: from the start it recorded in
 * last-run.json (where its deadline counts from) to its exit. Node.js start-up, which a loaded
 * machine stretches to seconds, is not the agent's to bound. When last-run.json is not this
 * pass's (it recorded no run: locked, killed), from spawn.
 */
export function passClockMs(stateDir: string, spawnedAt: number, exitedAt: number): number {
  let startedAt = Number.NaN;
  try {
    startedAt = Date.parse((JSON.parse(readFileSync(join(stateDir, "last-run.json"), "utf8")) as { startedAt: string }).startedAt);
  } catch {
    /* none recorded */
  }
  return startedAt >= spawnedAt && startedAt <= exitedAt ? exitedAt - startedAt : exitedAt - spawnedAt;
}
export const sha256 = (data: string | Buffer) => createHash("sha256").update(data).digest("hex");

export interface PassRecord {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** From spawn to exit, Node.js start-up included. */
  ms: number;
  /** By the pass's own clock (see passClockMs): what its deadline bounds. */
  passMs: number;
  stdout: string;
  stderr: string;
  /** The `--json` summary, when the pass got that far. */
  summary: Record<string, number> | undefined;
  killed: boolean;
}

export interface RigOptions {
  /** Tuning keys and overrides for the agent's config. */
  config?: Partial<AgentConfigInput>;
  /** Put a TcpProxy between agent and sshd. */
  proxy?: boolean;
  /** Run the agent as the unprivileged AGENT_USER (root ignores permissions). */
  asUser?: boolean;
  erp?: SshdOptions;
  /** Mount a tmpfs of this many bytes as the ERP volume (the jail holding Inbox and Staging). */
  erpVolumeBytes?: number;
  fakeErp?: FakeErpOptions;
}

interface ProducedOrder {
  name: string;
  sha256: string;
}

/**
 * One scenario's world: a real sshd (SFTP-only, chrooted) as the ERP, an optional proxy, a local
 * side with its config, and the fake ERP consuming the inbox. Every agent pass is the bundled
 * file run as its own process, like cron runs it.
 */
export class Rig {
  readonly produced = new Map<string, ProducedOrder>();
  private seq = 0;
  private mounts: string[] = [];
  readonly uid: number;
  readonly gid: number;
  configObject: AgentConfigInput;

  private constructor(
    readonly erp: ErpServer,
    readonly proxy: TcpProxy | undefined,
    readonly fake: FakeErp,
    readonly root: string,
    readonly configPath: string,
    config: AgentConfigInput,
    readonly options: RigOptions,
    ids: { uid: number; gid: number },
    mounts: string[],
  ) {
    this.configObject = config;
    this.uid = ids.uid;
    this.gid = ids.gid;
    this.mounts = mounts;
  }

  get outbox(): string {
    return this.configObject.outbox;
  }
  get archive(): string {
    return this.configObject.archive;
  }
  get quarantine(): string {
    return this.configObject.quarantine;
  }
  get stateDir(): string {
    return this.configObject.stateDir;
  }
  get logDir(): string {
    return this.configObject.logDir;
  }

  static async start(options: RigOptions = {}): Promise<Rig> {
    const erp = await startErpServer(options.erp);
    const mounts: string[] = [];
    let proxy: TcpProxy | undefined;
    try {
      if (options.erpVolumeBytes) {
        // Inbox and Staging on one small volume, so rename (link) works and the disk can fill.
        execFileSync("mount", ["-t", "tmpfs", "-o", `size=${options.erpVolumeBytes},mode=0755`, "plutus-chaos-erp", erp.jail]);
        mounts.push(erp.jail);
        const erpUid = uidOf(ERP_USER);
        for (const dir of [erp.inboxDir, erp.stagingDir]) {
          mkdirSync(dir, { mode: 0o755 });
          chownSync(dir, erpUid, erpUid);
        }
      }
      if (options.proxy) proxy = await TcpProxy.start({ host: erp.host, port: erp.port });
      let ids = { uid: 0, gid: 0 };
      if (options.asUser) {
        ensureSystemAccount(AGENT_USER);
        ids = { uid: uidOf(AGENT_USER), gid: Number(execFileSync("id", ["-g", AGENT_USER]).toString().trim()) };
      }
      const root = mkdtempSync(join(tmpdir(), "plutus-chaos-"));
      const dirs = localFolders(root);
      for (const dir of Object.values(dirs)) mkdirSync(dir, { mode: 0o750 });
      const keyPath = join(root, "id_ed25519");
      copyFileSync(erp.clientKeyPath, keyPath);
      chmodSync(keyPath, 0o600);
      if (options.asUser) {
        chmodSync(root, 0o755);
        for (const path of [root, ...Object.values(dirs), keyPath]) chownSync(path, ids.uid, ids.gid);
      }
      const config: AgentConfigInput = {
        ...dirs,
        minAgeSeconds: 1,
        ...options.config,
        remote: {
          host: erp.host,
          port: proxy ? proxy.port : erp.port,
          username: erp.username,
          privateKeyPath: keyPath,
          hostKeySha256: erp.hostKeySha256,
          inbox: "/Inbox",
          staging: "/Staging",
          ...options.config?.remote,
        },
      };
      const configPath = join(root, "agent.json");
      writeFileSync(configPath, JSON.stringify(config, null, 2), { mode: 0o644 });
      const fake = await FakeErp.start(erp.inboxDir, options.fakeErp);
      return new Rig(erp, proxy, fake, root, configPath, config, options, ids, mounts);
    } catch (error) {
      await proxy?.stop();
      for (const mount of mounts.reverse()) umount(mount);
      await erp.destroy();
      throw error;
    }
  }

  /** Rewrites the agent's config file. */
  writeConfig(change: (config: AgentConfigInput) => AgentConfigInput): void {
    this.configObject = change(this.configObject);
    writeFileSync(this.configPath, JSON.stringify(this.configObject, null, 2), { mode: 0o644 });
  }

  /** Mounts a small tmpfs on a local folder (e.g. the archive); unmounted by destroy(). */
  mountTmpfs(dir: string, bytes: number): void {
    execFileSync("mount", ["-t", "tmpfs", "-o", `size=${bytes},mode=0750`, "plutus-chaos-local", dir]);
    this.mounts.push(dir);
    if (this.uid !== 0) chownSync(dir, this.uid, this.gid);
  }

  resizeTmpfs(dir: string, bytes: number): void {
    execFileSync("mount", ["-o", `remount,size=${bytes}`, dir]);
  }

  /** Writes one valid order atomically (temporary name, then rename), old enough to be taken. */
  produce(extraBytes = 0, name?: string): ProducedOrder {
    const { n, content, fileName } = this.nextOrder(extraBytes, name);
    const temp = join(this.outbox, `.incoming-${n}.tmp`);
    writeFileSync(temp, content);
    const when = new Date(Date.now() - 60_000);
    utimesSync(temp, when, when);
    if (this.uid !== 0) chownSync(temp, this.uid, this.gid);
    renameSync(temp, join(this.outbox, fileName));
    return this.booked(fileName, content);
  }

  /**
   * Writes one valid order in place under its final name, in two writes `pauseMs` apart, as a
   * producer that ignores the rename contract does: the first part is not yet a JSON object.
   */
  async produceInPlace(extraBytes: number, pauseMs: number): Promise<ProducedOrder> {
    const { content, fileName } = this.nextOrder(extraBytes);
    const path = join(this.outbox, fileName);
    const fd = openSync(path, "wx", 0o640);
    try {
      if (this.uid !== 0) fchownSync(fd, this.uid, this.gid);
      const split = Math.floor(content.length / 2);
      writeSync(fd, content.slice(0, split));
      await sleep(pauseMs);
      writeSync(fd, content.slice(split));
    } finally {
      closeSync(fd);
    }
    return this.booked(fileName, content);
  }

  private nextOrder(extraBytes: number, name?: string): { n: number; content: string; fileName: string } {
    const n = ++this.seq;
    const order = {
      orderId: `PL-${String(n).padStart(7, "0")}`,
      nonce: sha256(`${this.root}:${n}`).slice(0, 16),
      createdAt: new Date().toISOString(),
      customer: { name: `Kunde ${n}`, email: `kunde${n}@example.com` },
      lines: [{ sku: "LAMP-ARC-01", qty: 1 + (n % 3), price: 149.0 }],
      note: "x".repeat(extraBytes),
    };
    return { n, content: JSON.stringify(order), fileName: name ?? `order-${String(n).padStart(7, "0")}.json` };
  }

  private booked(name: string, content: string): ProducedOrder {
    const produced = { name, sha256: sha256(content) };
    this.produced.set(produced.sha256, produced);
    return produced;
  }

  /** Order files waiting in the outbox. */
  outboxOrders(): string[] {
    return readdirSync(this.outbox).filter((n) => /\.json$/i.test(n) && n.length > 5);
  }

  /** The bundled agent with `args`, as the rig's account, with only PATH and `env`; its output gathered as it comes. */
  private spawnAgent(args: string[], env: NodeJS.ProcessEnv = {}) {
    const child = spawn(process.execPath, [agentBundle().path, ...args], {
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...env },
      stdio: ["ignore", "pipe", "pipe"],
      ...(this.uid !== 0 ? { uid: this.uid, gid: this.gid } : {}),
    });
    const output = { stdout: "", stderr: "" };
    child.stdout.on("data", (d) => (output.stdout += d));
    child.stderr.on("data", (d) => (output.stderr += d));
    return { child, output };
  }

  /** One pass of the bundled agent as its own process; optionally killed with SIGKILL after `killAfterMs`. */
  async pass(options: { killAfterMs?: number; crashAt?: string; hardLimitMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<PassRecord> {
    const started = Date.now();
    const { child, output } = this.spawnAgent(["run", "--config", this.configPath, "--json"], { ...(options.crashAt ? { PLUTUS_CRASH_AT: options.crashAt } : {}), ...options.env });
    const killer = options.killAfterMs !== undefined ? setTimeout(() => child.kill("SIGKILL"), options.killAfterMs) : undefined;
    const hardLimitMs = options.hardLimitMs ?? ((this.configObject.passDeadlineSeconds ?? 240) + 60) * 1000;
    let overran = false;
    const limit = setTimeout(() => {
      overran = true;
      child.kill("SIGKILL");
    }, hardLimitMs);
    const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve, reject) => {
      child.on("error", reject);
      child.on("close", (c, s) => resolve([c, s]));
    });
    clearTimeout(killer);
    clearTimeout(limit);
    const exitedAt = Date.now();
    const ms = exitedAt - started;
    const { stdout } = output;
    const stderr = overran ? `${output.stderr}\n[chaos] pass overran ${hardLimitMs} ms and was killed by the harness` : output.stderr;
    let summary: Record<string, number> | undefined;
    const last = stdout.trim().split("\n").pop() ?? "";
    if (last.startsWith("{")) {
      try {
        summary = JSON.parse(last) as Record<string, number>;
      } catch {
        summary = undefined;
      }
    }
    return { code, signal, ms, passMs: passClockMs(this.stateDir, started, exitedAt), stdout, stderr, summary, killed: signal === "SIGKILL" && !overran };
  }

  /** Runs a pass and books it on the row (passes, longest pass). */
  async bookedPass(row: Row, options: Parameters<Rig["pass"]>[0] = {}): Promise<PassRecord> {
    const record = await this.pass(options);
    row.passes++;
    if (!record.killed) row.longestPassMs = Math.max(row.longestPassMs, record.passMs);
    if (record.stderr.includes("[chaos] pass overran")) row.problems.push(`a pass overran its hard limit: ${record.stderr.trim().slice(-300)}`);
    if (record.stderr.includes("unexpected error")) row.problems.push(`agent reported an unexpected error: ${record.stderr.trim().slice(0, 400)}`);
    return record;
  }

  /**
   * `plutus-sync watch` (the bundle snapshot) as its own process, like its systemd unit runs it;
   * resolves once it says it is watching. The caller ends it (SIGKILL or SIGTERM).
   */
  async watcher(options: { env?: NodeJS.ProcessEnv; readyWithinMs?: number } = {}): Promise<WatcherProcess> {
    const { child, output } = this.spawnAgent(["watch", "--config", this.configPath], options.env);
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on("close", (code, signal) => resolve({ code, signal })));
    const watcher: WatcherProcess = { child, pid: child.pid!, exited, stdout: () => output.stdout, stderr: () => output.stderr };
    const deadline = Date.now() + (options.readyWithinMs ?? 30_000);
    while (!output.stdout.includes("plutus-sync: watching")) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`plutus-sync watch ended (${child.exitCode ?? child.signalCode}) before it was watching: ${output.stderr.trim().slice(0, 300)}`);
      if (Date.now() > deadline) {
        child.kill("SIGKILL");
        await exited;
        throw new Error(`plutus-sync watch was not watching after ${options.readyWithinMs ?? 30_000} ms: ${output.stderr.trim().slice(0, 300)}`);
      }
      await sleep(10);
    }
    return watcher;
  }

  /**
   * With every fault off, passes until nothing is left to deliver (at most `maxPasses`), then lets
   * the fake ERP empty the inbox. Left-over deferred files named in `mayRemain` are allowed.
   */
  async finalCleanPass(row: Row, mayRemain: (name: string) => boolean = () => false, maxPasses = 4): Promise<void> {
    if (this.proxy) {
      this.proxy.planFor = undefined;
      this.proxy.delayDownMs = 0;
      this.proxy.blackhole(false);
      // Requests a dead agent left in the partition reach sshd now; let them land before the
      // clean pass, whose sweep is what must leave staging empty.
      await this.proxy.waitIdle(10_000);
      await new Promise((r) => setTimeout(r, 300));
    }
    this.fake.paused = false;
    let last: PassRecord | undefined;
    for (let i = 0, lockedWaits = 0; i < maxPasses; i++) {
      last = await this.bookedPass(row);
      // A pass killed while creating pass.lock or its break guard leaves a file that counts as
      // held for 5 s (lock.ts); quick passes would all say "locked". Wait that out (15 s at most).
      if (last.code === 0 && last.summary?.skippedLocked && lockedWaits++ < 15) {
        i--;
        await sleep(1_000);
        continue;
      }
      const open = await Journal.peek(this.stateDir);
      if (last.code === 0 && open.length === 0 && this.outboxOrders().every(mayRemain)) break;
    }
    if (last && last.code !== 0) row.problems.push(`final clean pass exited ${last.code ?? last.signal}: ${last.stderr.trim().slice(0, 300)}`);
    await this.fake.drain(true);
  }

  /** Structured log events the agent wrote. */
  logEvents(): Record<string, unknown>[] {
    const events: Record<string, unknown>[] = [];
    for (const file of readdirSync(this.logDir)) {
      if (!file.endsWith(".log")) continue;
      for (const line of readFileSync(join(this.logDir, file), "utf8").split("\n")) {
        if (!line.trim()) continue;
        try {
          events.push(JSON.parse(line) as Record<string, unknown>);
        } catch {
          events.push({ event: "unparsable-log-line", line });
        }
      }
    }
    return events;
  }

  /** Hashes of regular files under a folder (recursively), `.reason` notes left out. */
  hashesUnder(dir: string): Map<string, string[]> {
    const found = new Map<string, string[]>();
    const walk = (d: string) => {
      for (const name of readdirSync(d)) {
        const path = join(d, name);
        const stat = lstatSync(path);
        if (stat.isDirectory()) walk(path);
        else if (stat.isFile() && !name.endsWith(".reason")) {
          const h = sha256(readFileSync(path));
          found.set(h, [...(found.get(h) ?? []), path]);
        }
      }
    };
    if (existsSync(dir)) walk(dir);
    return found;
  }

  /**
   * The invariants, after the final clean pass:
   *   lost       = produced − consumed − quarantined − allowed to remain (deferred by rule)
   *   duplicated = orders (content hashes) the ERP consumed more than once
   *   partial    = names seen in the inbox that are not final order names, plus consumed
   *                content that was never produced (a torn or unverified file)
   * and no intermediate state: journal without open entries, staging empty, outbox drained,
   * no pass lock, every consumed order archived locally.
   */
  async account(row: Row, mayRemain: (name: string) => boolean = () => false): Promise<void> {
    const consumedBySha = new Map<string, number>();
    const producedNames = new Set([...this.produced.values()].map((p) => p.name));
    let foreign = 0;
    for (const c of this.fake.consumed) {
      consumedBySha.set(c.sha256, (consumedBySha.get(c.sha256) ?? 0) + 1);
      const order = this.produced.get(c.sha256);
      if (!order) {
        foreign++;
        row.problems.push(`the ERP consumed ${c.name} (${c.size} bytes) whose content was never produced: partial or corrupt`);
      } else if (c.name !== order.name && !c.name.startsWith(order.name.replace(/\.json$/i, "") + ".")) {
        row.problems.push(`the ERP consumed ${c.name}, expected ${order.name} or its conflict name`);
      }
    }
    void producedNames;
    const quarantined = this.hashesUnder(this.quarantine);
    const remaining = new Map<string, string>();
    for (const name of this.outboxOrders()) {
      try {
        remaining.set(sha256(readFileSync(join(this.outbox, name))), name);
      } catch {
        /* not a readable regular file: accounted by the scenario */
      }
    }
    row.produced = this.produced.size;
    row.delivered = [...this.produced.keys()].filter((h) => consumedBySha.has(h)).length;
    row.quarantined = [...this.produced.keys()].filter((h) => quarantined.has(h)).length;
    row.duplicated = [...consumedBySha.values()].reduce((sum, n) => sum + (n > 1 ? n - 1 : 0), 0);
    row.partial = this.fake.temporarySeen.length + foreign;
    let lost = 0;
    for (const [h, order] of this.produced) {
      if (consumedBySha.has(h) || quarantined.has(h)) continue;
      const left = remaining.get(h);
      if (left !== undefined && mayRemain(left)) continue;
      lost++;
      if (left !== undefined) row.problems.push(`${order.name} is still in the outbox after the final clean pass`);
      else if (lost <= 5) row.problems.push(`${order.name} (${h.slice(0, 12)}) was lost: not consumed, not quarantined, not in the outbox`);
    }
    row.lost = lost;
    if (row.duplicated > 0) row.problems.push(`${row.duplicated} order(s) consumed twice: ${[...consumedBySha].filter(([, n]) => n > 1).slice(0, 5).map(([h]) => this.produced.get(h)?.name ?? h).join(", ")}`);
    if (this.fake.temporarySeen.length > 0) row.problems.push(`temporary/partial names seen in the inbox: ${this.fake.temporarySeen.slice(0, 5).join(", ")}`);
    if (this.fake.watchErrors.length > 0) row.problems.push(`fake ERP errors: ${this.fake.watchErrors.slice(0, 3).join("; ")}`);

    const open = await Journal.peek(this.stateDir);
    if (open.length > 0) row.problems.push(`journal still has ${open.length} open entr${open.length === 1 ? "y" : "ies"}: ${open.slice(0, 3).map((e) => `${e.name}=${e.state}`).join(", ")}`);
    const staging = (await fsp.readdir(this.erp.stagingDir).catch(() => [] as string[])).filter((n) => !STAGING_SENTINEL.test(n));
    if (staging.length > 0) row.problems.push(`remote staging not empty: ${staging.slice(0, 3).join(", ")}`);
    const inbox = await fsp.readdir(this.erp.inboxDir).catch(() => [] as string[]);
    if (inbox.length > 0) row.problems.push(`inbox not drained by the fake ERP: ${inbox.slice(0, 3).join(", ")}`);
    if (existsSync(join(this.stateDir, "pass.lock"))) row.problems.push("pass.lock left behind");
    const archived = this.hashesUnder(this.archive);
    const notArchived = [...consumedBySha.keys()].filter((h) => this.produced.has(h) && !archived.has(h));
    if (notArchived.length > 0) row.problems.push(`${notArchived.length} delivered order(s) not in the archive, e.g. ${this.produced.get(notArchived[0])?.name}`);
  }

  /** Copies the local side, the sshd log and what the fake ERP saw to `dir` (CHAOS_EVIDENCE=dir). */
  keepEvidence(dir: string): void {
    mkdirSync(dir, { recursive: true });
    execFileSync("cp", ["-a", this.root, join(dir, "local")]);
    copyFileSync(this.erp.logPath, join(dir, "sshd.log"));
    writeFileSync(join(dir, "erp-consumed.json"), JSON.stringify({ consumed: this.fake.consumed, seen: this.fake.seen, produced: [...this.produced.values()] }, null, 1));
  }

  async destroy(): Promise<void> {
    await this.fake.stop();
    await this.proxy?.stop();
    for (const mount of this.mounts.reverse()) umount(mount);
    this.mounts = [];
    rmSync(this.root, { recursive: true, force: true });
    await this.erp.destroy();
  }
}

function umount(dir: string): void {
  try {
    execFileSync("umount", [dir]);
  } catch {
    execFileSync("umount", ["-l", dir]);
  }
}

/** Counts of the agent's log events by name. */
export function countEvents(events: Record<string, unknown>[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const e of events) counts.set(String(e.event), (counts.get(String(e.event)) ?? 0) + 1);
  return counts;
}

/** Every process below `pid` (children first found via /proc). */
export function descendants(pid: number): number[] {
  const result: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    const p = queue.shift()!;
    let children: number[] = [];
    try {
      for (const task of readdirSync(`/proc/${p}/task`)) {
        const text = readFileSync(`/proc/${p}/task/${task}/children`, "utf8").trim();
        if (text) children = children.concat(text.split(/\s+/).map(Number));
      }
    } catch {
      /* gone */
    }
    result.push(...children);
    queue.push(...children);
  }
  return result;
}

/**
 * Resolves once `count` entries were created or removed in `dir` (inotify), or when released.
 * The staging folder is busy only while the agent uploads and renames, so this is "mid-transfer".
 */
export function afterStagingEvents(dir: string, count: number): { reached: Promise<void>; release: () => void } {
  let release!: () => void;
  const reached = new Promise<void>((resolve) => (release = resolve));
  let seen = 0;
  const watcher = watch(dir, () => {
    if (++seen >= count) release();
  });
  watcher.on("error", () => release());
  void reached.then(() => watcher.close());
  return { reached, release };
}
