import { readdirSync, chmodSync, chownSync, readFileSync, writeFileSync, rmSync, linkSync, lstatSync, existsSync, utimesSync } from "node:fs";
import { execFileSync, spawn } from "node:child_process";
import { join } from "node:path";
import { startErpServer, ErpServer, generateKey, sha256Fingerprint } from "../support/sshd";
import { useErpStandIn, makeLocalSide, runAgent, sampleOrder, stagingFiles, lastJsonLine, logEvents, BUNDLE } from "../support/agent";

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
    expect(stagingFiles(ctx.erp.stagingDir)).toEqual([]);
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
      // OpenSSH: named, and no WARNING line follows.
      expect.stringMatching(new RegExp(`^OK connected to plutus-erp@127\\.0\\.0\\.1:${ctx.erp.port}, host key ${ctx.erp.hostKeySha256.replace(/[+/]/g, "\\$&")}, server software OpenSSH_\\d[\\w.]*$`)),
      "OK remote staging /Staging and inbox /Inbox exist and are writable",
      "OK",
      "",
    ]);
    expect(readdirSync(ctx.erp.inboxDir)).toEqual([]);
    expect(stagingFiles(ctx.erp.stagingDir)).toEqual([]);
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
    const firstLine = async (args: string[]) => {
      const r = await runAgent(args);
      expect(r.code).toBe(2);
      return r.stderr.split("\n")[0];
    };
    expect(await firstLine(["resolve", "--config", ctx.local.configPath, "--delivered"])).toBe("plutus-sync: resolve needs the name of the in-doubt order (plutus-sync status lists them)");
    expect(await firstLine(["resolve", "--config", ctx.local.configPath, "a.json"])).toBe("plutus-sync: resolve needs exactly one of --delivered or --resend");
    expect(await firstLine(["resolve", "--config", ctx.local.configPath, "a.json", "--delivered", "--resend"])).toBe("plutus-sync: resolve needs exactly one of --delivered or --resend");
    expect(await firstLine(["resolve", "--config", ctx.local.configPath, "a.json", "b.json", "--resend"])).toBe('plutus-sync: unexpected argument "b.json"');
    expect(await firstLine(["run", "--config", ctx.local.configPath, "--resend"])).toBe("plutus-sync: --delivered and --resend belong to resolve");
    expect(await firstLine(["resolve", "--config", ctx.local.configPath, "a.json", "--resend"])).toBe(`plutus-sync: no delivery of a.json is in doubt in ${ctx.local.stateDir} (plutus-sync status lists them)`);
  });
});

describe("hostile outbox contents (the web shop's account is untrusted)", () => {
  const withConfig = (changes: Record<string, unknown>) => writeFileSync(ctx.local.configPath, JSON.stringify({ ...ctx.local.config, ...changes }));
  const note = (name: string) => JSON.parse(readFileSync(join(ctx.local.quarantine, `${name}.reason`), "utf8")) as Record<string, unknown>;
  const rawLog = () => readdirSync(ctx.local.logDir).map((f) => readFileSync(join(ctx.local.logDir, f), "utf8")).join("");

  it("20,000 names that are not UTF-8 neither stall the pass past its deadline nor keep the valid order from the ERP", async () => {
    const junk = 20_000;
    const outboxBytes = Buffer.from(ctx.local.outbox + "/");
    for (let i = 0; i < junk; i++) writeFileSync(Buffer.concat([outboxBytes, Buffer.from(`junk-${i}-`), Buffer.from([0xff, 0xfe]), Buffer.from(".json")]), "{}");
    withConfig({ passDeadlineSeconds: 5, operationTimeoutSeconds: 2 });
    const result = await runAgent(["run", "--config", ctx.local.configPath, "--json"]);
    const summary = lastJsonLine(result.stdout);
    expect(result.code).toBe(0);
    expect(summary).toMatchObject({ found: junk + 1, delivered: 1, failed: 0 });
    expect(readFileSync(join(ctx.erp.inboxDir, "order-1.json"), "utf8")).toBe(sampleOrder(1));
    // Junk still to be moved waits for the next pass, counted as deferred: nothing written off.
    expect((summary.quarantined as number) + (summary.deferred as number)).toBe(junk);
    const quarantinedFiles = readdirSync(ctx.local.quarantine).filter((n) => !n.endsWith(".reason"));
    expect(quarantinedFiles.length).toBe(summary.quarantined);
    expect(readdirSync(ctx.local.outbox).length).toBe(summary.deferred);
    // The pass stops moving junk when no new work may start, and so ends by its deadline (5 s);
    // 2 s of slack for a loaded machine. Before, listing alone took about a minute.
    expect(summary.durationMs as number).toBeLessThan(5_000 + 2_000);
    if ((summary.deferred as number) > 0) {
      // Every deferred name is logged: held back from quarantine, or (on a machine slow enough that
      // the deadline came first) never looked at.
      const events = logEvents(ctx.local.logDir);
      const postponed = events.find((e) => e.event === "quarantine-postponed");
      const notLookedAt = events.find((e) => e.event === "scan-postponed");
      if (notLookedAt) expect(notLookedAt).toMatchObject({ level: "warn", count: expect.any(Number) });
      const notLookedAtCount = Number(notLookedAt?.count ?? 0);
      if (notLookedAtCount < (summary.deferred as number)) expect(postponed).toMatchObject({ level: "warn", count: (summary.deferred as number) - notLookedAtCount, quarantinedThisPass: summary.quarantined });
      else expect(postponed).toBeUndefined();
    }
    const reason = JSON.parse(readFileSync(join(ctx.local.quarantine, `${quarantinedFiles[0]}.reason`), "utf8")).reason;
    expect(reason).toBe("file name is not valid UTF-8");
  }, 120_000);

  it("a file with a second hard link (a file from elsewhere linked in) is quarantined with the reason, never sent", async () => {
    const elsewhere = join(ctx.local.root, "agent-secret.json");
    writeFileSync(elsewhere, '{"privateKeyPath":"/etc/plutus/id_ed25519","note":"not an order"}');
    const old = new Date(Date.now() - 60_000);
    utimesSync(elsewhere, old, old);
    linkSync(elsewhere, join(ctx.local.outbox, "linked.json"));
    const result = await runAgent(["run", "--config", ctx.local.configPath, "--json"]);
    expect(result.code).toBe(0);
    expect(lastJsonLine(result.stdout)).toMatchObject({ found: 2, delivered: 1, quarantined: 1 });
    expect(readdirSync(ctx.erp.inboxDir)).toEqual(["order-1.json"]);
    expect(note("linked.json").reason).toBe("file has 2 hard links (another name for it may be outside the outbox); an order file has exactly one");
    expect(readFileSync(elsewhere, "utf8")).toBe('{"privateKeyPath":"/etc/plutus/id_ed25519","note":"not an order"}');
  });

  it("an invalid order's content never reaches the quarantine note or the log: the error is given by line and column", async () => {
    ctx.local.writeOrder("broken.json", '{\n  "orderId": "PL-1",\n  "cardPin": "h6-pin-7731",\n  "v": x\n}\n');
    const result = await runAgent(["run", "--config", ctx.local.configPath, "--json"]);
    expect(lastJsonLine(result.stdout)).toMatchObject({ delivered: 1, quarantined: 1 });
    expect(note("broken.json").reason).toBe("invalid JSON: unexpected character at line 4, column 8");
    expect(logEvents(ctx.local.logDir).find((e) => e.event === "quarantined")).toMatchObject({ file: "broken.json", reason: "invalid JSON: unexpected character at line 4, column 8" });
    for (const text of [rawLog(), readFileSync(join(ctx.local.quarantine, "broken.json.reason"), "utf8"), result.stdout, result.stderr]) {
      expect(text).not.toContain("7731");
      expect(text).not.toContain("cardPin");
    }
  });
});

describe("a folder the web shop's account keeps open", () => {
  // Real accounts: the web shop's (makes the folder) and the agent's (not root, as deployed).
  const web = "h6www";
  const agent = "h6agent";
  const ids = (name: string) => ({ uid: Number(execFileSync("id", ["-u", name], { encoding: "utf8" })), gid: Number(execFileSync("id", ["-g", name], { encoding: "utf8" })) });
  beforeAll(() => {
    for (const name of [web, agent]) execFileSync("useradd", ["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name]);
  });
  afterAll(() => {
    for (const name of [web, agent]) execFileSync("userdel", [name]);
  });

  /** Runs a command as `who` (no supplementary groups); resolves with its stdout once it printed `want`. */
  function spawnAs(who: { uid: number; gid: number }, command: string[]) {
    const child = spawn("setpriv", [`--reuid=${who.uid}`, `--regid=${who.gid}`, "--clear-groups", ...command], { stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    const printed = (want: string) =>
      new Promise<string>((resolve, reject) => {
        const check = () => (stdout.includes(want) ? resolve(stdout) : undefined);
        child.stdout.on("data", check);
        child.on("exit", () => (stdout.includes(want) ? resolve(stdout) : reject(new Error(`exited without "${want}": ${stdout} ${stderr}`))));
        check();
      });
    const exited = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => child.on("close", (code) => resolve({ code, stdout, stderr })));
    return { child, printed, exited };
  }

  it("is set aside in the outbox, not moved into quarantine, so writes through the kept handle never land in the agent's folder", async () => {
    const webIds = ids(web);
    const agentIds = ids(agent);
    // As install.sh lays it out: the agent owns its folders; the outbox is agent:web-group 2770.
    const key = join(ctx.local.root, "id_agent");
    writeFileSync(key, readFileSync(ctx.erp.clientKeyPath), { mode: 0o600 });
    writeFileSync(ctx.local.configPath, JSON.stringify({ ...ctx.local.config, remote: { ...ctx.local.config.remote, privateKeyPath: key } }));
    for (const path of [ctx.local.root, key]) chownSync(path, agentIds.uid, agentIds.gid);
    chmodSync(ctx.local.root, 0o711);
    chownSync(ctx.local.outbox, agentIds.uid, webIds.gid);
    chmodSync(ctx.local.outbox, 0o2770);
    const folder = join(ctx.local.outbox, "folder.json");
    // The web application makes the folder (mode 0755: the agent cannot write in it), keeps it as
    // its working directory, and after the pass writes into it relative to that handle.
    const webApp = spawnAs(webIds, [
      process.execPath,
      "-e",
      `const fs = require("fs"); fs.mkdirSync(${JSON.stringify(folder)}, 0o755); process.chdir(${JSON.stringify(folder)}); console.log("ready");
       process.stdin.once("data", () => { try { fs.writeFileSync("planted", "from the web app"); console.log("wrote"); } catch (e) { console.log(e.code); } process.exit(0); });`,
    ]);
    try {
      await webApp.printed("ready");
      const old = new Date(Date.now() - 60_000);
      utimesSync(folder, old, old);
      const run = await spawnAs(agentIds, [process.execPath, BUNDLE, "run", "--config", ctx.local.configPath, "--json"]).exited;
      expect(run.stderr).toBe("");
      expect(run.code).toBe(0);
      expect(lastJsonLine(run.stdout)).toMatchObject({ found: 2, delivered: 1, quarantined: 1, failed: 0 });
      webApp.child.stdin.write("go\n");
      await webApp.printed("wrote");
    } finally {
      webApp.child.kill();
    }
    const setAside = join(ctx.local.outbox, "folder.json.set-aside");
    expect(readdirSync(ctx.local.outbox)).toEqual(["folder.json.set-aside"]);
    expect(readFileSync(join(setAside, "planted"), "utf8")).toBe("from the web app");
    const reasonNote = JSON.parse(readFileSync(join(ctx.local.quarantine, "folder.json.set-aside.reason"), "utf8"));
    expect(reasonNote).toMatchObject({ file: null, keptInOutboxAs: setAside, originalName: "folder.json", reason: "not a regular file (directory)" });
    // Nothing in the quarantine folder belongs to the web shop's account: only the agent's note.
    const walk = (dir: string): string[] =>
      readdirSync(dir).flatMap((n) => {
        const path = join(dir, n);
        return lstatSync(path).isDirectory() ? [path, ...walk(path)] : [path];
      });
    const entries = walk(ctx.local.quarantine);
    expect(entries.map((p) => p.slice(ctx.local.quarantine.length + 1))).toEqual(["folder.json.set-aside.reason"]);
    for (const path of entries) expect(lstatSync(path).uid).toBe(agentIds.uid);
    expect(existsSync(join(ctx.local.quarantine, "folder.json"))).toBe(false);
    // The operator still sees it counted.
    expect(JSON.parse((await runAgent(["status", "--config", ctx.local.configPath, "--json"])).stdout)).toMatchObject({ quarantined: 1, outbox: { waiting: 0 } });
  });
});
