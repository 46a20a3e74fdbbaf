import { promises as fs } from "node:fs";
import { join } from "node:path";
import type { AgentConfig, StatusReport } from "@plutus/shared";
import { Journal, doubtEvidence } from "./journal";
import { isOrderFileName } from "./orderFile";
import { countQuarantined } from "./localMoves";
import { readLastRunOrAbandoned } from "./stateFiles";
import { readWatcherStatus, describeWatcher } from "./heartbeat";
import { DamagedStateFileError, StateError, errorMessage, printable } from "./errors";

/** What an operator (or the deployment canary) needs to know, from local state only. */
export async function readStatus(config: AgentConfig, now = Date.now()): Promise<StatusReport> {
  const lastRun = await readLastRunOrAbandoned(config.stateDir, config.passDeadlineSeconds);
  const names = (await fs.readdir(config.outbox)).filter(isOrderFileName);
  let oldest: number | null = null;
  let waiting = 0;
  for (const name of names) {
    const stat = await fs.lstat(join(config.outbox, name)).catch(() => undefined);
    if (!stat) continue;
    waiting++;
    oldest = oldest === null ? stat.mtimeMs : Math.min(oldest, stat.mtimeMs);
  }
  const entries = await Journal.peek(config.stateDir).catch((error) => {
    throw new StateError(`cannot read the journal in ${config.stateDir}: ${errorMessage(error)}`, { cause: error });
  });
  const watcher = await readWatcherStatus(config.stateDir, now).catch((error) => {
    if (error instanceof DamagedStateFileError) throw error;
    throw new StateError(`cannot read the watcher heartbeat in ${config.stateDir}: ${errorMessage(error)}`, { cause: error });
  });
  return {
    lastRun,
    outbox: { waiting, oldestAgeSeconds: oldest === null ? null : Math.max(0, Math.round((now - oldest) / 1000)) },
    quarantined: await countQuarantined(config.quarantine),
    inDoubt: entries.filter((e) => e.state === "committing").length,
    inDoubtFiles: entries.filter((e) => e.state === "committing").map((e) => e.name),
    awaitingArchive: entries.filter((e) => e.state === "published").length,
    awaitingArchiveFiles: entries.filter((e) => e.state === "published").map((e) => e.name),
    needResolveFiles: entries.filter((e) => e.state === "committing" && e.doubt !== undefined).map((e) => e.name),
    inDoubtEvidence: entries.flatMap((e) => {
      const evidence = e.state === "committing" ? doubtEvidence(e.doubt) : undefined;
      return evidence === undefined ? [] : [{ file: e.name, evidence }];
    }),
    consecutiveFailedRuns: lastRun?.consecutiveFailedRuns ?? 0,
    ...(watcher ? { watcher } : {}),
  };
}

export function formatStatus(report: StatusReport): string {
  const last = report.lastRun;
  const lines = [
    last
      ? `last run: ${last.finishedAt} exit ${last.exitCode}: ${last.summary.delivered}/${last.summary.found} delivered, ${last.summary.failed} failed, ${last.summary.quarantined} quarantined, ${last.summary.deferred} deferred${last.error ? ` (${printable(last.error)})` : ""}`
      : "last run: never",
    `outbox: ${report.outbox.waiting} waiting${report.outbox.oldestAgeSeconds === null ? "" : `, oldest ${report.outbox.oldestAgeSeconds} s old`}`,
    `quarantined: ${report.quarantined}`,
    report.inDoubt > 0 && report.inDoubtFiles ? `in doubt: ${report.inDoubt} (${describeInDoubt(report.inDoubtFiles, report.needResolveFiles ?? [])})` : `in doubt: ${report.inDoubt}`,
    ...(report.inDoubtEvidence ?? []).map(({ file, evidence }) => `  ${file}: since it was reported: ${printable(evidence)}`),
    ...((report.awaitingArchive ?? 0) > 0
      ? [`delivered, awaiting archive: ${report.awaitingArchive} (${(report.awaitingArchiveFiles ?? []).join(", ")}; never sent again; the next run moves them; archive-failed in the log says why)`]
      : []),
    `consecutive failed runs: ${report.consecutiveFailedRuns}`,
    ...(report.watcher ? [describeWatcher(report.watcher)] : []),
  ];
  return lines.join("\n");
}

/** Which entries wait for an operator (a run reported them) and which the next run settles. */
function describeInDoubt(files: string[], needResolve: string[]): string {
  const waiting = new Set(needResolve);
  const forResolve = files.filter((f) => waiting.has(f));
  const forNextRun = files.filter((f) => !waiting.has(f));
  return [
    forResolve.length > 0 ? `${forResolve.join(", ")}: held in doubt, settle with plutus-sync resolve` : "",
    forNextRun.length > 0 ? `${forNextRun.join(", ")}: being settled, the next run settles it` : "",
  ]
    .filter((part) => part !== "")
    .join("; ");
}
