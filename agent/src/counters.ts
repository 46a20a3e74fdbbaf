import { join } from "node:path";
import { ExitCode, type RunSummary } from "@plutus/shared";
import { writeFileAtomic } from "./durableFs";
import { isJsonObject, readStateJson } from "./stateFiles";

const FILE_NAME = "counters.json";

/** Totals since the agent was installed, kept in `<stateDir>/counters.json` so they survive restarts. */
export interface PassCounters {
  passes: number;
  delivered: number;
  /** Files a pass could not deliver (a file failing in three passes counts three times). */
  failed: number;
  quarantined: number;
  recovered: number;
  lastSuccessAt: string | null;
}

const ZERO: PassCounters = { passes: 0, delivered: 0, failed: 0, quarantined: 0, recovered: 0, lastSuccessAt: null };

/** Null when no pass was counted yet; throws DamagedStateFileError when the file is damaged. */
export async function readCounters(stateDir: string): Promise<PassCounters | null> {
  return readStateJson<PassCounters>(stateDir, FILE_NAME, (value) => {
    if (!isJsonObject(value)) return "not a set of counters";
    const notCount = (["passes", "delivered", "failed", "quarantined", "recovered"] as const).find((key) => !Number.isSafeInteger(value[key]) || (value[key] as number) < 0);
    return notCount === undefined ? undefined : `${notCount} is not a count`;
  });
}

/** Adds one finished pass. A pass is a success only when it exited 0: work that failed is no success. */
export async function countPass(stateDir: string, summary: RunSummary, exitCode: number, finishedAt = new Date()): Promise<PassCounters> {
  const before = (await readCounters(stateDir).catch(() => null)) ?? ZERO;
  const after: PassCounters = {
    passes: before.passes + 1,
    delivered: before.delivered + summary.delivered,
    failed: before.failed + summary.failed,
    quarantined: before.quarantined + summary.quarantined,
    recovered: before.recovered + summary.recovered,
    lastSuccessAt: exitCode === ExitCode.Ok ? finishedAt.toISOString() : before.lastSuccessAt,
  };
  await writeFileAtomic(join(stateDir, FILE_NAME), JSON.stringify(after) + "\n", 0o640);
  return after;
}
