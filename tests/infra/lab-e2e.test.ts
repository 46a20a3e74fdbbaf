/*
 * The whole lab through the real data channel: the Pulumi program (under mocks, tests/infra/harness)
 * yields each PowerShell step's command line and stdin document; each one runs under pwsh, through
 * the same -EncodedCommand bootstrap, against one simulated Hyper-V host (tests/powershell/SimHost)
 * that every step's process shares. Creates in dependency order bring the lab up; creates again
 * change nothing; deletes in reverse order leave only the masters.
 * Needs PowerShell 7 (bash tests/powershell/install-tools.sh): fails, never skips, without it.
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { REPO, runProgram, type Recorded } from "./harness";
import { parseJsonResult } from "../../infra/powershell";

const SIM = path.join(REPO, "tests", "powershell", "SimHost");
const roots: string[] = [];
let root = "";
beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), "plutus-e2e-"));
  roots.push(root);
});
afterAll(() => {
  for (const dir of roots) {
    for (const file of walk(dir)) fs.chmodSync(file, 0o644);
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

function walk(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(path.join(dir, e.name)) : e.isFile() ? [path.join(dir, e.name)] : []));
}

function findPwsh(): string {
  for (const dir of [...(process.env.PATH ?? "").split(path.delimiter), path.join(os.homedir(), ".dotnet", "tools")]) {
    if (dir && fs.existsSync(path.join(dir, "pwsh"))) return path.join(dir, "pwsh");
  }
  throw new Error("pwsh (PowerShell 7) is not installed: run `bash tests/powershell/install-tools.sh` (needs the .NET SDK); .ci/run does the same");
}

const env = () => ({ ...process.env, PLUTUS_SIM_ROOT: root, PSModulePath: path.join(SIM, "Modules"), NO_COLOR: "1", POWERSHELL_UPDATECHECK: "Off", POWERSHELL_TELEMETRY_OPTOUT: "1" });

function pwsh(args: string[], input?: string) {
  const run = spawnSync(findPwsh(), ["-NoProfile", "-NonInteractive", ...args], { input, encoding: "utf8", env: env(), cwd: root, timeout: 180_000 });
  return { status: run.status, stdout: run.stdout ?? "", stderr: run.stderr ?? "" };
}

function simState(): any {
  const run = pwsh(["-Command", "Import-Module PlutusSimHost; PlutusSimHost\\Read-SimState | ConvertTo-Json -Depth 64 -Compress"]);
  if (run.status !== 0) throw new Error(`cannot read the simulated host: ${run.stderr}`);
  return JSON.parse(run.stdout);
}

const BOOTSTRAP = /^powershell\.exe -NoProfile -NonInteractive -ExecutionPolicy Bypass -EncodedCommand ([A-Za-z0-9+/]+=*)$/;

/** Runs a step's command line (create or delete) the way cmd.exe would start powershell.exe. */
function runStep(step: Recorded, which: "create" | "delete") {
  const line: string = step.inputs[which];
  const m = BOOTSTRAP.exec(line);
  if (!m) throw new Error(`${step.name}: ${which} is not the PowerShell bootstrap: ${line.slice(0, 120)}`);
  const run = pwsh(["-File", path.join(SIM, "Invoke-SimEncodedCommand.ps1"), "-EncodedCommand", m[1]], step.inputs.stdin);
  if (run.status !== 0) throw new Error(`${step.name} ${which} failed (exit ${run.status}):\n${run.stderr}\n${run.stdout}`);
  const result = parseJsonResult(run.stdout);
  if (!result) throw new Error(`${step.name} ${which} printed no JSON result:\n${run.stdout}`);
  return result;
}

/** A simulated host with a fixed drive D: that holds the dev stack's two masters (automount off). */
function setupHost() {
  const setup = pwsh(["-Command", [
    "$ErrorActionPreference = 'Stop'",
    "Import-Module PlutusSimHost",
    `PlutusSimHost\\New-SimHost -Root '${root}' -Automount $false`,
    "$null = PlutusSimHost\\Add-SimHostDrive -Letter D",
    "PlutusSimHost\\Add-SimVhd -Path 'D:\\Masters\\ubuntu-24.04-server-cloudimg-amd64.vhdx' -Layout UbuntuGpt",
    "PlutusSimHost\\Add-SimVhd -Path 'D:\\Masters\\ws2022-std-sysprep.vhdx' -Layout WindowsGpt",
  ].join("; ")]);
  expect([setup.status, setup.stderr]).toEqual([0, ""]);
}

const masters = () => walk(path.join(root, "host", "D")).filter((f) => f.includes(`${path.sep}Masters${path.sep}`)).sort();

test("the lab comes up through the real data channel, a second up changes nothing, destroy leaves only the masters", async () => {
  const program = await runProgram();
  const steps = program.resources.filter((r) => r.type === "command:local:Command");
  expect(steps.length).toBeGreaterThan(0);
  // Registration order is dependency order: every step comes after the steps it depends on.
  const index = new Map(program.resources.map((r, i) => [r.urn, i]));
  for (const step of steps) {
    for (const dep of [...step.dependencies, ...Object.values(step.propertyDependencies).flat()]) {
      expect([step.name, dep, (index.get(dep) ?? -1) < program.resources.indexOf(step)]).toEqual([step.name, dep, true]);
    }
  }

  setupHost();
  const mastersBefore = masters().map((f) => [f, fs.readFileSync(f, "utf8")]);

  // up
  const firstRun = steps.map((step) => [step.name, runStep(step, "create")] as const);
  for (const [name, result] of firstRun) expect([name, Array.isArray(result.changed)]).toEqual([name, true]);
  let state = simState();
  expect(state.vms.map((vm: any) => [vm.Name, vm.State, vm.Generation]).sort()).toEqual([["plutus-erp", "Running", 2], ["plutus-web", "Running", 2]]);
  expect(state.switches.map((s: any) => [s.Name, s.SwitchType])).toEqual([["PlutusLab", "Internal"]]);
  expect(state.nats.map((n: any) => n.InternalIPInterfaceAddressPrefix)).toEqual(["192.168.77.0/24"]);
  const erp = state.guests["plutus-erp"];
  expect(erp.computerName).toBe("PLUTUS-ERP");
  expect(erp.ipAddresses.map((a: any) => `${a.IPAddress}/${a.PrefixLength}`)).toEqual(["192.168.77.20/24"]);
  expect(erp.users.map((u: any) => u.Name)).toContain("plutus-sync");
  expect([erp.services.sshd.Status, erp.services.sshd.StartType]).toEqual(["Running", "Automatic"]);
  expect(erp.firewall.filter((r: any) => r.Enabled === "True").map((r: any) => [r.Name, r.RemoteAddress])).toEqual([["Plutus-SFTP-In", ["192.168.77.10"]]]);
  const sshdConfig = fs.readFileSync(path.join(erp.osFolder, "ProgramData", "ssh", "sshd_config"), "utf8");
  expect(sshdConfig).toBe(JSON.parse(program.byName("erp-openssh-sshd-run").inputs.stdin).create.parameters.SshdConfig);
  expect(firstRun.find(([name]) => name === "erp-openssh-sshd-run")![1].changed).toContain("wrote sshd_config (sshd -t passed)");

  // up again: every create runs and changes nothing on the host
  const changesBefore = state.changes.length;
  for (const step of steps) expect([step.name, runStep(step, "create").changed]).toEqual([step.name, []]);
  state = simState();
  expect(state.changes.slice(changesBefore).filter((c: string) => !/Mount-VHD|Dismount-VHD/.test(c))).toEqual([]);

  // destroy: deletes in reverse order
  for (const step of [...steps].reverse()) if (step.inputs.delete) runStep(step, "delete");
  state = simState();
  expect(state.vms).toEqual([]);
  expect(state.switches).toEqual([]);
  expect(state.nats).toEqual([]);
  expect(masters().map((f) => [f, fs.readFileSync(f, "utf8")])).toEqual(mastersBefore);
  expect(walk(path.join(root, "host", "D")).sort()).toEqual(masters());
}, 15 * 60_000);

test("hostile configuration values stay data on the host and in the guest: the lab comes up at the literal paths and goes away", async () => {
  const hostileFolder = "D:\\Lab's $(Remove-Item \\Windows -Recurse) `whoami`; & calc \\VMs";
  const hostileChroot = "C:\\Plu's $(calc) `x`; y";
  const program = await runProgram({
    "plutus:vmFolder": hostileFolder,
    "plutus:erpChrootDirectory": hostileChroot,
    "plutus:erpInboxFolder": `${hostileChroot}\\In'box`,
    "plutus:erpStagingFolder": `${hostileChroot}\\Sta$(g)ing`,
  });
  const steps = program.resources.filter((r) => r.type === "command:local:Command");
  setupHost();
  const mastersBefore = masters().map((f) => [f, fs.readFileSync(f, "utf8")]);
  for (const step of steps) runStep(step, "create");
  // Backslashes separate folders, as on Windows; every other character is part of a name.
  const vmFolder = path.join(root, "host", "D", "Lab's $(Remove-Item ", "Windows -Recurse) `whoami`; & calc ", "VMs");
  expect(fs.readdirSync(vmFolder).sort()).toEqual(["plutus-erp", "plutus-web"]);
  expect(fs.existsSync(path.join(vmFolder, "plutus-web", "plutus-web-os.vhdx"))).toBe(true);
  const state = simState();
  const c = state.guests["plutus-erp"].osFolder;
  expect(fs.readdirSync(path.join(c, "Plu's $(calc) `x`; y")).sort()).toEqual(["In'box", "Sta$(g)ing"]);
  expect(Object.keys(state.guests["plutus-erp"].acls)).toContain(path.join(c, "Plu's $(calc) `x`; y", "In'box"));
  expect(fs.readFileSync(path.join(c, "ProgramData", "ssh", "sshd_config"), "utf8")).toContain(`ChrootDirectory "${hostileChroot}"`);
  for (const step of [...steps].reverse()) if (step.inputs.delete) runStep(step, "delete");
  expect(simState().vms).toEqual([]);
  expect(masters().map((f) => [f, fs.readFileSync(f, "utf8")])).toEqual(mastersBefore);
  expect(walk(path.join(root, "host", "D")).sort()).toEqual(masters());
}, 15 * 60_000);
