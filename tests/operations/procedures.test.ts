import { execFileSync, spawnSync } from "node:child_process";
import { chownSync, chmodSync, copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { useErpStandIn, runAgent, sampleOrder, logEvents, stagingFiles, BUNDLE, type AgentResult } from "../support/agent";
import { ERP_USER } from "../support/sshd";
import { operationsGuideBlocks, runGuideBlock, type GuideRun } from "../support/guide";
import { archiveDayOf, localDay, sameLocalDayFor } from "../support/localDay";

/**
 * The operations guide's procedures (all but install, upgrade and uninstall, which tests/deploy
 * follows with the real install.sh), run as written: the guide's commands, with the paths of a
 * real installation mapped to this test's folders and the agent running as an unprivileged account
 * of its own, as cron runs it as `plutus`.
 */
const ctx = useErpStandIn();
const ACCOUNT = "plutus-h8ops";
let uid = 0;

beforeAll(() => {
  // Left behind by an interrupted earlier run: reused.
  if (spawnSync("id", ["-u", ACCOUNT]).status !== 0) execFileSync("useradd", ["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "--user-group", ACCOUNT]);
  uid = Number(execFileSync("id", ["-u", ACCOUNT], { encoding: "utf8" }).trim());
});
afterAll(() => {
  execFileSync("userdel", [ACCOUNT]);
  // userdel removes the account's own group where USERGROUPS_ENAB is set; elsewhere it stays.
  if (spawnSync("getent", ["group", ACCOUNT]).status === 0) execFileSync("groupdel", [ACCOUNT]);
});

/** Every file the ERP took from its inbox: name -> hashes (more than one = delivered twice). */
let consumed: Map<string, string[]>;
const sha = (data: Buffer | string) => createHash("sha256").update(data).digest("hex");
function erpConsumes(): void {
  for (const name of readdirSync(ctx.erp.inboxDir)) {
    const path = join(ctx.erp.inboxDir, name);
    consumed.set(name, [...(consumed.get(name) ?? []), sha(readFileSync(path))]);
    rmSync(path);
  }
}

/** The local side handed to the agent's account: folders, configuration and its own copy of the key. */
beforeEach(() => {
  consumed = new Map();
  const key = join(ctx.local.root, "id_ed25519");
  copyFileSync(ctx.erp.clientKeyPath, key);
  const config = { ...ctx.local.config, concurrency: 1, remote: { ...ctx.local.config.remote, privateKeyPath: key } };
  writeFileSync(ctx.local.configPath, JSON.stringify(config, null, 2));
  for (const dir of [ctx.local.archive, ctx.local.quarantine, ctx.local.stateDir, ctx.local.logDir]) mkdirSync(dir);
  execFileSync("chown", ["-R", `${ACCOUNT}:${ACCOUNT}`, ctx.local.root]);
  chmodSync(key, 0o600);
});

function writeOrder(name: string, content: string): void {
  ctx.local.writeOrder(name, content);
  chownSync(join(ctx.local.outbox, name), uid, uid);
}

function agentAsAccount(args: string[], env: Record<string, string> = {}): AgentResult {
  const argv = ["-u", ACCOUNT, "--", "env", ...Object.entries(env).map(([k, v]) => `${k}=${v}`), process.execPath, BUNDLE, ...args];
  try {
    const stdout = execFileSync("runuser", argv, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
    return { code: 0, signal: null, stdout, stderr: "" };
  } catch (error) {
    const e = error as { status: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string };
    // runuser reports a child killed by a signal as 128 + its number.
    if (e.status === 128 + 9) return { code: null, signal: "SIGKILL", stdout: e.stdout, stderr: e.stderr };
    return { code: e.status, signal: e.signal, stdout: e.stdout, stderr: e.stderr };
  }
}

const run = (env: Record<string, string> = {}) => agentAsAccount(["run", "--config", ctx.local.configPath, "--json"], env);
const lastLine = (stdout: string) => JSON.parse(stdout.trim().split("\n").at(-1)!) as Record<string, unknown>;

/** The paths and names of a real installation, as the guide writes them, mapped to this test's. */
function mapping(extra: [string, string][] = []): [string, string][] {
  return [
    ...extra,
    ["runuser -u plutus --", `runuser -u ${ACCOUNT} --`],
    ["sudo -u plutus ", `sudo -u ${ACCOUNT} `],
    ["/usr/bin/node /opt/plutus-sync/plutus-sync.cjs", `${process.execPath} ${BUNDLE}`],
    ["/etc/plutus/agent.json", ctx.local.configPath],
    ["/var/lib/plutus/outbox", ctx.local.outbox],
    ["/var/lib/plutus/archive", ctx.local.archive],
    ["/var/lib/plutus/quarantine", ctx.local.quarantine],
    ["/var/lib/plutus/state", ctx.local.stateDir],
    ["/var/log/plutus", ctx.local.logDir],
    ["-o plutus -g www-data", `-o ${ACCOUNT} -g ${ACCOUNT}`],
    ["plutus:plutus", `${ACCOUNT}:${ACCOUNT}`],
  ];
}

/** The guide's own definition of $AGENT ("At a glance"), then the block. */
function follow(block: string, extra: [string, string][] = [], cwd?: string): GuideRun {
  const [atAGlance] = operationsGuideBlocks("## At a glance");
  const defineAgent = atAGlance.split("\n").find((line) => line.startsWith("AGENT="));
  if (!defineAgent) throw new Error('"At a glance" no longer defines AGENT');
  return runGuideBlock(`${defineAgent}\n${block}`, mapping(extra), {}, cwd);
}

function archived(): string[] {
  return readdirSync(ctx.local.archive).flatMap((day) => readdirSync(join(ctx.local.archive, day))).sort();
}

describe("Damaged journal: plutus-sync repair", () => {
  /** Order a renamed into the inbox, the agent killed at once, the ERP takes it; order b never left the outbox. */
  function crashAfterRenameAndErpTakesIt(): string {
    writeOrder("order-a.json", sampleOrder(1));
    writeOrder("order-b.json", sampleOrder(2));
    expect(run({ PLUTUS_CRASH_AT: "after-rename:1" }).signal).toBe("SIGKILL");
    erpConsumes();
    expect([...consumed.keys()]).toEqual(["order-a.json"]);
    const journal = join(ctx.local.stateDir, "journal.jsonl");
    const text = readFileSync(journal, "utf8");
    expect(text.split("\n").filter(Boolean)).toHaveLength(1);
    return journal;
  }

  function expectRefused(): void {
    const refused = run();
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/^plutus-sync: cannot use the journal in .*: journal .*\/journal\.jsonl is damaged at line 1; nothing was sent; run plutus-sync repair \(see "Damaged journal" in the operations guide\)\n$/);
    const status = JSON.parse(agentAsAccount(["status", "--config", ctx.local.configPath, "--json"]).stdout || "null");
    expect(status).toBeNull();
    const lastRun = JSON.parse(readFileSync(join(ctx.local.stateDir, "last-run.json"), "utf8"));
    // Two failed runs in a row: the pass killed after the rename (its lock left behind) and this one.
    expect(lastRun).toMatchObject({ exitCode: 2, consecutiveFailedRuns: 2, error: expect.stringContaining("is damaged at line 1") });
  }

  it("the commit record's hash damaged (disk corruption): repair settles it by the staging sentinel; no second copy", async () => {
    const journal = crashAfterRenameAndErpTakesIt();
    const bytes = readFileSync(journal);
    const at = bytes.indexOf('"sha256":"') + 10;
    bytes.fill(0, at, at + 64);
    writeFileSync(journal, bytes);
    expectRefused();

    const [repair] = operationsGuideBlocks("### Damaged journal");
    const dayBefore = localDay();
    const repaired = follow(repair);
    expect(repaired.stderr).toBe("");
    expect(repaired.status).toBe(0);
    const lines = repaired.stdout.split("\n");
    expect(lines[0]).toBe("plutus-sync: line 1: the commit record of order-a.json could be read");
    expect(lines[1]).toMatch(/^plutus-sync: the damaged journal is kept as .*\/state\/journal\.jsonl\.damaged-\d{8}T\d{6}\.\d{3}Z$/);
    expect(lines[2]).toBe(`plutus-sync: order-a.json: delivered; archived as ${ctx.local.archive}/${archiveDayOf(ctx.local.archive, "order-a.json", dayBefore)}/order-a.json`);
    const [, status] = operationsGuideBlocks("### Damaged journal");
    expect(follow(status).stdout).toContain("\nin doubt: 0\n");
    expect(logEvents(ctx.local.logDir).filter((e) => e.event === "presumed-delivered")).toEqual([expect.objectContaining({ file: "order-a.json" })]);

    const next = run();
    expect(next.code).toBe(0);
    expect(lastLine(next.stdout)).toMatchObject({ found: 1, delivered: 1, inDoubt: 0 });
    erpConsumes();
    expect(consumed).toEqual(new Map([["order-a.json", [sha(sampleOrder(1))]], ["order-b.json", [sha(sampleOrder(2))]]]));
    expect(archived()).toEqual(["order-a.json", "order-b.json"]);
    expect(stagingFiles(ctx.erp.stagingDir)).toEqual([]);
  });

  it("the commit record unreadable as a whole: the orders it may have been are held in doubt, settled by resolve; no second copy", async () => {
    const journal = crashAfterRenameAndErpTakesIt();
    const line = readFileSync(journal);
    writeFileSync(journal, Buffer.concat([Buffer.alloc(line.length - 1, 0xff), Buffer.from("\n")]));
    expectRefused();

    const [repair] = operationsGuideBlocks("### Damaged journal");
    const repaired = follow(repair);
    expect(repaired.stderr).toBe("");
    expect(repaired.status).toBe(1);
    const doubt = "its journal record (line 1) was damaged, and the ERP has neither these bytes in its inbox nor an upload of them in staging (it may have taken the order already)";
    expect(repaired.stdout).toContain(
      "plutus-sync: line 1: unreadable; which order it recorded is lost, so every order in the outbox that no readable record owns is looked for on the ERP\n" +
        `plutus-sync: order-a.json: in doubt: ${doubt}; settle it with plutus-sync resolve\n` +
        `plutus-sync: order-b.json: in doubt: ${doubt}; settle it with plutus-sync resolve\n`,
    );
    expect(repaired.stdout).toContain("plutus-sync: runs may go on; 2 in doubt (settle each with plutus-sync resolve), 0 left for the next run\n");
    const [, status] = operationsGuideBlocks("### Damaged journal");
    expect(follow(status).stdout).toContain("\nin doubt: 2 (order-a.json, order-b.json: held in doubt, settle with plutus-sync resolve)\n");

    // Runs go on; nothing in doubt is sent.
    const held = run();
    expect(held.code).toBe(1);
    expect(lastLine(held.stdout)).toMatchObject({ found: 0, delivered: 0, inDoubt: 2 });
    expect(readdirSync(ctx.erp.inboxDir)).toEqual([]);

    // The ERP says it has order-a and not order-b: the in-doubt procedure, as written.
    const [, delivered, resend] = operationsGuideBlocks("### Settling an in-doubt order by hand");
    expect(follow(delivered, [["order-123.json", "order-a.json"]])).toMatchObject({ status: 0, stderr: "" });
    expect(follow(resend, [["order-123.json", "order-b.json"]])).toEqual({ status: 0, stdout: "plutus-sync: order-b.json: marked not delivered; the next run sends it again\n", stderr: "" });
    const next = run();
    expect(next.code).toBe(0);
    expect(lastLine(next.stdout)).toMatchObject({ found: 1, delivered: 1, inDoubt: 0 });
    erpConsumes();
    expect(consumed).toEqual(new Map([["order-a.json", [sha(sampleOrder(1))]], ["order-b.json", [sha(sampleOrder(2))]]]));
    expect(archived()).toEqual(["order-a.json", "order-b.json"]);
  });

  it("with the ERP unreachable, repair changes nothing (exit 3); an intact journal needs nothing", async () => {
    const journal = crashAfterRenameAndErpTakesIt();
    const bytes = readFileSync(journal);
    bytes.fill(0x20, 0, bytes.length - 1);
    writeFileSync(journal, bytes);
    const config = readFileSync(ctx.local.configPath, "utf8");
    writeFileSync(ctx.local.configPath, JSON.stringify({ ...JSON.parse(config), retries: 0, remote: { ...JSON.parse(config).remote, port: 1 } }));
    const [repair] = operationsGuideBlocks("### Damaged journal");
    const unreachable = follow(repair);
    expect(unreachable).toMatchObject({ status: 3, stdout: "", stderr: "plutus-sync: cannot connect to plutus-erp@127.0.0.1:1: connect ECONNREFUSED 127.0.0.1:1\n" });
    expect(readFileSync(journal)).toEqual(bytes);
    expect(readdirSync(ctx.local.stateDir).filter((f) => f.includes("damaged"))).toEqual([]);

    writeFileSync(ctx.local.configPath, config);
    const repaired = follow(repair);
    expect(repaired.status).toBe(1);
    expect(follow(repair)).toEqual({ status: 0, stdout: `plutus-sync: journal ${journal} is intact: nothing to repair\n`, stderr: "" });
  });

  it("a damaged line whose order is still in staging (never renamed): sent once by the next run", async () => {
    writeOrder("order-a.json", sampleOrder(1));
    expect(run({ PLUTUS_CRASH_AT: "after-commit-record:1" }).signal).toBe("SIGKILL");
    const journal = join(ctx.local.stateDir, "journal.jsonl");
    const line = readFileSync(journal);
    writeFileSync(journal, Buffer.concat([Buffer.alloc(line.length - 1, 0x20), Buffer.from("x\n")]));
    const [repair] = operationsGuideBlocks("### Damaged journal");
    const repaired = follow(repair);
    expect(repaired.status).toBe(0);
    expect(repaired.stdout).toContain("plutus-sync: order-a.json: its upload is still in the ERP's staging folder, never renamed: not delivered; the next run sends it\n");
    const next = run();
    expect(next.code).toBe(0);
    erpConsumes();
    expect(consumed).toEqual(new Map([["order-a.json", [sha(sampleOrder(1))]]]));
    expect(stagingFiles(ctx.erp.stagingDir)).toEqual([]);
  });
});

describe("Moving an order to the archive by hand", () => {
  it("a day folder made by root: archive-failed says what to do, status shows the order awaiting archive; the guide's fix archives it, nothing is sent twice", async () => {
    // The folder made here must still be the day's when the passes run.
    await sameLocalDayFor(30_000);
    const today = localDay();
    // What "move it to the archive by hand" as root leaves behind.
    mkdirSync(join(ctx.local.archive, today), { mode: 0o755 });
    writeOrder("order-9.json", sampleOrder(9));
    const failed = run();
    expect(failed.code).toBe(1);
    expect(lastLine(failed.stdout)).toMatchObject({ delivered: 1, archivePending: 1 });
    const [event] = logEvents(ctx.local.logDir).filter((e) => e.event === "archive-failed");
    const folder = join(ctx.local.archive, today);
    expect(event.error).toMatch(
      new RegExp(
        `^EACCES: permission denied, rename '${ctx.local.outbox}/\\.plutus-claim-[0-9a-f-]{36}' -> '${folder}/order-9\\.json': the folder ${folder} is root:root 0755, not writable by ${ACCOUNT}; ` +
          `give it back to the agent \\(chown ${ACCOUNT}:${ACCOUNT} ${folder}, see "Moving an order to the archive by hand" in the operations guide\\); the file waits and is archived by the next run$`,
      ),
    );
    const status = JSON.parse(agentAsAccount(["status", "--config", ctx.local.configPath, "--json"]).stdout);
    expect(status).toMatchObject({ outbox: { waiting: 0 }, inDoubt: 0, awaitingArchive: 1, awaitingArchiveFiles: ["order-9.json"] });
    expect(agentAsAccount(["status", "--config", ctx.local.configPath]).stdout).toContain(
      "\ndelivered, awaiting archive: 1 (order-9.json; never sent again; the next run moves them; archive-failed in the log says why)\n",
    );
    erpConsumes();

    const [, giveBack] = operationsGuideBlocks("### Moving an order to the archive by hand");
    expect(follow(giveBack, [["2025-01-31", today]])).toEqual({ status: 0, stdout: "", stderr: "" });
    const next = run();
    expect(next.code).toBe(0);
    expect(lastLine(next.stdout)).toMatchObject({ found: 0, delivered: 0, archivePending: 0 });
    expect(archived()).toEqual(["order-9.json"]);
    expect(readdirSync(ctx.local.outbox)).toEqual([]);
    expect(consumed).toEqual(new Map([["order-9.json", [sha(sampleOrder(9))]]]));
  }, 120_000);

  it("moved by hand as the agent's account, as written: later deliveries that day are archived beside it", async () => {
    writeOrder("order-123.json", sampleOrder(123));
    const [byHand] = operationsGuideBlocks("### Moving an order to the archive by hand");
    const dayBefore = localDay();
    expect(follow(byHand)).toEqual({ status: 0, stdout: "", stderr: "" });
    expect(statSync(join(ctx.local.archive, archiveDayOf(ctx.local.archive, "order-123.json", dayBefore))).uid).toBe(uid);
    writeOrder("order-124.json", sampleOrder(124));
    const next = run();
    expect(next.code).toBe(0);
    expect(lastLine(next.stdout)).toMatchObject({ found: 1, delivered: 1, archivePending: 0 });
    erpConsumes();
    expect([...consumed.keys()]).toEqual(["order-124.json"]);
    expect(archived()).toEqual(["order-123.json", "order-124.json"]);
  });
});

describe("Quarantined files: fix and send again", () => {
  it("an invalid order is quarantined; the guide's commands put the fixed one back and it is delivered once", async () => {
    writeOrder("order-77.json", '{"orderId": "PL-77", ');
    const first = run();
    expect(first.code).toBe(0);
    expect(lastLine(first.stdout)).toMatchObject({ quarantined: 1, delivered: 0 });

    const [look, resend] = operationsGuideBlocks("## Quarantined files");
    const looked = follow(look);
    expect(looked.status).toBe(0);
    expect(looked.stdout).toContain("order-77.json.reason\n");
    expect(looked.stdout).toContain('"originalName": "order-77.json"');

    const work = mkdtempSync(join(tmpdir(), "plutus-h8-fix-"));
    try {
      writeFileSync(join(work, "fixed.json"), sampleOrder(77));
      const putBack = follow(resend, [], work);
      expect(putBack).toEqual({ status: 0, stdout: "", stderr: "" });
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
    expect(readdirSync(ctx.local.quarantine)).toEqual([]);
    const outboxFile = statSync(join(ctx.local.outbox, "order-77.json"));
    expect({ uid: outboxFile.uid, mode: outboxFile.mode & 0o777 }).toEqual({ uid, mode: 0o660 });
    // The web shop's rule: a file is taken once it is minAgeSeconds old.
    await new Promise((r) => setTimeout(r, 2500));
    const next = run();
    expect(next.code).toBe(0);
    expect(lastLine(next.stdout)).toMatchObject({ found: 1, delivered: 1 });
    erpConsumes();
    expect(consumed).toEqual(new Map([["order-77.json", [sha(sampleOrder(77))]]]));
  });
});

describe("Canary orders: plutus-sync canary", () => {
  it("writes a canary the way the web shop does, runs a pass and says where it went", async () => {
    const [canary] = operationsGuideBlocks("## Canary orders");
    const dayBefore = localDay();
    const sent = follow(canary);
    expect(sent.stderr).toBe("");
    expect(sent.status).toBe(0);
    const [summary, said] = sent.stdout.trim().split("\n");
    expect(summary).toMatch(/^plutus-sync: 1\/1 delivered, 0 failed, 0 quarantined, 0 deferred in \d+\.\d s$/);
    const name = /^plutus-sync: canary (plutus-canary-\d{8}T\d{6}Z\.json) delivered; archived as (.*)$/.exec(said);
    expect(name).not.toBeNull();
    expect(name![2]).toBe(join(ctx.local.archive, archiveDayOf(ctx.local.archive, name![1], dayBefore), name![1]));
    erpConsumes();
    expect([...consumed.keys()]).toEqual([name![1]]);
    const order = JSON.parse(readFileSync(name![2], "utf8"));
    expect(order).toMatchObject({ orderId: name![1].replace(/\.json$/, ""), canary: true });
  });

  it("with the ERP unreachable: exit 3, the canary is still in the outbox and is delivered by the next run", async () => {
    const config = JSON.parse(readFileSync(ctx.local.configPath, "utf8"));
    writeFileSync(ctx.local.configPath, JSON.stringify({ ...config, retries: 0, remote: { ...config.remote, port: 1 } }));
    const sent = agentAsAccount(["canary", "--config", ctx.local.configPath, "--json"]);
    expect(sent.code).toBe(3);
    expect(sent.stderr).toBe(`plutus-sync: cannot connect to plutus-erp@127.0.0.1:1: connect ECONNREFUSED 127.0.0.1:1\n`);
    const lines = sent.stdout.trim().split("\n");
    expect(lines[1]).toMatch(/^plutus-sync: canary plutus-canary-\d{8}T\d{6}Z\.json NOT delivered: still in the outbox \(pass exit code 3; see the summary above and the log\)$/);
    expect(JSON.parse(lines[2])).toMatchObject({ where: "outbox", runExitCode: 3 });
    writeFileSync(ctx.local.configPath, JSON.stringify(config));
    expect(run().code).toBe(0);
    erpConsumes();
    expect([...consumed.keys()]).toEqual([JSON.parse(lines[2]).canary]);
  });
});

describe("Reading status and logs", () => {
  it("the status and log commands, as written, show the run and the order's story", async () => {
    writeOrder("order-1.json", sampleOrder(1));
    expect(run().code).toBe(0);
    const [atAGlance] = operationsGuideBlocks("## At a glance");
    const glance = runGuideBlock(atAGlance, mapping());
    expect(glance.stderr).toBe("");
    expect(glance.stdout).toMatch(/^last run: \S+ exit 0: 1\/1 delivered, 0 failed, 0 quarantined, 0 deferred\noutbox: 0 waiting\nquarantined: 0\nin doubt: 0\nconsecutive failed runs: 0\n$/);
    const blocks = operationsGuideBlocks("## Reading status and logs");
    const [statusBlock] = blocks;
    const shown = follow(statusBlock);
    expect(shown.stderr).toBe("");
    const [human, json] = [shown.stdout.slice(0, glance.stdout.length), shown.stdout.slice(glance.stdout.length)];
    expect(human).toBe(glance.stdout);
    expect(JSON.parse(json)).toMatchObject({ lastRun: { exitCode: 0 }, outbox: { waiting: 0, oldestAgeSeconds: null }, quarantined: 0, inDoubt: 0, awaitingArchive: 0, consecutiveFailedRuns: 0 });
    const logs = blocks.find((b) => b.includes("LOG="))!;
    const read = follow(logs, [["order-123.json", "order-1.json"]]);
    expect(read.stderr).toBe("");
    expect(read.status).toBe(0);
    expect(read.stdout).toMatch(/"event":"delivered".*"file":"order-1.json"/);
    expect(read.stdout).toContain(`\torder-1.json\t${sampleOrder(1).length}\t${sha(sampleOrder(1))}\n`);
  });
});

describe("Preparing agent.json and the first key", () => {
  it("the guide's key, fingerprint, agent.json and stdin document, as written, make a configuration that passes check", async () => {
    const section = "## Preparing agent.json and the first key";
    const [makeKey, fingerprint, stdinDocument] = operationsGuideBlocks(section);
    const [agentJson] = operationsGuideBlocks(section, "json");
    const work = mkdtempSync(join(tmpdir(), "plutus-h8-prepare-"));
    const authorized = join(ctx.erp.root, "authorized_keys", ERP_USER);
    const authorizedBefore = readFileSync(authorized);
    try {
      const made = runGuideBlock(makeKey, [], {}, work);
      expect(made.stderr).toBe("");
      expect(made.status).toBe(0);
      expect(made.stdout).toMatch(/\nThe key fingerprint is:\nSHA256:\S+ plutus-sync\n[\s\S]*\nssh-ed25519 AAAA\S+ plutus-sync\n$/);
      expect(statSync(join(work, "id_ed25519")).mode & 0o777).toBe(0o600);

      const scanned = runGuideBlock(fingerprint, [["erp.example.internal", ctx.erp.host], ["-p 22", `-p ${ctx.erp.port}`]], {}, work);
      expect(scanned.status).toBe(0);
      expect(scanned.stdout).toBe(`256 ${ctx.erp.hostKeySha256} [${ctx.erp.host}]:${ctx.erp.port} (ED25519)\n`);

      // The ERP administrator adds the public key; the pin is the SHA256:… part just read.
      writeFileSync(authorized, Buffer.concat([authorizedBefore, readFileSync(join(work, "id_ed25519.pub"))]));
      let config = agentJson;
      for (const [from, to] of [
        ...mapping(),
        ["erp.example.internal", ctx.erp.host],
        ['"port": 22', `"port": ${ctx.erp.port}`],
        ['"username": "plutus-sync"', `"username": "${ERP_USER}"`],
        ["/etc/plutus/id_ed25519", join(work, "id_ed25519")],
        ["SHA256:n3b1…Zk", ctx.erp.hostKeySha256],
      ] as [string, string][]) config = config.replaceAll(from, to);
      writeFileSync(join(work, "agent.json"), config);
      const checked = await runAgent(["check", "--config", join(work, "agent.json")]);
      expect(checked.stderr).toBe("");
      expect(checked.code).toBe(0);
      expect(checked.stdout).toMatch(/\nOK\n$/);

      const built = runGuideBlock(stdinDocument, [], {}, work);
      expect(built).toEqual({ status: 0, stdout: "", stderr: "" });
      const document = JSON.parse(readFileSync(join(work, "install.json"), "utf8"));
      expect(Object.keys(document).sort()).toEqual(["agentConfig", "privateKey"]);
      expect(document.agentConfig).toEqual(JSON.parse(config));
      expect(document.privateKey).toBe(readFileSync(join(work, "id_ed25519"), "utf8"));
      expect(statSync(join(work, "install.json")).mode & 0o777).toBe(0o600);
    } finally {
      writeFileSync(authorized, authorizedBefore);
      rmSync(work, { recursive: true, force: true });
    }
  });
});
