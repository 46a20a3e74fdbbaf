import { parseArgs } from "node:util";
import { agentBundle } from "./harness";
import { formatDetails, formatTable, rowFailed, runSuite } from "./suite";

/** `npm run chaos [-- --long] [--seed N] [--only name]`: runs the suite and prints one table. */
async function main(): Promise<number> {
  const { values } = parseArgs({
    options: { long: { type: "boolean" }, seed: { type: "string" }, only: { type: "string", multiple: true } },
  });
  if (process.getuid?.() !== 0) {
    process.stderr.write("chaos: must run as root (it starts sshd, mounts tmpfs volumes and changes owners)\n");
    return 2;
  }
  const seed = values.seed !== undefined ? Number(values.seed) : Date.now() % 1_000_000;
  const long = values.long === true;
  const bundle = agentBundle();
  process.stderr.write(`chaos: ${long ? "long" : "short"} suite, seed ${seed}, agent bundle sha256 ${bundle.sha256.slice(0, 16)}\n`);
  const started = Date.now();
  const rows = await runSuite({
    long,
    seed,
    only: values.only,
    onRow: (row, ms) => process.stderr.write(`chaos: ${rowFailed(row) ? "FAIL" : "ok  "} ${row.scenario} (${(ms / 1000).toFixed(1)} s)\n`),
  });
  process.stdout.write(`\n${formatTable(rows)}\n\n`);
  const details = formatDetails(rows);
  if (details) process.stdout.write(`${details}\n`);
  const failed = rows.filter(rowFailed);
  process.stdout.write(`\nchaos: ${long ? "long" : "short"} suite, seed ${seed}, ${((Date.now() - started) / 1000).toFixed(0)} s: ${failed.length === 0 ? "all invariants held" : `${failed.length} scenario(s) FAILED`}\n`);
  return failed.length === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (error) => {
    process.stderr.write(`chaos: ${error instanceof Error ? error.stack : String(error)}\n`);
    process.exit(1);
  },
);
