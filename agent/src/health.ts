import { promises as fs } from "node:fs";
import type { AgentConfig } from "@plutus/shared";
import { readStatus } from "./status";
import { readErpInbox, type ErpInboxObservation } from "./erpInbox";
import { readCounters, type PassCounters } from "./counters";
import { unacknowledgedQuarantined } from "./quarantineAck";
import { errorMessage } from "./errors";

/** Nagios plugin states; the exit code is the index. */
export const HEALTH_STATES = ["OK", "WARNING", "CRITICAL", "UNKNOWN"] as const;
export type HealthState = (typeof HEALTH_STATES)[number];

/** The facts `health` judges, all from local state. Ages in seconds; null where never seen. */
export interface HealthFacts {
  lastRunAt: string | null;
  lastRunExitCode: number | null;
  lastRunDurationSeconds: number | null;
  /** Why the last run could not connect, as it recorded it. */
  lastRunError: string | null;
  lastSuccessAt: string | null;
  lastSuccessAgeSeconds: number | null;
  consecutiveFailedRuns: number;
  waiting: number;
  oldestWaitingSeconds: number | null;
  inDoubt: number;
  quarantined: number;
  quarantinedUnacknowledged: number;
  erpInboxWaiting: number | null;
  erpInboxOldestSeconds: number | null;
  erpInboxObservedAt: string | null;
  counters: PassCounters | null;
}

export interface HealthProblem {
  state: Exclude<HealthState, "OK" | "UNKNOWN">;
  text: string;
}

export interface HealthReport {
  state: HealthState;
  exitCode: 0 | 1 | 2 | 3;
  /** The one line a monitoring system shows: `PLUTUS-SYNC <STATE> - text | perfdata`. */
  line: string;
  problems: HealthProblem[];
  /** Absent only when the state could not be read (UNKNOWN). */
  facts?: HealthFacts;
  reason?: string;
}

/** Reads every fact from the state folder; throws with the reason when it is missing or damaged. */
export async function readHealthFacts(config: AgentConfig, now = Date.now()): Promise<HealthFacts> {
  const stateDir = await fs.stat(config.stateDir).catch((error) => {
    throw new Error(`state folder ${config.stateDir} cannot be read (${errorMessage(error)}); has the agent ever run?`);
  });
  if (!stateDir.isDirectory()) throw new Error(`state folder ${config.stateDir} is not a folder`);
  const damaged = (what: string) => (error: unknown) => {
    throw new Error(`${what} in ${config.stateDir} cannot be read: ${errorMessage(error)}`);
  };
  // readStatus is the one reader of the outbox, the journal (orders in doubt) and last-run.json.
  const status = await readStatus(config, now).catch(damaged("the status (last-run.json, journal or outbox)"));
  const counters = await readCounters(config.stateDir).catch(damaged("counters.json"));
  const inbox = await readErpInbox(config.stateDir).catch(damaged("erp-inbox.json"));
  const unacknowledged = await unacknowledgedQuarantined(config.quarantine, config.stateDir).catch(damaged("quarantine-ack.json"));
  const lastRun = status.lastRun;
  const lastSuccessAt = counters?.lastSuccessAt ?? (lastRun?.exitCode === 0 ? lastRun.finishedAt : null);
  return {
    lastRunAt: lastRun?.finishedAt ?? null,
    lastRunExitCode: lastRun?.exitCode ?? null,
    lastRunDurationSeconds: lastRun ? lastRun.summary.durationMs / 1000 : null,
    lastRunError: lastRun?.error ?? null,
    lastSuccessAt,
    lastSuccessAgeSeconds: ageSeconds(lastSuccessAt, now),
    consecutiveFailedRuns: status.consecutiveFailedRuns,
    waiting: status.outbox.waiting,
    oldestWaitingSeconds: status.outbox.oldestAgeSeconds,
    inDoubt: status.inDoubt,
    quarantined: status.quarantined,
    quarantinedUnacknowledged: unacknowledged.length,
    erpInboxWaiting: inbox?.waiting ?? null,
    erpInboxOldestSeconds: inboxOldestSeconds(inbox, now),
    erpInboxObservedAt: inbox?.observedAt ?? null,
    counters,
  };
}

/** The health verdict: the worst of every threshold crossed. Never throws: unreadable state is UNKNOWN. */
export async function assessHealth(config: AgentConfig, now = Date.now()): Promise<HealthReport> {
  let facts: HealthFacts;
  try {
    facts = await readHealthFacts(config, now);
  } catch (error) {
    return unknownHealth(errorMessage(error));
  }
  return judgeHealth(facts, config.health);
}

export function unknownHealth(reason: string): HealthReport {
  const text = lineText(reason);
  return { state: "UNKNOWN", exitCode: 3, line: `PLUTUS-SYNC UNKNOWN - ${text}`, problems: [], reason: text };
}

export function judgeHealth(facts: HealthFacts, limits: AgentConfig["health"]): HealthReport {
  if (facts.lastRunAt === null) return unknownHealth("no pass has run yet (no last-run.json in the state folder)");
  const problems: HealthProblem[] = [];
  const minutes = (seconds: number) => `${Math.floor(seconds / 60)} min`;
  if (facts.lastSuccessAgeSeconds === null) {
    problems.push({ state: "CRITICAL", text: "no pass has succeeded yet" });
  } else if (facts.lastSuccessAgeSeconds > limits.lastSuccessCriticalMinutes * 60) {
    problems.push({ state: "CRITICAL", text: `no successful pass for ${minutes(facts.lastSuccessAgeSeconds)} (last at ${facts.lastSuccessAt}): is cron running?` });
  }
  if (facts.consecutiveFailedRuns >= limits.failedRunsWarning) {
    problems.push({
      state: facts.consecutiveFailedRuns >= limits.failedRunsCritical ? "CRITICAL" : "WARNING",
      text: `${facts.consecutiveFailedRuns} consecutive failed runs (last exit ${facts.lastRunExitCode}${facts.lastRunError ? `: ${facts.lastRunError}` : ""})`,
    });
  }
  if (facts.oldestWaitingSeconds !== null && facts.oldestWaitingSeconds > limits.oldestWaitingWarningMinutes * 60) {
    problems.push({
      state: facts.oldestWaitingSeconds > limits.oldestWaitingCriticalMinutes * 60 ? "CRITICAL" : "WARNING",
      text: `oldest of ${facts.waiting} order(s) in the outbox has waited ${minutes(facts.oldestWaitingSeconds)}`,
    });
  }
  if (facts.inDoubt > 0) problems.push({ state: "WARNING", text: `${facts.inDoubt} order(s) in doubt (see plutus-sync status)` });
  if (facts.quarantinedUnacknowledged > 0) {
    problems.push({ state: "WARNING", text: `${facts.quarantinedUnacknowledged} file(s) quarantined since last acknowledged (plutus-sync ack-quarantine)` });
  }
  if (facts.erpInboxOldestSeconds !== null && facts.erpInboxOldestSeconds > limits.erpInboxMaxAgeMinutes * 60) {
    problems.push({ state: "WARNING", text: `the ERP inbox has held a file for ${minutes(facts.erpInboxOldestSeconds)} (${facts.erpInboxWaiting} waiting): the ERP has stopped taking orders` });
  }
  problems.sort((a, b) => HEALTH_STATES.indexOf(b.state) - HEALTH_STATES.indexOf(a.state));
  const state: HealthState = problems[0]?.state ?? "OK";
  const text = problems.length > 0 ? problems.map((p) => p.text).join("; ") : summary(facts);
  const exitCode = HEALTH_STATES.indexOf(state) as HealthReport["exitCode"];
  return { state, exitCode, line: `PLUTUS-SYNC ${state} - ${lineText(text)} | ${perfdata(facts, limits)}`, problems, facts };
}

function summary(facts: HealthFacts): string {
  const inbox = facts.erpInboxWaiting === null ? "ERP inbox not seen yet" : `${facts.erpInboxWaiting} in the ERP inbox`;
  return `last success ${facts.lastSuccessAgeSeconds} s ago, ${facts.waiting} waiting in the outbox, ${inbox}`;
}

/** Nagios perfdata: `label=value[UOM];warn;crit;min`; U where a value is unknown. */
function perfdata(facts: HealthFacts, limits: AgentConfig["health"]): string {
  const value = (v: number | null, unit = "") => (v === null ? "U" : `${v}${unit}`);
  return [
    `waiting=${facts.waiting};;;0`,
    `oldest_waiting_s=${value(facts.oldestWaitingSeconds, "s")};${limits.oldestWaitingWarningMinutes * 60};${limits.oldestWaitingCriticalMinutes * 60};0`,
    `in_doubt=${facts.inDoubt};0;;0`,
    `quarantined_unacked=${facts.quarantinedUnacknowledged};0;;0`,
    `erp_inbox_waiting=${value(facts.erpInboxWaiting)};;;0`,
    `erp_inbox_oldest_s=${value(facts.erpInboxOldestSeconds, "s")};${limits.erpInboxMaxAgeMinutes * 60};;0`,
    `last_success_age_s=${value(facts.lastSuccessAgeSeconds, "s")};;${limits.lastSuccessCriticalMinutes * 60};0`,
    `failed_runs=${facts.consecutiveFailedRuns};${limits.failedRunsWarning};${limits.failedRunsCritical};0`,
  ].join(" ");
}

/** One printable line: `|` starts perfdata, so it cannot appear in the text; the ERP's words are not trusted. */
function lineText(text: string): string {
  const clean = text.replace(/\|/g, "/").replace(/[\u0000-\u001f\u007f-\u009f]+/g, " ");
  return clean.length > 400 ? clean.slice(0, 399) + "…" : clean;
}

function ageSeconds(iso: string | null, now: number): number | null {
  if (iso === null) return null;
  const at = Date.parse(iso);
  return Number.isNaN(at) ? null : Math.max(0, Math.round((now - at) / 1000));
}

function inboxOldestSeconds(inbox: ErpInboxObservation | null, now: number): number | null {
  return inbox?.oldestModifiedAt ? ageSeconds(inbox.oldestModifiedAt, now) : null;
}

/** The facts and verdict as one JSON object (`health --json`). */
export function healthJson(report: HealthReport): Record<string, unknown> {
  return { state: report.state, exitCode: report.exitCode, line: report.line, problems: report.problems, ...(report.reason ? { reason: report.reason } : {}), ...(report.facts ? { facts: report.facts } : {}) };
}
