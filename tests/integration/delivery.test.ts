import { readdirSync, readFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { startErpServer, ErpServer } from "../support/sshd";
import { makeLocalSide, runAgent, lastJsonLine, sampleOrder, LocalSide } from "../support/agent";

let erp: ErpServer;
let local: LocalSide;

beforeAll(async () => {
  erp = await startErpServer();
});
afterAll(async () => {
  await erp?.destroy();
});
beforeEach(() => {
  local = makeLocalSide(erp);
});
afterEach(() => {
  local.destroy();
  for (const dir of [erp.inboxDir, erp.stagingDir]) for (const f of readdirSync(dir)) require("node:fs").rmSync(join(dir, f), { force: true });
});

describe("plutus-sync run against a real sshd (SFTP-only, chrooted)", () => {
  it("delivers valid orders, quarantines an invalid one, archives and reports", async () => {
    local.writeOrder("order-1.json", sampleOrder(1));
    local.writeOrder("order-2.json", sampleOrder(2));
    local.writeOrder("broken.json", "{ not json");
    local.writeOrder("notes.txt", "not an order");
    const result = await runAgent(["run", "--config", local.configPath, "--json"]);
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    expect(lastJsonLine(result.stdout)).toMatchObject({ found: 3, delivered: 2, failed: 0, quarantined: 1, deferred: 0 });
    expect(readdirSync(erp.inboxDir).sort()).toEqual(["order-1.json", "order-2.json"]);
    expect(readFileSync(join(erp.inboxDir, "order-1.json"), "utf8")).toBe(sampleOrder(1));
    expect(readdirSync(erp.stagingDir)).toEqual([]);
    expect(readdirSync(local.outbox)).toEqual(["notes.txt"]);
    const days = readdirSync(local.archive);
    expect(days).toHaveLength(1);
    expect(readdirSync(join(local.archive, days[0])).sort()).toEqual(["order-1.json", "order-2.json"]);
    expect(readdirSync(local.quarantine).sort()).toEqual(["broken.json", "broken.json.reason"]);
    const reason = JSON.parse(readFileSync(join(local.quarantine, "broken.json.reason"), "utf8"));
    expect(reason.reason).toMatch(/^invalid JSON: /);
    expect(existsSync(local.logDir)).toBe(true);
  });
});
