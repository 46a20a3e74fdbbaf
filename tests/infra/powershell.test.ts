import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { parsePowerShell, runProgram, REPO } from "./harness";
import { parseJsonResult, renderBootstrap, renderCommandLine } from "../../infra/powershell";

const scriptsDir = path.join(REPO, "infra", "scripts");
const scripts = fs.readdirSync(scriptsDir).filter((f) => f.endsWith(".ps1")).map((f) => path.join(scriptsDir, f));
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "plutus-ps-"));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

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

const script = (file: string) => fs.readFileSync(path.join(scriptsDir, file), "utf8");
const deploy = () => fs.readFileSync(path.join(REPO, "Deploy-PlutusInfra.ps1"), "utf8");

test("Deploy-PlutusInfra.ps1 selects or creates the stack in one call, without redirected stderr", () => {
  const text = deploy();
  expect(text).toContain("Invoke-PlutusStep -What \"Selecting stack $Stack (created when new)\" -FilePath 'pulumi' -Arguments @('stack', 'select', '--create', $Stack)");
  expect(text).not.toMatch(/2>\s*\$null/);
  expect(text).not.toContain("'stack', 'init'");
});

test("Deploy-PlutusInfra.ps1 only asks for the memory and disk the lab does not hold yet", () => {
  const text = deploy();
  expect(text).not.toContain("6144");
  expect(text).toContain("if ($null -eq $existing -or $existing.State -ne 'Running') { $neededMB += $memoryMB }");
  expect(text).toContain("if ($neededMB -gt 0 -and $freeMB -lt $neededMB) {");
  expect(text).toContain("} elseif ($missingDisks -gt 0 -and $freeGB -lt 20 * $missingDisks) {");
  // the VM names and memory come from the stack file (block style, as in Pulumi.dev.yaml)
  expect(text).toContain("if ($line -match '^\\s+plutus:(webVm|erpVm):\\s*(\\{.*\\})?\\s*$') {");
  expect(text).toContain("if ($settings[$labVm.Key]['memoryMB'] -match '^\\d+$') { $memoryMB = [int64]$settings[$labVm.Key]['memoryMB'] }");
});

test("New-PlutusVm.ps1 disables automatic and manual checkpoints, get-compare-set, before starting the VM", () => {
  const text = script("New-PlutusVm.ps1");
  const check = text.indexOf("if (($null -ne $automatic -and $automatic.Value) -or [string]$vm.CheckpointType -ne 'Disabled') {");
  const set = text.indexOf("Hyper-V\\Set-VM -VM $vm -AutomaticCheckpointsEnabled $false -CheckpointType Disabled");
  expect(check).toBeGreaterThan(0);
  expect(set).toBeGreaterThan(check);
  expect(text.indexOf("Hyper-V\\Start-VM -VM $vm")).toBeGreaterThan(set);
  expect(text).toContain("$changes.Add('checkpoints disabled (automatic and manual)')");
});

test("Install-PlutusErpOpenSsh.ps1 disables every other enabled inbound Allow rule for TCP 22, checks sshd -t by exit code", () => {
  const text = script("Install-PlutusErpOpenSsh.ps1");
  expect(text).not.toContain("$_.Name -eq 'OpenSSH-Server-In-TCP'");
  expect(text).toContain("NetSecurity\\Get-NetFirewallPortFilter -All | Microsoft.PowerShell.Core\\Where-Object { $_.Protocol -eq 'TCP' -and (Test-PlutusPort22 -LocalPort $_.LocalPort) }");
  expect(text).toContain("if ($rule.Name -ne $ruleName -and $rule.Enabled -eq 'True' -and $rule.Direction -eq 'Inbound' -and $rule.Action -eq 'Allow') {");
  expect(text).toContain("if ($range.Count -eq 2 -and [int]::TryParse($range[0], [ref]$low) -and [int]::TryParse($range[1], [ref]$high) -and $low -le 22 -and 22 -le $high) { return $true }");
  // sshd -t: Continue around the native call, verdict by $LASTEXITCODE, candidate removed in finally
  const cont = text.indexOf("$ErrorActionPreference = 'Continue'");
  const call = text.indexOf("$check = @(& $binary -t -f $candidate 2>&1");
  const exit = text.indexOf("$exitCode = $LASTEXITCODE");
  const fin = text.indexOf("} finally {\n                $ErrorActionPreference = 'Stop'\n                if (Microsoft.PowerShell.Management\\Test-Path -LiteralPath $candidate) {\n                    Microsoft.PowerShell.Management\\Remove-Item -LiteralPath $candidate -Force");
  expect([cont > 0, call > cont, exit > call, fin > exit]).toEqual([true, true, true, true]);
});

test("the guest scripts give C:\\ProgramData\\ssh an explicit ACL and compare ACLs by their rules, not Sddl", () => {
  for (const file of ["Install-PlutusErpOpenSsh.ps1", "Set-PlutusErpSftpAccount.ps1"]) {
    const text = script(file);
    expect([file, text.includes(".Sddl")]).toEqual([file, false]);
    expect([file, text.includes("$Acl.GetAccessRules($true, $false, [System.Security.Principal.SecurityIdentifier])")]).toEqual([file, true]);
    expect([file, text.includes("-ArgumentList $authenticatedUsers, 'ReadAndExecute', $inherit, 'None', 'Allow'")]).toEqual([file, true]);
    // the folder ACL is set right after the folder is made
    const made = text.indexOf("-ItemType Directory -Path $sshDir -Force");
    expect([file, text.indexOf("$dirAcl.SetAccessRuleProtection($true, $false)") > made]).toEqual([file, true]);
    expect([file, /Set-PlutusAcl -Path \$sshDir -Acl \$dirAcl/.test(text)]).toEqual([file, true]);
  }
});

test("Remove-PlutusNetwork.ps1 removes the gateway address only from the switch's vNIC; unattend assigns a drive letter", () => {
  const text = script("Remove-PlutusNetwork.ps1");
  expect(text.match(/NetTCPIP\\(Get|Remove)-NetIPAddress[^\n]*/g)).toEqual([
    "NetTCPIP\\Get-NetIPAddress -InterfaceIndex $netAdapter.ifIndex -IPAddress $GatewayIp -ErrorAction SilentlyContinue",
    "NetTCPIP\\Remove-NetIPAddress -InterfaceIndex $netAdapter.ifIndex -IPAddress $GatewayIp -Confirm:$false",
  ]);
  const unattend = script("Set-PlutusWindowsUnattend.ps1");
  expect(unattend).toContain("$partition | Storage\\Add-PartitionAccessPath -AssignDriveLetter");
  expect(unattend).toContain("if ($partition.Type -ne 'Basic') { continue }");
});

test("the helper module parses, documents its functions and keeps the script conventions", () => {
  const file = path.join(scriptsDir, "PlutusDirect.psm1");
  const [result] = parsePowerShell([file]);
  expect(result.problems).toEqual([]);
  const text = fs.readFileSync(file, "utf8");
  expect(text.startsWith("<#\n.SYNOPSIS")).toBe(true);
  expect(text).toContain("$ErrorActionPreference = 'Stop'");
  expect(/Invoke-Expression|\biex\b/i.test(text)).toBe(false);
  const functions = [...text.matchAll(/^function ([\w-]+) \{\n    <#\n    \.SYNOPSIS/gm)].map((m) => m[1]);
  expect(functions).toEqual(["ConvertTo-PlutusAdministratorCredential", "Connect-PlutusPowerShellDirect"]);
  expect(text).toContain(`Export-ModuleMember -Function @(${functions.map((f) => `'${f}'`).join(", ")})`);
  for (const m of text.matchAll(/\]\[(?:string|int|switch|System\.Management\.Automation\.PSCredential)\]\$(\w+)/g)) expect([m[1], text.includes(`.PARAMETER ${m[1]}`)]).toEqual([m[1], true]);
  // the retry loop keeps the error text the scripts had
  expect(text).toContain("\"PowerShell Direct to '$VmName' still fails after $attempt attempts in $DeadlineSeconds s: $($_.Exception.Message)\"");
  expect(script("Set-PlutusWindowsGuest.ps1")).toContain("-Advice 'Check the VM console.'");
});

test("a script that uses a helper declares it as its Helpers parameter and loads it before the first call", () => {
  for (const file of ["Install-PlutusErpOpenSsh.ps1", "Set-PlutusErpSftpAccount.ps1", "Set-PlutusWindowsGuest.ps1"]) {
    const text = script(file);
    expect([file, text.includes("    [Parameter(Mandatory = $true)][string[]]$Helpers,\n")]).toEqual([file, true]);
    const load = text.indexOf("foreach ($helper in $Helpers) { $null = Microsoft.PowerShell.Core\\New-Module -ScriptBlock ([System.Management.Automation.ScriptBlock]::Create($helper)) }");
    expect([file, load > text.indexOf("$ErrorActionPreference = 'Stop'"), load < text.indexOf("ConvertTo-PlutusAdministratorCredential -Password")]).toEqual([file, true, true]);
  }
  // the bootstrap knows nothing of helpers: every command line stays what it was
  expect(renderBootstrap("create")).not.toContain("Helpers");
  expect(renderBootstrap("create")).not.toContain("New-Module");
});
