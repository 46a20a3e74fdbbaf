<#
.SYNOPSIS
    Runs a lab step's -EncodedCommand exactly as powershell.exe would, inside the simulated host.
.DESCRIPTION
    The end-to-end test starts this in place of `powershell.exe -NoProfile -NonInteractive
    -ExecutionPolicy Bypass -EncodedCommand <x>`: it loads the simulated host named by
    $env:PLUTUS_SIM_ROOT (its stub modules must be imported before the step's first call, because
    pwsh already has modules of the same names), then runs the decoded bootstrap unchanged; the
    bootstrap reads the step document from stdin and ends the process with its own exit code.
.PARAMETER EncodedCommand
    The base64 UTF-16LE text from the command line.
#>
[CmdletBinding()]
param([Parameter(Mandatory = $true)][string]$EncodedCommand)
$ErrorActionPreference = 'Stop'
Import-Module -Name PlutusSimHost
PlutusSimHost\Import-SimShadowModules
$bootstrap = [System.Text.Encoding]::Unicode.GetString([System.Convert]::FromBase64String($EncodedCommand))
& ([scriptblock]::Create($bootstrap))
