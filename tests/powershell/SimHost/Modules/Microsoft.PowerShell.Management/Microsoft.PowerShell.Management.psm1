<#
.SYNOPSIS
    Stand-in for Microsoft.PowerShell.Management: the real cmdlets (as proxies), plus the Windows
    service cmdlets and Copy-Item -ToSession acting on the simulated guest.
#>
$ErrorActionPreference = 'Stop'
. (Join-Path -Path $PSScriptRoot -ChildPath '../PlutusSimHost/ShadowModule.ps1')
Import-PlutusShadowedModule -Name 'Microsoft.PowerShell.Management' -Replaced @('Copy-Item')
Import-Module -Name PlutusSimHost

function Get-SimService {
    param([hashtable]$State, [string]$Name)
    $machine = Get-SimMachine -State $State
    if ($machine.ContainsKey('services') -and $machine.services.ContainsKey($Name)) { return $machine.services[$Name] }
    return $null
}

function Get-Service {
    [CmdletBinding()]
    param([Parameter(Mandatory = $true, Position = 0)][string]$Name)
    $service = Get-SimService -State (Read-SimState) -Name $Name
    if ($null -eq $service) {
        $PSCmdlet.WriteError([System.Management.Automation.ErrorRecord]::new([System.InvalidOperationException]::new("Cannot find any service with service name '$Name'."), 'NoServiceFoundForGivenName', 'ObjectNotFound', $Name))
        return
    }
    [pscustomobject]@{ Name = $Name; Status = $service.Status; StartType = $service.StartType }
}

function Set-Service {
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)][string]$Name, [Parameter(Mandatory = $true)][ValidateSet('Automatic', 'Manual', 'Disabled', 'AutomaticDelayedStart')][string]$StartupType)
    Update-SimHost { param($s) $svc = Get-SimService -State $s -Name $Name; if ($null -eq $svc) { throw "Service '$Name' was not found." }; $svc.StartType = $StartupType; Add-SimChange $s "Set-Service $Name $StartupType" }
}

function Start-Service {
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)][string]$Name)
    Update-SimHost { param($s) $svc = Get-SimService -State $s -Name $Name; if ($null -eq $svc) { throw "Service '$Name' was not found." }; $svc.Status = 'Running'; $svc.starts++; Add-SimChange $s "Start-Service $Name" }
}

function Restart-Service {
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)][string]$Name)
    Update-SimHost { param($s) $svc = Get-SimService -State $s -Name $Name; if ($null -eq $svc) { throw "Service '$Name' was not found." }; $svc.Status = 'Running'; $svc.starts++; Add-SimChange $s "Restart-Service $Name" }
}

function Copy-Item {
    [CmdletBinding()]
    param(
        [Parameter(Mandatory = $false, Position = 0)][string[]]$Path,
        [Parameter(Mandatory = $false)][string[]]$LiteralPath,
        [Parameter(Mandatory = $false, Position = 1)][string]$Destination,
        [Parameter(Mandatory = $false)]$ToSession,
        [switch]$Recurse,
        [switch]$Force
    )
    if ($null -eq $ToSession) {
        $PSBoundParameters.Remove('ToSession') | Out-Null
        return (& $script:RealCmdlets['Copy-Item'] @PSBoundParameters)
    }
    # Into the guest of a PowerShell Direct session: its C: is the guest's system volume folder.
    $guest = (Read-SimState).guests[$ToSession.VMName]
    if (-not $Destination.StartsWith('C:\')) { throw "Copy-Item -ToSession: only C:\ destinations are simulated, got '$Destination'." }
    $target = Join-Path -Path $guest.osFolder -ChildPath $Destination.Substring(3).Replace('\', '/')
    $null = New-Item -ItemType Directory -Path (Split-Path -Parent $target) -Force
    & $script:RealCmdlets['Copy-Item'] -LiteralPath $LiteralPath -Destination $target -Recurse:$Recurse -Force
    Update-SimHost { param($s) Add-SimChange $s "Copy-Item -ToSession $($ToSession.VMName) $Destination" }
}

Export-ModuleMember -Function *
