<#
.SYNOPSIS
    Runs the Pester suites under tests/powershell against the simulated Hyper-V host and prints the summary.
.PARAMETER PesterModule
    Path of Pester.psd1 (restored by install-tools.sh).
.PARAMETER Path
    Test files or folders to run; default: every *.Tests.ps1 under tests/powershell.
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory = $true)][string]$PesterModule,
    [Parameter(Mandatory = $false, ValueFromRemainingArguments = $true)][string[]]$Path = @()
)
$ErrorActionPreference = 'Stop'
Import-Module -Name $PesterModule -Force
$configuration = New-PesterConfiguration
$configuration.Run.Path = if ($Path.Count -gt 0) { $Path } else { @(Join-Path -Path $PSScriptRoot -ChildPath 'suites') }
$configuration.Run.PassThru = $true
$configuration.Output.Verbosity = 'Detailed'
$configuration.Output.StackTraceVerbosity = 'FirstLine'
$leftBefore = @(Get-ChildItem -Path ([System.IO.Path]::GetTempPath()) -Filter 'plutus-simhost-*' -Directory).Count
$result = Invoke-Pester -Configuration $configuration
"Pester: $($result.PassedCount) passed, $($result.FailedCount) failed, $($result.SkippedCount) skipped"
"$($result.PassedCount) passed, $($result.FailedCount) failed"
# Every suite removes the simulated hosts it made; one left behind is a failure.
$left = @(Get-ChildItem -Path ([System.IO.Path]::GetTempPath()) -Filter 'plutus-simhost-*' -Directory)
if ($left.Count -gt $leftBefore) {
    "Left behind by the suites: $(($left | ForEach-Object { $_.FullName }) -join ', ')"
    exit 1
}
# A skipped or not-run test is a failure here: nothing in these suites may be silently left out.
if ($result.FailedCount -gt 0 -or $result.SkippedCount -gt 0 -or $result.NotRunCount -gt 0 -or $result.PassedCount -eq 0 -or $result.Result -ne 'Passed') { exit 1 }
exit 0
