import { chownSync, copyFileSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { useErpStandIn, runAgent, lastJsonLine, sampleOrder, logEvents, stagingFiles, STAGING_SENTINEL } from "../support/agent";

// An order a pass reported in doubt waits for an operator's resolve, but every later pass reads
// its evidence again: the staging folder coming back with the very upload in it settles it (the
// rename never happened); anything else is only reported, once per change, and shown by status.

const ctx = useErpStandIn();

const sha = (data: Buffer | string) => createHash("sha256").update(data).digest("hex");
const ORDER = sampleOrder(0);

let consumed: Map<string, string[]>;
beforeEach(() => {
  consumed = new Map();
  writeFileSync(ctx.local.configPath, JSON.stringify({ ...ctx.local.config, concurrency: 1 }));
});

/** The ERP takes every file in its inbox. */
function erpConsumes(): void {
  for (const name of readdirSync(ctx.erp.inboxDir)) {
    const path = join(ctx.erp.inboxDir, name);
    consumed.set(name, [...(consumed.get(name) ?? []), sha(readFileSync(path))]);
    rmSync(path);
  }
}

function journalRecords(): Record<string, unknown>[] {
  const text = readFileSync(join(ctx.local.stateDir, "journal.jsonl"), "utf8").trim();
  return text === "" ? [] : text.split("\n").map((line) => JSON.parse(line));
}

function expectDeliveredOnce(): void {
  erpConsumes();
  expect([...consumed.entries()]).toEqual([["order-a.json", [sha(ORDER)]]]);
  expect(readdirSync(ctx.local.outbox)).toEqual([]);
  expect(readdirSync(ctx.local.archive).flatMap((day) => readdirSync(join(ctx.local.archive, day)))).toEqual(["order-a.json"]);
  expect(journalRecords()).toEqual([]);
  expect(stagingFiles(ctx.erp.stagingDir)).toEqual([]);
}

/** The staging folder goes away (a volume unmounted): an empty folder of the same owner stands in. */
function stagingAway(): string {
  const away = `${ctx.erp.stagingDir}.away`;
  const { uid, gid } = statSync(ctx.erp.stagingDir);
  renameSync(ctx.erp.stagingDir, away);
  mkdirSync(ctx.erp.stagingDir, { mode: 0o755 });
  chownSync(ctx.erp.stagingDir, uid, gid);
  return away;
}

/** ... and comes back as it was (mounted again). */
function stagingBack(away: string): void {
  rmSync(ctx.erp.stagingDir, { recursive: true });
  renameSync(away, ctx.erp.stagingDir);
}

const REPORTED = (sentinel: string) =>
  `the staging copy is gone, but /Staging/${sentinel} is gone, so /Staging is not provably the folder the upload went to (replaced, recreated or moved, or the staging path changed); ` +
  "whether the ERP got order-a.json cannot be told: it stays in the outbox until an operator runs plutus-sync resolve";

/** Killed at `step`, then the staging folder goes away and a pass reports the order in doubt. */
async function reportedInDoubt(step: string): Promise<{ sentinel: string; staging: string; away: string }> {
  ctx.local.writeOrder("order-a.json", ORDER);
  expect((await runAgent(["run", "--config", ctx.local.configPath], { PLUTUS_CRASH_AT: `${step}:1` })).signal).toBe("SIGKILL");
  const [commit] = journalRecords();
  const [sentinel] = readdirSync(ctx.erp.stagingDir).filter((n) => STAGING_SENTINEL.test(n));
  const away = stagingAway();
  for (let pass = 0; pass < 2; pass++) {
    const held = await runAgent(["run", "--config", ctx.local.configPath, "--json"]);
    expect(held.code).toBe(1);
    expect(lastJsonLine(held.stdout)).toMatchObject({ recovered: 0, inDoubt: 1 });
    expect(held.stderr).toBe(`plutus-sync: in doubt: order-a.json: ${REPORTED(sentinel)}\n`);
  }
  expect(logEvents(ctx.local.logDir).filter((e) => String(e.event).startsWith("in-doubt-"))).toEqual([]);
  return { sentinel, staging: String(commit.staging), away };
}

async function statusJson(): Promise<Record<string, any>> {
  return JSON.parse((await runAgent(["status", "--config", ctx.local.configPath, "--json"])).stdout);
}

it("the staging folder comes back with the verified upload in it: the rename never happened, so the next pass renames it, once", async () => {
  const { away } = await reportedInDoubt("after-commit-record");
  expect(readdirSync(ctx.erp.inboxDir)).toEqual([]);
  stagingBack(away);

  const pass = await runAgent(["run", "--config", ctx.local.configPath, "--json"]);
  expect({ code: pass.code, stderr: pass.stderr }).toEqual({ code: 0, stderr: "" });
  expect(lastJsonLine(pass.stdout)).toMatchObject({ found: 0, recovered: 1, inDoubt: 0, failed: 0 });
  expect(logEvents(ctx.local.logDir).filter((e) => e.event === "in-doubt-settled")).toEqual([
    expect.objectContaining({
      level: "warn",
      message: "the staging folder is proven again and still holds the verified upload: the rename never happened; settling the in-doubt delivery",
      file: "order-a.json",
      sha256: sha(ORDER),
    }),
  ]);
  expect(await statusJson()).toMatchObject({ inDoubt: 0, needResolveFiles: [], inDoubtEvidence: [] });
  expectDeliveredOnce();
  // Nothing is left for an operator to decide.
  expect((await runAgent(["resolve", "--config", ctx.local.configPath, "order-a.json", "--resend"])).code).toBe(2);
});

it("the upload is back but its folder is not proven (no sentinel): reported once and shown by status; it waits for resolve", async () => {
  const { sentinel, staging, away } = await reportedInDoubt("after-commit-record");
  // Only the upload is put back, into the folder that stands in (no sentinel in it).
  copyFileSync(join(away, staging), join(ctx.erp.stagingDir, staging));
  chownSync(join(ctx.erp.stagingDir, staging), statSync(ctx.erp.stagingDir).uid, statSync(ctx.erp.stagingDir).gid);
  rmSync(away, { recursive: true });
  const evidence =
    `the upload /Staging/${staging} is there again with its SHA-256, but /Staging/${sentinel} is gone, so /Staging is not provably the folder the upload went to (replaced, recreated or moved, or the staging path changed): ` +
    "the rename has not happened through that copy; if the ERP does not have order-a.json, resolve it with --resend";

  for (let pass = 0; pass < 2; pass++) {
    const held = await runAgent(["run", "--config", ctx.local.configPath, "--json"]);
    expect(held.code).toBe(1);
    expect(lastJsonLine(held.stdout)).toMatchObject({ recovered: 0, inDoubt: 1 });
    expect(held.stderr).toBe(`plutus-sync: in doubt: order-a.json: ${REPORTED(sentinel)}; since then: ${evidence}\n`);
  }
  // Logged once, not once per pass.
  expect(logEvents(ctx.local.logDir).filter((e) => e.event === "in-doubt-evidence-changed")).toEqual([
    expect.objectContaining({ level: "warn", file: "order-a.json", evidence }),
  ]);
  expect(await statusJson()).toMatchObject({ inDoubt: 1, needResolveFiles: ["order-a.json"], inDoubtEvidence: [{ file: "order-a.json", evidence }] });
  const text = (await runAgent(["status", "--config", ctx.local.configPath])).stdout;
  expect(text).toContain(`in doubt: 1 (order-a.json: held in doubt, settle with plutus-sync resolve)\n  order-a.json: since it was reported: ${evidence}\n`);
  expect(readdirSync(ctx.erp.inboxDir)).toEqual([]);
  expect(stagingFiles(ctx.erp.stagingDir)).toEqual([staging]);

  // The operator checks the ERP, which does not have it: sent again, once; the old upload is swept.
  expect((await runAgent(["resolve", "--config", ctx.local.configPath, "order-a.json", "--resend"])).code).toBe(0);
  expect((await runAgent(["run", "--config", ctx.local.configPath])).code).toBe(0);
  expectDeliveredOnce();
});

it("the folder is proven again and the upload is not in it (the rename took effect): reported with the hint, never presumed", async () => {
  const { away } = await reportedInDoubt("after-rename");
  erpConsumes();
  stagingBack(away);
  const evidence = "/Staging is proven again (its sentinel is back) and the upload is not in it: the rename most likely took effect; if the ERP has order-a.json, resolve it with --delivered";

  const held = await runAgent(["run", "--config", ctx.local.configPath, "--json"]);
  expect(held.code).toBe(1);
  expect(lastJsonLine(held.stdout)).toMatchObject({ recovered: 0, inDoubt: 1 });
  expect(held.stderr).toMatch(/; since then: \/Staging is proven again/);
  expect(logEvents(ctx.local.logDir).filter((e) => e.event === "in-doubt-evidence-changed")).toEqual([expect.objectContaining({ file: "order-a.json", evidence })]);
  expect(logEvents(ctx.local.logDir).filter((e) => e.event === "presumed-delivered")).toEqual([]);
  expect(await statusJson()).toMatchObject({ inDoubt: 1, inDoubtEvidence: [{ file: "order-a.json", evidence }] });
  expect(readdirSync(ctx.local.outbox)).toEqual(["order-a.json"]);

  const resolved = await runAgent(["resolve", "--config", ctx.local.configPath, "order-a.json", "--delivered"]);
  expect(resolved.code).toBe(0);
  expect((await runAgent(["run", "--config", ctx.local.configPath])).code).toBe(0);
  expectDeliveredOnce();
});
