import { spawn } from "node:child_process";
import { hostname } from "node:os";
import { join } from "node:path";
import type { AgentConfig } from "@plutus/shared";
import type { HealthReport, HealthState } from "./health";
import { writeFileAtomic } from "./durableFs";
import { DamagedStateFileError, errorMessage } from "./errors";
import { isJsonObject, readStateJson } from "./stateFiles";
import type { Logger } from "./logger";

const FILE_NAME = "alert-state.json";

/** What the last alert said; an alert is sent only when the health differs from it. */
interface AlertedState {
  state: HealthState;
  inDoubt: number;
  /** Files in the quarantine folder: a new one is news even while the state stays WARNING. */
  quarantined: number;
  at: string;
}

/** The JSON document an alert command reads on stdin. */
export interface AlertEvent {
  event: "plutus-sync-health";
  host: string;
  at: string;
  previousState: HealthState;
  state: HealthState;
  /** Why this alert: the state changed, a new file was quarantined, a new order is in doubt. */
  reasons: string[];
  line: string;
  problems: HealthReport["problems"];
  inDoubt: number;
  quarantined: number;
  quarantinedUnacknowledged: number;
}

/** Why the health now differs from what was last alerted (nothing: no alert). */
export function alertReasons(previous: AlertedState, report: HealthReport): string[] {
  const reasons: string[] = [];
  const inDoubt = report.facts?.inDoubt ?? previous.inDoubt;
  const quarantined = report.facts?.quarantined ?? previous.quarantined;
  if (report.state !== previous.state) reasons.push(`health ${previous.state} -> ${report.state}`);
  if (inDoubt > previous.inDoubt) reasons.push(`${inDoubt - previous.inDoubt} more order(s) in doubt`);
  if (quarantined > previous.quarantined) reasons.push(`${quarantined - previous.quarantined} more file(s) quarantined`);
  return reasons;
}

/**
 * After a pass: when the health differs from what was last alerted, runs `alertCommand` once with
 * the event on stdin. The new state is recorded whether the command worked or not (a failure is
 * logged), so a broken mailer does not mean an alert every pass. Never throws.
 */
export async function alertOnHealthChange(config: AgentConfig, report: HealthReport, log: Logger, now = new Date()): Promise<AlertEvent | undefined> {
  try {
    const path = join(config.stateDir, FILE_NAME);
    const previous = await readAlerted(config.stateDir);
    const reasons = alertReasons(previous, report);
    if (reasons.length === 0) return undefined;
    const event: AlertEvent = {
      event: "plutus-sync-health",
      host: hostname(),
      at: now.toISOString(),
      previousState: previous.state,
      state: report.state,
      reasons,
      line: report.line,
      problems: report.problems,
      inDoubt: report.facts?.inDoubt ?? previous.inDoubt,
      quarantined: report.facts?.quarantined ?? previous.quarantined,
      quarantinedUnacknowledged: report.facts?.quarantinedUnacknowledged ?? 0,
    };
    await writeFileAtomic(path, JSON.stringify({ state: event.state, inDoubt: event.inDoubt, quarantined: event.quarantined, at: event.at }) + "\n", 0o640);
    log.warn("health changed", { event: "health-changed", from: previous.state, to: report.state, reasons });
    if (config.alertCommand) {
      await runAlertCommand(config.alertCommand, event, config.alertTimeoutSeconds * 1000).then(
        () => log.info("alert sent", { event: "alert-sent", command: config.alertCommand![0], state: report.state }),
        (error) => log.error("the alert command failed; the alert is not repeated", { event: "alert-failed", command: config.alertCommand![0], error: errorMessage(error) }),
      );
    }
    return event;
  } catch (error) {
    log.error("could not evaluate alerts", { event: "alert-failed", error: errorMessage(error) });
    return undefined;
  }
}

async function readAlerted(stateDir: string): Promise<AlertedState> {
  try {
    const value = await readStateJson<AlertedState>(stateDir, FILE_NAME, (value) =>
      isJsonObject(value) && typeof value.state === "string" && typeof value.inDoubt === "number" && typeof value.quarantined === "number" ? undefined : "not an alert state",
    );
    if (value) return value;
  } catch (error) {
    if (!(error instanceof DamagedStateFileError)) throw error;
  }
  // Nothing alerted yet (or the record is damaged): a first bad state is news, a first good one is not.
  return { state: "OK", inDoubt: 0, quarantined: 0, at: "" };
}

/** Runs argv (no shell) with the event as JSON on stdin; rejects on a non-zero exit, a signal or the timeout. */
export function runAlertCommand(argv: readonly string[], event: AlertEvent, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    // Its own process group, so that a timeout also ends what it started (a shell's children).
    const child = spawn(argv[0], argv.slice(1), { stdio: ["pipe", "ignore", "pipe"], detached: true });
    let stderr = "";
    let settled = false;
    const settle = (error?: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (error) reject(error);
      else resolve();
    };
    const timer = setTimeout(() => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, "SIGKILL");
      } catch {
        child.kill("SIGKILL");
      }
      settle(new Error(`${argv[0]} did not finish within ${timeoutMs / 1000} s and was killed${said()}`));
    }, timeoutMs);
    const said = () => (stderr.trim() ? `: ${stderr.trim().slice(0, 500)}` : "");
    child.stderr.on("data", (chunk: Buffer) => {
      if (stderr.length < 500) stderr += chunk.toString("utf8");
    });
    child.on("error", (error) => settle(new Error(`cannot run ${argv[0]}: ${error.message}`, { cause: error })));
    child.on("close", (code, signal) => settle(code === 0 ? undefined : new Error(`${argv[0]} exited with ${code ?? signal}${said()}`)));
    // A command that does not read its stdin must not fail the alert with EPIPE.
    child.stdin.on("error", () => undefined);
    child.stdin.end(JSON.stringify(event) + "\n");
  });
}
