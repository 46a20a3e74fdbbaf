import { promises as fs } from "node:fs";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { ExitCode, type LastRunRecord } from "@plutus/shared";
import { writeFileAtomic } from "./durableFs";
import { abandonedLockStartedAt } from "./lock";
import { DamagedStateFileError } from "./errors";
import { describeJsonSyntaxError } from "./jsonSyntax";

/** A stable id for this agent's uploads, so it only ever sweeps its own staging files. */
export async function agentId(stateDir: string): Promise<string> {
  const path = join(stateDir, "agent-id");
  try {
    const id = (await fs.readFile(path, "utf8")).trim();
    if (/^[0-9a-f]{12}$/.test(id)) return id;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
  }
  const id = randomBytes(6).toString("hex");
  await writeFileAtomic(path, id + "\n");
  return id;
}

/**
 * A JSON file the agent keeps in its state folder: null when there is none yet; a file that is not
 * JSON, or whose value `check` rejects (it returns what is wrong), is a DamagedStateFileError
 * naming the file; any other failure to read it (permissions) is thrown as it is.
 */
export async function readStateJson<T>(stateDir: string, name: string, check: (value: unknown) => string | undefined): Promise<T | null> {
  const path = join(stateDir, name);
  let text: string;
  try {
    text = await fs.readFile(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw error;
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new DamagedStateFileError(`${path} is damaged: invalid JSON: ${describeJsonSyntaxError(text)}`, { cause: error });
  }
  const problem = check(value);
  if (problem !== undefined) throw new DamagedStateFileError(`${path} is damaged: ${problem}`);
  return value as T;
}

/** For readStateJson: the value must be a JSON object. */
export function isJsonObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export async function readLastRun(stateDir: string): Promise<LastRunRecord | null> {
  return readStateJson<LastRunRecord>(stateDir, "last-run.json", (value) => (isJsonObject(value) ? undefined : "not a record of a run"));
}

export async function writeLastRun(stateDir: string, record: LastRunRecord): Promise<void> {
  await writeFileAtomic(join(stateDir, "last-run.json"), JSON.stringify(record, null, 2) + "\n", 0o640);
}

/**
 * A run that stopped before its pass could end (configuration, key, log or state folder, damaged
 * journal) is recorded too, so `status` does not keep showing the last good run. Best effort: the
 * state folder may be the very thing that cannot be used.
 */
export async function recordFailedRun(stateDir: string, startedAt: Date, exitCode: number, error: string): Promise<void> {
  try {
    const previous = await readLastRun(stateDir).catch(() => null);
    const summary = { found: 0, delivered: 0, failed: 0, quarantined: 0, deferred: 0, durationMs: Date.now() - startedAt.getTime(), archivePending: 0, recovered: 0 };
    await writeLastRun(stateDir, {
      startedAt: startedAt.toISOString(),
      finishedAt: new Date().toISOString(),
      exitCode,
      summary,
      error,
      consecutiveFailedRuns: (previous?.consecutiveFailedRuns ?? 0) + 1,
    });
  } catch {
    // Nothing more can be done here; the error still reaches stderr (cron sends it to syslog).
  }
}

/** How long a pass lock whose owner cannot be asked (another host, a torn lock file) is honoured. */
export function lockStaleAfterMs(passDeadlineSeconds: number): number {
  return (passDeadlineSeconds + 60) * 1000;
}

/**
 * The last run as status and health must see it: last-run.json, or, when a later pass was
 * stopped before it could write it (its lock is left and its process gone), a failed run for that
 * pass, counted as one more consecutive failure.
 */
export async function readLastRunOrAbandoned(stateDir: string, passDeadlineSeconds: number): Promise<LastRunRecord | null> {
  const recorded = await readLastRun(stateDir);
  const startedAt = await abandonedLockStartedAt(stateDir, lockStaleAfterMs(passDeadlineSeconds));
  if (startedAt === undefined || (recorded && Date.parse(recorded.startedAt) >= startedAt)) return recorded;
  const at = new Date(startedAt).toISOString();
  return {
    startedAt: at,
    // When it ended is not known; nothing after its start is claimed.
    finishedAt: at,
    exitCode: ExitCode.DeliveryFailed,
    summary: { found: 0, delivered: 0, failed: 0, quarantined: 0, deferred: 0, durationMs: 0, archivePending: 0, recovered: 0 },
    error: `the pass started at ${at} did not finish: it was stopped (hard limit, watchdog, kill or crash) before it could record its result; see syslog (plutus-sync) and the run log`,
    consecutiveFailedRuns: (recorded?.consecutiveFailedRuns ?? 0) + 1,
  };
}

/** Writes the failed run of a pass that was stopped before recording it (see readLastRunOrAbandoned). */
export async function recordAbandonedPass(stateDir: string, passDeadlineSeconds: number): Promise<LastRunRecord | undefined> {
  const recorded = await readLastRun(stateDir);
  const effective = await readLastRunOrAbandoned(stateDir, passDeadlineSeconds);
  if (!effective || effective.startedAt === recorded?.startedAt) return undefined;
  await writeLastRun(stateDir, effective);
  return effective;
}
