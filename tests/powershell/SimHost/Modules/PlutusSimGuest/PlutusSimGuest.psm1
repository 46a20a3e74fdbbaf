<#
.SYNOPSIS
    Inside a simulated Windows guest: New-Object for the Windows-only security types (their .NET
    constructors throw on Linux) returns objects with the same methods the scripts call, backed by
    plain data that Get-Acl/Set-Acl keep per path. Every other type goes to the real New-Object.
#>
$ErrorActionPreference = 'Stop'

function New-SimRule {
    param($Identity, $Rights, $Inheritance = 'None', $Propagation = 'None', $Type = 'Allow')
    $sid = if ($Identity -is [string]) { $Identity } else { [string]$Identity.Value }
    if ($sid -notmatch '^S-1-') { throw "simulated ACL: identity '$sid' is not a SID" }
    # As .NET's FileSystemAccessRule does: an Allow rule always carries Synchronize.
    $Rights = [System.Security.AccessControl.FileSystemRights]$Rights
    if ([string]$Type -eq 'Allow') { $Rights = $Rights -bor [System.Security.AccessControl.FileSystemRights]::Synchronize }
    [pscustomobject]@{
        IdentityReference = [pscustomobject]@{ Value = $sid }
        FileSystemRights = [System.Security.AccessControl.FileSystemRights]$Rights
        InheritanceFlags = [System.Security.AccessControl.InheritanceFlags]$Inheritance
        PropagationFlags = [System.Security.AccessControl.PropagationFlags]$Propagation
        AccessControlType = [System.Security.AccessControl.AccessControlType]$Type
    }
}

function New-SimSecurity {
    param([bool]$Directory, [hashtable]$Stored = @{ owner = ''; protected = $false; rules = @() })
    $security = [pscustomobject]@{ PSTypeName = 'PlutusSim.FileSystemSecurity'; Directory = $Directory; Owner = $Stored.owner; Protected = [bool]$Stored.protected; Rules = New-Object System.Collections.ArrayList }
    foreach ($r in $Stored.rules) { $null = $security.Rules.Add((New-SimRule -Identity $r.sid -Rights ([int64]$r.rights) -Inheritance ([int]$r.inheritance) -Propagation ([int]$r.propagation) -Type $r.type)) }
    $security | Add-Member -MemberType ScriptProperty -Name AreAccessRulesProtected -Value { $this.Protected }
    $security | Add-Member -MemberType ScriptMethod -Name SetAccessRuleProtection -Value { param($isProtected, $preserve) $this.Protected = [bool]$isProtected; if (-not $preserve) { } }
    $security | Add-Member -MemberType ScriptMethod -Name SetOwner -Value { param($sid) $this.Owner = [string]$sid.Value }
    $security | Add-Member -MemberType ScriptMethod -Name GetOwner -Value { param($type) [pscustomobject]@{ Value = $this.Owner } }
    $security | Add-Member -MemberType ScriptMethod -Name AddAccessRule -Value { param($rule) $null = $this.Rules.Add($rule) }
    $security | Add-Member -MemberType ScriptMethod -Name GetAccessRules -Value { param($explicit, $inherited, $type) if ($explicit) { @($this.Rules) } else { @() } }
    return $security
}

function ConvertFrom-SimSecurity {
    param($Security)
    if ($Security.PSTypeNames -notcontains 'PlutusSim.FileSystemSecurity') { throw 'Set-Acl: AclObject is not a security descriptor.' }
    @{ owner = $Security.Owner; protected = $Security.Protected; rules = @($Security.Rules | ForEach-Object {
                @{ sid = $_.IdentityReference.Value; rights = [int64]$_.FileSystemRights; inheritance = [int]$_.InheritanceFlags; propagation = [int]$_.PropagationFlags; type = [string]$_.AccessControlType } }) }
}

function New-Object {
    [CmdletBinding()]
    param([Parameter(Mandatory = $true, Position = 0)][string]$TypeName, [Parameter(Mandatory = $false, Position = 1)][object[]]$ArgumentList)
    switch ($TypeName) {
        'System.Security.AccessControl.DirectorySecurity' { return (New-SimSecurity -Directory $true) }
        'System.Security.AccessControl.FileSecurity' { return (New-SimSecurity -Directory $false) }
        'System.Security.Principal.SecurityIdentifier' { return [pscustomobject]@{ Value = [string]$ArgumentList[0] } }
        'System.Security.AccessControl.FileSystemAccessRule' {
            if ($ArgumentList.Count -eq 3) { return (New-SimRule -Identity $ArgumentList[0] -Rights $ArgumentList[1] -Type $ArgumentList[2]) }
            if ($ArgumentList.Count -eq 5) { return (New-SimRule -Identity $ArgumentList[0] -Rights $ArgumentList[1] -Inheritance $ArgumentList[2] -Propagation $ArgumentList[3] -Type $ArgumentList[4]) }
            throw "FileSystemAccessRule: no constructor takes $($ArgumentList.Count) arguments"
        }
        default {
            # One object, never enumerated (an empty List[string] must stay a List), as New-Object writes it.
            $made = Microsoft.PowerShell.Utility\New-Object @PSBoundParameters
            $PSCmdlet.WriteObject($made, $false)
        }
    }
}

Export-ModuleMember -Function New-Object, New-SimSecurity, ConvertFrom-SimSecurity
