<#
.SYNOPSIS
    Stand-in for the PowerShell Direct parts of Microsoft.PowerShell.Core: Invoke-Command,
    New-PSSession and Remove-PSSession with -VMName/-Session reach the simulated guest. (The other
    Core commands are not modules on pwsh and keep resolving to the engine's own.)
#>
$ErrorActionPreference = 'Stop'
Import-Module -Name PlutusSimHost

function New-PSSession {
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)][string]$VMName, [Parameter(Mandatory = $true)][System.Management.Automation.PSCredential]$Credential)
    Assert-SimDirect -VmName $VMName -Credential $Credential
    [pscustomobject]@{ PSTypeName = 'PlutusSim.PSSession'; VMName = $VMName; Credential = $Credential; Id = Get-Random }
}

function Remove-PSSession {
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)]$Session)
    if ($Session.PSTypeNames -notcontains 'PlutusSim.PSSession') { throw 'Remove-PSSession: not a session.' }
}

function Invoke-Command {
    [CmdletBinding()]
    param(
        [Parameter(Mandatory = $false)][string]$VMName,
        [Parameter(Mandatory = $false)][System.Management.Automation.PSCredential]$Credential,
        [Parameter(Mandatory = $false)]$Session,
        [Parameter(Mandatory = $true)][scriptblock]$ScriptBlock,
        [Parameter(Mandatory = $false)][object[]]$ArgumentList = @()
    )
    if ($null -ne $Session) {
        if ($Session.PSTypeNames -notcontains 'PlutusSim.PSSession') { throw 'Invoke-Command: -Session is not a PowerShell Direct session.' }
        $VMName = $Session.VMName; $Credential = $Session.Credential
    }
    if (-not $VMName) { throw 'Invoke-Command: the simulated host only runs PowerShell Direct (-VMName or -Session).' }
    Invoke-SimGuestCommand -VmName $VMName -Credential $Credential -ScriptBlock $ScriptBlock -ArgumentList $ArgumentList
}

Export-ModuleMember -Function New-PSSession, Remove-PSSession, Invoke-Command
