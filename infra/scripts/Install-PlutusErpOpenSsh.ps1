<#
.SYNOPSIS
    In the ERP guest (PowerShell Direct): installs OpenSSH Server, installs the pre-generated host key before the first start, writes sshd_config after `sshd -t`, opens port 22 to the web VM only.
.DESCRIPTION
    Get, compare, set. The install source is the Windows capability (Windows Update), a
    Features-on-Demand folder on the Hyper-V host, or the Win32-OpenSSH MSI on the host; both are
    copied into the guest over the PowerShell Direct session. The service is restarted only when the
    host key or sshd_config changed, and only after `sshd -t` accepted the new configuration.
.PARAMETER VmName
    Exact name of the ERP VM.
.PARAMETER SourceKind
    capability, fod or msi.
.PARAMETER SourcePath
    For fod: the Features-on-Demand folder on the host; for msi: the .msi on the host; empty for capability.
.PARAMETER HostPublicKey
    The pre-generated ed25519 host public key line.
.PARAMETER SshdConfig
    The complete sshd_config text.
.PARAMETER AllowedClientIp
    The only address allowed to reach TCP 22 (the web VM).
.PARAMETER DeadlineSeconds
    How long to keep retrying PowerShell Direct.
.PARAMETER Helpers
    Texts of the helper modules the runner sends for this step: PlutusDirect.psm1
    (ConvertTo-PlutusAdministratorCredential, Connect-PlutusPowerShellDirect).
.PARAMETER AdminPassword
    The Administrator password; secret, arrives on stdin only.
.PARAMETER HostPrivateKey
    The ed25519 host private key (OpenSSH format); secret, arrives on stdin only.
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory = $true)][string]$VmName,
    [Parameter(Mandatory = $true)][ValidateSet('capability', 'fod', 'msi')][string]$SourceKind,
    [Parameter(Mandatory = $false)][string]$SourcePath = '',
    [Parameter(Mandatory = $true)][string]$HostPublicKey,
    [Parameter(Mandatory = $true)][string]$SshdConfig,
    [Parameter(Mandatory = $true)][string]$AllowedClientIp,
    [Parameter(Mandatory = $true)][int]$DeadlineSeconds,
    [Parameter(Mandatory = $true)][string[]]$Helpers,
    [Parameter(Mandatory = $true)][string]$AdminPassword,
    [Parameter(Mandatory = $true)][string]$HostPrivateKey
)
$ErrorActionPreference = 'Stop'
foreach ($helper in $Helpers) { $null = Microsoft.PowerShell.Core\New-Module -ScriptBlock ([System.Management.Automation.ScriptBlock]::Create($helper)) }
$credential = ConvertTo-PlutusAdministratorCredential -Password $AdminPassword
$session = Connect-PlutusPowerShellDirect -VmName $VmName -Credential $credential -DeadlineSeconds $DeadlineSeconds -Session
try {
    $guestSource = ''
    if ($SourceKind -ne 'capability') {
        if (-not (Microsoft.PowerShell.Management\Test-Path -LiteralPath $SourcePath)) {
            throw "OpenSSH source '$SourcePath' not found on the Hyper-V host; fix openSshSource.path."
        }
        $guestSource = 'C:\Windows\Temp\PlutusOpenSshSource'
        if ($SourceKind -eq 'msi') { $guestSource = 'C:\Windows\Temp\PlutusOpenSsh.msi' }
        $present = Microsoft.PowerShell.Core\Invoke-Command -Session $session -ArgumentList $guestSource -ScriptBlock {
            param([string]$Path)
            Microsoft.PowerShell.Management\Test-Path -LiteralPath $Path
        }
        if (-not $present) {
            Microsoft.PowerShell.Management\Copy-Item -ToSession $session -LiteralPath $SourcePath -Destination $guestSource -Recurse
        }
    }

    $result = Microsoft.PowerShell.Core\Invoke-Command -Session $session -ErrorAction Stop -ArgumentList $SourceKind, $guestSource, $HostPublicKey, $HostPrivateKey, $SshdConfig, $AllowedClientIp -ScriptBlock {
        param([string]$SourceKind, [string]$GuestSource, [string]$HostPublicKey, [string]$HostPrivateKey, [string]$SshdConfig, [string]$AllowedClientIp)
        $ErrorActionPreference = 'Stop'
        $changes = New-Object -TypeName System.Collections.Generic.List[string]
        $utf8 = New-Object -TypeName System.Text.UTF8Encoding -ArgumentList $false

        $service = Microsoft.PowerShell.Management\Get-Service -Name 'sshd' -ErrorAction SilentlyContinue
        if ($null -eq $service) {
            if ($SourceKind -eq 'msi') {
                $process = Microsoft.PowerShell.Management\Start-Process -FilePath 'msiexec.exe' -ArgumentList @('/i', ('"{0}"' -f $GuestSource), '/qn', '/norestart', 'ADDLOCAL=Server') -Wait -PassThru
                if ($process.ExitCode -ne 0) { throw "msiexec failed with exit code $($process.ExitCode)" }
            } elseif ($SourceKind -eq 'fod') {
                $null = Dism\Add-WindowsCapability -Online -Name 'OpenSSH.Server~~~~0.0.1.0' -Source $GuestSource -LimitAccess
            } else {
                $null = Dism\Add-WindowsCapability -Online -Name 'OpenSSH.Server~~~~0.0.1.0'
            }
            $changes.Add("installed OpenSSH Server ($SourceKind)")
            $service = Microsoft.PowerShell.Management\Get-Service -Name 'sshd'
        }
        $binary = (CimCmdlets\Get-CimInstance -ClassName Win32_Service -Filter "Name='sshd'").PathName.Trim('"')
        $installDir = Microsoft.PowerShell.Management\Split-Path -Path $binary -Parent

        $system = New-Object -TypeName System.Security.Principal.SecurityIdentifier -ArgumentList 'S-1-5-18'
        $administrators = New-Object -TypeName System.Security.Principal.SecurityIdentifier -ArgumentList 'S-1-5-32-544'
        $authenticatedUsers = New-Object -TypeName System.Security.Principal.SecurityIdentifier -ArgumentList 'S-1-5-11'
        # What matters in an ACL: owner, protection and the explicit rules (the SDDL text differs in
        # flags such as AI even when the rules are the same, so it cannot be compared).
        function Get-PlutusAclKey {
            param($Acl) # untyped: the Pester suites hand in the simulated guest's stand-ins (the .NET ACL types throw on Linux)
            $rules = @($Acl.GetAccessRules($true, $false, [System.Security.Principal.SecurityIdentifier]) | Microsoft.PowerShell.Core\ForEach-Object {
                    '{0}|{1}|{2}|{3}|{4}' -f $_.IdentityReference.Value, ([int64]$_.FileSystemRights -bor 0x100000), [int]$_.InheritanceFlags, [int]$_.PropagationFlags, $_.AccessControlType
                })
            return ('owner={0};protected={1};{2}' -f $Acl.GetOwner([System.Security.Principal.SecurityIdentifier]).Value, $Acl.AreAccessRulesProtected, (($rules | Microsoft.PowerShell.Utility\Sort-Object) -join ';'))
        }
        function Set-PlutusAcl {
            param([string]$Path, $Acl)
            if ((Get-PlutusAclKey -Acl (Microsoft.PowerShell.Security\Get-Acl -LiteralPath $Path)) -eq (Get-PlutusAclKey -Acl $Acl)) { return $false }
            Microsoft.PowerShell.Security\Set-Acl -LiteralPath $Path -AclObject $Acl
            return $true
        }

        # C:\ProgramData\ssh: explicit SYSTEM and Administrators full control, Authenticated Users read
        # (what sshd expects); a folder made by New-Item would inherit ProgramData's looser ACL.
        $sshDir = Microsoft.PowerShell.Management\Join-Path -Path $env:ProgramData -ChildPath 'ssh'
        $null = Microsoft.PowerShell.Management\New-Item -ItemType Directory -Path $sshDir -Force
        $inherit = [System.Security.AccessControl.InheritanceFlags]'ContainerInherit, ObjectInherit'
        $dirAcl = New-Object -TypeName System.Security.AccessControl.DirectorySecurity
        $dirAcl.SetAccessRuleProtection($true, $false)
        $dirAcl.SetOwner($administrators)
        foreach ($sid in @($system, $administrators)) {
            $dirAcl.AddAccessRule((New-Object -TypeName System.Security.AccessControl.FileSystemAccessRule -ArgumentList $sid, 'FullControl', $inherit, 'None', 'Allow'))
        }
        $dirAcl.AddAccessRule((New-Object -TypeName System.Security.AccessControl.FileSystemAccessRule -ArgumentList $authenticatedUsers, 'ReadAndExecute', $inherit, 'None', 'Allow'))
        if (Set-PlutusAcl -Path $sshDir -Acl $dirAcl) { $changes.Add("set ACL of $sshDir (SYSTEM, Administrators full; Authenticated Users read)") }
        $restart = $false
        function Set-PlutusProtectedFile {
            param([string]$Path, [string]$Text, [bool]$PublicRead)
            $bytes = $utf8.GetBytes($Text)
            $same = (Microsoft.PowerShell.Management\Test-Path -LiteralPath $Path -PathType Leaf) -and ([System.Convert]::ToBase64String([System.IO.File]::ReadAllBytes($Path)) -eq [System.Convert]::ToBase64String($bytes))
            if (-not $same) { [System.IO.File]::WriteAllBytes($Path, $bytes) }
            $acl = New-Object -TypeName System.Security.AccessControl.FileSecurity
            $acl.SetAccessRuleProtection($true, $false)
            $acl.SetOwner($administrators)
            foreach ($sid in @($system, $administrators)) {
                $acl.AddAccessRule((New-Object -TypeName System.Security.AccessControl.FileSystemAccessRule -ArgumentList $sid, 'FullControl', 'Allow'))
            }
            if ($PublicRead) {
                $acl.AddAccessRule((New-Object -TypeName System.Security.AccessControl.FileSystemAccessRule -ArgumentList $authenticatedUsers, 'Read', 'Allow'))
            }
            $aclChanged = Set-PlutusAcl -Path $Path -Acl $acl
            return ((-not $same) -or $aclChanged)
        }
        $keyPath = Microsoft.PowerShell.Management\Join-Path -Path $sshDir -ChildPath 'ssh_host_ed25519_key'
        if (Set-PlutusProtectedFile -Path $keyPath -Text ($HostPrivateKey.Trim() + "`n") -PublicRead $false) { $changes.Add('installed the pre-generated ed25519 host key'); $restart = $true }
        if (Set-PlutusProtectedFile -Path "$keyPath.pub" -Text ($HostPublicKey.Trim() + "`n") -PublicRead $true) { $changes.Add('installed the host public key'); $restart = $true }

        $configPath = Microsoft.PowerShell.Management\Join-Path -Path $sshDir -ChildPath 'sshd_config'
        $candidate = Microsoft.PowerShell.Management\Join-Path -Path $sshDir -ChildPath 'sshd_config.plutus-candidate'
        $wanted = $utf8.GetBytes($SshdConfig)
        $same = (Microsoft.PowerShell.Management\Test-Path -LiteralPath $configPath -PathType Leaf) -and ([System.Convert]::ToBase64String([System.IO.File]::ReadAllBytes($configPath)) -eq [System.Convert]::ToBase64String($wanted))
        if (-not $same) {
            [System.IO.File]::WriteAllBytes($candidate, $wanted)
            try {
                # sshd writes warnings to stderr: under Stop, 2>&1 would turn the first line into a
                # terminating error. Collect everything and judge by the exit code alone.
                $ErrorActionPreference = 'Continue'
                $check = @(& $binary -t -f $candidate 2>&1 | Microsoft.PowerShell.Core\ForEach-Object { [string]$_ })
                $exitCode = $LASTEXITCODE
                $ErrorActionPreference = 'Stop'
                if ($exitCode -ne 0) {
                    throw "sshd -t rejected the new sshd_config (exit code $exitCode), the running one is unchanged: $($check -join ' ')"
                }
                Microsoft.PowerShell.Management\Move-Item -LiteralPath $candidate -Destination $configPath -Force
            } finally {
                $ErrorActionPreference = 'Stop'
                if (Microsoft.PowerShell.Management\Test-Path -LiteralPath $candidate) {
                    Microsoft.PowerShell.Management\Remove-Item -LiteralPath $candidate -Force
                }
            }
            $changes.Add('wrote sshd_config (sshd -t passed)')
            $restart = $true
        }

        # Every other enabled inbound Allow rule that opens TCP 22 would let anyone in: the
        # capability's OpenSSH-Server-In-TCP, the MSI's own rule, or one made by hand.
        $ruleName = 'Plutus-SFTP-In'
        function Test-PlutusPort22 {
            param([string[]]$LocalPort)
            foreach ($entry in @($LocalPort)) {
                if ($entry -eq '22') { return $true }
                $range = $entry.Split('-')
                $low = 0
                $high = 0
                if ($range.Count -eq 2 -and [int]::TryParse($range[0], [ref]$low) -and [int]::TryParse($range[1], [ref]$high) -and $low -le 22 -and 22 -le $high) { return $true }
            }
            return $false
        }
        foreach ($filter in @(NetSecurity\Get-NetFirewallPortFilter -All | Microsoft.PowerShell.Core\Where-Object { $_.Protocol -eq 'TCP' -and (Test-PlutusPort22 -LocalPort $_.LocalPort) })) {
            foreach ($rule in @(NetSecurity\Get-NetFirewallRule -AssociatedNetFirewallPortFilter $filter)) {
                if ($rule.Name -ne $ruleName -and $rule.Enabled -eq 'True' -and $rule.Direction -eq 'Inbound' -and $rule.Action -eq 'Allow') {
                    NetSecurity\Disable-NetFirewallRule -Name $rule.Name
                    $changes.Add("disabled firewall rule '$($rule.Name)' (TCP 22 open to all)")
                }
            }
        }
        $ours = NetSecurity\Get-NetFirewallRule -ErrorAction SilentlyContinue | Microsoft.PowerShell.Core\Where-Object { $_.Name -eq $ruleName }
        $ok = $false
        if ($null -ne $ours) {
            $address = ($ours | NetSecurity\Get-NetFirewallAddressFilter).RemoteAddress
            $port = $ours | NetSecurity\Get-NetFirewallPortFilter
            $ok = ($ours.Enabled -eq 'True') -and ($ours.Action -eq 'Allow') -and ($ours.Direction -eq 'Inbound') -and (@($address) -join ',') -eq $AllowedClientIp -and $port.Protocol -eq 'TCP' -and (@($port.LocalPort) -join ',') -eq '22'
            if (-not $ok) { NetSecurity\Remove-NetFirewallRule -Name $ruleName }
        }
        if (-not $ok) {
            $null = NetSecurity\New-NetFirewallRule -Name $ruleName -DisplayName 'Plutus SFTP from the web VM' -Direction Inbound -Action Allow -Protocol TCP -LocalPort 22 -RemoteAddress $AllowedClientIp -Profile Any
            $changes.Add("firewall: TCP 22 open to $AllowedClientIp only")
        }

        if ($service.StartType -ne 'Automatic') {
            Microsoft.PowerShell.Management\Set-Service -Name 'sshd' -StartupType Automatic
            $changes.Add('sshd starts automatically')
        }
        $service = Microsoft.PowerShell.Management\Get-Service -Name 'sshd'
        if ($service.Status -ne 'Running') {
            Microsoft.PowerShell.Management\Start-Service -Name 'sshd'
            $changes.Add('started sshd')
        } elseif ($restart) {
            Microsoft.PowerShell.Management\Restart-Service -Name 'sshd'
            $changes.Add('restarted sshd')
        }
        $fingerprint = & (Microsoft.PowerShell.Management\Join-Path -Path $installDir -ChildPath 'ssh-keygen.exe') -lf "$keyPath.pub"
        [pscustomobject]@{ fingerprint = [string]$fingerprint; changed = @($changes) }
    }
} finally {
    Microsoft.PowerShell.Core\Remove-PSSession -Session $session
}
[pscustomobject]@{ vmName = $VmName; hostKey = $result.fingerprint; changed = @($result.changed) } | Microsoft.PowerShell.Utility\ConvertTo-Json -Compress
