import { copyFileSync } from "node:fs";
import { basename, join } from "node:path";

/**
 * Test hook: PLUTUS_CRASH_AT=<step>[:<n>] kills the process with SIGKILL the n-th time (default
 * first) a delivery reaches <step>, so tests can prove recovery from a crash at every step.
 */
export const CRASH_STEPS = [
  "after-scan",
  "after-upload",
  "after-verify",
  "after-commit-record",
  "after-rename",
  "after-published-record",
  "after-archive",
  "during-recovery",
] as const;
export type CrashStep = (typeof CRASH_STEPS)[number];

/**
 * Steps outside a delivery: the quarantine's reason is durable, the entry not yet moved; a chunk of
 * a copy across volumes written (archive or quarantine on another volume).
 */
export const LOCAL_CRASH_STEPS = ["after-quarantine-reason", "during-copy"] as const;
export type LocalCrashStep = (typeof LOCAL_CRASH_STEPS)[number];

const spec = process.env.PLUTUS_CRASH_AT;
const [crashStep, crashCount] = spec ? [spec.split(":")[0], Number(spec.split(":")[1] ?? "1")] : [undefined, 0];
let reached = 0;

export function crashPoint(step: CrashStep | LocalCrashStep): void {
  if (step !== crashStep) return;
  reached++;
  if (reached === crashCount) process.kill(process.pid, "SIGKILL");
}

/**
 * Test hook: PLUTUS_PAUSE_AT=<step> stops the process (SIGSTOP) the first time it reaches <step>,
 * so a test can change the server at exactly that instant and then send SIGCONT.
 */
const pauseStep = process.env.PLUTUS_PAUSE_AT;
let paused = false;

export function pausePoint(step: "after-rename-refused"): void {
  if (step !== pauseStep || paused) return;
  paused = true;
  process.kill(process.pid, "SIGSTOP");
}

/**
 * Test hook for power cuts: with PLUTUS_DURABLE_COPY_DIR=<folder>, a copy of `path` is taken each
 * time the agent has just made it durable (fsync returned). Replacing the file by that copy after
 * a kill -9 gives what a power cut would have left: everything up to the last fsync, nothing after.
 */
const durableCopyDir = process.env.PLUTUS_DURABLE_COPY_DIR;

export function durablePoint(path: string): void {
  if (durableCopyDir) copyFileSync(path, join(durableCopyDir, basename(path)));
}

/**
 * Test hook for lost inotify events (a queue overflow is dropped silently by libuv): with
 * PLUTUS_WATCH_IGNORE_EVENTS=1 the watcher ignores every file event and only its rescans find work.
 */
export const ignoreWatchEvents = process.env.PLUTUS_WATCH_IGNORE_EVENTS === "1";
