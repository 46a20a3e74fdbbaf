import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { parsePowerShell, runProgram, REPO } from "./harness";
import { parseJsonResult, renderBootstrap, renderCommandLine } from "../../infra/powershell";

const scriptsDir = path.join(REPO, "infra", "scripts");
const scripts = fs.readdirSync(scriptsDir).filter((f) => f.endsWith(".ps1")).map((f) => path.join(scriptsDir, f));
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "plutus-ps-"));

test("every script and Deploy-PlutusInfra.ps1 parses with no ERROR or MISSING node", () => {
  expect(scripts.length).toBe(11);
  const bootstraps = (["create", "delete"] as const).map((step) => {
    const file = path.join(tmp, `bootstrap-${step}.ps1`);
    fs.writeFileSync(file, Buffer.from(renderCommandLine(step).split(" ").pop()!, "base64").toString("utf16le"));
    return file;
  });
  const results = parsePowerShell([...scripts, path.join(REPO, "Deploy-PlutusInfra.ps1"), ...bootstraps]);
  expect(results.filter((r) => r.problems.length > 0)).toEqual([]);
  expect(results).toHaveLength(14);
});

test("the checker catches a broken script", () => {
  const broken = path.join(tmp, "broken.ps1");
  fs.writeFileSync(broken, "[CmdletBinding()]\nparam([string]$Name)\nif ($Name -eq 'x') {\n    Write-Output ('unclosed'\n");
  const [result] = parsePowerShell([broken]);
  expect(result.problems.length).toBeGreaterThan(0);
  expect(result.problems.map((p) => p.kind).some((k) => k === "ERROR" || k.startsWith("MISSING"))).toBe(true);
});

test("every script follows the conventions: CmdletBinding, typed params, help, Stop, no Invoke-Expression, qualified cmdlets", () => {
  for (const file of scripts) {
    const text = fs.readFileSync(file, "utf8");
    const name = path.basename(file);
    expect([name, text.startsWith("<#\n.SYNOPSIS")]).toEqual([name, true]);
    expect([name, text.includes("[CmdletBinding()]\nparam(")]).toEqual([name, true]);
    expect([name, text.includes("$ErrorActionPreference = 'Stop'")]).toEqual([name, true]);
    expect([name, /Invoke-Expression|\biex\b/i.test(text)]).toEqual([name, false]);
    expect([name, text.charCodeAt(0) === 0xfeff]).toEqual([name, false]);
    // every parameter is typed
    const params = text.slice(text.indexOf("param("), text.indexOf("\n)\n")).split("\n").filter((l) => l.includes("$"));
    for (const p of params) expect([name, p]).toEqual([name, expect.stringMatching(/\[(string|int|int64|bool|string\[\])\]\$\w+/)]);
    // help documents every parameter
    for (const m of text.matchAll(/\]\$(\w+)(,|\s*=|$)/gm)) if (params.some((p) => p.includes(`$${m[1]}`))) expect([name, text.includes(`.PARAMETER ${m[1]}`)]).toEqual([name, true]);
    // cmdlets from Hyper-V, storage and networking modules are always module-qualified
    const unqualified = text.match(/(?<![\\\w-])(Get|New|Set|Remove|Mount|Dismount|Start|Stop|Add)-(VM\w*|VHD|NetNat|NetIPAddress|Partition|Volume|Disk|NetFirewallRule|LocalUser|Acl)\b/g) ?? [];
    expect([name, unqualified]).toEqual([name, []]);
  }
});

test("hostile config values stay data: constant command lines that parse, values carried verbatim on stdin", async () => {
  const hostileFolder = "D:\\Lab's $(Remove-Item \\Windows -Recurse) `whoami`; & calc \\VMs";
  const hostileChroot = "C:\\Plu's $(calc) `x`; y";
  const run = await runProgram({
    "plutus:vmFolder": hostileFolder,
    "plutus:erpChrootDirectory": hostileChroot,
    "plutus:erpInboxFolder": `${hostileChroot}\\In'box`,
    "plutus:erpStagingFolder": `${hostileChroot}\\Sta$(g)ing`,
  });
  const commands = run.resources.filter((r) => r.type === "command:local:Command");
  expect(commands).toHaveLength(10);
  for (const c of commands) {
    expect(c.inputs.create).toBe(renderCommandLine("create"));
    for (const bad of ["Remove-Item", "calc", "whoami", "$(", "`"]) expect(c.inputs.create.includes(bad)).toBe(false);
  }
  const vm = JSON.parse(run.byName("web-vm-vm-run").inputs.stdin).create.parameters;
  expect(vm.VmFolder).toBe(hostileFolder);
  expect(vm.OsDiskPath).toBe(`${hostileFolder}\\plutus-web\\plutus-web-os.vhdx`);
  const account = JSON.parse(run.byName("erp-openssh-account-run").inputs.stdin).create.parameters;
  expect(account.ChrootDirectory).toBe(hostileChroot);
  expect(account.StagingPath).toBe(`${hostileChroot}\\Sta$(g)ing`);
  expect((run.outputs.agentConfig as any).remote.inbox).toBe("/In'box");
  expect((run.outputs.agentConfig as any).remote.staging).toBe("/Sta$(g)ing");
  // the stdin document is pure ASCII JSON, whatever the values
  for (const c of commands) expect(/^[\x20-\x7e]*$/.test(c.inputs.stdin)).toBe(true);
}, 60_000);

test("the bootstrap only differs by the step literal and reads everything else from stdin", () => {
  const create = renderBootstrap("create");
  expect(renderBootstrap("delete")).toBe(create.replace("$document.create", "$document.delete"));
  expect(create).toContain("[System.Console]::OpenStandardInput().CopyTo($buffer)");
  expect(create).toContain("& $script @arguments");
  expect(renderCommandLine("create")).toMatch(/^powershell\.exe -NoProfile -NonInteractive -ExecutionPolicy Bypass -EncodedCommand [A-Za-z0-9+/]+=*$/);
});

test("script results: the last JSON line of CRLF output", () => {
  expect(parseJsonResult('WARNING: x\r\n{"a":1}\r\n{"name":"plutus-web","changed":[]}\r\n')).toEqual({ name: "plutus-web", changed: [] });
  expect(parseJsonResult("no json\r\n")).toBeUndefined();
  expect(parseJsonResult(undefined)).toBeUndefined();
});
