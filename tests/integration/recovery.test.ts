import { readdirSync, readFileSync, rmSync, linkSync, writeFileSync, chownSync, statSync, mkdirSync, renameSync, chmodSync } from "node:fs";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { watch } from "node:fs";
import { TcpProxy } from "../support/tcpProxy";
import { useErpStandIn, runAgent, lastJsonLine, sampleOrder, logEvents, stagingFiles, BUNDLE, STAGING_SENTINEL } from "../support/agent";
import { CRASH_STEPS } from "../../agent/src/crashHook";
import { operationsGuideBlocks, runGuideBlock as runBlock } from "../support/guide";

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
  expect(stagingFiles(ctx.erp.stagingDir)).toEqual([]);
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
    expect(stagingFiles(ctx.erp.stagingDir)).toEqual([]);
    expect(openJournalEntries()).toEqual([]);
  });

  it("an upload abandoned by a killed pass is swept from staging even when the outbox is empty next time", async () => {
    oneAtATime();
    ctx.local.writeOrder("order-a.json", sampleOrder(0));
    expect((await runAgent(["run", "--config", ctx.local.configPath], { PLUTUS_CRASH_AT: "after-upload:1" })).signal).toBe("SIGKILL");
    expect(stagingFiles(ctx.erp.stagingDir)).toHaveLength(1);
    rmSync(join(ctx.local.outbox, "order-a.json"));
    const next = await runAgent(["run", "--config", ctx.local.configPath, "--json"]);
    expect(next.code).toBe(0);
    expect(lastJsonLine(next.stdout)).toMatchObject({ found: 0, delivered: 0 });
    expect(stagingFiles(ctx.erp.stagingDir)).toEqual([]);
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
    expect(stagingFiles(ctx.erp.stagingDir)).toEqual([]);
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
    const [abandoned] = stagingFiles(ctx.erp.stagingDir);
    const prefix = `plutus-${readFileSync(join(ctx.local.stateDir, "agent-id"), "utf8").trim()}-`;
    expect(abandoned.startsWith(prefix)).toBe(true);
    // An entry the ERP account cannot remove: the sweep must still take the others and report it.
    const stuck = `${prefix}stuck.part`;
    mkdirSync(join(ctx.erp.stagingDir, stuck));
    const sums = new Map([["order-a.json", sha(sampleOrder(0))]]);

    const blocked = await runAgent(["run", "--config", ctx.local.configPath, "--json"]);
    expect(blocked.code).toBe(0);
    expect(lastJsonLine(blocked.stdout)).toMatchObject({ found: 1, delivered: 1 });
    expect(stagingFiles(ctx.erp.stagingDir)).toEqual([stuck]);
    const warning = logEvents(ctx.local.logDir).filter((e) => e.event === "orphan-sweep-failed");
    expect(warning).toHaveLength(1);
    expect(warning[0].error).toBe(`1 abandoned upload(s) in /Staging could not be removed (first: ${stuck}): remove /Staging/${stuck}: Failure`);
    expect(readdirSync(ctx.local.stateDir)).toContain("staging-sweep");
    erpConsumes();

    rmSync(join(ctx.erp.stagingDir, stuck), { recursive: true });
    // What a request left in the network by the killed connection could still create.
    writeFileSync(join(ctx.erp.stagingDir, `${prefix}late.part`), "{");
    expect((await runAgent(["run", "--config", ctx.local.configPath])).code).toBe(0);
    expect(stagingFiles(ctx.erp.stagingDir)).toEqual([]);
    expect(readdirSync(ctx.local.stateDir)).toContain("staging-sweep");
    expect((await runAgent(["run", "--config", ctx.local.configPath])).code).toBe(0);
    expect(readdirSync(ctx.local.stateDir).sort()).toEqual(["agent-id", "counters.json", "erp-inbox.json", "journal.jsonl", "last-run.json"]);
    expectExactlyOnce(sums);
  });
});

/** Runs a block of the guide as written, on this test's agent: paths of a real install mapped to the test's. */
function runGuideBlock(block: string, orderName: string) {
  return runBlock(
    block,
    [
      ["/etc/plutus/agent.json", ctx.local.configPath],
      ["/var/log/plutus", ctx.local.logDir],
      ["/var/lib/plutus/state", ctx.local.stateDir],
      ["order-123.json", orderName],
    ],
    { AGENT: `${process.execPath} ${BUNDLE}` },
  );
}

/** The ERP's staging folder replaced by an empty one (restored from a template, recreated by a script). */
function replaceStagingFolder(): void {
  const { uid, gid } = statSync(ctx.erp.stagingDir);
  renameSync(ctx.erp.stagingDir, `${ctx.erp.stagingDir}.old`);
  rmSync(`${ctx.erp.stagingDir}.old`, { recursive: true });
  mkdirSync(ctx.erp.stagingDir, { mode: 0o755 });
  chownSync(ctx.erp.stagingDir, uid, gid);
}

describe("an absent staging copy is only believed in the folder the upload went to", () => {
  const IN_DOUBT_REASON = (stagingDir: string, sentinel: string) =>
    `the staging copy is gone, but ${stagingDir}/${sentinel} is gone, so ${stagingDir} is not provably the folder the upload went to (replaced, recreated or moved, or the staging path changed); ` +
    "whether the ERP got order-a.json cannot be told: it stays in the outbox until an operator runs plutus-sync resolve";

  async function crashPastCommitThenReplaceStaging(step: string): Promise<{ sentinel: string; commit: Record<string, unknown> }> {
    oneAtATime();
    ctx.local.writeOrder("order-a.json", sampleOrder(0));
    expect((await runAgent(["run", "--config", ctx.local.configPath], { PLUTUS_CRASH_AT: `${step}:1` })).signal).toBe("SIGKILL");
    const [commit] = openJournalEntries() as Record<string, unknown>[];
    expect(commit).toMatchObject({ t: "commit", name: "order-a.json", stagingDir: "/Staging", inboxDir: "/Inbox", sentinel: expect.stringMatching(/^[0-9a-f]{32}$/) });
    const [sentinel] = readdirSync(ctx.erp.stagingDir).filter((n) => STAGING_SENTINEL.test(n));
    expect(readFileSync(join(ctx.erp.stagingDir, sentinel), "utf8")).toBe(commit.sentinel);
    replaceStagingFolder();
    return { sentinel, commit };
  }

  async function expectStillInDoubt(sentinel: string): Promise<void> {
    const pass = await runAgent(["run", "--config", ctx.local.configPath, "--json"]);
    expect(pass.code).toBe(1);
    expect(lastJsonLine(pass.stdout)).toMatchObject({ found: 0, delivered: 0, recovered: 0, failed: 0, inDoubt: 1 });
    expect(pass.stdout).toContain(", 1 in doubt (see plutus-sync status; settle with plutus-sync resolve)");
    const inDoubt = logEvents(ctx.local.logDir).filter((e) => e.event === "in-doubt");
    expect(inDoubt.at(-1)).toMatchObject({ level: "error", file: "order-a.json", reason: IN_DOUBT_REASON("/Staging", sentinel) });
    expect(logEvents(ctx.local.logDir).filter((e) => e.event === "recovered" || e.event === "presumed-delivered")).toEqual([]);
    expect(readdirSync(ctx.local.outbox)).toEqual(["order-a.json"]);
    expect(readdirSync(ctx.local.archive)).toEqual([]);
  }

  it("staging replaced after the commit record (rename never sent): in doubt, exit 1, counted; resolve --resend sends it once", async () => {
    const { sentinel } = await crashPastCommitThenReplaceStaging("after-commit-record");
    await expectStillInDoubt(sentinel);
    expect(readdirSync(ctx.erp.inboxDir)).toEqual([]);

    // It stays in doubt pass after pass, and status says so.
    await expectStillInDoubt(sentinel);
    const status = await runAgent(["status", "--config", ctx.local.configPath, "--json"]);
    expect(JSON.parse(status.stdout)).toMatchObject({ inDoubt: 1, inDoubtFiles: ["order-a.json"], consecutiveFailedRuns: 2 });

    // The operations guide's procedure, as written.
    const [look, delivered, resend] = operationsGuideBlocks("### Settling an in-doubt order by hand");
    const looked = runGuideBlock(look, "order-a.json");
    expect(looked.stderr).toBe("");
    expect(looked.status).toBe(0);
    expect(looked.stdout).toContain("in doubt: 1 (order-a.json; ");
    expect(looked.stdout).toContain(`"file":"order-a.json","reason":${JSON.stringify(IN_DOUBT_REASON("/Staging", sentinel))}`);
    expect(looked.stdout).toContain(`{"target":"order-a.json","inboxDir":"/Inbox","sha256":"${sha(sampleOrder(0))}"}`);
    expect(delivered).toContain("--delivered");
    // The ERP never got it (its inbox is empty and it consumed nothing): resend.
    const resolved = runGuideBlock(resend, "order-a.json");
    expect(resolved).toEqual({ status: 0, stdout: "plutus-sync: order-a.json: marked not delivered; the next run sends it again\n", stderr: "" });
    expect(logEvents(ctx.local.logDir).filter((e) => e.event === "resolved")).toEqual([
      expect.objectContaining({ level: "warn", file: "order-a.json", decision: "resend", deliveredAs: "order-a.json", inbox: "/Inbox" }),
    ]);
    expect((await runAgent(["status", "--config", ctx.local.configPath, "--json"])).stdout).toContain('"inDoubt":0');

    const next = await runAgent(["run", "--config", ctx.local.configPath, "--json"]);
    expect(next.code).toBe(0);
    expect(lastJsonLine(next.stdout)).toMatchObject({ found: 1, delivered: 1, inDoubt: 0 });
    erpConsumes();
    expectExactlyOnce(new Map([["order-a.json", sha(sampleOrder(0))]]));
  });

  it("staging replaced after the rename (the ERP took the order): in doubt; resolve --delivered archives it, nothing is re-sent", async () => {
    const { sentinel } = await crashPastCommitThenReplaceStaging("after-rename");
    erpConsumes();
    await expectStillInDoubt(sentinel);
    const [, delivered] = operationsGuideBlocks("### Settling an in-doubt order by hand");
    const resolved = runGuideBlock(delivered, "order-a.json");
    expect(resolved.stderr).toBe("");
    expect(resolved.status).toBe(0);
    expect(resolved.stdout).toMatch(/^plutus-sync: order-a\.json: marked delivered; archived as .*\/archive\/\d{4}-\d\d-\d\d\/order-a\.json\n$/);
    const again = runGuideBlock(delivered, "order-a.json");
    expect(again).toEqual({ status: 2, stdout: "", stderr: `plutus-sync: no delivery of order-a.json is in doubt in ${ctx.local.stateDir} (plutus-sync status lists them)\n` });
    const next = await runAgent(["run", "--config", ctx.local.configPath, "--json"]);
    expect(next.code).toBe(0);
    expect(lastJsonLine(next.stdout)).toMatchObject({ found: 0, delivered: 0, inDoubt: 0 });
    erpConsumes();
    expectExactlyOnce(new Map([["order-a.json", sha(sampleOrder(0))]]));
  });

  it("the configured staging path changed after a crash: in doubt, not written off", async () => {
    oneAtATime();
    ctx.local.writeOrder("order-a.json", sampleOrder(0));
    expect((await runAgent(["run", "--config", ctx.local.configPath], { PLUTUS_CRASH_AT: "after-commit-record:1" })).signal).toBe("SIGKILL");
    // The old path no longer resolves on the server (as a "/C:/…" path inside a chroot would not).
    renameSync(ctx.erp.stagingDir, join(ctx.erp.jail, "Staging2"));
    try {
      const config = JSON.parse(readFileSync(ctx.local.configPath, "utf8"));
      writeFileSync(ctx.local.configPath, JSON.stringify({ ...config, remote: { ...config.remote, staging: "/Staging2" } }));
      const pass = await runAgent(["run", "--config", ctx.local.configPath, "--json"]);
      expect(pass.code).toBe(1);
      expect(lastJsonLine(pass.stdout)).toMatchObject({ recovered: 0, inDoubt: 1 });
      const [event] = logEvents(ctx.local.logDir).filter((e) => e.event === "in-doubt");
      expect(String(event.reason)).toMatch(/^the staging copy is gone, but \/Staging\/plutus-[0-9a-f]{12}\.sentinel is gone, so \/Staging is not provably/);
      expect(readdirSync(ctx.erp.inboxDir)).toEqual([]);
      expect(readdirSync(ctx.local.outbox)).toEqual(["order-a.json"]);
    } finally {
      renameSync(join(ctx.erp.jail, "Staging2"), ctx.erp.stagingDir);
    }
  });

  it("an absent staging copy in the proven folder is presumed delivered, and logged as a presumption", async () => {
    oneAtATime();
    ctx.local.writeOrder("order-a.json", sampleOrder(0));
    expect((await runAgent(["run", "--config", ctx.local.configPath], { PLUTUS_CRASH_AT: "after-rename:1" })).signal).toBe("SIGKILL");
    erpConsumes();
    const pass = await runAgent(["run", "--config", ctx.local.configPath, "--json"]);
    expect(pass.code).toBe(0);
    expect(lastJsonLine(pass.stdout)).toMatchObject({ recovered: 1, inDoubt: 0 });
    const events = logEvents(ctx.local.logDir);
    expect(events.filter((e) => e.event === "recovered")).toEqual([]);
    expect(events.filter((e) => e.event === "presumed-delivered")).toEqual([
      expect.objectContaining({ level: "warn", file: "order-a.json", deliveredAs: "order-a.json", seen: "the staging copy is gone" }),
    ]);
    expectExactlyOnce(new Map([["order-a.json", sha(sampleOrder(0))]]));
  });
});

describe("a recovery that cannot look at the ERP is a failed run", () => {
  it("staging unreadable: recovery-failed, counted as failed, exit 1, consecutiveFailedRuns grows", async () => {
    oneAtATime();
    ctx.local.writeOrder("order-a.json", sampleOrder(0));
    expect((await runAgent(["run", "--config", ctx.local.configPath], { PLUTUS_CRASH_AT: "after-commit-record:1" })).signal).toBe("SIGKILL");
    const { mode } = statSync(ctx.erp.stagingDir);
    chownSync(ctx.erp.stagingDir, 0, 0);
    const stagingUid = statSync(ctx.erp.inboxDir).uid;
    chmodSync(ctx.erp.stagingDir, 0o700);
    try {
      for (const run of [1, 2]) {
        const pass = await runAgent(["run", "--config", ctx.local.configPath, "--json"]);
        expect(pass.code).toBe(1);
        expect(lastJsonLine(pass.stdout)).toMatchObject({ found: 0, delivered: 0, failed: 1, recovered: 0 });
        const failed = logEvents(ctx.local.logDir).filter((e) => e.event === "recovery-failed");
        expect(failed).toHaveLength(run);
        expect(String(failed[0].error)).toMatch(/^stat \/Staging\/plutus-[0-9a-f]{12}-[0-9a-f-]{36}\.part: Permission denied$/);
        const status = JSON.parse((await runAgent(["status", "--config", ctx.local.configPath, "--json"])).stdout);
        expect(status).toMatchObject({ inDoubt: 1, consecutiveFailedRuns: run });
      }
    } finally {
      chmodSync(ctx.erp.stagingDir, mode & 0o7777);
      chownSync(ctx.erp.stagingDir, stagingUid, stagingUid);
    }
    const pass = await runAgent(["run", "--config", ctx.local.configPath, "--json"]);
    expect(pass.code).toBe(0);
    erpConsumes();
    expectExactlyOnce(new Map([["order-a.json", sha(sampleOrder(0))]]));
  });
});

describe("conflicts", () => {
  function intruder(name: string, content: string | Buffer, mode = 0o644): void {
    const path = join(ctx.erp.inboxDir, name);
    writeFileSync(path, content, { mode });
    chownSync(path, statSync(ctx.erp.inboxDir).uid, statSync(ctx.erp.inboxDir).gid);
  }

  it("a name taken by a file of another size is a conflict without reading a byte of it", async () => {
    ctx.local.writeOrder("order-a.json", sampleOrder(0));
    // Larger than anything the agent would read (2 x maxFileBytes + 1 MiB), and unreadable to the ERP account.
    const maxFileBytes = 1024 * 1024;
    writeFileSync(ctx.local.configPath, JSON.stringify({ ...ctx.local.config, maxFileBytes }));
    intruder("order-a.json", Buffer.alloc(3 * maxFileBytes + 1, 0x20), 0o000);
    const pass = await runAgent(["run", "--config", ctx.local.configPath, "--json"]);
    expect(pass.stderr).toBe("");
    expect(pass.code).toBe(0);
    const alternative = `order-a.${sha(sampleOrder(0)).slice(0, 8)}.json`;
    expect(logEvents(ctx.local.logDir).filter((e) => e.event === "conflict")).toEqual([
      expect.objectContaining({ level: "warn", file: "order-a.json", deliveredAs: alternative, inboxSize: 3 * maxFileBytes + 1 }),
    ]);
    expect(readdirSync(ctx.erp.inboxDir).sort()).toEqual([alternative, "order-a.json"].sort());
    expect(sha(readFileSync(join(ctx.erp.inboxDir, alternative)))).toBe(sha(sampleOrder(0)));
  });

  it("a conflict rename whose reply was lost is settled, and journaled and logged under the name it was delivered as", async () => {
    const proxy = await TcpProxy.start({ host: ctx.erp.host, port: ctx.erp.port });
    const alternative = `order-a.${sha(sampleOrder(0)).slice(0, 8)}.json`;
    // The reply to the second rename is held back, and dropped with the connection the moment the file appears.
    const watcher = watch(ctx.erp.inboxDir, (_event, name) => {
      if (name === alternative) proxy.cutAll();
    });
    try {
      const config = { ...ctx.local.config, logLevel: "debug", concurrency: 1, retryBaseDelayMs: 100, remote: { ...ctx.local.config.remote, port: proxy.port } };
      writeFileSync(ctx.local.configPath, JSON.stringify(config));
      ctx.local.writeOrder("order-a.json", sampleOrder(0));
      intruder("order-a.json", '{"other":"order"}');
      proxy.delayDownMs = 200;
      const pass = await runAgent(["run", "--config", ctx.local.configPath, "--json"]);
      expect(pass.code).toBe(0);
      expect(lastJsonLine(pass.stdout)).toMatchObject({ found: 1, delivered: 1, failed: 0 });
      const events = logEvents(ctx.local.logDir);
      expect(events.filter((e) => e.event === "retry")).toEqual([expect.objectContaining({ file: "order-a.json", inDoubt: true })]);
      expect(events.filter((e) => e.event === "delivered")).toEqual([expect.objectContaining({ file: "order-a.json", deliveredAs: alternative })]);
      // The "published" journal record names this target (the debug line shows what was journaled).
      expect(events.filter((e) => e.event === "published").map((e) => e.target)).toEqual([alternative]);
      expect(events.filter((e) => e.event === "presumed-delivered")).toEqual([expect.objectContaining({ file: "order-a.json", deliveredAs: alternative })]);
      expect(readdirSync(ctx.erp.inboxDir).sort()).toEqual([alternative, "order-a.json"].sort());
      expect(stagingFiles(ctx.erp.stagingDir)).toEqual([]);
    } finally {
      watcher.close();
      await proxy.stop();
    }
  });
});
