<#
.SYNOPSIS
    Configures the Windows guest over PowerShell Direct: static IPv4 address, gateway, DNS; removes the consumed unattend.xml.
.DESCRIPTION
    Waits, retrying until a deadline, for PowerShell Direct to accept the Administrator credential
    (it fails while the guest is still in setup), then applies the settings get-compare-set.
.PARAMETER VmName
    Exact VM name.
.PARAMETER IpAddress
    The guest's static IPv4 address.
.PARAMETER PrefixLength
    Prefix length of the lab subnet.
.PARAMETER Gateway
    Default gateway (the host's vNIC address).
.PARAMETER DnsServers
    DNS servers for the guest.
.PARAMETER DeadlineSeconds
    How long to keep retrying PowerShell Direct.
.PARAMETER Helpers
    Texts of the helper modules the runner sends for this step: PlutusDirect.psm1
    (ConvertTo-PlutusAdministratorCredential, Connect-PlutusPowerShellDirect).
.PARAMETER AdminPassword
    The Administrator password; secret, arrives on stdin only.
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory = $true)][string]$VmName,
    [Parameter(Mandatory = $true)][string]$IpAddress,
    [Parameter(Mandatory = $true)][int]$PrefixLength,
    [Parameter(Mandatory = $true)][string]$Gateway,
    [Parameter(Mandatory = $true)][string[]]$DnsServers,
    [Parameter(Mandatory = $true)][int]$DeadlineSeconds,
    [Parameter(Mandatory = $true)][string[]]$Helpers,
    [Parameter(Mandatory = $true)][string]$AdminPassword
)
$ErrorActionPreference = 'Stop'
foreach ($helper in $Helpers) { $null = Microsoft.PowerShell.Core\New-Module -ScriptBlock ([System.Management.Automation.ScriptBlock]::Create($helper)) }
$credential = ConvertTo-PlutusAdministratorCredential -Password $AdminPassword
Connect-PlutusPowerShellDirect -VmName $VmName -Credential $credential -DeadlineSeconds $DeadlineSeconds -Advice 'Check the VM console.'

$result = Microsoft.PowerShell.Core\Invoke-Command -VMName $VmName -Credential $credential -ErrorAction Stop -ArgumentList $IpAddress, $PrefixLength, $Gateway, $DnsServers -ScriptBlock {
    param([string]$IpAddress, [int]$PrefixLength, [string]$Gateway, [string[]]$DnsServers)
    $ErrorActionPreference = 'Stop'
    $changes = New-Object -TypeName System.Collections.Generic.List[string]
    $adapter = @(NetAdapter\Get-NetAdapter -Physical | Microsoft.PowerShell.Core\Where-Object { $_.Status -eq 'Up' })
    if ($adapter.Count -ne 1) { throw "expected one connected network adapter in the guest, found $($adapter.Count)" }
    $index = $adapter[0].ifIndex
    $current = @(NetTCPIP\Get-NetIPAddress -InterfaceIndex $index -AddressFamily IPv4 -ErrorAction SilentlyContinue)
    if (-not ($current | Microsoft.PowerShell.Core\Where-Object { $_.IPAddress -eq $IpAddress -and $_.PrefixLength -eq $PrefixLength })) {
        NetTCPIP\Set-NetIPInterface -InterfaceIndex $index -Dhcp Disabled
        # Turning DHCP off drops the address DHCP (or APIPA) gave: remove only what is still there.
        $current = @(NetTCPIP\Get-NetIPAddress -InterfaceIndex $index -AddressFamily IPv4 -ErrorAction SilentlyContinue)
        foreach ($address in $current) { NetTCPIP\Remove-NetIPAddress -InterfaceIndex $index -IPAddress $address.IPAddress -Confirm:$false }
        NetTCPIP\Get-NetRoute -InterfaceIndex $index -DestinationPrefix '0.0.0.0/0' -ErrorAction SilentlyContinue | NetTCPIP\Remove-NetRoute -Confirm:$false
        $null = NetTCPIP\New-NetIPAddress -InterfaceIndex $index -IPAddress $IpAddress -PrefixLength $PrefixLength -DefaultGateway $Gateway
        $changes.Add("address $IpAddress/$PrefixLength via $Gateway")
    }
    $dns = @((DnsClient\Get-DnsClientServerAddress -InterfaceIndex $index -AddressFamily IPv4).ServerAddresses)
    if (($dns -join ',') -ne ($DnsServers -join ',')) {
        DnsClient\Set-DnsClientServerAddress -InterfaceIndex $index -ServerAddresses $DnsServers
        $changes.Add("DNS $($DnsServers -join ',')")
    }
    $unattend = Microsoft.PowerShell.Management\Join-Path -Path $env:SystemRoot -ChildPath 'Panther\unattend.xml'
    if (Microsoft.PowerShell.Management\Test-Path -LiteralPath $unattend) {
        Microsoft.PowerShell.Management\Remove-Item -LiteralPath $unattend -Force
        $changes.Add('removed the consumed unattend.xml (it held the encoded password)')
    }
    [pscustomobject]@{ computerName = $env:COMPUTERNAME; changed = @($changes) }
}
[pscustomobject]@{ vmName = $VmName; computerName = $result.computerName; changed = @($result.changed) } | Microsoft.PowerShell.Utility\ConvertTo-Json -Compress
