<#
.SYNOPSIS
    Stand-in for Microsoft.PowerShell.Security: the real cmdlets (as proxies), plus Get-Acl and
    Set-Acl acting on the ACLs the simulated guest keeps per path.
#>
$ErrorActionPreference = 'Stop'
. (Join-Path -Path $PSScriptRoot -ChildPath '../PlutusSimHost/ShadowModule.ps1')
Import-PlutusShadowedModule -Name 'Microsoft.PowerShell.Security' -Replaced @('Get-ExecutionPolicy')
Import-Module -Name PlutusSimHost
Import-Module -Name PlutusSimGuest -Function New-SimSecurity, ConvertFrom-SimSecurity

function Get-SimAclKeyPath {
    param([string]$LiteralPath)
    if (-not (Microsoft.PowerShell.Management\Test-Path -LiteralPath $LiteralPath)) { throw "Cannot find path '$LiteralPath' because it does not exist." }
    (Microsoft.PowerShell.Management\Resolve-Path -LiteralPath $LiteralPath).ProviderPath.TrimEnd('/')
}

function Get-Acl {
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)][string]$LiteralPath)
    $key = Get-SimAclKeyPath -LiteralPath $LiteralPath
    $machine = Get-SimMachine -State (Read-SimState)
    $directory = Microsoft.PowerShell.Management\Test-Path -LiteralPath $LiteralPath -PathType Container
    $stored = $machine.acls[$key]
    # Not set by anyone: inherited rules only, owned by Administrators (what New-Item leaves).
    if ($null -eq $stored) { $stored = @{ owner = 'S-1-5-32-544'; protected = $false; rules = @() } }
    New-SimSecurity -Directory $directory -Stored $stored
}

function Set-Acl {
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)][string]$LiteralPath, [Parameter(Mandatory = $true)]$AclObject)
    $key = Get-SimAclKeyPath -LiteralPath $LiteralPath
    Update-SimHost {
        param($s)
        $machine = Get-SimMachine -State $s
        $machine.acls[$key] = ConvertFrom-SimSecurity -Security $AclObject
        Add-SimChange $s "Set-Acl $LiteralPath"
    }
}

function Get-ExecutionPolicy {
    [CmdletBinding()]
    param()
    # The simulated host's effective policy (pwsh on Linux is always Unrestricted).
    if ($env:PLUTUS_SIM_EXECUTION_POLICY) { return $env:PLUTUS_SIM_EXECUTION_POLICY }
    return 'RemoteSigned'
}

Export-ModuleMember -Function *
