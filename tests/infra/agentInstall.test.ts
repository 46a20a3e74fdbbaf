/*
 * Runs the install step the program generates (agent-install: command text and stdin, recorded
 * under mocks) for real with bash on this host, the way the web VM's admin account runs it over
 * SSH. Two stand-ins: `sudo` (a script on PATH that drops -n and runs the rest, as root already),
 * and /tmp, replaced by a private folder (also given as TMPDIR). The bundle's install.sh is a
 * stand-in that records how it was run.
 *
 * The attacker is the web shop's account: it can create anything in /tmp before the step runs,
 * e.g. after a reboot emptied it. It plants folders with its own install.sh under the names a
 * deployment used or might use.
 */
import { spawnSync } from "node:child_process";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { runProgram, SECRETS } from "./harness";
import { renderInstallStdin } from "../../infra/agentDeployment";
import type { AgentConfig } from "@plutus/shared";

let root: string;
let tmp: string;
let bin: string;
let record: string;
let install: { create: string; stdin: string };
let plantedFolders: string[];

/** A bundle like `npm run build` writes, whose install.sh records its arguments, folder and stdin. */
function writeRecordingBundle(dir: string): void {
  fs.mkdirSync(dir);
  const files: Record<string, string> = {
    "plutus-sync.cjs": "#!/usr/bin/env node\nconsole.log('plutus-sync fixture');\n",
    "sync_plutus.sh": "#!/bin/sh\nexec node /opt/plutus-sync/plutus-sync.cjs run\n",
    "install.sh": [
      "#!/bin/bash",
      "set -eu",
      'here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"',
      `out=${record}`,
      'mkdir "$out"',
      'printf "%s\\n" "$*" >"$out/args"',
      'printf "%s\\n" "$here" >"$out/dir"',
      'stat -c "%a %U" "$(dirname "$here")" >"$out/parent"',
      '(cd "$here" && sha256sum --check --quiet SHA256SUMS) >"$out/sums" 2>&1 && echo ok >>"$out/sums"',
      'cat >"$out/stdin"',
      "echo 'install.sh stand-in: installed'",
      "",
    ].join("\n"),
  };
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), text, { mode: 0o755 });
  const sums = Object.entries(files).map(([name, text]) => `${crypto.createHash("sha256").update(text).digest("hex")}  ${name}\n`);
  fs.writeFileSync(path.join(dir, "SHA256SUMS"), sums.join(""));
}

/** What the web shop's account plants: a folder with an install.sh that records it ran and what it read. */
function plant(dir: string): void {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, "install.sh"), `#!/bin/bash\ntouch ${root}/PLANTED-RAN\ncat >${root}/planted-stdin\n`, { mode: 0o755 });
  for (const f of ["plutus-sync.cjs", "sync_plutus.sh", "SHA256SUMS"]) fs.writeFileSync(path.join(dir, f), "");
}

function runInstallStep(stdin: string) {
  const script = install.create.split("/tmp/").join(`${tmp}/`);
  const r = spawnSync("bash", ["-c", script], {
    input: stdin,
    encoding: "utf8",
    env: { PATH: `${bin}:${process.env.PATH}`, TMPDIR: tmp, HOME: root, LC_ALL: "C" },
  });
  if (r.error) throw r.error;
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The entries of the private /tmp that the attacker did not plant. */
const leftInTmp = () => fs.readdirSync(tmp).filter((f) => !plantedFolders.includes(path.join(tmp, f)));

beforeAll(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), "plutus-install-step-"));
  tmp = path.join(root, "tmp");
  bin = path.join(root, "bin");
  record = path.join(root, "ran");
  fs.mkdirSync(tmp, { mode: 0o1777 });
  fs.mkdirSync(bin);
  fs.writeFileSync(path.join(bin, "sudo"), '#!/bin/sh\nif [ "${1:-}" = -n ]; then shift; fi\nexec "$@"\n', { mode: 0o755 });
  const bundleDir = path.join(root, "bundle");
  writeRecordingBundle(bundleDir);
  const run = await runProgram({ "plutus:agentBundleDir": bundleDir });
  const inputs = run.byName("agent-install").inputs;
  install = { create: inputs.create, stdin: inputs.stdin };
  // Every name a deployment of this bundle used (the old /tmp/plutus-sync-bundle-<12 hex>) or whose
  // pattern it shows, with look-alike random parts.
  const checksum = crypto.createHash("sha256").update(fs.readFileSync(path.join(bundleDir, "SHA256SUMS"))).digest("hex");
  plantedFolders = [`plutus-sync-bundle-${checksum.slice(0, 12)}`, "plutus-sync-bundle.AAAAAAAAAA", "plutus-sync-bundle.0123456789"].map((n) => path.join(tmp, n));
  for (const dir of plantedFolders) plant(dir);
}, 60_000);

afterAll(() => {
  if (root) fs.rmSync(root, { recursive: true, force: true });
});

beforeEach(() => {
  fs.rmSync(record, { recursive: true, force: true });
  fs.rmSync(path.join(root, "PLANTED-RAN"), { force: true });
});

test("installs from a fresh root-only folder it unpacks itself, never from a planted one, and removes it", () => {
  const r = runInstallStep(install.stdin);
  expect({ plantedInstallRan: fs.existsSync(path.join(root, "PLANTED-RAN")) }).toEqual({ plantedInstallRan: false });
  expect(r).toEqual({ code: 0, stdout: "install.sh stand-in: installed\n", stderr: "" });
  const read = (f: string) => fs.readFileSync(path.join(record, f), "utf8");
  expect(read("args")).toBe("--stdin --cron\n");
  // the bundle's own folder sits in a fresh mktemp folder under TMPDIR: random name, root, 0700
  const dir = read("dir").trim();
  expect(dir).toMatch(new RegExp(`^${tmp}/plutus-sync-bundle\\.[A-Za-z0-9]{10}/bundle$`));
  expect(plantedFolders).not.toContain(path.dirname(dir));
  expect(read("parent")).toBe("700 root\n");
  expect(read("sums")).toBe("ok\n");
  // install.sh gets exactly its document (configuration and key) on stdin, nothing of the bundle
  const doc = JSON.parse(read("stdin")) as { agentConfig: AgentConfig; privateKey: string };
  expect(read("stdin")).toBe(renderInstallStdin(doc.agentConfig, doc.privateKey));
  expect(doc.privateKey).toMatch(/^-----BEGIN OPENSSH PRIVATE KEY-----\n/);
  expect(install.create).not.toContain(doc.privateKey.split("\n")[1]);
  // nothing is left behind but what the attacker planted, untouched
  expect(leftInTmp()).toEqual([]);
  for (const dir of plantedFolders) expect(fs.readdirSync(dir).sort()).toEqual(["SHA256SUMS", "install.sh", "plutus-sync.cjs", "sync_plutus.sh"]);
  // run again (a config-only change after a reboot): same outcome, no earlier step needed
  fs.rmSync(record, { recursive: true });
  expect(runInstallStep(install.stdin)).toEqual({ code: 0, stdout: "install.sh stand-in: installed\n", stderr: "" });
  expect(fs.existsSync(path.join(root, "PLANTED-RAN"))).toBe(false);
  expect(leftInTmp()).toEqual([]);
});

test("agentMode watch runs install.sh --stdin --watch; any other mode is refused before anything is read", async () => {
  const run = await runProgram({ "plutus:agentBundleDir": path.join(root, "bundle"), "plutus:agentMode": "watch" });
  const watchCreate = run.byName("agent-install").inputs.create as string;
  expect(watchCreate).toBe(install.create.replace(/ cron$/, " watch"));
  const r = spawnSync("bash", ["-c", watchCreate.split("/tmp/").join(`${tmp}/`)], { input: install.stdin, encoding: "utf8", env: { PATH: `${bin}:${process.env.PATH}`, TMPDIR: tmp, HOME: root, LC_ALL: "C" } });
  expect({ code: r.status, stdout: r.stdout, stderr: r.stderr }).toEqual({ code: 0, stdout: "install.sh stand-in: installed\n", stderr: "" });
  expect(fs.readFileSync(path.join(record, "args"), "utf8")).toBe("--stdin --watch\n");
  fs.rmSync(record, { recursive: true, force: true });
  const forged = spawnSync("bash", ["-c", install.create.replace(/ cron$/, " 'watch; touch /x'").split("/tmp/").join(`${tmp}/`)], { input: install.stdin, encoding: "utf8", env: { PATH: `${bin}:${process.env.PATH}`, TMPDIR: tmp, HOME: root, LC_ALL: "C" } });
  expect({ code: forged.status, stderr: forged.stderr }).toEqual({ code: 2, stderr: "agent mode must be cron or watch, got: watch; touch /x\n" });
  expect(fs.existsSync(record)).toBe(false);
  expect(leftInTmp()).toEqual([]);
}, 60_000);

test("refuses a bundle whose bytes are not the ones the program hashed: nothing runs, nothing stays", () => {
  const newline = install.stdin.indexOf("\n");
  const archive = Buffer.from(install.stdin.slice(0, newline), "base64");
  // same length, so the tar stays well-formed and only the digest can tell
  const at = archive.indexOf("install.sh stand-in: installed");
  expect(at).toBeGreaterThan(0);
  const tampered = Buffer.from(archive);
  tampered.write("install.sh stand-in: TAMPERED!", at, "latin1");
  const tamperedSha = crypto.createHash("sha256").update(tampered).digest("hex");
  const expectedSha = crypto.createHash("sha256").update(archive).digest("hex");
  const r = runInstallStep(`${tampered.toString("base64")}${install.stdin.slice(newline)}`);
  expect(r).toEqual({
    code: 2,
    stdout: "",
    stderr: `agent bundle refused: its SHA-256 is ${tamperedSha}, but the Pulumi program sent ${expectedSha}; nothing was installed\n`,
  });
  expect(fs.existsSync(record)).toBe(false);
  expect(fs.existsSync(path.join(root, "PLANTED-RAN"))).toBe(false);
  expect(leftInTmp()).toEqual([]);
});

test("refuses a truncated bundle with how much arrived", () => {
  const r = runInstallStep(install.stdin.slice(0, 1000));
  const expected = install.stdin.indexOf("\n") + 1;
  expect(r).toEqual({ code: 2, stdout: "", stderr: `agent bundle refused: stdin ended after 1000 of the ${expected} bytes of the bundle; nothing was installed\n` });
  expect(fs.existsSync(record)).toBe(false);
  expect(leftInTmp()).toEqual([]);
});

test("the private key and the bundle travel on stdin only: the command line holds neither", () => {
  const bundleLine = install.stdin.slice(0, install.stdin.indexOf("\n"));
  expect(bundleLine.length).toBeGreaterThan(1000);
  expect(install.create).not.toContain(bundleLine.slice(0, 64));
  expect(install.create.length).toBeLessThan(2000);
  expect(install.create).not.toContain(SECRETS["plutus:hostSshPrivateKey"]);
  expect(install.create).not.toContain("PRIVATE KEY");
});
