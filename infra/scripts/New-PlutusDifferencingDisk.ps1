<#
.SYNOPSIS
    Ensures a differencing child disk of a master VHDX; the master is only read and marked read-only.
.PARAMETER MasterPath
    Full path of the master VHDX. It must exist; it is never mounted or written, only set read-only.
.PARAMETER Path
    Full path of the child VHDX to create.
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory = $true)][string]$MasterPath,
    [Parameter(Mandatory = $true)][string]$Path
)
$ErrorActionPreference = 'Stop'
$changes = New-Object -TypeName System.Collections.Generic.List[string]

# As PowerShell's providers see the paths (GetFullPath would resolve against the process folder).
$masterFull = $ExecutionContext.SessionState.Path.GetUnresolvedProviderPathFromPSPath($MasterPath)
$childFull = $ExecutionContext.SessionState.Path.GetUnresolvedProviderPathFromPSPath($Path)
if ($masterFull -eq $childFull) {
    throw "The child disk path '$Path' is the master itself; choose another vmFolder."
}
if (-not (Microsoft.PowerShell.Management\Test-Path -LiteralPath $masterFull -PathType Leaf)) {
    throw "Master disk '$MasterPath' not found. Copy the generalized master there or fix the stack config."
}
$master = Microsoft.PowerShell.Management\Get-Item -LiteralPath $masterFull
if (-not $master.IsReadOnly) {
    $master.IsReadOnly = $true
    $changes.Add("set master '$masterFull' read-only")
}
if (Microsoft.PowerShell.Management\Test-Path -LiteralPath $childFull -PathType Leaf) {
    $vhd = Hyper-V\Get-VHD -Path $childFull
    if ($vhd.VhdType -ne 'Differencing' -or $ExecutionContext.SessionState.Path.GetUnresolvedProviderPathFromPSPath($vhd.ParentPath) -ne $masterFull) {
        throw "'$childFull' exists but is not a differencing child of '$masterFull' (type $($vhd.VhdType), parent '$($vhd.ParentPath)'). Move it away and run again."
    }
} else {
    $folder = Microsoft.PowerShell.Management\Split-Path -Path $childFull -Parent
    $null = Microsoft.PowerShell.Management\New-Item -ItemType Directory -Path $folder -Force
    $null = Hyper-V\New-VHD -Path $childFull -ParentPath $masterFull -Differencing
    $changes.Add("created differencing disk '$childFull'")
}
[pscustomobject]@{ path = $childFull; parentPath = $masterFull; changed = @($changes) } | Microsoft.PowerShell.Utility\ConvertTo-Json -Compress
