import { readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { startErpServer, ErpServer } from "../support/sshd";
import { makeLocalSide, runAgent, lastJsonLine, sampleOrder, LocalSide, stagingFiles } from "../support/agent";
import { ensureNode18 } from "../support/node18";

let erp: ErpServer;
let local: LocalSide;
let node18: string;

beforeAll(async () => {
  node18 = ensureNode18();
  erp = await startErpServer();
  local = makeLocalSide(erp);
}, 180_000);
afterAll(async () => {
  local?.destroy();
  await erp?.destroy();
});

it("the one-file bundle runs on Debian bookworm's Node 18: delivers, quarantines, recovers from a crash", async () => {
  const version = await runAgent(["--version"], {}, node18);
  expect(version.stdout).toBe("plutus-sync 0.1.0\n");
  const probe = require("node:child_process").execFileSync(node18, ["--version"]).toString();
  expect(probe).toMatch(/^v18\./);
  for (let i = 0; i < 20; i++) local.writeOrder(`o-${i}.json`, sampleOrder(i));
  local.writeOrder("bad.json", "{");
  const crashed = await runAgent(["run", "--config", local.configPath], { PLUTUS_CRASH_AT: "after-rename:5" }, node18);
  expect(crashed.signal).toBe("SIGKILL");
  const result = await runAgent(["run", "--config", local.configPath, "--json"], {}, node18);
  expect(result.stderr).toBe("");
  expect(result.code).toBe(0);
  const summary = lastJsonLine(result.stdout);
  expect(summary).toMatchObject({ failed: 0 });
  expect(summary.recovered).toBeGreaterThanOrEqual(1);
  const archived = readdirSync(local.archive).flatMap((day) => readdirSync(join(local.archive, day)));
  expect(archived.sort()).toEqual(Array.from({ length: 20 }, (_, i) => `o-${i}.json`).sort());
  expect(readdirSync(erp.inboxDir).sort()).toEqual(Array.from({ length: 20 }, (_, i) => `o-${i}.json`).sort());
  expect(stagingFiles(erp.stagingDir)).toEqual([]);
  expect(readdirSync(local.outbox)).toEqual([]);
  expect(readdirSync(local.quarantine).sort()).toEqual(["bad.json", "bad.json.reason"]);
  const status = await runAgent(["status", "--config", local.configPath, "--json"], {}, node18);
  expect(JSON.parse(status.stdout)).toMatchObject({ inDoubt: 0, outbox: { waiting: 0 }, quarantined: 1 });
  for (const f of readdirSync(erp.inboxDir)) rmSync(join(erp.inboxDir, f));
});
