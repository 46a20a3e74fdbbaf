<#
.SYNOPSIS
    Removes exactly the lab NAT, the host vNIC address and the Internal switch created by Set-PlutusNetwork.ps1.
.PARAMETER SwitchName
    Exact name of the switch to remove; other switches are never touched.
.PARAMETER NatName
    Exact name of the NAT to remove.
.PARAMETER GatewayIp
    The host vNIC address to remove.
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
    $address = NetTCPIP\Get-NetIPAddress -IPAddress $GatewayIp -ErrorAction SilentlyContinue
    if ($null -ne $address) {
        NetTCPIP\Remove-NetIPAddress -IPAddress $GatewayIp -Confirm:$false
        $changes.Add("removed $GatewayIp from the host")
    }
    Hyper-V\Remove-VMSwitch -VMSwitch $switch -Force
    $changes.Add("removed switch '$SwitchName'")
}
[pscustomobject]@{ switchName = $SwitchName; changed = @($changes) } | Microsoft.PowerShell.Utility\ConvertTo-Json -Compress
