<#
.SYNOPSIS
    Turns off and removes exactly one VM by name; its disks are left to their own delete steps.
.PARAMETER Name
    Exact VM name (compared with -eq, never as a wildcard).
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory = $true)][string]$Name
)
$ErrorActionPreference = 'Stop'
$vm = Hyper-V\Get-VM | Microsoft.PowerShell.Core\Where-Object { $_.Name -eq $Name }
$changes = @()
if ($null -ne $vm) {
    if ($vm.State -ne 'Off') {
        Hyper-V\Stop-VM -VM $vm -TurnOff -Force
    }
    Hyper-V\Remove-VM -VM $vm -Force
    $changes = @("removed VM '$Name'")
}
[pscustomobject]@{ name = $Name; changed = $changes } | Microsoft.PowerShell.Utility\ConvertTo-Json -Compress
