/**
 * The release scripts themselves: syntax and shellcheck, and install.sh refusing bad input or an
 * old Node.js with a clear message before it changes anything. Runs as root (install.sh demands it).
 */
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { chmodSync, chownSync, cpSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import { createServer, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { MachineLock, MACHINE_LOCK_WAIT_MS } from "../support/machineLock";

const SCRIPTS = resolve(__dirname, "../../agent/scripts");
const AGENT_SRC = resolve(__dirname, "../../agent/src");
const BUILT_BUNDLE = resolve(__dirname, "../../agent/dist/bundle");
const SYSTEM_PATHS = ["/opt/plutus-sync", "/etc/plutus", "/etc/cron.d/plutus-sync", "/etc/systemd/system/plutus-sync-watch.service"];
const WWW_DATA = 33;

let scratch: string;
let bundle: string;

function run(file: string, argv: string[], input = ""): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(file, argv, { input, encoding: "utf8" });
  if (r.error) throw r.error;
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const validConfig = {
  outbox: "/var/lib/plutus-scripttest/outbox",
  archive: "/var/lib/plutus-scripttest/archive",
  quarantine: "/var/lib/plutus-scripttest/quarantine",
  stateDir: "/var/lib/plutus-scripttest/state",
  logDir: "/var/log/plutus-scripttest",
  minAgeSeconds: 10,
  remote: {
    host: "192.0.2.1",
    port: 22,
    username: "plutus-sync",
    privateKeyPath: "/etc/plutus/id_ed25519",
    hostKeySha256: `SHA256:${"A".repeat(43)}`,
    inbox: "/Inbox",
    staging: "/Staging",
  },
};
const KEY_LINE = "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW";
const key = `-----BEGIN OPENSSH PRIVATE KEY-----\n${KEY_LINE}\n-----END OPENSSH PRIVATE KEY-----\n`;

function install(document: unknown, extra: string[] = []) {
  return run("bash", [join(bundle, "install.sh"), "--stdin", ...extra], typeof document === "string" ? document : JSON.stringify(document));
}

// Another jest worker may be running the other deploy suite: the same account and system paths.
const deployLock = new MachineLock("deploy");
beforeAll(() => deployLock.acquire(), MACHINE_LOCK_WAIT_MS);

beforeAll(() => {
  if (process.getuid?.() !== 0) throw new Error("these tests run install.sh, which must run as root");
  for (const p of SYSTEM_PATHS) if (existsSync(p)) throw new Error(`${p} exists: plutus-sync is installed here; these tests expect a machine without it`);
  scratch = mkdtempSync(join(tmpdir(), "plutus-scripts-"));
  bundle = join(scratch, "bundle");
  cpSync(BUILT_BUNDLE, bundle, { recursive: true });
});

afterAll(() => {
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

afterEach(() => {
  // Every case below must fail before changing anything.
  for (const p of [...SYSTEM_PATHS, "/var/lib/plutus-scripttest", "/var/log/plutus-scripttest"]) expect(existsSync(p)).toBe(false);
  expect(run("getent", ["passwd", "plutus"]).code).toBe(2);
});

describe("release scripts", () => {
  test("pass bash -n and shellcheck", () => {
    if (!existsSync("/usr/bin/shellcheck")) {
      execFileSync("apt-get", ["install", "-y", "-qq", "shellcheck"], { stdio: "ignore", env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" } });
    }
    for (const script of ["install.sh", "sync_plutus.sh"]) {
      expect(run("bash", ["-n", join(SCRIPTS, script)])).toMatchObject({ code: 0, stderr: "" });
      expect(run("shellcheck", ["--shell=bash", "--severity=style", join(SCRIPTS, script)])).toMatchObject({ code: 0, stdout: "" });
      expect(readFileSync(join(SCRIPTS, script), "utf8").split("\n").slice(0, 1)).toEqual(["#!/usr/bin/env bash"]);
      expect(readFileSync(join(SCRIPTS, script), "utf8")).toContain("\nset -euo pipefail\n");
    }
  });

  test("install.sh without a mode is a usage error", () => {
    expect(run("bash", [join(bundle, "install.sh")])).toEqual({
      code: 2,
      stdout: "",
      stderr:
        "install.sh: error: say what to do: --stdin, --config FILE --key FILE, --upgrade, or --uninstall\n" +
        "usage: install.sh --stdin [--outbox-group GROUP] [--watch|--cron] | --config FILE --key FILE [--outbox-group GROUP] [--watch|--cron] | --upgrade [--outbox-group GROUP] [--watch|--cron] | --uninstall\n",
    });
  });

  test("--watch and --cron exclude each other and do not go with --uninstall", () => {
    const usage =
      "usage: install.sh --stdin [--outbox-group GROUP] [--watch|--cron] | --config FILE --key FILE [--outbox-group GROUP] [--watch|--cron] | --upgrade [--outbox-group GROUP] [--watch|--cron] | --uninstall\n";
    expect(run("bash", [join(bundle, "install.sh"), "--upgrade", "--watch", "--cron"])).toEqual({ code: 2, stdout: "", stderr: `install.sh: error: --watch and --cron exclude each other\n${usage}` });
    expect(run("bash", [join(bundle, "install.sh"), "--uninstall", "--watch"])).toEqual({ code: 2, stdout: "", stderr: `install.sh: error: --watch does not go with --uninstall (it removes both)\n${usage}` });
  });

  test("a document that is not JSON is refused without quoting it (it holds the key)", () => {
    const r = install(`{"agentConfig": {}, "privateKey": "${key}`);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe("install.sh: error: the document on stdin is not valid JSON\n");
    expect(r.stdout).toBe("install.sh: Node.js " + process.versions.node + " at /usr/bin/node\n");
  });

  test("unknown keys, system folders, nested folders and another key path are refused with the reason", () => {
    expect(install({ agentConfig: validConfig, privateKey: key, password: "x" }).stderr).toBe(
      'install.sh: error: unknown key(s) in the document on stdin: "password" (expected agentConfig and privateKey)\n',
    );
    expect(install({ agentConfig: { ...validConfig, outbox: "/var/www" }, privateKey: key }).stderr).toBe(
      "install.sh: error: agentConfig.outbox is a system folder (/var/www); use a folder of its own, e.g. /var/lib/plutus/outbox\n",
    );
    expect(install({ agentConfig: { ...validConfig, stateDir: "/tmp/plutus/state" }, privateKey: key }).stderr).toBe(
      "install.sh: error: agentConfig.stateDir (/tmp/plutus/state) must not be under /tmp (temporary, virtual or managed by install.sh)\n",
    );
    expect(install({ agentConfig: { ...validConfig, archive: `${validConfig.outbox}/archive` }, privateKey: key }).stderr).toBe(
      "install.sh: error: agentConfig.archive (/var/lib/plutus-scripttest/outbox/archive) must not be the same as or inside agentConfig.outbox (/var/lib/plutus-scripttest/outbox)\n",
    );
    expect(install({ agentConfig: { ...validConfig, logDir: "/var/log/../etc" }, privateKey: key }).stderr).toBe(
      "install.sh: error: agentConfig.logDir must be a normalised absolute path (no ./.., no double or trailing slash): /var/log/../etc\n",
    );
    const otherKey = { ...validConfig, remote: { ...validConfig.remote, privateKeyPath: "/root/key" } };
    expect(install({ agentConfig: otherKey, privateKey: key }).stderr).toBe(
      'install.sh: error: agentConfig.remote.privateKeyPath must be /etc/plutus/id_ed25519, where install.sh puts the key (found "/root/key")\n',
    );
    const notAKey = install({ agentConfig: validConfig, privateKey: "ssh-ed25519 AAAA public" });
    expect(notAKey).toMatchObject({
      code: 2,
      stderr: "install.sh: error: the private key is not an OpenSSH or PEM private key (-----BEGIN ... PRIVATE KEY----- ... -----END ... PRIVATE KEY-----)\n",
    });
    expect(install({ agentConfig: validConfig, privateKey: key }, ["--outbox-group", "no-such-group"])).toMatchObject({
      code: 2,
      stderr: "install.sh: error: group no-such-group does not exist: pass the web application's group with --outbox-group (default www-data)\n",
    });
  });

  test("--watch: a folder the unit's ReadWritePaths= cannot name (double quote, backslash, control character) is refused before anything changes", () => {
    const nodeLine = `install.sh: Node.js ${process.versions.node} at /usr/bin/node\n`;
    const quoting: Array<[string, string]> = [
      ["outbox", '/var/lib/plutus-scripttest/out"box'],
      ["quarantine", "/var/lib/plutus-scripttest/quar\\antine"],
      ["stateDir", "/var/lib/plutus-scripttest/state\\"],
      ["logDir", '/var/log/plutus-scripttest/"logs"'],
    ];
    for (const [folder, path] of quoting) {
      expect({ folder, ...install({ agentConfig: { ...validConfig, [folder]: path }, privateKey: key }, ["--watch"]) }).toEqual({
        folder,
        code: 2,
        stdout: nodeLine,
        stderr:
          `install.sh: error: agentConfig.${folder} (${path}) has a double quote or a backslash, which the watch service's unit cannot name (ReadWritePaths=); ` +
          "choose another folder, or install cron only (without --watch; --upgrade --cron)\n",
      });
    }
    // A newline would end the unit's line, a tab splits the word: refused in every mode by the input check.
    for (const [folder, path] of [["archive", "/var/lib/plutus-scripttest/arch\nive"], ["stateDir", "/var/lib/plutus-scripttest/st\tate"]]) {
      expect({ folder, ...install({ agentConfig: { ...validConfig, [folder]: path }, privateKey: key }, ["--watch"]) }).toEqual({
        folder,
        code: 2,
        stdout: nodeLine,
        stderr: `install.sh: error: agentConfig.${folder} must not contain control characters\n`,
      });
    }
    for (const path of [...quoting.map(([, p]) => p), "/var/lib/plutus-scripttest", "/var/log/plutus-scripttest"]) expect(existsSync(path)).toBe(false);
  });

  test("a modified bundle is refused", () => {
    const tampered = join(scratch, "tampered");
    cpSync(bundle, tampered, { recursive: true });
    writeFileSync(join(tampered, "sync_plutus.sh"), "#!/bin/sh\necho tampered\n");
    const r = run("bash", [join(tampered, "install.sh"), "--stdin"], JSON.stringify({ agentConfig: validConfig, privateKey: key }));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      new RegExp(`^install\\.sh: error: the release bundle in ${tampered.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")} does not match its SHA256SUMS \\(incomplete or modified copy\\): .*sync_plutus\\.sh: FAILED`),
    );
  });

  test("Node.js older than 18 stops the installation with what to do", () => {
    // A private mount namespace shows install.sh a Node 16 at /usr/bin/node; the system is untouched.
    const fake = join(scratch, "node16");
    writeFileSync(fake, '#!/bin/sh\nprintf 16.20.2\n', { mode: 0o755 });
    const r = run(
      "unshare",
      ["--mount", "--propagation", "private", "sh", "-c", 'mount --bind "$1" /usr/bin/node && exec bash "$2" --stdin', "sh", fake, join(bundle, "install.sh")],
      JSON.stringify({ agentConfig: validConfig, privateKey: key }),
    );
    expect(r).toEqual({
      code: 1,
      stdout: "",
      stderr:
        "install.sh: error: Node.js 16.20.2 at /usr/bin/node is too old: plutus-sync needs Node.js 18 or later. Ubuntu 24.04 and later ship it ('apt-get install nodejs'); on older releases install Node.js 18+ from NodeSource, then re-run install.sh\n",
    });
  });

  test("with no Node.js, install.sh asks apt-get for the distribution's package and waits for the dpkg lock (first boot)", () => {
    // A private mount namespace lays an overlay on /usr/bin: node whited out (gone, not merely not
    // executable: bash's command -v would still name it) and a recording apt-get. The system is untouched.
    const overlay = mkdtempSync(join(tmpdir(), "plutus-no-node-"));
    try {
      const upper = join(overlay, "upper");
      mkdirSync(upper);
      mkdirSync(join(overlay, "work"));
      execFileSync("mknod", [join(upper, "node"), "c", "0", "0"]);
      const record = join(overlay, "apt-get.calls");
      writeFileSync(join(upper, "apt-get"), `#!/bin/sh\nprintf '%s\\n' "$*" >>'${record}'\nexit 100\n`, { mode: 0o755 });
      const r = run(
        "unshare",
        ["--mount", "--propagation", "private", "sh", "-c", 'mount -t overlay overlay -o "lowerdir=/usr/bin,upperdir=$1/upper,workdir=$1/work" /usr/bin && exec bash "$2" --stdin', "sh", overlay, join(bundle, "install.sh")],
        JSON.stringify({ agentConfig: validConfig, privateKey: key }),
      );
      expect(r).toEqual({
        code: 1,
        stdout: "install.sh: Node.js not found: installing the distribution's nodejs package\n",
        stderr: "install.sh: error: Node.js is not installed and 'apt-get install nodejs' failed; install Node.js 18 or later and re-run\n",
      });
      expect(readFileSync(record, "utf8")).toBe("-o DPkg::Lock::Timeout=600 update -qq\n");
    } finally {
      rmSync(overlay, { recursive: true, force: true });
    }
  });

  test("an unexpected failure still ends with one install.sh: error: line", () => {
    const r = spawnSync("bash", [join(bundle, "install.sh"), "--uninstall"], { env: { ...process.env, TMPDIR: "/nonexistent" }, encoding: "utf8" });
    expect({ code: r.status, stdout: r.stdout }).toEqual({ code: 1, stdout: "" });
    const lines = r.stderr.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^mktemp: failed to create directory via template .\/nonexistent\/plutus-install\.XXXXXX.: No such file or directory$/);
    expect(lines.slice(1)).toEqual([
      expect.stringMatching(/^install\.sh: error: unexpected failure \(exit 1\) at line \d+: work="\$\(mktemp -d "\$\{TMPDIR:-\/tmp\}\/plutus-install\.XXXXXX"\)"$/),
    ]);
  });

  test("install.sh --upgrade without an installation says so and changes nothing", () => {
    expect(run("bash", [join(bundle, "install.sh"), "--upgrade"])).toEqual({
      code: 2,
      stdout: "",
      stderr:
        "install.sh: error: --upgrade: plutus-sync is not installed here (/etc/plutus/agent.json, /etc/plutus/id_ed25519 or /opt/plutus-sync/plutus-sync.cjs is missing); install with --config FILE --key FILE or --stdin\n",
    });
  });

  test("relative --config/--key are read from the folder install.sh was started in, and a missing one is named with its full path", () => {
    const cwd = mkdtempSync(join(tmpdir(), "plutus-scripts-cwd-"));
    try {
      const r = spawnSync("bash", ["./bundle/install.sh", "--config", "./absent.json", "--key", "./id_ed25519"], { cwd: scratch, encoding: "utf8" });
      expect({ code: r.status, stdout: r.stdout, stderr: r.stderr }).toEqual({
        code: 2,
        stdout: "",
        stderr: `install.sh: error: --config ${scratch}/absent.json: no such file\n`,
      });
      const bad = spawnSync("bash", [join(bundle, "install.sh"), "--config", "./agent.json", "--key", "./id_ed25519"], { cwd, encoding: "utf8" });
      expect(bad.stderr).toBe(`install.sh: error: --config ${cwd}/agent.json: no such file\n`);
    } finally {
      rmSync(cwd, { recursive: true, force: true });
    }
  });

  describe("folders whose parents someone else can write are refused before anything changes", () => {
    let base: string;
    beforeEach(() => {
      base = mkdtempSync("/var/lib/plutus-h3chain-");
      chmodSync(base, 0o755);
    });
    afterEach(() => {
      rmSync(base, { recursive: true, force: true });
    });
    const withOutbox = (outbox: string) => ({ agentConfig: { ...validConfig, outbox }, privateKey: key });

    test("a parent owned by www-data, writable by its group www-data, by everyone, or a link", () => {
      const owned = join(base, "owned");
      mkdirSync(owned, { mode: 0o755 });
      chownSync(owned, WWW_DATA, WWW_DATA);
      expect(install(withOutbox(`${owned}/outbox`))).toMatchObject({
        code: 2,
        stderr: `install.sh: error: agentConfig.outbox (${owned}/outbox): ${owned} is owned by www-data, not root; every folder above a plutus-sync folder must be owned by root and writable only by root (or its owner could swap the folder for a link): chown root ${owned}, or choose another folder\n`,
      });
      const groupWritable = join(base, "group");
      mkdirSync(groupWritable);
      chownSync(groupWritable, 0, WWW_DATA);
      chmodSync(groupWritable, 0o775);
      expect(install({ agentConfig: { ...validConfig, logDir: `${groupWritable}/log` }, privateKey: key })).toMatchObject({
        code: 2,
        stderr: `install.sh: error: agentConfig.logDir (${groupWritable}/log): ${groupWritable} is writable by group www-data, which the web application's account www-data belongs to; every folder above a plutus-sync folder must be writable only by root: chmod g-w ${groupWritable}, or choose another folder\n`,
      });
      const everyone = join(base, "everyone");
      mkdirSync(everyone);
      chmodSync(everyone, 0o1777);
      expect(install({ agentConfig: { ...validConfig, stateDir: `${everyone}/state` }, privateKey: key })).toMatchObject({
        code: 2,
        stderr: `install.sh: error: agentConfig.stateDir (${everyone}/state): ${everyone} is writable by everyone (mode 1777); every folder above a plutus-sync folder must be writable only by root: chmod o-w ${everyone}, or choose another folder\n`,
      });
      const link = join(base, "link");
      symlinkSync(owned, link);
      expect(install(withOutbox(`${link}/outbox`))).toMatchObject({
        code: 2,
        stderr: `install.sh: error: agentConfig.outbox (${link}/outbox): ${link} is a symbolic link; plutus-sync folders and the folders above them must be real folders\n`,
      });
    });

    test("a group-writable parent is accepted when the web application's accounts are not in that group (Ubuntu's /var/log)", () => {
      const syslogLike = join(base, "log");
      mkdirSync(syslogLike);
      chownSync(syslogLike, 0, 4); // adm: www-data is not a member
      chmodSync(syslogLike, 0o775);
      const shop = join(base, "shop");
      mkdirSync(shop);
      chownSync(shop, WWW_DATA, WWW_DATA);
      // The outbox's chain passes; the log folder's (checked last) is refused, before anything changes.
      const r = install({ agentConfig: { ...validConfig, outbox: `${syslogLike}/outbox`, logDir: `${shop}/log` }, privateKey: key });
      expect(r).toMatchObject({ code: 2, stderr: expect.stringMatching(new RegExp(`^install\\.sh: error: agentConfig\\.logDir \\(${shop}/log\\): ${shop} is owned by www-data`)) });
    }, 30_000);

    test("www-data swapping the outbox for a link to a root-only folder while install.sh runs: refused every time, nothing outside changes", async () => {
      const shop = join(base, "shop");
      mkdirSync(shop, { mode: 0o755 });
      chownSync(shop, WWW_DATA, WWW_DATA);
      const victim = join(base, "victim");
      mkdirSync(victim, { mode: 0o700 });
      writeFileSync(join(victim, "secret"), "root only\n", { mode: 0o600 });
      const victimState = () => execFileSync("stat", ["-c", "%a %U:%G %n", victim, join(victim, "secret")]).toString() + execFileSync("getfacl", ["-c", "--absolute-names", victim]).toString();
      const before = victimState();
      // The web application's account, flipping shop/outbox between a real folder and a link as fast as it can.
      const swapper = spawn(process.execPath, ["-e", `
        const fs = require("fs");
        const [shop, victim] = process.argv.slice(1);
        for (;;) {
          try { fs.rmSync(shop + "/outbox", { recursive: true, force: true }); fs.mkdirSync(shop + "/outbox"); } catch {}
          try { fs.symlinkSync(victim, shop + "/.l"); fs.renameSync(shop + "/.l", shop + "/outbox"); } catch {}
        }`, shop, victim], { uid: WWW_DATA, gid: WWW_DATA, stdio: "ignore" });
      try {
        for (let i = 0; i < 3; i++) {
          const r = install(withOutbox(`${shop}/outbox`));
          expect(r).toMatchObject({ code: 2, stderr: expect.stringContaining(`install.sh: error: agentConfig.outbox (${shop}/outbox): ${shop} is owned by www-data, not root;`) });
        }
      } finally {
        swapper.kill("SIGKILL");
        await new Promise((r) => swapper.once("exit", r));
      }
      expect(victimState()).toBe(before);
      expect(lstatSync(victim).isDirectory()).toBe(true);
    }, 60_000);
  });

  test("sync_plutus.sh passes none of the agent's PLUTUS_* test hooks on, nor any other PLUTUS_* variable", () => {
    // Every PLUTUS_* name the agent reads, found in its source: a hook added later is covered too.
    const sources = readdirSync(AGENT_SRC).filter((f) => f.endsWith(".ts")).map((f) => readFileSync(join(AGENT_SRC, f), "utf8")).join("\n");
    const hooks = [...new Set([...sources.matchAll(/process\.env\.(PLUTUS_[A-Z0-9_]+)/g)].map((m) => m[1]))].sort();
    expect(hooks).toEqual(expect.arrayContaining(["PLUTUS_CRASH_AT", "PLUTUS_DURABLE_COPY_DIR", "PLUTUS_PAUSE_AT"]));
    const home = mkdtempSync(join(tmpdir(), "plutus-scripts-env-"));
    try {
      chmodSync(home, 0o755);
      writeFileSync(join(home, "plutus-sync.cjs"), 'process.stdout.write(JSON.stringify({ argv: process.argv.slice(2), plutus: Object.keys(process.env).filter((k) => k.startsWith("PLUTUS_")) }));\n');
      const config = join(home, "agent.json");
      writeFileSync(config, JSON.stringify({ passDeadlineSeconds: 5 }));
      const env: NodeJS.ProcessEnv = { PATH: "/usr/bin:/bin", PLUTUS_HOME: home, PLUTUS_CONFIG: config, PLUTUS_NODE: process.execPath, PLUTUS_TEST_BUNDLE: "/x", PLUTUS_FUTURE_HOOK: "1" };
      for (const hook of hooks) env[hook] = hook === "PLUTUS_CRASH_AT" ? "after-rename:1" : hook === "PLUTUS_PAUSE_AT" ? "after-rename-refused" : home;
      const r = spawnSync("bash", [join(SCRIPTS, "sync_plutus.sh"), "--json"], { env, encoding: "utf8" });
      expect({ code: r.status, stderr: r.stderr, stdout: JSON.parse(r.stdout) }).toEqual({ code: 0, stderr: "", stdout: { argv: ["run", "--config", config, "--json"], plutus: [] } });
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
  });

  test("a real pass stopped by sync_plutus.sh at its hard limit is a failed run for status and health, and the next pass counts on from it", async () => {
    const root = mkdtempSync(join(tmpdir(), "plutus-scripts-killed-"));
    // An "ERP" that accepts and never speaks: the pass waits on it.
    const sockets = new Set<Socket>();
    const silent = createServer((socket) => {
      sockets.add(socket);
      socket.on("error", () => undefined);
    });
    await new Promise<void>((r) => silent.listen(0, "127.0.0.1", () => r()));
    const port = (silent.address() as { port: number }).port;
    let agentPid = 0;
    try {
      const dirs = { outbox: join(root, "outbox"), archive: join(root, "archive"), quarantine: join(root, "quarantine"), stateDir: join(root, "state"), logDir: join(root, "log") };
      mkdirSync(dirs.outbox);
      execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", join(root, "id_ed25519")]);
      const config = join(root, "agent.json");
      writeFileSync(config, JSON.stringify({ ...dirs, passDeadlineSeconds: 5, minAgeSeconds: 2, retries: 0, remote: { ...validConfig.remote, host: "127.0.0.1", port, privateKeyPath: join(root, "id_ed25519") } }));
      writeFileSync(join(dirs.outbox, "order-1.json"), '{"orderId":"PL-1"}');
      utimesSync(join(dirs.outbox, "order-1.json"), new Date(Date.now() - 60_000), new Date(Date.now() - 60_000));
      const env = { PATH: "/usr/bin:/bin", PLUTUS_HOME: bundle, PLUTUS_CONFIG: config };
      const syncPlutus = () => {
        const child = spawn("bash", [join(SCRIPTS, "sync_plutus.sh")], { env, stdio: ["ignore", "pipe", "pipe"] });
        let stderr = "";
        child.stderr.on("data", (d) => (stderr += d));
        return { child, done: new Promise<{ code: number | null; stderr: string }>((r) => child.once("close", (code) => r({ code, stderr }))) };
      };
      // The pass is stopped (as a hung kernel call or a saved VM would leave it) once it holds its lock:
      // neither its abort timer nor its watchdog can run; timeout's SIGTERM (with SIGCONT) at 35 s ends it.
      const first = syncPlutus();
      const lock = join(dirs.stateDir, "pass.lock");
      for (let waited = 0; agentPid === 0; waited++) {
        try {
          agentPid = JSON.parse(readFileSync(lock, "utf8")).pid;
        } catch {
          if (waited > 20_000) throw new Error("the pass never took its lock");
          await new Promise((r) => setTimeout(r, 5));
        }
      }
      process.kill(agentPid, "SIGSTOP");
      const guard = setTimeout(() => first.child.kill("SIGKILL"), 100_000);
      const killed = await first.done;
      clearTimeout(guard);
      expect(killed).toEqual({
        code: 1,
        stderr: "sync_plutus.sh: the pass was still running 35 s after it started (passDeadlineSeconds 5 + 30 s) and was stopped; the next pass goes on from there (its journal settles whatever this one left in doubt)\n",
      });
      const lockedAt = new Date(JSON.parse(readFileSync(lock, "utf8")).startedAt).toISOString();
      const agent = (...argv: string[]) => run(process.execPath, [join(bundle, "plutus-sync.cjs"), ...argv, "--config", config]);
      const status = agent("status", "--json");
      expect(status.code).toBe(0);
      expect(JSON.parse(status.stdout)).toMatchObject({
        lastRun: { startedAt: lockedAt, exitCode: 1, consecutiveFailedRuns: 1, error: expect.stringMatching(/^the pass started at .* did not finish: it was stopped \(hard limit, watchdog, kill or crash\)/) },
        consecutiveFailedRuns: 1,
      });
      expect(JSON.parse(agent("health", "--json").stdout).facts).toMatchObject({ lastRunAt: lockedAt, lastRunExitCode: 1, consecutiveFailedRuns: 1 });

      // The next cron pass: the ERP is gone now (exit 3), the second failed run in a row.
      for (const socket of sockets) socket.destroy();
      await new Promise((r) => silent.close(r));
      const next = await syncPlutus().done;
      expect(next.code).toBe(3);
      expect(JSON.parse(agent("status", "--json").stdout)).toMatchObject({ lastRun: { exitCode: 3 }, consecutiveFailedRuns: 2 });
      expect(agent("health").stdout).toMatch(/^PLUTUS-SYNC CRITICAL - no pass has succeeded yet; 2 consecutive failed runs \(last exit 3: /);
      expect(existsSync(join(dirs.outbox, "order-1.json"))).toBe(true);
    } finally {
      if (agentPid) spawnSync("kill", ["-CONT", String(agentPid)]);
      for (const socket of sockets) socket.destroy();
      if (silent.listening) silent.close();
      rmSync(root, { recursive: true, force: true });
    }
  }, 150_000);

  test("sync_plutus.sh stops a pass whose event loop never returns at passDeadlineSeconds + 30 s, and never passes PLUTUS_CRASH_AT on", async () => {
    const home = mkdtempSync(join(tmpdir(), "plutus-scripts-hang-"));
    try {
      chmodSync(home, 0o755);
      // Stands in for the agent: reports what it was given, then spins with SIGTERM caught (a busy loop
      // never runs the handler, so only SIGKILL ends it).
      writeFileSync(join(home, "plutus-sync.cjs"), [
        'require("fs").writeFileSync(__dirname + "/pid", String(process.pid));',
        'process.stderr.write("stand-in PLUTUS_CRASH_AT=" + (process.env.PLUTUS_CRASH_AT ?? "unset") + "\\n");',
        'process.on("SIGTERM", () => {});',
        "for (;;) {}",
        "",
      ].join("\n"));
      writeFileSync(join(home, "agent.json"), JSON.stringify({ passDeadlineSeconds: 5 }));
      const started = Date.now();
      const child = spawn("bash", [join(SCRIPTS, "sync_plutus.sh")], {
        env: { PATH: "/usr/bin:/bin", PLUTUS_HOME: home, PLUTUS_CONFIG: join(home, "agent.json"), PLUTUS_CRASH_AT: "after-rename:1" },
        stdio: ["ignore", "pipe", "pipe"],
      });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (d) => (stdout += d));
      child.stderr.on("data", (d) => (stderr += d));
      const guard = setTimeout(() => child.kill("SIGKILL"), 100_000);
      const code = await new Promise<number | null>((r) => child.once("close", (c) => r(c)));
      clearTimeout(guard);
      const seconds = (Date.now() - started) / 1000;
      expect({ code, stdout, stderr }).toEqual({
        code: 1,
        stdout: "",
        stderr:
          "stand-in PLUTUS_CRASH_AT=unset\n" +
          "sync_plutus.sh: the pass was still running 35 s after it started (passDeadlineSeconds 5 + 30 s) and was stopped; the next pass goes on from there (its journal settles whatever this one left in doubt)\n",
      });
      // SIGTERM at 35 s was ignored; SIGKILL 10 s later ended it (a loaded machine may add a little).
      expect(seconds).toBeGreaterThanOrEqual(44);
      expect(seconds).toBeLessThan(90);
      // Gone (or a zombie waiting for init to reap it: timeout kills its own process group too).
      const pid = readFileSync(join(home, "pid"), "utf8");
      const state = () => (existsSync(`/proc/${pid}/stat`) ? readFileSync(`/proc/${pid}/stat`, "utf8").replace(/^.*\) /s, "")[0] : "gone");
      for (let waited = 0; waited < 50 && !["gone", "Z"].includes(state()); waited++) await new Promise((r) => setTimeout(r, 100));
      expect(["gone", "Z"]).toContain(state());
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
  }, 120_000);
});

afterAll(() => deployLock.release());
