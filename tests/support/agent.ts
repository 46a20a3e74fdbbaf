import { spawn, ChildProcess } from "node:child_process";
import { mkdtempSync, mkdirSync, writeFileSync, rmSync, utimesSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { AgentConfigInput } from "@plutus/shared";
import { startErpServer, type ErpServer, type SshdOptions } from "./sshd";

/** The bundled agent; PLUTUS_TEST_BUNDLE runs the tests against another build (e.g. the code before a fix). */
export const BUNDLE = process.env.PLUTUS_TEST_BUNDLE ?? resolve(__dirname, "../../agent/dist/plutus-sync.cjs");

export interface LocalSide {
  readonly root: string;
  readonly outbox: string;
  readonly archive: string;
  readonly quarantine: string;
  readonly stateDir: string;
  readonly logDir: string;
  readonly configPath: string;
  readonly config: AgentConfigInput;
  /** Writes an order file into the outbox, old enough to be taken at once. */
  writeOrder(name: string, content: string | Buffer, ageSeconds?: number): string;
  destroy(): void;
}

/** The agent's local folders under one root, as the tests lay them out. */
export function localFolders(root: string): { outbox: string; archive: string; quarantine: string; stateDir: string; logDir: string } {
  return {
    outbox: join(root, "outbox"),
    archive: join(root, "archive"),
    quarantine: join(root, "quarantine"),
    stateDir: join(root, "state"),
    logDir: join(root, "log"),
  };
}

/**
 * Jest hooks for an integration suite: one ERP stand-in for the file; for every test a fresh
 * local side and an empty inbox and staging.
 */
export function useErpStandIn(options?: SshdOptions): { readonly erp: ErpServer; readonly local: LocalSide } {
  let erp: ErpServer | undefined;
  let local: LocalSide | undefined;
  beforeAll(async () => {
    erp = await startErpServer(options);
  });
  afterAll(async () => {
    await erp?.destroy();
  });
  beforeEach(() => {
    for (const dir of [erp!.inboxDir, erp!.stagingDir]) for (const f of readdirSync(dir)) rmSync(join(dir, f), { force: true });
    local = makeLocalSide(erp!);
  });
  afterEach(() => local?.destroy());
  return {
    get erp() {
      return erp!;
    },
    get local() {
      return local!;
    },
  };
}

/** A web server's side: folders and a config file pointing at the given ERP. */
export function makeLocalSide(erp: ErpServer, overrides: Partial<AgentConfigInput> = {}): LocalSide {
  const root = mkdtempSync(join(tmpdir(), "plutus-local-"));
  const dirs = localFolders(root);
  mkdirSync(dirs.outbox);
  const config: AgentConfigInput = {
    ...dirs,
    minAgeSeconds: 2,
    remote: {
      host: erp.host,
      port: erp.port,
      username: erp.username,
      privateKeyPath: erp.clientKeyPath,
      hostKeySha256: erp.hostKeySha256,
      inbox: "/Inbox",
      staging: "/Staging",
    },
    ...overrides,
  };
  const configPath = join(root, "agent.json");
  writeFileSync(configPath, JSON.stringify(config, null, 2));
  return {
    root,
    ...dirs,
    configPath,
    config,
    writeOrder(name, content, ageSeconds = 60) {
      const path = join(dirs.outbox, name);
      writeFileSync(path, content);
      const when = new Date(Date.now() - ageSeconds * 1000);
      utimesSync(path, when, when);
      return path;
    },
    destroy() {
      rmSync(root, { recursive: true, force: true });
    },
  };
}

export interface AgentResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs the bundled agent as cron would: a fresh process. */
export function runAgent(args: string[], env: NodeJS.ProcessEnv = {}, node = process.execPath, onSpawn?: (child: ChildProcess) => void): Promise<AgentResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(node, [BUNDLE, ...args], { env: { PATH: process.env.PATH, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    onSpawn?.(child);
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("error", reject);
    child.on("close", (code, signal) => resolvePromise({ code, signal, stdout, stderr }));
  });
}

export interface MeasuredResult extends AgentResult {
  /** The process's peak resident memory (VmHWM from /proc), sampled every 25 ms until it exits. */
  peakRssKiB: number;
  /** From the spawn to the process's end, start-up included. */
  ms: number;
  /** When the process ended (Date.now()): compared with the pass's own start (last-run.json's startedAt), start-up is left out. */
  endedAt: number;
}

/**
 * Runs the agent as its own process, sampling its peak resident memory (VmHWM) until it exits.
 * `bundle` runs another copy of the agent (the chaos suite's snapshot); after `hardLimitMs` the
 * process is killed with SIGKILL.
 */
export function runMeasured(args: string[], options: { bundle?: string; hardLimitMs?: number } = {}): Promise<MeasuredResult> {
  const started = Date.now();
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [options.bundle ?? BUNDLE, ...args], { env: { PATH: process.env.PATH ?? "/usr/bin:/bin" }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    let peakRssKiB = 0;
    const sample = setInterval(() => {
      try {
        const match = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, "utf8"));
        if (match) peakRssKiB = Math.max(peakRssKiB, Number(match[1]));
      } catch {
        /* exited */
      }
    }, 25);
    const limit = options.hardLimitMs !== undefined ? setTimeout(() => child.kill("SIGKILL"), options.hardLimitMs) : undefined;
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("error", reject);
    child.on("close", (code, signal) => {
      clearInterval(sample);
      clearTimeout(limit);
      const endedAt = Date.now();
      resolvePromise({ code, signal, stdout, stderr, peakRssKiB, ms: endedAt - started, endedAt });
    });
  });
}

/** The JSON summary `run --json` prints as its last stdout line. */
export function lastJsonLine(stdout: string): Record<string, unknown> {
  const lines = stdout.trim().split("\n");
  return JSON.parse(lines[lines.length - 1]) as Record<string, unknown>;
}

export function sampleOrder(id: number, extraBytes = 0): string {
  return JSON.stringify({
    orderId: `PL-${String(id).padStart(6, "0")}`,
    createdAt: new Date(1_700_000_000_000 + id * 60_000).toISOString(),
    customer: { name: `Kunde ${id}`, email: `kunde${id}@example.com` },
    lines: [{ sku: "LAMP-ARC-01", qty: 1 + (id % 3), price: 149.0 }],
    note: "x".repeat(extraBytes),
  });
}

/** The agent's sentinel, which it keeps in the staging folder to recognise it later. */
export const STAGING_SENTINEL = /^plutus-[0-9a-f]{12}\.sentinel$/;

/** What the staging folder holds besides the agent's sentinel (uploads, leftovers). */
export function stagingFiles(stagingDir: string): string[] {
  return readdirSync(stagingDir).filter((name) => !STAGING_SENTINEL.test(name));
}

/** Every structured line the agent logged under `logDir` (its `*.log` files, not the rotation audit). */
export function logEvents(logDir: string): Record<string, unknown>[] {
  return readdirSync(logDir)
    .filter((f) => f.endsWith(".log"))
    .flatMap((f) => readFileSync(join(logDir, f), "utf8").trim().split("\n"))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

/**
 * The lines logged so far under `logDir`, to look at while the agent still writes: a last line not
 * yet ended by its newline (being written) is left for the next look.
 */
export function logEventsSoFar(logDir: string): Record<string, unknown>[] {
  return readdirSync(logDir)
    .filter((f) => f.endsWith(".log"))
    .flatMap((f) => {
      const text = readFileSync(join(logDir, f), "utf8");
      return text.slice(0, text.lastIndexOf("\n") + 1).split("\n").filter((line) => line !== "");
    })
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

/** Resolves once the process is stopped (SIGSTOP, e.g. by PLUTUS_PAUSE_AT); rejects if it ends first. */
export async function stopped(child: ChildProcess, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`the agent ended (${child.exitCode ?? child.signalCode}) before it paused`);
    const stat = readFileSync(`/proc/${child.pid}/stat`, "utf8");
    if (stat.slice(stat.lastIndexOf(")") + 2).startsWith("T")) return;
    if (Date.now() > deadline) throw new Error(`the agent did not pause within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The state letter /proc gives the process (T: stopped), or undefined once it is gone. */
function processState(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
  } catch {
    return undefined;
  }
}

/**
 * Stops `child` (SIGSTOP) at a moment `holds()` is true (e.g. its lock file exists), whatever the
 * machine's load: `holds()` is looked at again once the stop has taken effect (the process runs on
 * until the signal lands), and the process is resumed and watched again if it no longer holds.
 * Rejects if the process ends first, or after `timeoutMs`.
 */
export async function stopWhile(child: ChildProcess, holds: () => boolean, what: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const ended = () => child.exitCode !== null || child.signalCode !== null;
  for (;;) {
    if (ended()) throw new Error(`the process ended before it could be stopped while ${what}`);
    if (holds()) {
      child.kill("SIGSTOP");
      let state = processState(child.pid!);
      while (state !== undefined && state !== "T" && state !== "Z") {
        await new Promise((r) => setImmediate(r));
        state = processState(child.pid!);
      }
      if (state === "T" && holds()) return;
      child.kill("SIGCONT");
    }
    if (Date.now() > deadline) throw new Error(`the process was not seen while ${what} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 2));
  }
}
