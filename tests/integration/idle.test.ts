import { chmodSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { useErpStandIn, runAgent, lastJsonLine, logEvents, STAGING_SENTINEL } from "../support/agent";

/** Failures nobody would see: a pass with nothing to send still proves the ERP side, and a run that cannot start is recorded. */
const ctx = useErpStandIn();

const run = () => runAgent(["run", "--config", ctx.local.configPath, "--json"]);
const status = async () => JSON.parse((await runAgent(["status", "--config", ctx.local.configPath, "--json"])).stdout);
const withConfig = (change: (config: Record<string, any>) => Record<string, any>) => {
  const config = JSON.parse(readFileSync(ctx.local.configPath, "utf8"));
  writeFileSync(ctx.local.configPath, JSON.stringify(change(config)));
};

describe("a pass with an empty outbox", () => {
  it("connects once, reads or creates the staging sentinel and looks at the inbox: exit 0", async () => {
    const pass = await run();
    expect(pass.stderr).toBe("");
    expect(pass.code).toBe(0);
    expect(lastJsonLine(pass.stdout)).toMatchObject({ found: 0, delivered: 0, failed: 0 });
    expect(logEvents(ctx.local.logDir).filter((e) => e.event === "connected")).toHaveLength(1);
    expect(readdirSync(ctx.erp.stagingDir).filter((n) => STAGING_SENTINEL.test(n))).toHaveLength(1);
    expect(readdirSync(ctx.erp.inboxDir)).toEqual([]);
  });

  it("an ERP that is down: exit 3 with the reason, recorded for status", async () => {
    withConfig((c) => ({ ...c, retries: 0, remote: { ...c.remote, port: 1 } }));
    const pass = await run();
    expect(pass.code).toBe(3);
    expect(pass.stderr).toBe("plutus-sync: cannot connect to plutus-erp@127.0.0.1:1: connect ECONNREFUSED 127.0.0.1:1\n");
    expect(await status()).toMatchObject({ lastRun: { exitCode: 3, error: "cannot connect to plutus-erp@127.0.0.1:1: connect ECONNREFUSED 127.0.0.1:1" }, consecutiveFailedRuns: 1 });
  });

  it("a changed host key: exit 3, nothing else touched", async () => {
    const pinned = "SHA256:" + Buffer.alloc(32, 7).toString("base64").replace(/=+$/, "");
    withConfig((c) => ({ ...c, remote: { ...c.remote, hostKeySha256: pinned } }));
    const pass = await run();
    expect(pass.code).toBe(3);
    expect(pass.stderr).toBe(
      `plutus-sync: host key mismatch for 127.0.0.1:${ctx.erp.port}: expected ${pinned}, server presented ${ctx.erp.hostKeySha256}; nothing was sent. If the ERP's host key was changed on purpose, update remote.hostKeySha256.\n`,
    );
    expect(readdirSync(ctx.erp.stagingDir)).toEqual([]);
  });

  it("an inbox folder that is gone: exit 1, remote-check-failed, recorded for status", async () => {
    renameSync(ctx.erp.inboxDir, `${ctx.erp.inboxDir}.away`);
    try {
      const pass = await run();
      expect(pass.code).toBe(1);
      expect(logEvents(ctx.local.logDir).filter((e) => e.event === "remote-check-failed")).toEqual([
        expect.objectContaining({ level: "error", error: "remote inbox /Inbox cannot be used: stat /Inbox: No such file" }),
      ]);
      expect(await status()).toMatchObject({ lastRun: { exitCode: 1, error: "remote inbox /Inbox cannot be used: stat /Inbox: No such file" }, consecutiveFailedRuns: 1 });
    } finally {
      renameSync(`${ctx.erp.inboxDir}.away`, ctx.erp.inboxDir);
    }
    expect((await run()).code).toBe(0);
    expect(await status()).toMatchObject({ lastRun: { exitCode: 0 }, consecutiveFailedRuns: 0 });
  });
});

describe("a run that cannot start its pass is recorded where status shows it", () => {
  it("a private key readable by others: exit 2, logged, in last-run.json, status says so", async () => {
    expect((await run()).code).toBe(0);
    const key = join(ctx.local.root, "id_ed25519");
    writeFileSync(key, readFileSync(ctx.erp.clientKeyPath), { mode: 0o640 });
    chmodSync(key, 0o640);
    withConfig((c) => ({ ...c, remote: { ...c.remote, privateKeyPath: key } }));
    const message = `private key ${key} is readable by group or others (mode 0640); run: chmod 600 ${key}`;
    for (const attempt of [1, 2]) {
      const pass = await run();
      expect(pass).toMatchObject({ code: 2, stdout: "", stderr: `plutus-sync: ${message}\n` });
      expect(await status()).toMatchObject({ lastRun: { exitCode: 2, error: message }, consecutiveFailedRuns: attempt });
    }
    const human = await runAgent(["status", "--config", ctx.local.configPath]);
    expect(human.stdout).toMatch(new RegExp(`^last run: \\S+ exit 2: 0/0 delivered, 0 failed, 0 quarantined, 0 deferred \\(${message.replace(/[()]/g, "\\$&")}\\)\n`));
    expect(logEvents(ctx.local.logDir).filter((e) => e.event === "run-failed")).toEqual([
      expect.objectContaining({ level: "error", error: message, exitCode: 2 }),
      expect.objectContaining({ level: "error", error: message, exitCode: 2 }),
    ]);
  });

  it("a damaged journal: exit 2, recorded; status itself names the damage", async () => {
    mkdirSync(ctx.local.stateDir, { recursive: true });
    writeFileSync(join(ctx.local.stateDir, "journal.jsonl"), "not json\n{}\n");
    const pass = await run();
    expect(pass.code).toBe(2);
    const lastRun = JSON.parse(readFileSync(join(ctx.local.stateDir, "last-run.json"), "utf8"));
    expect(lastRun).toMatchObject({ exitCode: 2, consecutiveFailedRuns: 1, error: expect.stringMatching(/journal .* is damaged at line 1; nothing was sent; run plutus-sync repair/) });
    const shown = await runAgent(["status", "--config", ctx.local.configPath]);
    expect(shown.code).toBe(2);
    expect(shown.stderr).toMatch(/^plutus-sync: cannot read the journal in .*: journal .*journal\.jsonl is damaged at line 1\n$/);
  });

  it("a configuration that does not parse: status fails the same way (the state folder is unknown: the documented limit)", async () => {
    writeFileSync(ctx.local.configPath, "{ not json");
    const pass = await run();
    const shown = await runAgent(["status", "--config", ctx.local.configPath]);
    expect(pass.code).toBe(2);
    expect(shown.code).toBe(2);
    expect(shown.stderr).toBe(pass.stderr);
    expect(pass.stderr).toMatch(/^plutus-sync: configuration .*agent\.json is not valid JSON: /);
  });
});

describe("log files are named by the UTC date, like their timestamps", () => {
  it("whatever the machine's time zone", async () => {
    // Between them these two zones are a calendar day away from UTC at every hour.
    for (const zone of ["Pacific/Kiritimati", "Pacific/Pago_Pago"]) {
      const pass = await runAgent(["run", "--config", ctx.local.configPath], { TZ: zone });
      expect(pass.code).toBe(0);
    }
    const utcDay = new Date().toISOString().slice(0, 10);
    expect(readdirSync(ctx.local.logDir).filter((f) => f.endsWith(".log"))).toEqual([`plutus-sync-${utcDay}.log`]);
    for (const event of logEvents(ctx.local.logDir)) expect(String(event.timestamp)).toMatch(new RegExp(`^${utcDay}T\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z$`));
  });
});
