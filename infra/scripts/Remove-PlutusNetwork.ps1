<#
.SYNOPSIS
    Removes exactly the lab NAT, the host vNIC address and the Internal switch created by Set-PlutusNetwork.ps1.
.PARAMETER SwitchName
    Exact name of the switch to remove; other switches are never touched.
.PARAMETER NatName
    Exact name of the NAT to remove.
.PARAMETER GatewayIp
    The address to remove from the switch's host vNIC (only there, never from another adapter).
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory = $true)][string]$SwitchName,
    [Parameter(Mandatory = $true)][string]$NatName,
    [Parameter(Mandatory = $true)][string]$GatewayIp
)
$ErrorActionPreference = 'Stop'
$changes = New-Object -TypeName System.Collections.Generic.List[string]

$nat = NetNat\Get-NetNat -ErrorAction SilentlyContinue | Microsoft.PowerShell.Core\Where-Object { $_.Name -eq $NatName }
if ($null -ne $nat) {
    NetNat\Remove-NetNat -Name $NatName -Confirm:$false
    $changes.Add("removed NAT '$NatName'")
}
$switch = Hyper-V\Get-VMSwitch | Microsoft.PowerShell.Core\Where-Object { $_.Name -eq $SwitchName }
if ($null -ne $switch) {
    # Only the address on this switch's host vNIC: the same address may exist on another adapter.
    $adapter = Hyper-V\Get-VMNetworkAdapter -ManagementOS | Microsoft.PowerShell.Core\Where-Object { $_.SwitchName -eq $SwitchName } | Microsoft.PowerShell.Utility\Select-Object -First 1
    $netAdapter = $null
    if ($null -ne $adapter) {
        $netAdapter = NetAdapter\Get-NetAdapter | Microsoft.PowerShell.Core\Where-Object { $_.MacAddress.Replace('-', '') -eq $adapter.MacAddress } | Microsoft.PowerShell.Utility\Select-Object -First 1
    }
    if ($null -ne $netAdapter) {
        $address = NetTCPIP\Get-NetIPAddress -InterfaceIndex $netAdapter.ifIndex -IPAddress $GatewayIp -ErrorAction SilentlyContinue
        if ($null -ne $address) {
            NetTCPIP\Remove-NetIPAddress -InterfaceIndex $netAdapter.ifIndex -IPAddress $GatewayIp -Confirm:$false
            $changes.Add("removed $GatewayIp from the switch's host vNIC")
        }
    }
    Hyper-V\Remove-VMSwitch -VMSwitch $switch -Force
    $changes.Add("removed switch '$SwitchName'")
}
[pscustomobject]@{ switchName = $SwitchName; changed = @($changes) } | Microsoft.PowerShell.Utility\ConvertTo-Json -Compress
