import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { BUNDLE } from "./agent";

/** A `plutus-sync watch` process started by a test, with what it printed so far. */
export interface WatchProcess {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export interface WatchStartOptions {
  /** Added to a bare PATH (the unit's environment is nearly empty too). */
  env?: NodeJS.ProcessEnv;
  /** Node options before the bundle (a heap limit). */
  nodeArgs?: string[];
  /** A command the watcher runs under (nice, unshare). */
  wrapper?: string[];
  /** How long start() waits for "watching". */
  startTimeoutMs?: number;
}

/** Spawns `plutus-sync watch` from the bundle, without waiting for it. */
export function spawnWatch(configPath: string, options: WatchStartOptions = {}): WatchProcess {
  const command = [...(options.wrapper ?? []), process.execPath, ...(options.nodeArgs ?? []), BUNDLE, "watch", "--config", configPath];
  const child = spawn(command[0], command.slice(1), { env: { PATH: process.env.PATH, ...options.env }, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  child.stdout!.on("data", (d) => (out += d));
  child.stderr!.on("data", (d) => (err += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on("close", (code, signal) => resolve({ code, signal })));
  return { child, stdout: () => out, stderr: () => err, exited };
}

/** Starts `plutus-sync watch` and resolves once it says it is watching. */
export async function startWatch(configPath: string, options: WatchStartOptions = {}): Promise<WatchProcess> {
  const watch = spawnWatch(configPath, options);
  await until(() => watch.stdout().includes("plutus-sync: watching"), options.startTimeoutMs ?? 20_000, () => `watch did not start: ${watch.stdout()} ${watch.stderr()}`);
  return watch;
}

/** Polls `condition` every 20 ms; fails with `what()` after `timeoutMs`. */
export async function until(condition: () => boolean, timeoutMs: number, what: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(what());
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Rewrites the agent configuration at `configPath` with `overrides` on top; returns the path. */
export function rewriteConfig(configPath: string, overrides: Record<string, unknown>): string {
  const config = { ...JSON.parse(readFileSync(configPath, "utf8")), ...overrides };
  writeFileSync(configPath, JSON.stringify(config, null, 2));
  return configPath;
}
