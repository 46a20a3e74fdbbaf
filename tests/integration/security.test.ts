import { readdirSync, chmodSync, readFileSync, writeFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { startErpServer, ErpServer, generateKey, sha256Fingerprint } from "../support/sshd";
import { useErpStandIn, makeLocalSide, runAgent, sampleOrder } from "../support/agent";

const ctx = useErpStandIn();

beforeEach(() => {
  ctx.local.writeOrder("order-1.json", sampleOrder(1));
});

describe("security defaults", () => {
  it("refuses a server whose host key is not the pinned one: exit 3, nothing sent", async () => {
    const otherKey = join(ctx.local.root, "other_host_key");
    generateKey(otherKey);
    const pinned = sha256Fingerprint(`${otherKey}.pub`);
    writeFileSync(ctx.local.configPath, JSON.stringify({ ...ctx.local.config, remote: { ...ctx.local.config.remote, hostKeySha256: pinned } }));
    const result = await runAgent(["run", "--config", ctx.local.configPath]);
    expect(result.code).toBe(3);
    expect(result.stderr).toBe(
      `plutus-sync: host key mismatch for 127.0.0.1:${ctx.erp.port}: expected ${pinned}, server presented ${ctx.erp.hostKeySha256}; nothing was sent. ` +
        "If the ERP's host key was changed on purpose, update remote.hostKeySha256.\n",
    );
    expect(result.stdout).toBe("plutus-sync: 0/1 delivered, 1 failed, 0 quarantined, 0 deferred in " + /in ([0-9.]+ s)/.exec(result.stdout)![1] + "\n");
    expect(readdirSync(ctx.erp.stagingDir)).toEqual([]);
    expect(readdirSync(ctx.erp.inboxDir)).toEqual([]);
    expect(readdirSync(ctx.local.outbox)).toEqual(["order-1.json"]);
    // The key exchange ended before authentication: sshd never saw a login attempt.
    expect(readFileSync(ctx.erp.logPath, "utf8")).not.toMatch(/Accepted publickey|Failed publickey|Postponed publickey/);
  });

  it.each([0o640, 0o604, 0o644])("refuses a private key with mode %o: exit 2 with the fix", async (mode) => {
    chmodSync(ctx.erp.clientKeyPath, mode);
    try {
      const result = await runAgent(["run", "--config", ctx.local.configPath]);
      expect(result.code).toBe(2);
      const octal = mode.toString(8).padStart(4, "0");
      expect(result.stderr).toBe(
        `plutus-sync: private key ${ctx.erp.clientKeyPath} is readable by group or others (mode ${octal}); run: chmod 600 ${ctx.erp.clientKeyPath}\n`,
      );
      expect(result.stdout).toBe("");
    } finally {
      chmodSync(ctx.erp.clientKeyPath, 0o600);
    }
    expect(readdirSync(ctx.local.outbox)).toEqual(["order-1.json"]);
  });

  it("a wrong key is refused (exit 3) and the agent never falls back to a password", async () => {
    const strangerKey = join(ctx.local.root, "stranger");
    generateKey(strangerKey);
    writeFileSync(ctx.local.configPath, JSON.stringify({ ...ctx.local.config, remote: { ...ctx.local.config.remote, privateKeyPath: strangerKey } }));
    const result = await runAgent(["run", "--config", ctx.local.configPath]);
    expect(result.code).toBe(3);
    expect(result.stderr).toBe(
      `plutus-sync: authentication as plutus-erp@127.0.0.1:${ctx.erp.port} failed: the server did not accept the private key (only public-key authentication is attempted)\n`,
    );
    expect(readFileSync(ctx.erp.logPath, "utf8")).not.toMatch(/password/i);
    expect(readdirSync(ctx.erp.inboxDir)).toEqual([]);
  });
});

describe("a server that offers only password authentication", () => {
  let passwordErp: ErpServer;
  beforeAll(async () => {
    passwordErp = await startErpServer({ passwordOnly: true });
  });
  afterAll(async () => {
    await passwordErp?.destroy();
  });

  it("is refused with exit 3 and no password is ever sent", async () => {
    const side = makeLocalSide(passwordErp);
    try {
      side.writeOrder("order-1.json", sampleOrder(1));
      const result = await runAgent(["run", "--config", side.configPath]);
      expect(result.code).toBe(3);
      expect(result.stderr).toBe(
        `plutus-sync: authentication as plutus-erp@127.0.0.1:${passwordErp.port} failed: the server did not accept the private key (only public-key authentication is attempted)\n`,
      );
      const log = readFileSync(passwordErp.logPath, "utf8");
      expect(log).not.toMatch(/Failed password|Accepted password|password for/);
      expect(readdirSync(passwordErp.inboxDir)).toEqual([]);
      expect(readdirSync(side.outbox)).toEqual(["order-1.json"]);
    } finally {
      side.destroy();
    }
  });
});

describe("check", () => {
  it("prints each verified layer and OK", async () => {
    const result = await runAgent(["check", "--config", ctx.local.configPath]);
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    expect(result.stdout.split("\n")).toEqual([
      `OK local folders: ${ctx.local.outbox}, ${ctx.local.archive}, ${ctx.local.quarantine}, ${ctx.local.stateDir}, ${ctx.local.logDir}`,
      `OK connected to plutus-erp@127.0.0.1:${ctx.erp.port}, host key ${ctx.erp.hostKeySha256}`,
      "OK remote staging /Staging and inbox /Inbox exist and are writable",
      "OK",
      "",
    ]);
    expect(readdirSync(ctx.erp.inboxDir)).toEqual([]);
    expect(readdirSync(ctx.erp.stagingDir)).toEqual([]);
  });

  it("names a missing remote folder (exit 2)", async () => {
    writeFileSync(ctx.local.configPath, JSON.stringify({ ...ctx.local.config, remote: { ...ctx.local.config.remote, inbox: "/Missing" } }));
    const result = await runAgent(["check", "--config", ctx.local.configPath]);
    expect(result.code).toBe(2);
    expect(result.stderr).toBe("plutus-sync: remote inbox /Missing cannot be used: stat /Missing: No such file\n");
  });

  it("rejects an invalid configuration with every problem listed (exit 2)", async () => {
    writeFileSync(ctx.local.configPath, JSON.stringify({ ...ctx.local.config, minAgeSeconds: "10", remote: { ...ctx.local.config.remote, port: 0 } }));
    const result = await runAgent(["check", "--config", ctx.local.configPath]);
    expect(result.code).toBe(2);
    expect(result.stderr).toBe(
      `plutus-sync: invalid configuration in ${ctx.local.configPath}:\n` +
        "  - minAgeSeconds: must be a whole number of seconds from 0 to 86400, not a string (\"10\")\n" +
        "  - remote.port: must be at least 1\n",
    );
    rmSync(ctx.local.configPath);
    const missing = await runAgent(["run", "--config", ctx.local.configPath]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toBe(`plutus-sync: cannot read configuration ${ctx.local.configPath}: ENOENT: no such file or directory, open '${ctx.local.configPath}'\n`);
  });

  it("rejects usage errors with exit 2", async () => {
    const result = await runAgent(["deliver", "--config", "x.json"]);
    expect(result.code).toBe(2);
    expect(result.stderr.split("\n")[0]).toBe('plutus-sync: unknown command "deliver"');
    const noConfig = await runAgent(["run"]);
    expect(noConfig.code).toBe(2);
    expect(noConfig.stderr.split("\n")[0]).toBe("plutus-sync: --config FILE is required");
  });
});
