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

it("plutus-sync watch (chokidar bundled) runs on Node 18: delivers an order renamed in and stops on SIGTERM", async () => {
  const { spawn } = require("node:child_process") as typeof import("node:child_process");
  const { writeFileSync, renameSync, existsSync, mkdirSync } = require("node:fs") as typeof import("node:fs");
  const { BUNDLE } = require("../support/agent") as typeof import("../support/agent");
  const child = spawn(node18, [BUNDLE, "watch", "--config", local.configPath], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout.on("data", (d: Buffer) => (out += d));
  child.stderr.on("data", (d: Buffer) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.on("close", (code: number | null) => resolve(code)));
  const until = async (ok: () => boolean, what: string) => {
    for (const deadline = Date.now() + 30_000; !ok() && Date.now() < deadline; ) await new Promise((r) => setTimeout(r, 20));
    if (!ok()) throw new Error(`${what}: ${out}`);
  };
  try {
    await until(() => out.includes("plutus-sync: watching"), "watch did not start");
    mkdirSync(join(local.root, "producer"), { recursive: true });
    writeFileSync(join(local.root, "producer", "node18-watch.json"), sampleOrder(18));
    renameSync(join(local.root, "producer", "node18-watch.json"), join(local.outbox, "node18-watch.json"));
    await until(() => existsSync(join(erp.inboxDir, "node18-watch.json")), "not delivered");
  } finally {
    child.kill("SIGTERM");
  }
  expect(await exited).toBe(0);
  expect(out).toBe(`plutus-sync: watching ${local.outbox}\nplutus-sync: watch stopped on SIGTERM; 1 delivered\n`);
}, 90_000);
