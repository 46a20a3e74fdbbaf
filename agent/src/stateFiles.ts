import { promises as fs } from "node:fs";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import type { LastRunRecord } from "@plutus/shared";
import { writeFileAtomic } from "./durableFs";

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

export async function readLastRun(stateDir: string): Promise<LastRunRecord | null> {
  try {
    return JSON.parse(await fs.readFile(join(stateDir, "last-run.json"), "utf8")) as LastRunRecord;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw error;
  }
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
