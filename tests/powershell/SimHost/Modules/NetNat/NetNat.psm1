<# .SYNOPSIS Stub of the NetNat module on the simulated host. #>
$ErrorActionPreference = 'Stop'
Import-Module -Name PlutusSimHost

function Get-NetNat {
    [CmdletBinding()]
    param()
    Assert-SimHostContext -Cmdlet 'Get-NetNat'
    # A NAT made for an external prefix only (e.g. by Docker or a VPN client) has no internal prefix.
    foreach ($nat in (Read-SimState).nats) { [pscustomobject]@{ Name = $nat.Name; InternalIPInterfaceAddressPrefix = $nat.InternalIPInterfaceAddressPrefix; ExternalIPInterfaceAddressPrefix = $nat.ExternalIPInterfaceAddressPrefix } }
}

function New-NetNat {
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)][string]$Name, [Parameter(Mandatory = $true)][string]$InternalIPInterfaceAddressPrefix)
    Update-SimHost {
        param($s)
        if ($s.nats | Where-Object { $_.Name -eq $Name }) { throw "New-NetNat: a NAT named '$Name' exists." }
        if (@($s.nats | Where-Object { $_.InternalIPInterfaceAddressPrefix }).Count -gt 0) { throw 'New-NetNat: The parameter is incorrect (Windows supports one internal NAT prefix per host in the simulated host).' }
        $s.nats += @(@{ Name = $Name; InternalIPInterfaceAddressPrefix = $InternalIPInterfaceAddressPrefix; ExternalIPInterfaceAddressPrefix = '' })
        Add-SimChange $s "New-NetNat $Name $InternalIPInterfaceAddressPrefix"
    }
}

function Remove-NetNat {
    [CmdletBinding(SupportsShouldProcess = $true)]
    param([Parameter(Mandatory = $true)][string]$Name)
    Update-SimHost {
        param($s)
        if (-not ($s.nats | Where-Object { $_.Name -eq $Name })) { throw "No MSFT_NetNat objects found with property 'Name' equal to '$Name'." }
        $s.nats = @($s.nats | Where-Object { $_.Name -ne $Name })
        Add-SimChange $s "Remove-NetNat $Name"
    }
}

Export-ModuleMember -Function Get-NetNat, New-NetNat, Remove-NetNat
