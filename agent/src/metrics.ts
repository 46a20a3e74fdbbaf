import { createServer, type Server } from "node:http";
import { join } from "node:path";
import type { HealthReport } from "./health";
import { HEALTH_STATES } from "./health";
import { promises as fs } from "node:fs";

export const TEXTFILE_NAME = "plutus_sync.prom";

/** Upper bounds of the delivery latency histogram (file in the outbox → in the ERP inbox), seconds. */
export const LATENCY_BUCKETS = [0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600] as const;

/** A cumulative Prometheus histogram of delivery latencies; watch mode observes one per delivery. */
export class LatencyHistogram {
  private readonly counts = LATENCY_BUCKETS.map(() => 0);
  private count = 0;
  private sum = 0;

  observe(seconds: number): void {
    if (!Number.isFinite(seconds) || seconds < 0) return;
    this.count++;
    this.sum += seconds;
    LATENCY_BUCKETS.forEach((bound, i) => {
      if (seconds <= bound) this.counts[i]++;
    });
  }

  render(name: string): string[] {
    return [
      `# HELP ${name} Time from an order file's arrival in the outbox to its publication in the ERP inbox.`,
      `# TYPE ${name} histogram`,
      ...LATENCY_BUCKETS.map((bound, i) => `${name}_bucket{le="${bound}"} ${this.counts[i]}`),
      `${name}_bucket{le="+Inf"} ${this.count}`,
      `${name}_sum ${this.sum}`,
      `${name}_count ${this.count}`,
    ];
  }
}

type Sample = [name: string, type: "gauge" | "counter", help: string, value: number | null];

/** The text exposition format (no timestamps) of everything `health` knows; a null value is left out. */
export function renderMetrics(report: HealthReport, latency?: LatencyHistogram): string {
  const facts = report.facts;
  const seconds = (iso: string | null | undefined) => (iso ? Date.parse(iso) / 1000 : null);
  const samples: Sample[] = [
    ["plutus_sync_health_state", "gauge", "Health as `plutus-sync health` judges it: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.", HEALTH_STATES.indexOf(report.state)],
  ];
  if (facts) {
    const counters = facts.counters;
    samples.push(
      ["plutus_sync_last_success_timestamp_seconds", "gauge", "End of the last pass that exited 0.", seconds(facts.lastSuccessAt)],
      ["plutus_sync_last_run_timestamp_seconds", "gauge", "End of the last pass.", seconds(facts.lastRunAt)],
      ["plutus_sync_last_run_exit_code", "gauge", "Exit code of the last pass (0 ok, 1 delivery failed, 2 configuration, 3 connect).", facts.lastRunExitCode],
      ["plutus_sync_pass_duration_seconds", "gauge", "Duration of the last pass.", facts.lastRunDurationSeconds],
      ["plutus_sync_delivered_total", "counter", "Orders delivered to the ERP inbox.", counters?.delivered ?? 0],
      ["plutus_sync_failed_total", "counter", "Deliveries that failed (a file counts once for every pass that could not deliver it).", counters?.failed ?? 0],
      ["plutus_sync_quarantined_total", "counter", "Files moved to quarantine.", counters?.quarantined ?? 0],
      ["plutus_sync_recovered_total", "counter", "In-doubt deliveries settled by recovery.", counters?.recovered ?? 0],
      ["plutus_sync_passes_total", "counter", "Passes that ran (not counting those that found the lock held).", counters?.passes ?? 0],
      ["plutus_sync_outbox_waiting", "gauge", "Order files waiting in the outbox.", facts.waiting],
      ["plutus_sync_outbox_oldest_age_seconds", "gauge", "Age of the oldest order file in the outbox (0 when empty).", facts.oldestWaitingSeconds ?? 0],
      ["plutus_sync_erp_inbox_waiting", "gauge", "Files waiting in the ERP inbox at the last look.", facts.erpInboxWaiting],
      ["plutus_sync_erp_inbox_oldest_age_seconds", "gauge", "Age of the oldest file in the ERP inbox (0 when empty).", facts.erpInboxWaiting === null ? null : (facts.erpInboxOldestSeconds ?? 0)],
      ["plutus_sync_erp_inbox_observed_timestamp_seconds", "gauge", "When the ERP inbox was last listed.", seconds(facts.erpInboxObservedAt)],
      ["plutus_sync_in_doubt", "gauge", "Orders in doubt (delivery outcome not yet settled).", facts.inDoubt],
      ["plutus_sync_quarantine_files", "gauge", "Files in the quarantine folder.", facts.quarantined],
      ["plutus_sync_quarantine_unacknowledged", "gauge", "Quarantined files not yet acknowledged with plutus-sync ack-quarantine.", facts.quarantinedUnacknowledged],
      ["plutus_sync_consecutive_failed_runs", "gauge", "Passes in a row that did not exit 0.", facts.consecutiveFailedRuns],
    );
  }
  const lines: string[] = [];
  for (const [name, type, help, value] of samples) {
    if (value === null || !Number.isFinite(value)) continue;
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`, `${name} ${value}`);
  }
  if (latency) lines.push(...latency.render("plutus_sync_delivery_latency_seconds"));
  return lines.join("\n") + "\n";
}

/** Writes `plutus_sync.prom` for node_exporter's textfile collector: temporary name, then rename. */
export async function writeTextfile(dir: string, text: string): Promise<string> {
  const path = join(dir, TEXTFILE_NAME);
  // The collector only reads *.prom: the temporary name is never half-read.
  const temp = join(dir, `.${TEXTFILE_NAME}.${process.pid}.tmp`);
  try {
    await fs.writeFile(temp, text, { mode: 0o644 });
    // node_exporter runs as its own account: readable whatever the umask.
    await fs.chmod(temp, 0o644);
    await fs.rename(temp, path);
  } catch (error) {
    await fs.rm(temp, { force: true });
    throw error;
  }
  return path;
}

/** Serves GET /metrics (watch mode's `metrics.listen`); `render` is called for every scrape. */
export async function serveMetrics(listen: string, render: () => Promise<string>): Promise<Server> {
  const colon = listen.lastIndexOf(":");
  const host = listen.slice(0, colon).replace(/^\[(.*)\]$/, "$1");
  const port = Number(listen.slice(colon + 1));
  const server = createServer((request, response) => {
    if (request.method !== "GET" || (request.url ?? "").split("?")[0] !== "/metrics") {
      response.writeHead(404, { "content-type": "text/plain" }).end("only GET /metrics is served\n");
      return;
    }
    render().then(
      (text) => response.writeHead(200, { "content-type": "text/plain; version=0.0.4; charset=utf-8" }).end(text),
      (error) => response.writeHead(500, { "content-type": "text/plain" }).end(`cannot read the agent's state: ${error instanceof Error ? error.message : String(error)}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  return server;
}
