import type { AgentConfig } from "@plutus/shared";
import type { PassResult } from "./pass";
import { countPass } from "./counters";
import { readLastRun } from "./stateFiles";
import { assessHealth, type HealthReport } from "./health";
import { renderMetrics, writeTextfile, type LatencyHistogram } from "./metrics";
import { alertOnHealthChange } from "./alerts";
import { errorMessage } from "./errors";
import type { Logger } from "./logger";

/**
 * What follows every pass (cron's, and watch mode's): count it, judge the health from the state
 * it left, write the metrics file, alert on a change. Reads state, never blocks or fails delivery.
 */
export async function superviseAfterPass(config: AgentConfig, result: PassResult, log: Logger, latency?: LatencyHistogram): Promise<HealthReport> {
  if (!result.summary.skippedLocked) {
    // The pass's own end time (last-run.json), so that last success and last run agree to the millisecond.
    const finishedAt = await readLastRun(config.stateDir).then((run) => (run ? new Date(run.finishedAt) : new Date()), () => new Date());
    await countPass(config.stateDir, result.summary, result.exitCode, finishedAt).catch((error) =>
      log.error("could not update counters.json", { event: "counters-write-failed", error: errorMessage(error) }),
    );
  }
  const report = await assessHealth(config);
  if (config.metrics.textfileDir) {
    await writeTextfile(config.metrics.textfileDir, renderMetrics(report, latency)).catch((error) =>
      log.error("could not write the metrics file", { event: "metrics-write-failed", dir: config.metrics.textfileDir, error: errorMessage(error) }),
    );
  }
  await alertOnHealthChange(config, report, log);
  return report;
}
