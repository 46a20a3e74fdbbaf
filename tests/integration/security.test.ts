import { readdirSync, chmodSync, readFileSync, writeFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { startErpServer, ErpServer, generateKey, sha256Fingerprint } from "../support/sshd";
import { makeLocalSide, runAgent, sampleOrder, LocalSide } from "../support/agent";

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
  local.writeOrder("order-1.json", sampleOrder(1));
});
afterEach(() => local.destroy());

describe("security defaults", () => {
  it("refuses a server whose host key is not the pinned one: exit 3, nothing sent", async () => {
    const otherKey = join(local.root, "other_host_key");
    generateKey(otherKey);
    const pinned = sha256Fingerprint(`${otherKey}.pub`);
    writeFileSync(local.configPath, JSON.stringify({ ...local.config, remote: { ...local.config.remote, hostKeySha256: pinned } }));
    const result = await runAgent(["run", "--config", local.configPath]);
    expect(result.code).toBe(3);
    expect(result.stderr).toBe(
      `plutus-sync: host key mismatch for 127.0.0.1:${erp.port}: expected ${pinned}, server presented ${erp.hostKeySha256}; nothing was sent. ` +
        "If the ERP's host key was changed on purpose, update remote.hostKeySha256.\n",
    );
    expect(result.stdout).toBe("plutus-sync: 0/1 delivered, 1 failed, 0 quarantined, 0 deferred in " + /in ([0-9.]+ s)/.exec(result.stdout)![1] + "\n");
    expect(readdirSync(erp.stagingDir)).toEqual([]);
    expect(readdirSync(erp.inboxDir)).toEqual([]);
    expect(readdirSync(local.outbox)).toEqual(["order-1.json"]);
    // The key exchange ended before authentication: sshd never saw a login attempt.
    expect(readFileSync(erp.logPath, "utf8")).not.toMatch(/Accepted publickey|Failed publickey|Postponed publickey/);
  });

  it.each([0o640, 0o604, 0o644])("refuses a private key with mode %o: exit 2 with the fix", async (mode) => {
    chmodSync(erp.clientKeyPath, mode);
    try {
      const result = await runAgent(["run", "--config", local.configPath]);
      expect(result.code).toBe(2);
      const octal = mode.toString(8).padStart(4, "0");
      expect(result.stderr).toBe(
        `plutus-sync: private key ${erp.clientKeyPath} is readable by group or others (mode ${octal}); run: chmod 600 ${erp.clientKeyPath}\n`,
      );
      expect(result.stdout).toBe("");
    } finally {
      chmodSync(erp.clientKeyPath, 0o600);
    }
    expect(readdirSync(local.outbox)).toEqual(["order-1.json"]);
  });

  it("a wrong key is refused (exit 3) and the agent never falls back to a password", async () => {
    const strangerKey = join(local.root, "stranger");
    generateKey(strangerKey);
    writeFileSync(local.configPath, JSON.stringify({ ...local.config, remote: { ...local.config.remote, privateKeyPath: strangerKey } }));
    const result = await runAgent(["run", "--config", local.configPath]);
    expect(result.code).toBe(3);
    expect(result.stderr).toBe(
      `plutus-sync: authentication as plutus-erp@127.0.0.1:${erp.port} failed: the server did not accept the private key (only public-key authentication is attempted)\n`,
    );
    expect(readFileSync(erp.logPath, "utf8")).not.toMatch(/password/i);
    expect(readdirSync(erp.inboxDir)).toEqual([]);
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
    const result = await runAgent(["check", "--config", local.configPath]);
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    expect(result.stdout.split("\n")).toEqual([
      `OK local folders: ${local.outbox}, ${local.archive}, ${local.quarantine}, ${local.stateDir}, ${local.logDir}`,
      `OK connected to plutus-erp@127.0.0.1:${erp.port}, host key ${erp.hostKeySha256}`,
      "OK remote staging /Staging and inbox /Inbox exist and are writable",
      "OK",
      "",
    ]);
    expect(readdirSync(erp.inboxDir)).toEqual([]);
    expect(readdirSync(erp.stagingDir)).toEqual([]);
  });

  it("names a missing remote folder (exit 2)", async () => {
    writeFileSync(local.configPath, JSON.stringify({ ...local.config, remote: { ...local.config.remote, inbox: "/Missing" } }));
    const result = await runAgent(["check", "--config", local.configPath]);
    expect(result.code).toBe(2);
    expect(result.stderr).toBe("plutus-sync: remote inbox /Missing cannot be used: stat /Missing: No such file\n");
  });

  it("rejects an invalid configuration with every problem listed (exit 2)", async () => {
    writeFileSync(local.configPath, JSON.stringify({ ...local.config, minAgeSeconds: "10", remote: { ...local.config.remote, port: 0 } }));
    const result = await runAgent(["check", "--config", local.configPath]);
    expect(result.code).toBe(2);
    expect(result.stderr).toBe(
      `plutus-sync: invalid configuration in ${local.configPath}:\n` +
        "  - minAgeSeconds: must be a whole number of seconds from 0 to 86400\n" +
        "  - remote.port: must be at least 1 port\n",
    );
    rmSync(local.configPath);
    const missing = await runAgent(["run", "--config", local.configPath]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toBe(`plutus-sync: cannot read configuration ${local.configPath}: ENOENT: no such file or directory, open '${local.configPath}'\n`);
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
