<# .SYNOPSIS Stub of the NetTCPIP module: addresses and routes of the host, or of the guest inside a guest. #>
$ErrorActionPreference = 'Stop'
Import-Module -Name PlutusSimHost

function Assert-SimInterface {
    param($Machine, [int]$InterfaceIndex)
    if (-not ($Machine.netAdapters | Where-Object { $_.ifIndex -eq $InterfaceIndex })) { throw "No MSFT_NetIPInterface objects found with property 'InterfaceIndex' equal to '$InterfaceIndex'." }
}

function Get-NetIPAddress {
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)][uint32]$InterfaceIndex, [Parameter(Mandatory = $false)][ValidateSet('IPv4', 'IPv6')][string]$AddressFamily, [Parameter(Mandatory = $false)][string]$IPAddress)
    $machine = Get-SimMachine -State (Read-SimState)
    $found = @($machine.ipAddresses | Where-Object { $_.ifIndex -eq $InterfaceIndex -and (-not $IPAddress -or $_.IPAddress -eq $IPAddress) })
    if ($found.Count -eq 0) {
        $PSCmdlet.WriteError([System.Management.Automation.ErrorRecord]::new([System.Exception]::new("No matching MSFT_NetIPAddress objects found by CIM query for instances of the ROOT/StandardCimv2/MSFT_NetIPAddress class on the  CIM server"), 'CmdletizationQuery_NotFound', 'ObjectNotFound', $null))
        return
    }
    foreach ($a in $found) { [pscustomobject]@{ InterfaceIndex = $a.ifIndex; IPAddress = $a.IPAddress; PrefixLength = $a.PrefixLength; PrefixOrigin = $a.PrefixOrigin; AddressFamily = 'IPv4' } }
}

function New-NetIPAddress {
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)][uint32]$InterfaceIndex, [Parameter(Mandatory = $true)][string]$IPAddress, [Parameter(Mandatory = $true)][byte]$PrefixLength, [Parameter(Mandatory = $false)][string]$DefaultGateway)
    $null = [System.Net.IPAddress]::Parse($IPAddress)
    Update-SimHost {
        param($s)
        $machine = Get-SimMachine -State $s
        Assert-SimInterface -Machine $machine -InterfaceIndex $InterfaceIndex
        if ($machine.ipAddresses | Where-Object { $_.ifIndex -eq $InterfaceIndex -and $_.IPAddress -eq $IPAddress }) { throw 'Instance MSFT_NetIPAddress already exists.' }
        $machine.ipAddresses += @(@{ ifIndex = [int]$InterfaceIndex; IPAddress = $IPAddress; PrefixLength = [int]$PrefixLength; PrefixOrigin = 'Manual' })
        if ($DefaultGateway) { $machine.routes += @(@{ ifIndex = [int]$InterfaceIndex; DestinationPrefix = '0.0.0.0/0'; NextHop = $DefaultGateway }) }
        Add-SimChange $s "New-NetIPAddress $IPAddress/$PrefixLength on $InterfaceIndex$(if ($DefaultGateway) { " via $DefaultGateway" })"
    }
    [pscustomobject]@{ IPAddress = $IPAddress; PrefixLength = $PrefixLength }
}

function Remove-NetIPAddress {
    [CmdletBinding(SupportsShouldProcess = $true)]
    param([Parameter(Mandatory = $true)][uint32]$InterfaceIndex, [Parameter(Mandatory = $true)][string]$IPAddress)
    Update-SimHost {
        param($s)
        $machine = Get-SimMachine -State $s
        if (-not ($machine.ipAddresses | Where-Object { $_.ifIndex -eq $InterfaceIndex -and $_.IPAddress -eq $IPAddress })) {
            throw 'No matching MSFT_NetIPAddress objects found by CIM query for instances of the ROOT/StandardCimv2/MSFT_NetIPAddress class on the  CIM server'
        }
        $machine.ipAddresses = @($machine.ipAddresses | Where-Object { -not ($_.ifIndex -eq $InterfaceIndex -and $_.IPAddress -eq $IPAddress) })
        Add-SimChange $s "Remove-NetIPAddress $IPAddress from $InterfaceIndex"
    }
}

function Set-NetIPInterface {
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)][uint32]$InterfaceIndex, [Parameter(Mandatory = $true)][ValidateSet('Enabled', 'Disabled')][string]$Dhcp)
    Update-SimHost {
        param($s)
        $machine = Get-SimMachine -State $s
        Assert-SimInterface -Machine $machine -InterfaceIndex $InterfaceIndex
        $adapter = $machine.netAdapters | Where-Object { $_.ifIndex -eq $InterfaceIndex }
        $adapter.Dhcp = $Dhcp
        # Turning DHCP off drops the addresses DHCP (or APIPA) gave the interface, at once.
        if ($Dhcp -eq 'Disabled') { $machine.ipAddresses = @($machine.ipAddresses | Where-Object { -not ($_.ifIndex -eq $InterfaceIndex -and $_.PrefixOrigin -in 'Dhcp', 'WellKnown') }) }
        Add-SimChange $s "Set-NetIPInterface $InterfaceIndex -Dhcp $Dhcp"
    }
}

function Get-NetRoute {
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)][uint32]$InterfaceIndex, [Parameter(Mandatory = $true)][string]$DestinationPrefix)
    $machine = Get-SimMachine -State (Read-SimState)
    $found = @($machine.routes | Where-Object { $_.ifIndex -eq $InterfaceIndex -and $_.DestinationPrefix -eq $DestinationPrefix })
    if ($found.Count -eq 0) {
        $PSCmdlet.WriteError([System.Management.Automation.ErrorRecord]::new([System.Exception]::new('No matching MSFT_NetRoute objects found'), 'CmdletizationQuery_NotFound', 'ObjectNotFound', $null))
        return
    }
    foreach ($r in $found) { [pscustomobject]@{ InterfaceIndex = $r.ifIndex; DestinationPrefix = $r.DestinationPrefix; NextHop = $r.NextHop } }
}

function Remove-NetRoute {
    [CmdletBinding(SupportsShouldProcess = $true)]
    param([Parameter(Mandatory = $true, ValueFromPipeline = $true)]$InputObject)
    process {
        Update-SimHost {
            param($s)
            $machine = Get-SimMachine -State $s
            $machine.routes = @($machine.routes | Where-Object { -not ($_.ifIndex -eq $InputObject.InterfaceIndex -and $_.DestinationPrefix -eq $InputObject.DestinationPrefix -and $_.NextHop -eq $InputObject.NextHop) })
            Add-SimChange $s "Remove-NetRoute $($InputObject.DestinationPrefix) via $($InputObject.NextHop)"
        }
    }
}

Export-ModuleMember -Function Get-NetIPAddress, New-NetIPAddress, Remove-NetIPAddress, Set-NetIPInterface, Get-NetRoute, Remove-NetRoute
