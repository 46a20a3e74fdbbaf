<# .SYNOPSIS Stub of the DnsClient module inside a simulated guest. #>
$ErrorActionPreference = 'Stop'
Import-Module -Name PlutusSimHost

function Get-DnsClientServerAddress {
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)][uint32]$InterfaceIndex, [Parameter(Mandatory = $true)][ValidateSet('IPv4', 'IPv6')][string]$AddressFamily)
    [pscustomobject]@{ InterfaceIndex = $InterfaceIndex; ServerAddresses = @((Get-SimMachine -State (Read-SimState)).dns) }
}

function Set-DnsClientServerAddress {
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)][uint32]$InterfaceIndex, [Parameter(Mandatory = $true)][string[]]$ServerAddresses)
    Update-SimHost { param($s) (Get-SimMachine -State $s).dns = @($ServerAddresses); Add-SimChange $s "Set-DnsClientServerAddress $($ServerAddresses -join ',')" }
}

Export-ModuleMember -Function Get-DnsClientServerAddress, Set-DnsClientServerAddress
