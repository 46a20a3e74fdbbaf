// Runner for bench/junkNames.js (see there): bundled and started by it.
import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, utimesSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startErpServer, type ErpServer } from "../tests/support/sshd";
import { makeLocalSide, sampleOrder } from "../tests/support/agent";

const build = process.env.JUNK_BENCH_BUILD!;
const ref = process.env.JUNK_BENCH_REF!;
const ARGV = process.argv.slice(2);
const option = (name: string, fallback: string) => {
  const i = ARGV.indexOf(name);
  return i >= 0 && ARGV[i + 1] !== undefined ? ARGV[i + 1] : fallback;
};
const sizes = (text: string) => text.split(",").map(Number);
const oldSizes = sizes(option("--old-sizes", "4000,8000,16000"));
const newSizes = sizes(option("--new-sizes", "8000,16000,32000,100000"));
const junk = Number(option("--junk", "100000"));
const oldLimitSeconds = Number(option("--old-limit-seconds", "120"));
const deadlineSeconds = Number(option("--deadline-seconds", "60"));

type ListOrderNames = (outbox: string) => Promise<(string | Buffer)[]>;
const listers: Record<"old" | "new", ListOrderNames> = {
  old: require(join(build, "old-orderFile.cjs")).listOrderNames,
  new: require(join(build, "new-orderFile.cjs")).listOrderNames,
};

/** `count` names that are not UTF-8 (`junk-<i>-\xff\xfe.json`) and one valid order. */
function fillOutbox(outbox: string, count: number): void {
  const prefix = Buffer.from(outbox + "/");
  for (let i = 0; i < count; i++) writeFileSync(Buffer.concat([prefix, Buffer.from(`junk-${i}-`), Buffer.from([0xff, 0xfe]), Buffer.from(".json")]), "{}");
  const order = join(outbox, "order-1.json");
  writeFileSync(order, sampleOrder(1));
  const old = new Date(Date.now() - 60_000);
  utimesSync(order, old, old);
}

/** Runs `work` while a 5 ms interval timer measures the longest time it could not fire. */
async function withStallMeter<T>(work: () => Promise<T>): Promise<{ value: T; ms: number; longestStallMs: number }> {
  let last = performance.now();
  let longest = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    longest = Math.max(longest, now - last);
    last = now;
  }, 5);
  const started = performance.now();
  const value = await work();
  const ms = performance.now() - started;
  longest = Math.max(longest, performance.now() - last);
  clearInterval(timer);
  return { value, ms, longestStallMs: longest };
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

async function listingBench(): Promise<void> {
  console.log(`\n1. listOrderNames over N names that are not UTF-8 + 1 order (old = ${ref}, new = working tree)\n`);
  console.log("| N       | old: time | old: longest stall | new: time | new: longest stall |");
  console.log("|--------:|----------:|-------------------:|----------:|-------------------:|");
  for (const n of [...new Set([...oldSizes, ...newSizes])].sort((a, b) => a - b)) {
    const dir = mkdtempSync(join(tmpdir(), "plutus-junk-bench-"));
    try {
      fillOutbox(dir, n);
      const cells: string[] = [];
      for (const version of ["old", "new"] as const) {
        if (!(version === "old" ? oldSizes : newSizes).includes(n)) {
          cells.push("—", "—");
          continue;
        }
        const run = await withStallMeter(() => listers[version](dir));
        if (run.value.length !== n + 1) throw new Error(`${version} listed ${run.value.length} names, expected ${n + 1}`);
        cells.push(seconds(run.ms), seconds(run.longestStallMs));
      }
      console.log(`| ${String(n).padStart(7)} | ${cells.map((c, i) => c.padStart([9, 18, 9, 18][i])).join(" | ")} |`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
}

function runBundle(bundle: string, configPath: string, limitSeconds: number): Promise<{ code: number | null; killed: boolean; ms: number; stdout: string }> {
  return new Promise((resolve) => {
    const started = performance.now();
    const child = spawn(process.execPath, [bundle, "run", "--config", configPath, "--json"], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let killed = false;
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.resume();
    const limit = setTimeout(() => {
      killed = true;
      child.kill("SIGKILL");
    }, limitSeconds * 1000);
    child.on("close", (code) => {
      clearTimeout(limit);
      resolve({ code, killed, ms: performance.now() - started, stdout });
    });
  });
}

/** From the agent's log: how far into the pass order-1.json was delivered. */
function deliveredAfter(logDir: string): number | undefined {
  let events: { event?: string; file?: string; timestamp?: string; durationMs?: number }[] = [];
  try {
    events = readdirSync(logDir)
      .filter((f) => f.endsWith(".log"))
      .flatMap((f) => readFileSync(join(logDir, f), "utf8").trim().split("\n"))
      .filter((line) => line.includes('"event":"delivered"') || line.includes('"event":"pass"'))
      .map((line) => JSON.parse(line));
  } catch {
    return undefined;
  }
  const delivered = events.find((e) => e.event === "delivered" && e.file === "order-1.json");
  const pass = events.find((e) => e.event === "pass");
  if (!delivered || !pass) return undefined;
  return Date.parse(delivered.timestamp!) - (Date.parse(pass.timestamp!) - pass.durationMs!);
}

function clearLogs(logDir: string): void {
  for (const f of readdirSync(logDir)) if (f.endsWith(".log")) rmSync(join(logDir, f));
}

async function passBench(erp: ErpServer): Promise<void> {
  console.log(`\n2. One pass of each bundle: ${junk} names that are not UTF-8 + 1 valid order, real sshd, passDeadlineSeconds ${deadlineSeconds}\n`);
  console.log("| version | pass      | wall time | order-1.json in the ERP inbox | summary |");
  console.log("|---------|-----------|----------:|-------------------------------|---------|");
  for (const version of ["new", "old"] as const) {
    for (const f of readdirSync(erp.inboxDir)) rmSync(join(erp.inboxDir, f), { force: true });
    const local = makeLocalSide(erp, { passDeadlineSeconds: deadlineSeconds });
    try {
      fillOutbox(local.outbox, junk);
      const passes = version === "old" ? 1 : 2;
      for (let pass = 1; pass <= passes; pass++) {
        const limit = version === "old" ? oldLimitSeconds : deadlineSeconds + 60;
        const run = await runBundle(join(build, `${version}-agent.cjs`), local.configPath, limit);
        const inInbox = readdirSync(erp.inboxDir).includes("order-1.json") && readFileSync(join(erp.inboxDir, "order-1.json"), "utf8") === sampleOrder(1);
        const lines = run.stdout.trim().split("\n");
        const summary = run.killed ? `killed after ${limit} s (no summary)` : lines[lines.length - 1];
        const deliveredAt = deliveredAfter(local.logDir);
        const when = deliveredAt !== undefined ? `yes, ${seconds(deliveredAt)} into the pass` : inInbox ? "yes, by an earlier pass" : "no";
        console.log(`| ${version.padEnd(7)} | ${`${pass}${run.killed ? "" : `, exit ${run.code}`}`.padEnd(9)} | ${seconds(run.ms).padStart(9)} | ${when.padEnd(29)} | ${summary} |`);
        clearLogs(local.logDir);
      }
    } finally {
      local.destroy();
    }
  }
}

async function main(): Promise<void> {
  if (!ARGV.includes("--pass-only")) await listingBench();
  const erp = await startErpServer();
  try {
    await passBench(erp);
  } finally {
    await erp.destroy();
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
