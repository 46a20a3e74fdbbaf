import { readdirSync, readFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { startErpServer, ErpServer } from "../support/sshd";
import { makeLocalSide, runAgent, lastJsonLine, sampleOrder, LocalSide, logEvents, stagingFiles } from "../support/agent";

let erp: ErpServer;
let local: LocalSide;

beforeAll(async () => {
  erp = await startErpServer();
  local = makeLocalSide(erp);
});
afterAll(async () => {
  local?.destroy();
  await erp?.destroy();
});

it("drains a backlog of 2,000 small orders in one pass, each byte-exact, none left behind", async () => {
  const sums = new Map<string, string>();
  for (let i = 0; i < 2000; i++) {
    const name = `order-${String(i).padStart(5, "0")}.json`;
    const content = sampleOrder(i, (i * 37) % 6000);
    sums.set(name, createHash("sha256").update(content).digest("hex"));
    local.writeOrder(name, content);
  }
  const started = Date.now();
  const result = await runAgent(["run", "--config", local.configPath, "--json"]);
  const wallMs = Date.now() - started;
  expect(result.code).toBe(0);
  const summary = lastJsonLine(result.stdout);
  expect(summary).toMatchObject({ found: 2000, delivered: 2000, failed: 0, quarantined: 0, deferred: 0 });
  const inbox = readdirSync(erp.inboxDir).sort();
  expect(inbox).toEqual([...sums.keys()].sort());
  for (const name of inbox) {
    expect(createHash("sha256").update(readFileSync(join(erp.inboxDir, name))).digest("hex")).toBe(sums.get(name));
  }
  expect(stagingFiles(erp.stagingDir)).toEqual([]);
  expect(readdirSync(local.outbox)).toEqual([]);
  // Every line reached the log before the process exited (winston writes asynchronously).
  const events = logEvents(local.logDir);
  const delivered = events.filter((e) => e.event === "delivered");
  expect(delivered).toHaveLength(2000);
  expect(new Map(delivered.map((e) => [e.file, e.sha256] as const))).toEqual(sums);
  expect(events[events.length - 1]).toMatchObject({ event: "pass", delivered: 2000 });
  process.stdout.write(`backlog: 2000 orders delivered in ${wallMs} ms wall (agent reports ${summary.durationMs} ms)\n`);
});
