# Dot-sourced by every suite: a fresh simulated host in a temp folder, the lab scripts, and cleanup.
$script:Repo = (Resolve-Path -LiteralPath (Join-Path -Path $PSScriptRoot -ChildPath '../../..')).ProviderPath
$script:Scripts = Join-Path -Path $script:Repo -ChildPath 'infra/scripts'
$script:SimModules = (Resolve-Path -LiteralPath (Join-Path -Path $PSScriptRoot -ChildPath '../SimHost/Modules')).ProviderPath
if (-not ($env:PSModulePath -split [System.IO.Path]::PathSeparator -contains $script:SimModules)) {
    $env:PSModulePath = $script:SimModules + [System.IO.Path]::PathSeparator + $env:PSModulePath
}

function New-TestHost {
    param([bool]$Automount = $true)
    $root = Join-Path -Path ([System.IO.Path]::GetTempPath()) -ChildPath ('plutus-simhost-' + [guid]::NewGuid().ToString('N').Substring(0, 12))
    Import-Module -Name PlutusSimHost -Global -Force
    PlutusSimHost\New-SimHost -Root $root -Automount $Automount
    PlutusSimHost\Import-SimShadowModules
    return $root
}

function Remove-TestHost {
    param([string]$Root)
    foreach ($drive in Get-PSDrive -PSProvider FileSystem) { if ($drive.Root.StartsWith($Root)) { Remove-PSDrive -Name $drive.Name -Force -Scope Global -ErrorAction SilentlyContinue } }
    Set-Location -LiteralPath ([System.IO.Path]::GetTempPath())
    [System.Environment]::CurrentDirectory = [System.IO.Path]::GetTempPath()
    if ($Root -and (Test-Path -LiteralPath $Root)) {
        Get-ChildItem -LiteralPath $Root -Recurse -Force -File | ForEach-Object { $_.IsReadOnly = $false }
        Remove-Item -LiteralPath $Root -Recurse -Force
    }
    $env:PLUTUS_SIM_ROOT = $null
}

function Invoke-LabScript {
    <# .SYNOPSIS Runs infra/scripts/<Name> with Parameters; returns its JSON result line as an object (and the host's new changes). #>
    param([Parameter(Mandatory = $true)][string]$Name, [Parameter(Mandatory = $true)][hashtable]$Parameters, [string[]]$Helpers = @())
    if ($Helpers.Count -gt 0) { $Parameters = $Parameters.Clone(); $Parameters['Helpers'] = @($Helpers | ForEach-Object { [System.IO.File]::ReadAllText((Join-Path $script:Scripts $_)) }) }
    $before = @(PlutusSimHost\Get-SimChanges).Count
    $output = & (Join-Path -Path $script:Scripts -ChildPath $Name) @Parameters
    $line = @($output | Where-Object { $_ -is [string] -and $_.StartsWith('{') })[-1]
    $result = $line | ConvertFrom-Json
    $result | Add-Member -NotePropertyName HostChanges -NotePropertyValue @(@(PlutusSimHost\Get-SimChanges) | Select-Object -Skip $before)
    return $result
}
