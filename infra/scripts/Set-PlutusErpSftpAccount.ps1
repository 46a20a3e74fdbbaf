<#
.SYNOPSIS
    In the ERP guest (PowerShell Direct): the local non-admin SFTP account, its chroot, inbox and staging folders with ACLs, and its authorized key file.
.DESCRIPTION
    Get, compare, set. The account gets a random password nobody knows (it logs in with its key
    only) and is never an Administrator. Inbox and staging must be on one NTFS volume (the SFTP
    rename that publishes an order is a hard link). The authorized key file lives under
    C:\ProgramData\ssh, is UTF-8 without BOM and only SYSTEM and Administrators may access it.
.PARAMETER VmName
    Exact name of the ERP VM.
.PARAMETER UserName
    The SFTP account (lowercase, as sshd's Match User compares it).
.PARAMETER ChrootDirectory
    The account's sshd ChrootDirectory.
.PARAMETER InboxPath
    The ERP inbox (inside the chroot).
.PARAMETER StagingPath
    The staging folder (inside the chroot, same volume as the inbox).
.PARAMETER PublicKey
    The account's SSH public key line.
.PARAMETER AuthorizedKeysFileName
    File name under C:\ProgramData\ssh that sshd_config names in the account's Match block.
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
    [Parameter(Mandatory = $true)][ValidatePattern('(?-i)^[a-z0-9._-]{1,20}$')][string]$UserName,
    [Parameter(Mandatory = $true)][string]$ChrootDirectory,
    [Parameter(Mandatory = $true)][string]$InboxPath,
    [Parameter(Mandatory = $true)][string]$StagingPath,
    [Parameter(Mandatory = $true)][string]$PublicKey,
    [Parameter(Mandatory = $true)][ValidatePattern('^[A-Za-z0-9._-]+$')][string]$AuthorizedKeysFileName,
    [Parameter(Mandatory = $true)][int]$DeadlineSeconds,
    [Parameter(Mandatory = $true)][string[]]$Helpers,
    [Parameter(Mandatory = $true)][string]$AdminPassword
)
$ErrorActionPreference = 'Stop'
foreach ($helper in $Helpers) { $null = Microsoft.PowerShell.Core\New-Module -ScriptBlock ([System.Management.Automation.ScriptBlock]::Create($helper)) }
$credential = ConvertTo-PlutusAdministratorCredential -Password $AdminPassword
Connect-PlutusPowerShellDirect -VmName $VmName -Credential $credential -DeadlineSeconds $DeadlineSeconds

$result = Microsoft.PowerShell.Core\Invoke-Command -VMName $VmName -Credential $credential -ErrorAction Stop -ArgumentList $UserName, $ChrootDirectory, $InboxPath, $StagingPath, $PublicKey, $AuthorizedKeysFileName -ScriptBlock {
    param([string]$UserName, [string]$ChrootDirectory, [string]$InboxPath, [string]$StagingPath, [string]$PublicKey, [string]$AuthorizedKeysFileName)
    $ErrorActionPreference = 'Stop'
    $changes = New-Object -TypeName System.Collections.Generic.List[string]

    $user = Microsoft.PowerShell.LocalAccounts\Get-LocalUser | Microsoft.PowerShell.Core\Where-Object { $_.Name -eq $UserName }
    if ($null -eq $user) {
        $bytes = New-Object -TypeName byte[] -ArgumentList 48
        [System.Security.Cryptography.RandomNumberGenerator]::Create().GetBytes($bytes)
        $random = Microsoft.PowerShell.Security\ConvertTo-SecureString -String ('Pl1!' + [System.Convert]::ToBase64String($bytes)) -AsPlainText -Force
        $user = Microsoft.PowerShell.LocalAccounts\New-LocalUser -Name $UserName -Password $random -PasswordNeverExpires -AccountNeverExpires -UserMayNotChangePassword -Description 'Plutus order delivery (SFTP only, key login)'
        $changes.Add("created local account $UserName")
    }
    $admins = Microsoft.PowerShell.LocalAccounts\Get-LocalGroupMember -SID 'S-1-5-32-544' | Microsoft.PowerShell.Core\Where-Object { $_.SID -eq $user.SID }
    if ($null -ne $admins) {
        Microsoft.PowerShell.LocalAccounts\Remove-LocalGroupMember -SID 'S-1-5-32-544' -Member $user
        $changes.Add("removed $UserName from Administrators")
    }

    $volumes = @($InboxPath, $StagingPath, $ChrootDirectory) | Microsoft.PowerShell.Core\ForEach-Object { (Microsoft.PowerShell.Management\Split-Path -Path $_ -Qualifier).ToUpperInvariant() } | Microsoft.PowerShell.Utility\Select-Object -Unique
    if (@($volumes).Count -ne 1) { throw "chroot, inbox and staging must be on one volume, got $($volumes -join ', ')" }
    $fileSystem = (Storage\Get-Volume -DriveLetter ([string]$volumes).Substring(0, 1)).FileSystemType
    if ($fileSystem -ne 'NTFS') { throw "$volumes is $fileSystem; inbox and staging need NTFS (publishing is a hard link)" }

    $system = New-Object -TypeName System.Security.Principal.SecurityIdentifier -ArgumentList 'S-1-5-18'
    $administrators = New-Object -TypeName System.Security.Principal.SecurityIdentifier -ArgumentList 'S-1-5-32-544'
    $authenticatedUsers = New-Object -TypeName System.Security.Principal.SecurityIdentifier -ArgumentList 'S-1-5-11'
    $inherit = [System.Security.AccessControl.InheritanceFlags]'ContainerInherit, ObjectInherit'
    # What matters in an ACL: owner, protection and the explicit rules. The SDDL text read from disk
    # never equals that of a built object (flags such as AI differ), so it cannot be compared.
    function Get-PlutusAclKey {
        param($Acl) # untyped: the Pester suites hand in the simulated guest's stand-ins (the .NET ACL types throw on Linux)
        $rules = @($Acl.GetAccessRules($true, $false, [System.Security.Principal.SecurityIdentifier]) | Microsoft.PowerShell.Core\ForEach-Object {
                '{0}|{1}|{2}|{3}|{4}' -f $_.IdentityReference.Value, ([int64]$_.FileSystemRights -bor 0x100000), [int]$_.InheritanceFlags, [int]$_.PropagationFlags, $_.AccessControlType
            })
        return ('owner={0};protected={1};{2}' -f $Acl.GetOwner([System.Security.Principal.SecurityIdentifier]).Value, $Acl.AreAccessRulesProtected, (($rules | Microsoft.PowerShell.Utility\Sort-Object) -join ';'))
    }
    function Set-PlutusAcl {
        param([string]$Path, $Acl, [string]$What)
        if ((Get-PlutusAclKey -Acl (Microsoft.PowerShell.Security\Get-Acl -LiteralPath $Path)) -eq (Get-PlutusAclKey -Acl $Acl)) { return }
        Microsoft.PowerShell.Security\Set-Acl -LiteralPath $Path -AclObject $Acl
        $changes.Add("set ACL of $Path$What")
    }
    function Set-PlutusFolderAcl {
        param([string]$Path, [System.Security.AccessControl.FileSystemRights]$UserRights)
        if (-not (Microsoft.PowerShell.Management\Test-Path -LiteralPath $Path -PathType Container)) {
            $null = Microsoft.PowerShell.Management\New-Item -ItemType Directory -Path $Path -Force
            $changes.Add("created $Path")
        }
        $acl = New-Object -TypeName System.Security.AccessControl.DirectorySecurity
        $acl.SetAccessRuleProtection($true, $false)
        $acl.SetOwner($administrators)
        foreach ($sid in @($system, $administrators)) {
            $acl.AddAccessRule((New-Object -TypeName System.Security.AccessControl.FileSystemAccessRule -ArgumentList $sid, 'FullControl', $inherit, 'None', 'Allow'))
        }
        $acl.AddAccessRule((New-Object -TypeName System.Security.AccessControl.FileSystemAccessRule -ArgumentList $user.SID, $UserRights, $inherit, 'None', 'Allow'))
        Set-PlutusAcl -Path $Path -Acl $acl -What ''
    }
    Set-PlutusFolderAcl -Path $ChrootDirectory -UserRights 'ReadAndExecute'
    Set-PlutusFolderAcl -Path $InboxPath -UserRights 'Modify'
    Set-PlutusFolderAcl -Path $StagingPath -UserRights 'Modify'

    # C:\ProgramData\ssh: explicit SYSTEM and Administrators full control, Authenticated Users read
    # (what sshd expects); a folder made by New-Item would inherit ProgramData's looser ACL.
    $sshDir = Microsoft.PowerShell.Management\Join-Path -Path $env:ProgramData -ChildPath 'ssh'
    $null = Microsoft.PowerShell.Management\New-Item -ItemType Directory -Path $sshDir -Force
    $dirAcl = New-Object -TypeName System.Security.AccessControl.DirectorySecurity
    $dirAcl.SetAccessRuleProtection($true, $false)
    $dirAcl.SetOwner($administrators)
    foreach ($sid in @($system, $administrators)) {
        $dirAcl.AddAccessRule((New-Object -TypeName System.Security.AccessControl.FileSystemAccessRule -ArgumentList $sid, 'FullControl', $inherit, 'None', 'Allow'))
    }
    $dirAcl.AddAccessRule((New-Object -TypeName System.Security.AccessControl.FileSystemAccessRule -ArgumentList $authenticatedUsers, 'ReadAndExecute', $inherit, 'None', 'Allow'))
    Set-PlutusAcl -Path $sshDir -Acl $dirAcl -What ' (SYSTEM, Administrators full; Authenticated Users read)'
    $keyFile = Microsoft.PowerShell.Management\Join-Path -Path $sshDir -ChildPath $AuthorizedKeysFileName
    $wanted = (New-Object -TypeName System.Text.UTF8Encoding -ArgumentList $false).GetBytes($PublicKey.Trim() + "`n")
    $same = (Microsoft.PowerShell.Management\Test-Path -LiteralPath $keyFile -PathType Leaf) -and ([System.Convert]::ToBase64String([System.IO.File]::ReadAllBytes($keyFile)) -eq [System.Convert]::ToBase64String($wanted))
    if (-not $same) {
        [System.IO.File]::WriteAllBytes($keyFile, $wanted)
        $changes.Add("wrote $keyFile")
    }
    $fileAcl = New-Object -TypeName System.Security.AccessControl.FileSecurity
    $fileAcl.SetAccessRuleProtection($true, $false)
    $fileAcl.SetOwner($administrators)
    foreach ($sid in @($system, $administrators)) {
        $fileAcl.AddAccessRule((New-Object -TypeName System.Security.AccessControl.FileSystemAccessRule -ArgumentList $sid, 'FullControl', 'Allow'))
    }
    Set-PlutusAcl -Path $keyFile -Acl $fileAcl -What ' (SYSTEM and Administrators only)'
    [pscustomobject]@{ changed = @($changes) }
}
[pscustomobject]@{ vmName = $VmName; userName = $UserName; changed = @($result.changed) } | Microsoft.PowerShell.Utility\ConvertTo-Json -Compress
