<#
.SYNOPSIS
    Ensures the lab network on the Hyper-V host: an Internal switch, the host's vNIC address and, optionally, a NAT.
.DESCRIPTION
    Get, compare, set: reads the switch, the address on its host vNIC and the NAT, changes only what
    differs and prints one JSON line saying what changed. Refuses to create a NAT whose prefix
    overlaps another NAT on the host (Windows supports a single NAT prefix per internal network).
.PARAMETER SwitchName
    Exact name of the Internal virtual switch.
.PARAMETER GatewayIp
    IPv4 address given to the host's vNIC on the switch; the VMs' default gateway.
.PARAMETER PrefixLength
    Prefix length of the lab subnet.
.PARAMETER SubnetCidr
    The lab subnet in CIDR form, used as the NAT's internal prefix.
.PARAMETER EnableNat
    Whether the VMs reach outside networks through a NAT on the host.
.PARAMETER NatName
    Exact name of the NAT object.
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory = $true)][string]$SwitchName,
    [Parameter(Mandatory = $true)][string]$GatewayIp,
    [Parameter(Mandatory = $true)][int]$PrefixLength,
    [Parameter(Mandatory = $true)][string]$SubnetCidr,
    [Parameter(Mandatory = $true)][bool]$EnableNat,
    [Parameter(Mandatory = $true)][string]$NatName
)
$ErrorActionPreference = 'Stop'
$changes = New-Object -TypeName System.Collections.Generic.List[string]

function ConvertTo-PlutusRange {
    param([string]$Cidr)
    $parts = $Cidr.Split('/')
    $bytes = ([System.Net.IPAddress]::Parse($parts[0])).GetAddressBytes()
    [System.Array]::Reverse($bytes)
    $start = [uint64][System.BitConverter]::ToUInt32($bytes, 0)
    $size = [uint64][System.Math]::Pow(2, 32 - [int]$parts[1])
    $start = $start - ($start % $size)
    return [pscustomobject]@{ Start = $start; End = $start + $size - 1 }
}

$switch = Hyper-V\Get-VMSwitch | Microsoft.PowerShell.Core\Where-Object { $_.Name -eq $SwitchName }
if ($null -eq $switch) {
    $switch = Hyper-V\New-VMSwitch -Name $SwitchName -SwitchType Internal
    $changes.Add("created Internal switch '$SwitchName'")
} elseif ($switch.SwitchType -ne 'Internal') {
    throw "A switch named '$SwitchName' exists but is $($switch.SwitchType), not Internal. Rename or remove it, or set another switchName."
}

$adapter = Hyper-V\Get-VMNetworkAdapter -ManagementOS | Microsoft.PowerShell.Core\Where-Object { $_.SwitchName -eq $SwitchName } | Microsoft.PowerShell.Utility\Select-Object -First 1
if ($null -eq $adapter) {
    throw "The host vNIC of switch '$SwitchName' was not found; remove the switch and run again."
}
$netAdapter = NetAdapter\Get-NetAdapter | Microsoft.PowerShell.Core\Where-Object { $_.MacAddress.Replace('-', '') -eq $adapter.MacAddress }
if ($null -eq $netAdapter) {
    throw "No network adapter on the host matches the vNIC of switch '$SwitchName' (MAC $($adapter.MacAddress))."
}
$existing = @(NetTCPIP\Get-NetIPAddress -InterfaceIndex $netAdapter.ifIndex -AddressFamily IPv4 -ErrorAction SilentlyContinue)
$current = $existing | Microsoft.PowerShell.Core\Where-Object { $_.IPAddress -eq $GatewayIp -and $_.PrefixLength -eq $PrefixLength }
if ($null -eq $current) {
    foreach ($address in $existing) {
        if ($address.PrefixOrigin -eq 'Manual') {
            NetTCPIP\Remove-NetIPAddress -InterfaceIndex $netAdapter.ifIndex -IPAddress $address.IPAddress -Confirm:$false
            $changes.Add("removed $($address.IPAddress)/$($address.PrefixLength) from the host vNIC")
        }
    }
    $null = NetTCPIP\New-NetIPAddress -InterfaceIndex $netAdapter.ifIndex -IPAddress $GatewayIp -PrefixLength $PrefixLength
    $changes.Add("set $GatewayIp/$PrefixLength on the host vNIC")
}

$wanted = ConvertTo-PlutusRange -Cidr $SubnetCidr
$nats = @(NetNat\Get-NetNat -ErrorAction SilentlyContinue)
$ours = $nats | Microsoft.PowerShell.Core\Where-Object { $_.Name -eq $NatName }
foreach ($nat in $nats) {
    if ($nat.Name -eq $NatName) { continue }
    # A NAT made for an external prefix only (a VPN client, Docker) has no internal prefix to overlap.
    if ([string]::IsNullOrEmpty($nat.InternalIPInterfaceAddressPrefix)) { continue }
    $other = ConvertTo-PlutusRange -Cidr $nat.InternalIPInterfaceAddressPrefix
    if ($other.Start -le $wanted.End -and $wanted.Start -le $other.End) {
        throw "The NAT '$($nat.Name)' ($($nat.InternalIPInterfaceAddressPrefix)) overlaps the lab subnet $SubnetCidr. Choose another subnet, or remove that NAT if it is unused."
    }
}
if ($EnableNat) {
    if ($null -ne $ours -and $ours.InternalIPInterfaceAddressPrefix -ne $SubnetCidr) {
        NetNat\Remove-NetNat -Name $NatName -Confirm:$false
        $changes.Add("removed NAT '$NatName' with prefix $($ours.InternalIPInterfaceAddressPrefix)")
        $ours = $null
    }
    if ($null -eq $ours) {
        $null = NetNat\New-NetNat -Name $NatName -InternalIPInterfaceAddressPrefix $SubnetCidr
        $changes.Add("created NAT '$NatName' for $SubnetCidr")
    }
} elseif ($null -ne $ours) {
    NetNat\Remove-NetNat -Name $NatName -Confirm:$false
    $changes.Add("removed NAT '$NatName' (nat is off)")
}

[pscustomobject]@{ switchName = $SwitchName; gatewayIp = $GatewayIp; nat = $EnableNat; changed = @($changes) } | Microsoft.PowerShell.Utility\ConvertTo-Json -Compress
