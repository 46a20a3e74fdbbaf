BeforeAll {
    . (Join-Path -Path $PSScriptRoot -ChildPath 'SimHost.Common.ps1')

    function New-StubTool {
        # A stand-in for node, npm or pulumi on PATH: logs its arguments; exit code from PLUTUS_STUB_<NAME>_EXIT.
        param([string]$Folder, [string]$Name)
        $file = Join-Path $Folder $Name
        $upper = $Name.ToUpperInvariant()
        $lines = @('#!/bin/sh', "echo `"$Name `$*`" >> `"`$PLUTUS_STUB_LOG`"")
        if ($Name -eq 'node') { $lines += 'if [ "$1" = "--version" ]; then echo "${PLUTUS_STUB_NODE_VERSION:-v20.19.1}"; fi' }
        $lines += "exit `${PLUTUS_STUB_$($upper)_EXIT:-0}"
        [System.IO.File]::WriteAllText($file, ($lines -join "`n") + "`n", (New-Object -TypeName System.Text.UTF8Encoding -ArgumentList $false))
        & chmod +x $file
    }

    function Invoke-Deploy {
        <# .SYNOPSIS Runs the copied Deploy-PlutusInfra.ps1 in a child pwsh on the simulated host; returns exit code, output and the tools' calls. #>
        param([string[]]$Arguments = @(), [hashtable]$Environment = @{}, [string[]]$Tools = @('node', 'npm', 'pulumi'))
        $bin = Join-Path $Root "bin-$([guid]::NewGuid().ToString('N').Substring(0, 6))"
        $null = New-Item -ItemType Directory -Path $bin
        foreach ($tool in $Tools) { New-StubTool -Folder $bin -Name $tool }
        $log = Join-Path $Root 'calls.log'
        if (Test-Path -LiteralPath $log) { Remove-Item -LiteralPath $log }
        $saved = @{}
        $set = @{ PATH = $bin; PLUTUS_STUB_LOG = $log; PLUTUS_SIM_ELEVATED = '1' }
        foreach ($key in $Environment.Keys) { $set[$key] = $Environment[$key] }
        foreach ($key in $set.Keys) { $saved[$key] = [System.Environment]::GetEnvironmentVariable($key); [System.Environment]::SetEnvironmentVariable($key, $set[$key]) }
        try {
            $command = "Import-Module PlutusSimHost; PlutusSimHost\Import-SimShadowModules; PlutusSimHost\Enable-SimWindowsIdentity; & '$Deploy' $($Arguments -join ' '); exit `$LASTEXITCODE"
            $output = & (Join-Path $PSHOME 'pwsh') -NoProfile -NonInteractive -Command $command 2>&1 | ForEach-Object { [string]$_ }
            $code = $LASTEXITCODE
        } finally {
            foreach ($key in $saved.Keys) { [System.Environment]::SetEnvironmentVariable($key, $saved[$key]) }
        }
        $calls = if (Test-Path -LiteralPath $log) { @(Get-Content -LiteralPath $log) } else { @() }
        [pscustomobject]@{ ExitCode = $code; Output = @($output); Calls = $calls }
    }
}

Describe 'Deploy-PlutusInfra.ps1' {
    BeforeEach {
        $script:Root = New-TestHost
        $null = PlutusSimHost\Add-SimHostDrive -Letter D
        PlutusSimHost\Add-SimVhd -Path 'D:\Masters\ubuntu-24.04-server-cloudimg-amd64.vhdx' -Layout UbuntuGpt
        PlutusSimHost\Add-SimVhd -Path 'D:\Masters\ws2022-std-sysprep.vhdx' -Layout WindowsGpt
        $repo = Join-Path $Root 'repo'
        $null = New-Item -ItemType Directory -Path $repo
        Copy-Item -LiteralPath (Join-Path $script:Repo 'Deploy-PlutusInfra.ps1'), (Join-Path $script:Repo 'Pulumi.dev.yaml') -Destination $repo
        $script:Deploy = Join-Path $repo 'Deploy-PlutusInfra.ps1'
    }
    AfterEach { Remove-TestHost -Root $script:Root }

    It 'checks the prerequisites, then installs, builds, selects the stack and runs pulumi up and the outputs' {
        $run = Invoke-Deploy
        $run.ExitCode | Should -Be 0
        $run.Calls | Should -Be @('node --version', 'npm ci --no-audit --no-fund', 'npm run build', 'pulumi stack select --create dev', 'pulumi up --stack dev', 'pulumi stack output --stack dev --json')
        $run.Output | Should -Contain '==> Deploying the lab'
    }

    It '-Preview runs pulumi preview and changes nothing; -Destroy runs pulumi destroy with --yes when asked' {
        (Invoke-Deploy -Arguments '-Preview').Calls | Should -Be @('node --version', 'npm ci --no-audit --no-fund', 'npm run build', 'pulumi stack select --create dev', 'pulumi preview --stack dev')
        $destroy = Invoke-Deploy -Arguments '-Destroy', '-Yes'
        $destroy.ExitCode | Should -Be 0
        $destroy.Calls[-1] | Should -Be 'pulumi destroy --stack dev --yes'
        $destroy.Output | Should -Contain '==> Removing the lab (masters are kept)'
    }

    It 'refuses -Preview with -Destroy' {
        $run = Invoke-Deploy -Arguments '-Preview', '-Destroy'
        $run.ExitCode | Should -Be 1
        $run.Output -join "`n" | Should -BeLike '*Use either -Preview or -Destroy, not both.*'
        $run.Calls | Should -BeNullOrEmpty
    }

    It 'stops when a step fails, naming it and its exit code' {
        $run = Invoke-Deploy -Environment @{ PLUTUS_STUB_NPM_EXIT = '3' }
        $run.ExitCode | Should -Be 1
        $run.Output -join "`n" | Should -BeLike '*Installing dependencies (npm ci) failed (exit code 3).*'
        $run.Calls | Should -Be @('node --version', 'npm ci --no-audit --no-fund')
    }

    It 'lists every missing prerequisite the way a Windows admin sees it, and runs nothing' {
        PlutusSimHost\Update-SimHost { param($s) $s.freeMemoryMB = 1024 } | Out-Null
        Remove-Item -LiteralPath (Join-Path $Root 'host/D/Masters/ws2022-std-sysprep.vhdx') -Force
        $run = Invoke-Deploy -Tools @('node', 'npm') -Environment @{ PLUTUS_SIM_ELEVATED = '0'; PLUTUS_STUB_NODE_VERSION = 'v18.19.1'; PLUTUS_SIM_EXECUTION_POLICY = 'AllSigned' }
        $run.ExitCode | Should -Be 1
        $run.Output | Should -Be @(
            'Cannot deploy the Plutus lab:',
            '  - Not elevated: start PowerShell with "Run as administrator" (Hyper-V and NAT changes need it).',
            "  - 'pulumi' is not on PATH: install it (Node.js 20.17 or later; Pulumi CLI from its Windows installer) and open a new PowerShell.",
            '  - Node.js v18.19.1 is too old for the Pulumi program: it needs 20.17 or later (22.9 or later on 22). Install the current LTS from nodejs.org and open a new PowerShell.',
            '  - The execution policy is AllSigned, which blocks npm.ps1 and this script: start it as  powershell -ExecutionPolicy Bypass -File .\Deploy-PlutusInfra.ps1',
            "  - Master disk D:\Masters\ws2022-std-sysprep.vhdx (plutus:windowsMasterVhdx) not found: copy the master VHDX there or fix $(Join-Path $Root 'repo/Pulumi.dev.yaml').",
            '  - Only 1,024 MB of memory free; the lab VMs that are not running yet need 6,144 MB (see webVm/erpVm memoryMB).')
        $run.Calls | Should -Be @('node --version')
    }

    It 'says when the Hyper-V module is missing' {
        $modules = Join-Path $Root 'modules-without-hyperv'
        $null = New-Item -ItemType Directory -Path $modules
        foreach ($module in Get-ChildItem -LiteralPath $SimModules -Directory) { if ($module.Name -ne 'Hyper-V') { $null = New-Item -ItemType SymbolicLink -Path (Join-Path $modules $module.Name) -Target $module.FullName } }
        $run = Invoke-Deploy -Arguments '-Destroy' -Environment @{ PSModulePath = $modules }
        $run.ExitCode | Should -Be 1
        $run.Output | Should -Contain '  - The Hyper-V PowerShell module is missing: Install-WindowsFeature Hyper-V -IncludeManagementTools (Server) or Enable-WindowsOptionalFeature -Online -FeatureName Microsoft-Hyper-V-All (client), then reboot.'
    }

    It 'asks only for the memory of lab VMs that are not running yet' {
        PlutusSimHost\Update-SimHost { param($s) $s.freeMemoryMB = 3000; $s.vms = @(@{ Name = 'plutus-erp'; Id = [string][guid]::NewGuid(); State = 'Running'; Disks = @() }) } | Out-Null
        $run = Invoke-Deploy -Arguments '-Preview'
        $run.ExitCode | Should -Be 0
    }
}
