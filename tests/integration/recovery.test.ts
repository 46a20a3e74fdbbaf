import { readdirSync, readFileSync, rmSync, linkSync, writeFileSync, chownSync, statSync, mkdirSync } from "node:fs";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { useErpStandIn, runAgent, lastJsonLine, sampleOrder, logEvents } from "../support/agent";
import { CRASH_STEPS } from "../../agent/src/crashHook";

const ctx = useErpStandIn();

/** Every file the ERP took from its inbox: name -> hashes (more than one = delivered twice). */
let consumed: Map<string, string[]>;

const sha = (data: Buffer | string) => createHash("sha256").update(data).digest("hex");

/** The ERP's behaviour: take every file as soon as it is seen, and never see a temporary name. */
function erpConsumes(): void {
  for (const name of readdirSync(ctx.erp.inboxDir)) {
    expect(name).toMatch(/^[^.][^/]*\.json$/);
    const path = join(ctx.erp.inboxDir, name);
    consumed.set(name, [...(consumed.get(name) ?? []), sha(readFileSync(path))]);
    rmSync(path);
  }
}

function openJournalEntries(): unknown[] {
  const text = readFileSync(join(ctx.local.stateDir, "journal.jsonl"), "utf8").trim();
  return text === "" ? [] : text.split("\n").map((line) => JSON.parse(line));
}

function archived(): string[] {
  return readdirSync(ctx.local.archive).flatMap((day) => readdirSync(join(ctx.local.archive, day))).sort();
}

beforeEach(() => {
  consumed = new Map();
});

const orders = ["order-a.json", "order-b.json", "order-c.json"];

/** One file in flight at a time, so "the first file crashed" leaves the others untouched. */
function oneAtATime(): void {
  writeFileSync(ctx.local.configPath, JSON.stringify({ ...ctx.local.config, concurrency: 1 }));
}
function writeOrders(): Map<string, string> {
  const sums = new Map<string, string>();
  orders.forEach((name, i) => sums.set(name, sha(ctx.local.writeOrder(name, sampleOrder(i)) && sampleOrder(i))));
  return sums;
}

function expectExactlyOnce(sums: Map<string, string>): void {
  expect([...consumed.keys()].sort()).toEqual([...sums.keys()].sort());
  for (const [name, hashes] of consumed) expect(hashes).toEqual([sums.get(name)]);
  expect(readdirSync(ctx.erp.stagingDir)).toEqual([]);
  expect(readdirSync(ctx.local.outbox)).toEqual([]);
  expect(archived()).toEqual([...sums.keys()].sort());
  expect(openJournalEntries()).toEqual([]);
}

const deliverySteps = CRASH_STEPS.filter((s) => s !== "during-recovery" && s !== "after-scan");

describe("kill -9 at every step of a delivery, then recovery", () => {
  it.each(deliverySteps)("crash %s: every order reaches the ERP exactly once", async (step) => {
    const sums = writeOrders();
    const crashed = await runAgent(["run", "--config", ctx.local.configPath, "--json"], { PLUTUS_CRASH_AT: `${step}:2` });
    expect(crashed.signal).toBe("SIGKILL");
    erpConsumes();
    const recovery = await runAgent(["run", "--config", ctx.local.configPath, "--json"]);
    expect(recovery.stderr).toBe("");
    expect(recovery.code).toBe(0);
    erpConsumes();
    expectExactlyOnce(sums);
  });

  it("a crash during recovery is itself recovered", async () => {
    oneAtATime();
    const sums = writeOrders();
    expect((await runAgent(["run", "--config", ctx.local.configPath], { PLUTUS_CRASH_AT: "after-rename:1" })).signal).toBe("SIGKILL");
    erpConsumes();
    expect((await runAgent(["run", "--config", ctx.local.configPath], { PLUTUS_CRASH_AT: "during-recovery:1" })).signal).toBe("SIGKILL");
    const recovery = await runAgent(["run", "--config", ctx.local.configPath, "--json"]);
    expect(recovery.code).toBe(0);
    expect(lastJsonLine(recovery.stdout)).toMatchObject({ recovered: 1, delivered: 2, failed: 0 });
    erpConsumes();
    expectExactlyOnce(sums);
  });

  it("staging and inbox both hold the file (link made, unlink not): delivered once, staging removed", async () => {
    oneAtATime();
    const sums = writeOrders();
    expect((await runAgent(["run", "--config", ctx.local.configPath], { PLUTUS_CRASH_AT: "after-commit-record:1" })).signal).toBe("SIGKILL");
    const [entry] = openJournalEntries() as { staging: string; target: string; name: string }[];
    linkSync(join(ctx.erp.stagingDir, entry.staging), join(ctx.erp.inboxDir, entry.target));
    const recovery = await runAgent(["run", "--config", ctx.local.configPath, "--json"]);
    expect(recovery.code).toBe(0);
    expect(lastJsonLine(recovery.stdout)).toMatchObject({ recovered: 1, delivered: 2 });
    erpConsumes();
    expectExactlyOnce(sums);
  });

  it("in-doubt rename whose name is meanwhile taken by other content: delivered under the conflict name", async () => {
    oneAtATime();
    const sums = writeOrders();
    expect((await runAgent(["run", "--config", ctx.local.configPath], { PLUTUS_CRASH_AT: "after-commit-record:1" })).signal).toBe("SIGKILL");
    const [entry] = openJournalEntries() as { target: string; name: string; sha256: string }[];
    const intruder = join(ctx.erp.inboxDir, entry.target);
    writeFileSync(intruder, '{"other":"order"}');
    chownSync(intruder, statSync(ctx.erp.inboxDir).uid, statSync(ctx.erp.inboxDir).gid);
    const recovery = await runAgent(["run", "--config", ctx.local.configPath, "--json"]);
    expect(recovery.code).toBe(0);
    const stem = entry.name.replace(/\.json$/, "");
    expect(readdirSync(ctx.erp.inboxDir).sort()).toEqual(
      [entry.name, `${stem}.${entry.sha256.slice(0, 8)}.json`, ...orders.filter((n) => n !== entry.name)].sort(),
    );
    rmSync(intruder);
    erpConsumes();
    const renamed = new Map([...sums].map(([name, hash]) => [name === entry.name ? `${stem}.${hash.slice(0, 8)}.json` : name, hash]));
    expect([...consumed.keys()].sort()).toEqual([...renamed.keys()].sort());
    for (const [name, hashes] of consumed) expect(hashes).toEqual([renamed.get(name)]);
    expect(readdirSync(ctx.erp.stagingDir)).toEqual([]);
    expect(openJournalEntries()).toEqual([]);
  });

  it("an upload abandoned by a killed pass is swept from staging even when the outbox is empty next time", async () => {
    oneAtATime();
    ctx.local.writeOrder("order-a.json", sampleOrder(0));
    expect((await runAgent(["run", "--config", ctx.local.configPath], { PLUTUS_CRASH_AT: "after-upload:1" })).signal).toBe("SIGKILL");
    expect(readdirSync(ctx.erp.stagingDir)).toHaveLength(1);
    rmSync(join(ctx.local.outbox, "order-a.json"));
    const next = await runAgent(["run", "--config", ctx.local.configPath, "--json"]);
    expect(next.code).toBe(0);
    expect(lastJsonLine(next.stdout)).toMatchObject({ found: 0, delivered: 0 });
    expect(readdirSync(ctx.erp.stagingDir)).toEqual([]);
    // The marker stays until a sweep finds nothing more (late requests could still land).
    expect(readdirSync(ctx.local.stateDir).sort()).toEqual(["agent-id", "counters.json", "erp-inbox.json", "journal.jsonl", "last-run.json", "staging-sweep"]);
    expect((await runAgent(["run", "--config", ctx.local.configPath])).code).toBe(0);
    expect(readdirSync(ctx.local.stateDir).sort()).toEqual(["agent-id", "counters.json", "erp-inbox.json", "journal.jsonl", "last-run.json"]);
  });

  it("a sweep that found orphans keeps the marker even when no marker asked for it", async () => {
    ctx.local.writeOrder("order-a.json", sampleOrder(0));
    expect((await runAgent(["run", "--config", ctx.local.configPath])).code).toBe(0);
    expect(readdirSync(ctx.local.stateDir)).not.toContain("staging-sweep");
    const prefix = `plutus-${readFileSync(join(ctx.local.stateDir, "agent-id"), "utf8").trim()}-`;
    // What a request a dead connection left in the network could create after the last sweep.
    writeFileSync(join(ctx.erp.stagingDir, `${prefix}late.part`), "{");
    ctx.local.writeOrder("order-b.json", sampleOrder(1));
    expect((await runAgent(["run", "--config", ctx.local.configPath])).code).toBe(0);
    expect(readdirSync(ctx.erp.stagingDir)).toEqual([]);
    expect(readdirSync(ctx.local.stateDir)).toContain("staging-sweep");
    expect((await runAgent(["run", "--config", ctx.local.configPath])).code).toBe(0);
    expect(readdirSync(ctx.local.stateDir)).not.toContain("staging-sweep");
    erpConsumes();
    expectExactlyOnce(new Map([["order-a.json", sha(sampleOrder(0))], ["order-b.json", sha(sampleOrder(1))]]));
  });

  it("a sweep that could not finish keeps the marker even when that pass delivers cleanly", async () => {
    oneAtATime();
    ctx.local.writeOrder("order-a.json", sampleOrder(0));
    expect((await runAgent(["run", "--config", ctx.local.configPath], { PLUTUS_CRASH_AT: "after-upload:1" })).signal).toBe("SIGKILL");
    const [abandoned] = readdirSync(ctx.erp.stagingDir);
    const prefix = `plutus-${readFileSync(join(ctx.local.stateDir, "agent-id"), "utf8").trim()}-`;
    expect(abandoned.startsWith(prefix)).toBe(true);
    // An entry the ERP account cannot remove: the sweep must still take the others and report it.
    const stuck = `${prefix}stuck.part`;
    mkdirSync(join(ctx.erp.stagingDir, stuck));
    const sums = new Map([["order-a.json", sha(sampleOrder(0))]]);

    const blocked = await runAgent(["run", "--config", ctx.local.configPath, "--json"]);
    expect(blocked.code).toBe(0);
    expect(lastJsonLine(blocked.stdout)).toMatchObject({ found: 1, delivered: 1 });
    expect(readdirSync(ctx.erp.stagingDir)).toEqual([stuck]);
    const warning = logEvents(ctx.local.logDir).filter((e) => e.event === "orphan-sweep-failed");
    expect(warning).toHaveLength(1);
    expect(warning[0].error).toBe(`1 abandoned upload(s) in /Staging could not be removed (first: ${stuck}): remove /Staging/${stuck}: Failure`);
    expect(readdirSync(ctx.local.stateDir)).toContain("staging-sweep");
    erpConsumes();

    rmSync(join(ctx.erp.stagingDir, stuck), { recursive: true });
    // What a request left in the network by the killed connection could still create.
    writeFileSync(join(ctx.erp.stagingDir, `${prefix}late.part`), "{");
    expect((await runAgent(["run", "--config", ctx.local.configPath])).code).toBe(0);
    expect(readdirSync(ctx.erp.stagingDir)).toEqual([]);
    expect(readdirSync(ctx.local.stateDir)).toContain("staging-sweep");
    expect((await runAgent(["run", "--config", ctx.local.configPath])).code).toBe(0);
    expect(readdirSync(ctx.local.stateDir).sort()).toEqual(["agent-id", "counters.json", "erp-inbox.json", "journal.jsonl", "last-run.json"]);
    expectExactlyOnce(sums);
  });
});
