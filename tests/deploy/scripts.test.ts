/**
 * The release scripts themselves: syntax and shellcheck, and install.sh refusing bad input or an
 * old Node.js with a clear message before it changes anything. Runs as root (install.sh demands it).
 */
import { execFileSync, spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const SCRIPTS = resolve(__dirname, "../../agent/scripts");
const BUILT_BUNDLE = resolve(__dirname, "../../agent/dist/bundle");
const SYSTEM_PATHS = ["/opt/plutus-sync", "/etc/plutus", "/etc/cron.d/plutus-sync"];

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
        "install.sh: say what to do: --stdin, --config FILE --key FILE, or --uninstall\n" +
        "usage: install.sh --stdin [--outbox-group GROUP] | --config FILE --key FILE [--outbox-group GROUP] | --uninstall\n",
    });
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
});
