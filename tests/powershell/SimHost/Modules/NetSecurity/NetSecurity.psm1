<# .SYNOPSIS Stub of the NetSecurity module inside a simulated guest: firewall rules with their port and address filters. #>
$ErrorActionPreference = 'Stop'
Import-Module -Name PlutusSimHost

function ConvertTo-SimRule { param($r) [pscustomobject]@{ Name = $r.Name; DisplayName = $r.DisplayName; Enabled = $r.Enabled; Direction = $r.Direction; Action = $r.Action } }

function Get-NetFirewallRule {
    [CmdletBinding()]
    param([Parameter(Mandatory = $false)]$AssociatedNetFirewallPortFilter)
    $rules = @((Get-SimMachine -State (Read-SimState)).firewall)
    if ($null -ne $AssociatedNetFirewallPortFilter) { $rules = @($rules | Where-Object { $_.Name -eq $AssociatedNetFirewallPortFilter.InstanceID }) }
    foreach ($r in $rules) { ConvertTo-SimRule $r }
}

function Get-NetFirewallPortFilter {
    [CmdletBinding()]
    param([switch]$All, [Parameter(Mandatory = $false, ValueFromPipeline = $true)]$AssociatedNetFirewallRule)
    process {
        $rules = @((Get-SimMachine -State (Read-SimState)).firewall)
        if (-not $All) { $rules = @($rules | Where-Object { $_.Name -eq $AssociatedNetFirewallRule.Name }) }
        foreach ($r in $rules) { [pscustomobject]@{ InstanceID = $r.Name; Protocol = $r.Protocol; LocalPort = $r.LocalPort } }
    }
}

function Get-NetFirewallAddressFilter {
    [CmdletBinding()]
    param([Parameter(Mandatory = $true, ValueFromPipeline = $true)]$AssociatedNetFirewallRule)
    process {
        $r = (Get-SimMachine -State (Read-SimState)).firewall | Where-Object { $_.Name -eq $AssociatedNetFirewallRule.Name }
        [pscustomobject]@{ InstanceID = $r.Name; RemoteAddress = $r.RemoteAddress }
    }
}

function Disable-NetFirewallRule {
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)][string]$Name)
    Update-SimHost { param($s) $r = (Get-SimMachine -State $s).firewall | Where-Object { $_.Name -eq $Name }; if ($null -eq $r) { throw "No MSFT_NetFirewallRule objects found with property 'Name' equal to '$Name'." }; $r.Enabled = 'False'; Add-SimChange $s "Disable-NetFirewallRule $Name" }
}

function Remove-NetFirewallRule {
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)][string]$Name)
    Update-SimHost { param($s) $g = Get-SimMachine -State $s; $g.firewall = @($g.firewall | Where-Object { $_.Name -ne $Name }); Add-SimChange $s "Remove-NetFirewallRule $Name" }
}

function New-NetFirewallRule {
    [CmdletBinding()]
    param(
        [Parameter(Mandatory = $true)][string]$Name, [Parameter(Mandatory = $true)][string]$DisplayName,
        [Parameter(Mandatory = $true)][ValidateSet('Inbound', 'Outbound')][string]$Direction, [Parameter(Mandatory = $true)][ValidateSet('Allow', 'Block')][string]$Action,
        [Parameter(Mandatory = $true)][string]$Protocol, [Parameter(Mandatory = $true)][string[]]$LocalPort,
        [Parameter(Mandatory = $true)][string[]]$RemoteAddress, [Parameter(Mandatory = $true)][ValidateSet('Any', 'Domain', 'Private', 'Public')][string]$Profile
    )
    Update-SimHost {
        param($s)
        $g = Get-SimMachine -State $s
        if ($g.firewall | Where-Object { $_.Name -eq $Name }) { throw "New-NetFirewallRule: a rule named '$Name' exists." }
        $g.firewall += @(@{ Name = $Name; DisplayName = $DisplayName; Enabled = 'True'; Direction = $Direction; Action = $Action; Protocol = $Protocol; LocalPort = @($LocalPort); RemoteAddress = @($RemoteAddress) })
        Add-SimChange $s "New-NetFirewallRule $Name TCP $($LocalPort -join ',') from $($RemoteAddress -join ',')"
    }
}

Export-ModuleMember -Function Get-NetFirewallRule, Get-NetFirewallPortFilter, Get-NetFirewallAddressFilter, Disable-NetFirewallRule, Remove-NetFirewallRule, New-NetFirewallRule
