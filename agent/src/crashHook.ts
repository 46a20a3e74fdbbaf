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

const spec = process.env.PLUTUS_CRASH_AT;
const [crashStep, crashCount] = spec ? [spec.split(":")[0], Number(spec.split(":")[1] ?? "1")] : [undefined, 0];
let reached = 0;

export function crashPoint(step: CrashStep): void {
  if (step !== crashStep) return;
  reached++;
  if (reached === crashCount) process.kill(process.pid, "SIGKILL");
}
