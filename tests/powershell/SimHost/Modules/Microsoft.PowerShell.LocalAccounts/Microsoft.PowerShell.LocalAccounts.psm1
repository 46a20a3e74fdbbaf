<# .SYNOPSIS Stub of Microsoft.PowerShell.LocalAccounts inside a simulated guest. #>
$ErrorActionPreference = 'Stop'
Import-Module -Name PlutusSimHost

function Get-LocalUser {
    [CmdletBinding()]
    param()
    foreach ($u in (Get-SimMachine -State (Read-SimState)).users) { [pscustomobject]@{ Name = $u.Name; SID = $u.SID; Enabled = $true } }
}

function New-LocalUser {
    [CmdletBinding()]
    param(
        [Parameter(Mandatory = $true)][ValidateLength(1, 20)][string]$Name, [Parameter(Mandatory = $true)][securestring]$Password,
        [switch]$PasswordNeverExpires, [switch]$AccountNeverExpires, [switch]$UserMayNotChangePassword, [Parameter(Mandatory = $false)][ValidateLength(0, 48)][string]$Description
    )
    Update-SimHost {
        param($s)
        $g = Get-SimMachine -State $s
        if ($g.users | Where-Object { $_.Name -eq $Name }) { throw "User $Name already exists." }
        $sid = "S-1-5-21-1-$($g.nextSid)"; $g.nextSid++
        $g.users += @(@{ Name = $Name; SID = $sid; Description = $Description })
        Add-SimChange $s "New-LocalUser $Name"
        [pscustomobject]@{ Name = $Name; SID = $sid; Enabled = $true }
    }
}

function Get-LocalGroupMember {
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)][string]$SID)
    if ($SID -ne 'S-1-5-32-544') { throw "Group $SID was not found (simulated guest)." }
    $g = Get-SimMachine -State (Read-SimState)
    foreach ($member in $g.admins) { [pscustomobject]@{ SID = $member; Name = ($g.users | Where-Object { $_.SID -eq $member }).Name } }
}

function Remove-LocalGroupMember {
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)][string]$SID, [Parameter(Mandatory = $true)]$Member)
    Update-SimHost { param($s) $g = Get-SimMachine -State $s; $g.admins = @($g.admins | Where-Object { $_ -ne $Member.SID }); Add-SimChange $s "Remove-LocalGroupMember Administrators $($Member.Name)" }
}

Export-ModuleMember -Function Get-LocalUser, New-LocalUser, Get-LocalGroupMember, Remove-LocalGroupMember
