<#
.SYNOPSIS
    Builds or resets the Plutus lab on this Hyper-V host with Pulumi.
.DESCRIPTION
    Run on the Hyper-V host, from an elevated PowerShell, in a clone of the repository. Checks the
    prerequisites (elevation, Hyper-V module, master disks, node and pulumi on PATH, free disk and
    memory for what the lab does not hold yet: a re-run with the lab VMs running needs no more),
    installs dependencies (npm ci), builds the agent bundle (npm run build), selects or
    creates the stack, then runs `pulumi up` (or `pulumi preview` / `pulumi destroy`).
    The secrets must be set once beforehand: see docs/infra.md.
.PARAMETER Stack
    The Pulumi stack; its settings are in Pulumi.<Stack>.yaml. Default: dev.
.PARAMETER Preview
    Show what would change; change nothing.
.PARAMETER Destroy
    Remove the lab (VMs, child disks, switch, NAT). The master disks are never touched.
.PARAMETER Yes
    Do not ask for confirmation (pulumi --yes).
.EXAMPLE
    .\Deploy-PlutusInfra.ps1 -Preview
.EXAMPLE
    .\Deploy-PlutusInfra.ps1
.EXAMPLE
    .\Deploy-PlutusInfra.ps1 -Destroy
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory = $false)][ValidatePattern('^[A-Za-z0-9._-]+$')][string]$Stack = 'dev',
    [Parameter(Mandatory = $false)][switch]$Preview,
    [Parameter(Mandatory = $false)][switch]$Destroy,
    [Parameter(Mandatory = $false)][switch]$Yes
)
$ErrorActionPreference = 'Stop'
Microsoft.PowerShell.Core\Set-StrictMode -Version Latest

if ($Preview -and $Destroy) {
    throw 'Use either -Preview or -Destroy, not both.'
}
$root = $PSScriptRoot
$problems = New-Object -TypeName System.Collections.Generic.List[string]

$identity = [System.Security.Principal.WindowsIdentity]::GetCurrent()
$principal = New-Object -TypeName System.Security.Principal.WindowsPrincipal -ArgumentList $identity
if (-not $principal.IsInRole([System.Security.Principal.WindowsBuiltInRole]::Administrator)) {
    $problems.Add('Not elevated: start PowerShell with "Run as administrator" (Hyper-V and NAT changes need it).')
}
if (-not (Microsoft.PowerShell.Core\Get-Module -ListAvailable -Name 'Hyper-V')) {
    $problems.Add('The Hyper-V PowerShell module is missing: Install-WindowsFeature Hyper-V -IncludeManagementTools (Server) or Enable-WindowsOptionalFeature -Online -FeatureName Microsoft-Hyper-V-All (client), then reboot.')
}
foreach ($tool in @('node', 'npm', 'pulumi')) {
    if (-not (Microsoft.PowerShell.Core\Get-Command -Name $tool -ErrorAction SilentlyContinue)) {
        $problems.Add("'$tool' is not on PATH: install it (Node.js 20.17 or later; Pulumi CLI from its Windows installer) and open a new PowerShell.")
    }
}
# The locked @pulumi/pulumi needs Node.js ^20.17 or >= 22.9 (the agent on the web VM runs on 18).
if (Microsoft.PowerShell.Core\Get-Command -Name 'node' -ErrorAction SilentlyContinue) {
    $nodeVersion = [string](& node --version)
    $major = 0
    $minor = 0
    if ($nodeVersion -match '^v(\d+)\.(\d+)\.') { $major = [int]$Matches[1]; $minor = [int]$Matches[2] }
    if (-not (($major -eq 20 -and $minor -ge 17) -or ($major -eq 22 -and $minor -ge 9) -or $major -ge 23)) {
        $problems.Add("Node.js $nodeVersion is too old for the Pulumi program: it needs 20.17 or later (22.9 or later on 22). Install the current LTS from nodejs.org and open a new PowerShell.")
    }
}
# npm is npm.ps1 in PowerShell: a policy that blocks unsigned scripts stops it (Windows clients default to Restricted).
$policy = [string](Microsoft.PowerShell.Security\Get-ExecutionPolicy)
if ($policy -eq 'Restricted' -or $policy -eq 'AllSigned') {
    $problems.Add("The execution policy is $policy, which blocks npm.ps1 and this script: start it as  powershell -ExecutionPolicy Bypass -File .\Deploy-PlutusInfra.ps1")
}

$stackFile = Microsoft.PowerShell.Management\Join-Path -Path $root -ChildPath "Pulumi.$Stack.yaml"
$settings = @{}
if (-not (Microsoft.PowerShell.Management\Test-Path -LiteralPath $stackFile -PathType Leaf)) {
    $problems.Add("Stack settings $stackFile not found: copy Pulumi.dev.yaml to Pulumi.$Stack.yaml and adapt it.")
} else {
    # Flat "plutus:key: value" lines, plus the name and memoryMB of webVm/erpVm (block or {flow} style).
    $section = $null
    foreach ($line in Microsoft.PowerShell.Management\Get-Content -LiteralPath $stackFile) {
        if ($line -match '^\s+plutus:(webVm|erpVm):\s*(\{.*\})?\s*$') {
            $section = $Matches[1]
            $settings[$section] = @{}
            $flow = $Matches[2]
            if ($flow) {
                foreach ($pair in $flow.Trim('{', '}').Split(',')) {
                    if ($pair -match '^\s*(\w+)\s*:\s*(\S.*?)\s*$') { $settings[$section][$Matches[1]] = $Matches[2] }
                }
                $section = $null
            }
        } elseif ($line -match '^\s+plutus:(\w+):\s*(\S.*)$') {
            $section = $null
            $settings[$Matches[1]] = $Matches[2].Trim()
        } elseif ($section -and $line -match '^\s{3,}(\w+):\s*(\S.*?)\s*$') {
            $settings[$section][$Matches[1]] = $Matches[2]
        } elseif ($line -match '^\s{0,2}\S') {
            $section = $null
        }
    }
}
if (-not $Destroy) {
    foreach ($key in @('ubuntuMasterVhdx', 'windowsMasterVhdx')) {
        $path = $settings[$key]
        if (-not $path) {
            $problems.Add("plutus:$key is not set in $stackFile.")
        } elseif (-not (Microsoft.PowerShell.Management\Test-Path -LiteralPath $path -PathType Leaf)) {
            $problems.Add("Master disk $path (plutus:$key) not found: copy the master VHDX there or fix $stackFile.")
        }
    }
    # The lab's own VMs and disks already hold their memory and space on a re-run: only what is
    # still missing (a VM not running, a child disk not created yet) has to fit.
    $labVms = @(
        @{ Key = 'webVm'; Name = 'plutus-web'; MemoryMB = 2048 },
        @{ Key = 'erpVm'; Name = 'plutus-erp'; MemoryMB = 4096 }
    )
    $hyperV = [bool](Microsoft.PowerShell.Core\Get-Module -ListAvailable -Name 'Hyper-V')
    $vmFolder = $settings['vmFolder']
    $neededMB = [int64]0
    $missingDisks = 0
    foreach ($labVm in $labVms) {
        $name = $labVm.Name
        $memoryMB = [int64]$labVm.MemoryMB
        if ($settings[$labVm.Key] -is [hashtable]) {
            if ($settings[$labVm.Key]['name']) { $name = $settings[$labVm.Key]['name'].Trim("'", '"') }
            if ($settings[$labVm.Key]['memoryMB'] -match '^\d+$') { $memoryMB = [int64]$settings[$labVm.Key]['memoryMB'] }
        }
        $existing = $null
        if ($hyperV) {
            $existing = Hyper-V\Get-VM -ErrorAction SilentlyContinue | Microsoft.PowerShell.Core\Where-Object { $_.Name -eq $name }
        }
        if ($null -eq $existing -or $existing.State -ne 'Running') { $neededMB += $memoryMB }
        if ($vmFolder) {
            $osDisk = Microsoft.PowerShell.Management\Join-Path -Path (Microsoft.PowerShell.Management\Join-Path -Path $vmFolder -ChildPath $name) -ChildPath "$name-os.vhdx"
            if (-not (Microsoft.PowerShell.Management\Test-Path -LiteralPath $osDisk -PathType Leaf)) { $missingDisks++ }
        }
    }
    if ($vmFolder) {
        $drive = (Microsoft.PowerShell.Management\Split-Path -Path $vmFolder -Qualifier) + '\'
        $volume = Storage\Get-Volume -ErrorAction SilentlyContinue | Microsoft.PowerShell.Core\Where-Object { $_.DriveLetter -and ("$($_.DriveLetter):\" -eq $drive.ToUpperInvariant()) }
        $freeGB = 0
        if ($null -ne $volume) { $freeGB = $volume.SizeRemaining / 1073741824 }
        if ($null -eq $volume) {
            $problems.Add("The drive of vmFolder ($drive) does not exist on this host.")
        } elseif ($missingDisks -gt 0 -and $freeGB -lt 20 * $missingDisks) {
            $problems.Add(('Only {0:N1} GB free on {1}; the {2} new child disk(s) need at least {3} GB to grow.' -f $freeGB, $drive, $missingDisks, (20 * $missingDisks)))
        } elseif ($freeGB -lt 40) {
            Microsoft.PowerShell.Utility\Write-Warning ('Only {0:N1} GB free on {1}; the lab''s child disks may not be able to grow.' -f $freeGB, $drive)
        }
    }
    $os = CimCmdlets\Get-CimInstance -ClassName Win32_OperatingSystem
    $freeMB = [int64]$os.FreePhysicalMemory / 1024
    if ($neededMB -gt 0 -and $freeMB -lt $neededMB) {
        $problems.Add(('Only {0:N0} MB of memory free; the lab VMs that are not running yet need {1:N0} MB (see webVm/erpVm memoryMB).' -f $freeMB, $neededMB))
    }
}
if ($problems.Count -gt 0) {
    Microsoft.PowerShell.Utility\Write-Host 'Cannot deploy the Plutus lab:' -ForegroundColor Red
    foreach ($problem in $problems) { Microsoft.PowerShell.Utility\Write-Host "  - $problem" -ForegroundColor Red }
    exit 1
}

function Invoke-PlutusStep {
    param([string]$What, [string]$FilePath, [string[]]$Arguments)
    Microsoft.PowerShell.Utility\Write-Host "==> $What" -ForegroundColor Cyan
    & $FilePath @Arguments
    if ($LASTEXITCODE -ne 0) {
        throw "$What failed (exit code $LASTEXITCODE)."
    }
}

Microsoft.PowerShell.Management\Push-Location -LiteralPath $root
try {
    Invoke-PlutusStep -What 'Installing dependencies (npm ci)' -FilePath 'npm' -Arguments @('ci', '--no-audit', '--no-fund')
    Invoke-PlutusStep -What 'Building the agent bundle (npm run build)' -FilePath 'npm' -Arguments @('run', 'build')
    # One call that never needs stderr redirection: under Stop, PowerShell 5.1 turns redirected native
    # stderr into a terminating NativeCommandError, so silencing a failed select would throw on a new stack.
    Invoke-PlutusStep -What "Selecting stack $Stack (created when new)" -FilePath 'pulumi' -Arguments @('stack', 'select', '--create', $Stack)
    $common = @('--stack', $Stack)
    if ($Yes) { $common += '--yes' }
    if ($Preview) {
        Invoke-PlutusStep -What 'Previewing changes' -FilePath 'pulumi' -Arguments (@('preview', '--stack', $Stack))
    } elseif ($Destroy) {
        Invoke-PlutusStep -What 'Removing the lab (masters are kept)' -FilePath 'pulumi' -Arguments (@('destroy') + $common)
    } else {
        Invoke-PlutusStep -What 'Deploying the lab' -FilePath 'pulumi' -Arguments (@('up') + $common)
        Invoke-PlutusStep -What 'Stack outputs' -FilePath 'pulumi' -Arguments @('stack', 'output', '--stack', $Stack, '--json')
    }
} finally {
    Microsoft.PowerShell.Management\Pop-Location
}
