<#
.SYNOPSIS
    Deletes exactly one lab disk file, after checking it is what the lab created and not a protected master.
.PARAMETER Path
    Full path of the VHDX to delete. Nothing else is deleted: no wildcard, no prefix match.
.PARAMETER ExpectedVhdType
    The disk type the lab created there (Differencing for VM disks, Dynamic for seed disks); any other type is left alone.
.PARAMETER ProtectedPath
    Paths that must never be deleted (the master disks).
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory = $true)][string]$Path,
    [Parameter(Mandatory = $true)][ValidateSet('Differencing', 'Dynamic')][string]$ExpectedVhdType,
    [Parameter(Mandatory = $true)][string[]]$ProtectedPath
)
$ErrorActionPreference = 'Stop'

$full = $ExecutionContext.SessionState.Path.GetUnresolvedProviderPathFromPSPath($Path)
foreach ($protected in $ProtectedPath) {
    if ([string]::Equals($full, $ExecutionContext.SessionState.Path.GetUnresolvedProviderPathFromPSPath($protected), [System.StringComparison]::OrdinalIgnoreCase)) {
        throw "Refusing to delete '$full': it is a protected master disk."
    }
}
if (-not (Microsoft.PowerShell.Management\Test-Path -LiteralPath $full -PathType Leaf)) {
    [pscustomobject]@{ path = $full; changed = @() } | Microsoft.PowerShell.Utility\ConvertTo-Json -Compress
    return
}
$vhd = Hyper-V\Get-VHD -Path $full
if ($vhd.VhdType -ne $ExpectedVhdType) {
    throw "Refusing to delete '$full': it is a $($vhd.VhdType) disk, the lab created a $ExpectedVhdType disk there."
}
if ($vhd.Attached) {
    Hyper-V\Dismount-VHD -Path $full
}
Microsoft.PowerShell.Management\Remove-Item -LiteralPath $full -Force
[pscustomobject]@{ path = $full; changed = @("deleted '$full'") } | Microsoft.PowerShell.Utility\ConvertTo-Json -Compress
