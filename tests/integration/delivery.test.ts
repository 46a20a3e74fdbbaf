import { readdirSync, readFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { useErpStandIn, runAgent, lastJsonLine, sampleOrder, logEvents, stagingFiles } from "../support/agent";

const ctx = useErpStandIn();

describe("plutus-sync run against a real sshd (SFTP-only, chrooted)", () => {
  it("delivers valid orders, quarantines an invalid one, archives and reports", async () => {
    ctx.local.writeOrder("order-1.json", sampleOrder(1));
    ctx.local.writeOrder("order-2.json", sampleOrder(2));
    ctx.local.writeOrder("broken.json", "{ not json");
    ctx.local.writeOrder("notes.txt", "not an order");
    const result = await runAgent(["run", "--config", ctx.local.configPath, "--json"]);
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    expect(lastJsonLine(result.stdout)).toMatchObject({ found: 3, delivered: 2, failed: 0, quarantined: 1, deferred: 0 });
    expect(readdirSync(ctx.erp.inboxDir).sort()).toEqual(["order-1.json", "order-2.json"]);
    expect(readFileSync(join(ctx.erp.inboxDir, "order-1.json"), "utf8")).toBe(sampleOrder(1));
    expect(stagingFiles(ctx.erp.stagingDir)).toEqual([]);
    expect(readdirSync(ctx.local.outbox)).toEqual(["notes.txt"]);
    const days = readdirSync(ctx.local.archive);
    expect(days).toHaveLength(1);
    expect(readdirSync(join(ctx.local.archive, days[0])).sort()).toEqual(["order-1.json", "order-2.json"]);
    expect(readdirSync(ctx.local.quarantine).sort()).toEqual(["broken.json", "broken.json.reason"]);
    const reason = JSON.parse(readFileSync(join(ctx.local.quarantine, "broken.json.reason"), "utf8"));
    expect(reason.reason).toMatch(/^invalid JSON: /);
    expect(existsSync(ctx.local.logDir)).toBe(true);
  });

  it("delivers files around and far above the 30 KiB request size byte-exact, with requests coalesced", async () => {
    // `{"n":"xxx…"}` padded to an exact size: 30 KiB is the most data one WRITE or READ carries.
    const sizes = [8, 30_719, 30_720, 30_721, 61_440, 61_441, 2 * 1024 * 1024 + 3];
    const bodies = new Map(sizes.map((size) => [`size-${size}.json`, `{"n":"${"x".repeat(size - 8)}"}`]));
    for (const [name, body] of bodies) ctx.local.writeOrder(name, body);
    const result = await runAgent(["run", "--config", ctx.local.configPath, "--json"]);
    expect(result.code).toBe(0);
    expect(lastJsonLine(result.stdout)).toMatchObject({ found: sizes.length, delivered: sizes.length, failed: 0 });
    expect(readdirSync(ctx.erp.inboxDir).sort()).toEqual([...bodies.keys()].sort());
    for (const [name, body] of bodies) expect(readFileSync(join(ctx.erp.inboxDir, name), "utf8")).toBe(body);
    expect(stagingFiles(ctx.erp.stagingDir)).toEqual([]);
    const connected = logEvents(ctx.local.logDir).filter((e) => e.event === "connected");
    expect(connected).toEqual([expect.objectContaining({ requestsCoalesced: true, connection: 1 })]);
  });
});
