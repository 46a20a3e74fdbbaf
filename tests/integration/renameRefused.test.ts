import { readdirSync, readFileSync, rmSync, writeFileSync, chownSync, statSync, mkdirSync, copyFileSync } from "node:fs";
import { execFileSync, ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { useErpStandIn, runAgent, lastJsonLine, sampleOrder, logEvents, stagingFiles, stopped } from "../support/agent";

// Win32-OpenSSH publishes with link + unlink. When the ERP (or antivirus) has the new inbox file
// open without FILE_SHARE_DELETE, the unlink of the staging name is refused; the server then
// unlinks the inbox name and replies FAILURE, or, when that is refused too, leaves both names.
// Modelled on Linux with an ext4 ERP volume: `chattr +a` on a folder refuses unlinks in it, and
// OpenSSH's sftp-server (process_rename) does the same link, unlink, "clean spare link" dance.
const ctx = useErpStandIn({ ext4Bytes: 64 * 1024 * 1024 });

const sha = (data: Buffer | string) => createHash("sha256").update(data).digest("hex");
const ORDER = sampleOrder(7);

function appendOnly(on: boolean, ...dirs: string[]): void {
  execFileSync("chattr", [on ? "+a" : "-a", ...dirs]);
}

function openJournal(): Record<string, unknown>[] {
  const text = readFileSync(join(ctx.local.stateDir, "journal.jsonl"), "utf8").trim();
  return text === "" ? [] : text.split("\n").map((line) => JSON.parse(line));
}

function archived(): string[] {
  return readdirSync(ctx.local.archive).flatMap((day) => readdirSync(join(ctx.local.archive, day)));
}

/** The ERP takes everything in its inbox; returns name -> content hash. */
function erpTakesInbox(): Map<string, string> {
  const taken = new Map<string, string>();
  for (const name of readdirSync(ctx.erp.inboxDir)) {
    taken.set(name, sha(readFileSync(join(ctx.erp.inboxDir, name))));
    rmSync(join(ctx.erp.inboxDir, name));
  }
  return taken;
}

afterEach(() => {
  appendOnly(false, ctx.erp.stagingDir, ctx.erp.inboxDir);
});

it("staging unlink refused (target left absent): rename-refused, retried a bounded number of times, the order waits, then goes once", async () => {
  writeFileSync(ctx.local.configPath, JSON.stringify({ ...ctx.local.config, retries: 2, retryBaseDelayMs: 50 }));
  ctx.local.writeOrder("order-a.json", ORDER);
  appendOnly(true, ctx.erp.stagingDir);
  const refused = await runAgent(["run", "--config", ctx.local.configPath, "--json"]);
  expect(refused.code).toBe(1);
  expect(lastJsonLine(refused.stdout)).toMatchObject({ found: 1, delivered: 0, failed: 1, renameRefused: 3 });
  expect(refused.stdout).toContain(", 3 renames refused");
  const events = logEvents(ctx.local.logDir);
  expect(events.filter((e) => e.event === "rename-refused").map((e) => [e.level, e.file, e.attempt, e.serverMessage])).toEqual([
    ["warn", "order-a.json", 1, "Permission denied"],
    ["warn", "order-a.json", 2, "Permission denied"],
    ["warn", "order-a.json", 3, "Permission denied"],
  ]);
  const [failed] = events.filter((e) => e.event === "failed");
  expect(String(failed.error)).toMatch(/^rename \/Staging\/plutus-[0-9a-f]{12}-[0-9a-f-]{36}\.part -> \/Inbox\/order-a\.json failed: rename .* Permission denied \(refused 3 times with the target name free\)$/);
  expect(failed.inDoubt).toBe(true);
  expect(readdirSync(ctx.erp.inboxDir)).toEqual([]);
  expect(stagingFiles(ctx.erp.stagingDir)).toHaveLength(1);

  appendOnly(false, ctx.erp.stagingDir);
  const next = await runAgent(["run", "--config", ctx.local.configPath, "--json"]);
  expect(next.code).toBe(0);
  expect(lastJsonLine(next.stdout)).toMatchObject({ recovered: 1, renameRefused: 0 });
  expect(erpTakesInbox()).toEqual(new Map([["order-a.json", sha(ORDER)]]));
  expect(stagingFiles(ctx.erp.stagingDir)).toEqual([]);
  expect(archived()).toEqual(["order-a.json"]);
});

async function pauseAfterFirstRefusal(change: () => void): Promise<{ code: number | null; stdout: string }> {
  let child: ChildProcess | undefined;
  const run = runAgent(["run", "--config", ctx.local.configPath, "--json"], { PLUTUS_PAUSE_AT: "after-rename-refused" }, process.execPath, (c) => (child = c));
  await stopped(child!);
  change();
  child!.kill("SIGCONT");
  return run;
}

it("the ERP closes the file while the agent waits: the retry within the pass delivers it", async () => {
  ctx.local.writeOrder("order-a.json", ORDER);
  appendOnly(true, ctx.erp.stagingDir);
  const pass = await pauseAfterFirstRefusal(() => appendOnly(false, ctx.erp.stagingDir));
  expect(pass.code).toBe(0);
  expect(lastJsonLine(pass.stdout)).toMatchObject({ delivered: 1, failed: 0, renameRefused: 1 });
  expect(erpTakesInbox()).toEqual(new Map([["order-a.json", sha(ORDER)]]));
  expect(stagingFiles(ctx.erp.stagingDir)).toEqual([]);
});

it("another writer's file held the name and the ERP took it before the agent looked: retried within the pass, delivered", async () => {
  ctx.local.writeOrder("order-a.json", ORDER);
  // Another web server's order under the same name, not yet taken by the ERP.
  const other = join(ctx.erp.inboxDir, "order-a.json");
  writeFileSync(other, sampleOrder(1));
  chownSync(other, statSync(ctx.erp.inboxDir).uid, statSync(ctx.erp.inboxDir).gid);
  const pass = await pauseAfterFirstRefusal(() => expect(erpTakesInbox()).toEqual(new Map([["order-a.json", sha(sampleOrder(1))]])));
  expect(pass.code).toBe(0);
  expect(lastJsonLine(pass.stdout)).toMatchObject({ delivered: 1, failed: 0, renameRefused: 1 });
  const [refusal] = logEvents(ctx.local.logDir).filter((e) => e.event === "rename-refused");
  expect(refusal).toMatchObject({ level: "warn", file: "order-a.json", target: "order-a.json", attempt: 1, serverMessage: "Failure" });
  expect(logEvents(ctx.local.logDir).filter((e) => e.event === "delivered")).toEqual([expect.objectContaining({ file: "order-a.json", deliveredAs: "order-a.json" })]);
  expect(erpTakesInbox()).toEqual(new Map([["order-a.json", sha(ORDER)]]));
});

it("both unlinks refused (both names stay): published is durable before anything else, so a power cut cannot bring a second delivery", async () => {
  ctx.local.writeOrder("order-a.json", ORDER);
  const durableCopies = join(ctx.local.root, "durable");
  mkdirSync(durableCopies);
  appendOnly(true, ctx.erp.stagingDir, ctx.erp.inboxDir);
  const cut = await runAgent(["run", "--config", ctx.local.configPath], { PLUTUS_CRASH_AT: "after-published-record:1", PLUTUS_DURABLE_COPY_DIR: durableCopies });
  expect(cut.signal).toBe("SIGKILL");
  expect(readdirSync(ctx.erp.inboxDir)).toEqual(["order-a.json"]);
  expect(stagingFiles(ctx.erp.stagingDir)).toHaveLength(1);
  // Power cut: the journal is what its last fsync made durable, nothing after.
  copyFileSync(join(durableCopies, "journal.jsonl"), join(ctx.local.stateDir, "journal.jsonl"));
  const records = openJournal();
  expect(records.map((r) => r.t)).toEqual(["commit", "published"]);
  expect(records[1]).toMatchObject({ id: records[0].id, target: "order-a.json" });

  // The ERP closes the file, takes it; the staging name is still there.
  appendOnly(false, ctx.erp.stagingDir, ctx.erp.inboxDir);
  expect(erpTakesInbox()).toEqual(new Map([["order-a.json", sha(ORDER)]]));
  const next = await runAgent(["run", "--config", ctx.local.configPath, "--json"]);
  expect(next.code).toBe(0);
  expect(lastJsonLine(next.stdout)).toMatchObject({ found: 0, delivered: 0, failed: 0 });
  expect(readdirSync(ctx.erp.inboxDir)).toEqual([]);
  expect(stagingFiles(ctx.erp.stagingDir)).toEqual([]);
  expect(archived()).toEqual(["order-a.json"]);
  expect(openJournal()).toEqual([]);
});

it("both unlinks refused, no crash: delivered once, the staging link left is reported and swept later", async () => {
  ctx.local.writeOrder("order-a.json", ORDER);
  appendOnly(true, ctx.erp.stagingDir, ctx.erp.inboxDir);
  const pass = await runAgent(["run", "--config", ctx.local.configPath, "--json"]);
  expect(pass.code).toBe(0);
  expect(lastJsonLine(pass.stdout)).toMatchObject({ delivered: 1, failed: 0, renameRefused: 0 });
  const [left] = logEvents(ctx.local.logDir).filter((e) => e.event === "staging-link-left");
  expect(left).toMatchObject({ level: "warn", file: "order-a.json", serverMessage: "Permission denied" });
  appendOnly(false, ctx.erp.stagingDir, ctx.erp.inboxDir);
  expect(erpTakesInbox()).toEqual(new Map([["order-a.json", sha(ORDER)]]));
  expect(stagingFiles(ctx.erp.stagingDir)).toHaveLength(1);
  ctx.local.writeOrder("order-b.json", sampleOrder(8));
  const next = await runAgent(["run", "--config", ctx.local.configPath, "--json"]);
  expect(next.code).toBe(0);
  expect(stagingFiles(ctx.erp.stagingDir)).toEqual([]);
  expect(erpTakesInbox()).toEqual(new Map([["order-b.json", sha(sampleOrder(8))]]));
});

it("rename refused again and again: the back-off stops at the pass deadline, the pass exits 1 and is recorded", async () => {
  writeFileSync(ctx.local.configPath, JSON.stringify({ ...ctx.local.config, retries: 10, retryBaseDelayMs: 2_000, passDeadlineSeconds: 10, operationTimeoutSeconds: 5 }));
  ctx.local.writeOrder("order-a.json", ORDER);
  appendOnly(true, ctx.erp.stagingDir);
  const started = Date.now();
  const refused = await runAgent(["run", "--config", ctx.local.configPath, "--json"]);
  const endedAt = Date.now();
  expect(refused.code).toBe(1);
  expect(lastJsonLine(refused.stdout)).toMatchObject({ found: 1, delivered: 0, failed: 1 });
  const lastRun = JSON.parse(readFileSync(join(ctx.local.stateDir, "last-run.json"), "utf8"));
  // From the pass's start, which its deadline counts from (node's start-up, slow on a loaded machine, is not part of it).
  expect(endedAt - Date.parse(lastRun.startedAt)).toBeLessThan(12_000);
  expect(lastRun).toMatchObject({ exitCode: 1, consecutiveFailedRuns: 1 });
  expect(Date.parse(lastRun.finishedAt)).toBeGreaterThanOrEqual(started);
  expect(readdirSync(ctx.erp.inboxDir)).toEqual([]);
  expect(readdirSync(ctx.local.outbox)).toEqual(["order-a.json"]);
}, 60_000);
