import { HEALTH_DEFAULTS } from "@plutus/shared";
import { judgeHealth, type HealthFacts } from "../../agent/src/health";
import { alertReasons } from "../../agent/src/alerts";

const calm: HealthFacts = {
  lastRunAt: "2026-12-01T10:00:00.000Z",
  lastRunExitCode: 0,
  lastRunDurationSeconds: 1.2,
  lastRunError: null,
  lastSuccessAt: "2026-12-01T10:00:00.000Z",
  lastSuccessAgeSeconds: 60,
  consecutiveFailedRuns: 0,
  waiting: 0,
  oldestWaitingSeconds: null,
  inDoubt: 0,
  quarantined: 0,
  quarantinedUnacknowledged: 0,
  erpInboxWaiting: 0,
  erpInboxOldestSeconds: null,
  erpInboxObservedAt: "2026-12-01T10:00:00.000Z",
  counters: null,
};
const limits = { ...HEALTH_DEFAULTS };

describe("judgeHealth thresholds", () => {
  it("is OK exactly at each threshold and crosses it one second later", () => {
    const at = { ...calm, lastSuccessAgeSeconds: 900, oldestWaitingSeconds: 600, waiting: 1, erpInboxOldestSeconds: 1800, erpInboxWaiting: 1 };
    expect(judgeHealth(at, limits).state).toBe("OK");
    expect(judgeHealth({ ...at, lastSuccessAgeSeconds: 901 }, limits).line).toMatch(/^PLUTUS-SYNC CRITICAL - no successful pass for 15 min \(last at 2026-12-01T10:00:00.000Z\): is cron running\? \| /);
    expect(judgeHealth({ ...at, oldestWaitingSeconds: 601 }, limits).state).toBe("WARNING");
    expect(judgeHealth({ ...at, oldestWaitingSeconds: 1801 }, limits).state).toBe("CRITICAL");
    expect(judgeHealth({ ...at, erpInboxOldestSeconds: 1801 }, limits).state).toBe("WARNING");
    expect(judgeHealth({ ...at, consecutiveFailedRuns: 1 }, limits).state).toBe("OK");
  });

  it("follows the configured thresholds, worst state first in the line", () => {
    const custom = { ...limits, failedRunsWarning: 5, failedRunsCritical: 8, erpInboxMaxAgeMinutes: 60 };
    expect(judgeHealth({ ...calm, consecutiveFailedRuns: 4, erpInboxOldestSeconds: 3000, erpInboxWaiting: 2 }, custom).state).toBe("OK");
    const report = judgeHealth({ ...calm, consecutiveFailedRuns: 8, lastRunExitCode: 1, erpInboxOldestSeconds: 3700, erpInboxWaiting: 2, inDoubt: 1 }, custom);
    expect(report.exitCode).toBe(2);
    expect(report.line).toBe(
      "PLUTUS-SYNC CRITICAL - 8 consecutive failed runs (last exit 1); 1 order(s) in doubt (see plutus-sync status); the ERP inbox has held a file for 61 min (2 waiting): the ERP has stopped taking orders" +
        " | waiting=0;;;0 oldest_waiting_s=U;600;1800;0 in_doubt=1;0;;0 quarantined_unacked=0;0;;0 erp_inbox_waiting=2;;;0 erp_inbox_oldest_s=3700s;3600;;0 last_success_age_s=60s;;900;0 failed_runs=8;5;8;0",
    );
  });

  it("keeps the ERP's words out of the perfdata: no | or control characters in the text", () => {
    const report = judgeHealth({ ...calm, consecutiveFailedRuns: 3, lastRunExitCode: 3, lastRunError: "cannot connect: evil | x=1\n\u001b[2Jnext" }, limits);
    expect(report.line).toBe(
      "PLUTUS-SYNC CRITICAL - 3 consecutive failed runs (last exit 3: cannot connect: evil / x=1 [2Jnext) | waiting=0;;;0 oldest_waiting_s=U;600;1800;0 in_doubt=0;0;;0 quarantined_unacked=0;0;;0 erp_inbox_waiting=0;;;0 erp_inbox_oldest_s=U;1800;;0 last_success_age_s=60s;;900;0 failed_runs=3;2;3;0",
    );
    expect(report.line.split("|")).toHaveLength(2);
  });
});

describe("alertReasons", () => {
  const ok = { state: "OK" as const, inDoubt: 0, quarantined: 0, at: "" };
  it("names every change, and nothing when nothing changed", () => {
    expect(alertReasons(ok, judgeHealth(calm, limits))).toEqual([]);
    expect(alertReasons(ok, judgeHealth({ ...calm, inDoubt: 2, quarantined: 1, quarantinedUnacknowledged: 1 }, limits))).toEqual([
      "health OK -> WARNING",
      "2 more order(s) in doubt",
      "1 more file(s) quarantined",
    ]);
    // Fewer in doubt or quarantined (settled, cleaned up) is no news while the state stays.
    expect(alertReasons({ state: "WARNING", inDoubt: 3, quarantined: 4, at: "" }, judgeHealth({ ...calm, inDoubt: 1, quarantined: 2 }, limits))).toEqual([]);
  });
});
