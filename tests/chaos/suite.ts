import { Row, Rng } from "./harness";
import { knownFailureIds } from "./known";
import { SCENARIOS, Scenario, Scale } from "./scenarios";

export interface SuiteOptions extends Scale {
  seed: number;
  /** Only scenarios whose name contains one of these (case-insensitive). */
  only?: string[];
  /** Called after each scenario (progress). */
  onRow?: (row: Row, ms: number) => void;
}

export function selectScenarios(only: string[] | undefined): Scenario[] {
  if (!only || only.length === 0) return SCENARIOS;
  return SCENARIOS.filter((s) => only.some((o) => s.name.toLowerCase().includes(o.toLowerCase())));
}

/** Runs the scenarios one after the other (two cores: no parallelism), each with its own seed. */
export async function runSuite(options: SuiteOptions): Promise<Row[]> {
  const rows: Row[] = [];
  const scenarios = selectScenarios(options.only);
  for (let i = 0; i < scenarios.length; i++) {
    const started = Date.now();
    const row = await scenarios[i].run({ long: options.long }, new Rng(options.seed + i));
    rows.push(row);
    options.onRow?.(row, Date.now() - started);
  }
  return rows;
}

/** A run fails on any lost, duplicated or partial order, or any broken expectation. */
export function rowFailed(row: Row): boolean {
  return row.lost !== 0 || row.duplicated !== 0 || row.partial !== 0 || row.problems.length > 0;
}

const COLUMNS: [string, (r: Row) => string | number][] = [
  ["scenario", (r) => r.scenario],
  ["passes", (r) => r.passes],
  ["faults injected", (r) => r.faults],
  ["produced", (r) => r.produced],
  ["delivered", (r) => r.delivered],
  ["quarantined", (r) => r.quarantined],
  ["lost", (r) => r.lost],
  ["duplicated", (r) => r.duplicated],
  ["partial seen", (r) => r.partial],
  ["longest pass (ms)", (r) => r.longestPassMs],
  ["result", (r) => (!rowFailed(r) ? "ok" : knownFailureIds(r).length > 0 ? `FAIL (known: ${knownFailureIds(r).join(", ")})` : "FAIL")],
];

/** The one table, as Markdown (readable in a terminal and pasteable into an issue). */
export function formatTable(rows: Row[]): string {
  const cells = rows.map((r) => COLUMNS.map(([, get]) => String(get(r))));
  const widths = COLUMNS.map(([title], i) => Math.max(title.length, ...cells.map((c) => c[i].length)));
  const numeric = (i: number) => i > 0 && i < COLUMNS.length - 1;
  const line = (values: string[]) => `| ${values.map((v, i) => (numeric(i) ? v.padStart(widths[i]) : v.padEnd(widths[i]))).join(" | ")} |`;
  const rule = `|${widths.map((w, i) => (numeric(i) ? "-".repeat(w + 1) + ":" : "-".repeat(w + 2))).join("|")}|`;
  return [line(COLUMNS.map(([t]) => t)), rule, ...cells.map(line)].join("\n");
}

/** Notes and problems under the table. */
export function formatDetails(rows: Row[]): string {
  const out: string[] = [];
  for (const r of rows) {
    for (const n of r.notes) out.push(`  ${r.scenario}: ${n}`);
    for (const p of r.problems) out.push(`  FAIL ${r.scenario}: ${p}`);
  }
  return out.join("\n");
}
