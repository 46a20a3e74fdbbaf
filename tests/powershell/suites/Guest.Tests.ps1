BeforeAll {
    . (Join-Path -Path $PSScriptRoot -ChildPath 'SimHost.Common.ps1')
    $script:Password = "S3cure'Pa`$s-0f-Lab"

    function New-ErpVm {
        # A booted Windows guest, built the way the lab builds it: child disk, unattend.xml, VM.
        $master = Join-Path $Root 'host/D/Masters/windows.vhdx'
        $os = Join-Path $Root 'host/D/Lab/plutus-erp/plutus-erp-os.vhdx'
        PlutusSimHost\Add-SimVhd -Path $master -Layout WindowsGpt
        $null = Hyper-V\New-VMSwitch -Name 'plutus-lab' -SwitchType Internal
        $null = Invoke-LabScript -Name 'New-PlutusDifferencingDisk.ps1' -Parameters @{ MasterPath = $master; Path = $os }
        $null = Invoke-LabScript -Name 'Set-PlutusWindowsUnattend.ps1' -Parameters @{ DiskPath = $os; VmName = 'plutus-erp'; ComputerName = 'PLUTUS-ERP'; AdminPassword = $Password }
        $null = Invoke-LabScript -Name 'New-PlutusVm.ps1' -Parameters @{ Name = 'plutus-erp'; VmFolder = (Join-Path $Root 'host/D/Lab'); MemoryMB = 4096; Cpus = 2; SwitchName = 'plutus-lab'; OsDiskPath = $os; SecureBootTemplate = 'MicrosoftWindows' }
        return ((PlutusSimHost\Read-SimState).guests['plutus-erp'].osFolder)
    }
}

Describe 'Set-PlutusWindowsGuest.ps1' {
    BeforeEach { $script:Root = New-TestHost; $script:C = New-ErpVm; $script:Guest = @{ VmName = 'plutus-erp'; IpAddress = '10.77.0.20'; PrefixLength = 24; Gateway = '10.77.0.1'; DnsServers = @('1.1.1.1', '9.9.9.9'); DeadlineSeconds = 0; AdminPassword = $Password } }
    AfterEach { Remove-TestHost -Root $script:Root }

    It 'sets the static address, gateway and DNS over PowerShell Direct, after DHCP dropped its own address; removes the consumed unattend.xml; a second run changes nothing' {
        Test-Path -LiteralPath (Join-Path $C 'Windows/Panther/unattend.xml') | Should -BeTrue
        $first = Invoke-LabScript -Name 'Set-PlutusWindowsGuest.ps1' -Parameters $Guest -Helpers 'PlutusDirect.psm1'
        $first.computerName | Should -Be 'PLUTUS-ERP'
        $first.changed | Should -Be @('address 10.77.0.20/24 via 10.77.0.1', 'DNS 1.1.1.1,9.9.9.9', 'removed the consumed unattend.xml (it held the encoded password)')
        $guestState = (PlutusSimHost\Read-SimState).guests['plutus-erp']
        @($guestState.ipAddresses | ForEach-Object { "$($_.IPAddress)/$($_.PrefixLength) $($_.PrefixOrigin)" }) | Should -Be @('10.77.0.20/24 Manual')
        @($guestState.routes | ForEach-Object { "$($_.DestinationPrefix) $($_.NextHop)" }) | Should -Be @('0.0.0.0/0 10.77.0.1')
        Test-Path -LiteralPath (Join-Path $C 'Windows/Panther/unattend.xml') | Should -BeFalse
        $second = Invoke-LabScript -Name 'Set-PlutusWindowsGuest.ps1' -Parameters $Guest -Helpers 'PlutusDirect.psm1'
        $second.changed | Should -BeNullOrEmpty
        $second.HostChanges | Should -BeNullOrEmpty
    }

    It 'corrects drifted DNS servers alone' {
        $null = Invoke-LabScript -Name 'Set-PlutusWindowsGuest.ps1' -Parameters $Guest -Helpers 'PlutusDirect.psm1'
        $state = PlutusSimHost\Read-SimState; $state.guests['plutus-erp'].dns = @('8.8.8.8'); PlutusSimHost\Save-SimState -State $state
        $result = Invoke-LabScript -Name 'Set-PlutusWindowsGuest.ps1' -Parameters $Guest -Helpers 'PlutusDirect.psm1'
        $result.changed | Should -Be @('DNS 1.1.1.1,9.9.9.9')
        $result.HostChanges | Should -Be @('plutus-erp: Set-DnsClientServerAddress 1.1.1.1,9.9.9.9')
    }

    It 'replaces a drifted static address and its default route, and nothing else' {
        $null = Invoke-LabScript -Name 'Set-PlutusWindowsGuest.ps1' -Parameters $Guest -Helpers 'PlutusDirect.psm1'
        $state = PlutusSimHost\Read-SimState
        $state.guests['plutus-erp'].ipAddresses = @(@{ ifIndex = 6; IPAddress = '10.77.0.99'; PrefixLength = 24; PrefixOrigin = 'Manual' })
        $state.guests['plutus-erp'].routes = @(@{ ifIndex = 6; DestinationPrefix = '0.0.0.0/0'; NextHop = '10.77.0.254' })
        PlutusSimHost\Save-SimState -State $state
        $result = Invoke-LabScript -Name 'Set-PlutusWindowsGuest.ps1' -Parameters $Guest -Helpers 'PlutusDirect.psm1'
        $result.changed | Should -Be @('address 10.77.0.20/24 via 10.77.0.1')
        $result.HostChanges | Should -Be @('plutus-erp: Set-NetIPInterface 6 -Dhcp Disabled', 'plutus-erp: Remove-NetIPAddress 10.77.0.99 from 6', 'plutus-erp: Remove-NetRoute 0.0.0.0/0 via 10.77.0.254', 'plutus-erp: New-NetIPAddress 10.77.0.20/24 on 6 via 10.77.0.1')
        @((PlutusSimHost\Read-SimState).guests['plutus-erp'].routes | ForEach-Object { $_.NextHop }) | Should -Be @('10.77.0.1')
    }

    It 'retries PowerShell Direct every 10 s while the guest is still in setup' {
        $state = PlutusSimHost\Read-SimState; $state.guests['plutus-erp'].setupAttemptsLeft = 1; PlutusSimHost\Save-SimState -State $state
        $patient = $Guest.Clone(); $patient.DeadlineSeconds = 120
        $started = Get-Date
        (Invoke-LabScript -Name 'Set-PlutusWindowsGuest.ps1' -Parameters $patient -Helpers 'PlutusDirect.psm1').computerName | Should -Be 'PLUTUS-ERP'
        ((Get-Date) - $started).TotalSeconds | Should -BeGreaterOrEqual 10
        (PlutusSimHost\Read-SimState).guests['plutus-erp'].setupAttemptsLeft | Should -Be 0
    }

    It 'gives up at the deadline with the PowerShell Direct error and the advice, for a wrong password' {
        $wrong = $Guest.Clone(); $wrong.AdminPassword = 'An0ther-Passw0rd!'
        { Invoke-LabScript -Name 'Set-PlutusWindowsGuest.ps1' -Parameters $wrong -Helpers 'PlutusDirect.psm1' } | Should -Throw "PowerShell Direct to 'plutus-erp' still fails after 1 attempts in 0 s: The credential is invalid (simulated host).. Check the VM console."
    }

    It 'refuses an empty DNS server list at binding' {
        $empty = $Guest.Clone(); $empty.DnsServers = @()
        { Invoke-LabScript -Name 'Set-PlutusWindowsGuest.ps1' -Parameters $empty -Helpers 'PlutusDirect.psm1' } | Should -Throw "Cannot bind argument to parameter 'DnsServers' because it is an empty array."
    }
}

Describe 'Set-PlutusErpSftpAccount.ps1' {
    BeforeEach {
        $script:Root = New-TestHost; $script:C = New-ErpVm
        $script:Account = @{ VmName = 'plutus-erp'; UserName = 'plutus-sync'; ChrootDirectory = 'C:\Plutus'; InboxPath = 'C:\Plutus\Inbox'; StagingPath = 'C:\Plutus\Staging'; PublicKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBfLp9Ub8y2tLq5s1xHq3J3c3zq0kYw9x0Yb4Rk3u9bS plutus-sync`r`n"; AuthorizedKeysFileName = 'plutus-sync_authorized_keys'; DeadlineSeconds = 0; AdminPassword = $Password }
    }
    AfterEach { Remove-TestHost -Root $script:Root }

    It 'creates the account (not an Administrator), the folders with their ACLs and the key file as UTF-8 without BOM; a second run changes nothing' {
        $first = Invoke-LabScript -Name 'Set-PlutusErpSftpAccount.ps1' -Parameters $Account -Helpers 'PlutusDirect.psm1'
        $first.changed | Should -Be @('created local account plutus-sync', 'created C:\Plutus', 'set ACL of C:\Plutus', 'created C:\Plutus\Inbox', 'set ACL of C:\Plutus\Inbox', 'created C:\Plutus\Staging', 'set ACL of C:\Plutus\Staging', 'set ACL of C:/ProgramData/ssh (SYSTEM, Administrators full; Authenticated Users read)', 'wrote C:/ProgramData/ssh/plutus-sync_authorized_keys', 'set ACL of C:/ProgramData/ssh/plutus-sync_authorized_keys (SYSTEM and Administrators only)')
        $guestState = (PlutusSimHost\Read-SimState).guests['plutus-erp']
        $user = $guestState.users | Where-Object { $_.Name -eq 'plutus-sync' }
        $guestState.admins | Should -Not -Contain $user.SID
        $bytes = [System.IO.File]::ReadAllBytes((Join-Path $C 'ProgramData/ssh/plutus-sync_authorized_keys'))
        [System.Text.Encoding]::ASCII.GetString($bytes) | Should -BeExactly ($Account.PublicKey.Trim() + "`n")
        $inbox = $guestState.acls[(Join-Path $C 'Plutus/Inbox')]
        $inbox.protected | Should -BeTrue
        @($inbox.rules | ForEach-Object { "$($_.sid) $([System.Security.AccessControl.FileSystemRights][int64]$_.rights)" }) | Should -Be @('S-1-5-18 FullControl', 'S-1-5-32-544 FullControl', "$($user.SID) Modify, Synchronize")
        @($guestState.acls[(Join-Path $C 'ProgramData/ssh/plutus-sync_authorized_keys')].rules.sid) | Should -Be @('S-1-5-18', 'S-1-5-32-544')
        $second = Invoke-LabScript -Name 'Set-PlutusErpSftpAccount.ps1' -Parameters $Account -Helpers 'PlutusDirect.psm1'
        $second.changed | Should -BeNullOrEmpty
        $second.HostChanges | Should -BeNullOrEmpty
    }

    It 'takes the account out of Administrators and resets a loosened ACL, and nothing else' {
        $null = Invoke-LabScript -Name 'Set-PlutusErpSftpAccount.ps1' -Parameters $Account -Helpers 'PlutusDirect.psm1'
        $state = PlutusSimHost\Read-SimState
        $guestState = $state.guests['plutus-erp']
        $sid = ($guestState.users | Where-Object { $_.Name -eq 'plutus-sync' }).SID
        $guestState.admins += @($sid)
        $guestState.acls[(Join-Path $C 'Plutus/Staging')].rules += @(@{ sid = 'S-1-1-0'; rights = 2032127; inheritance = 3; propagation = 0; type = 'Allow' })
        PlutusSimHost\Save-SimState -State $state
        (Invoke-LabScript -Name 'Set-PlutusErpSftpAccount.ps1' -Parameters $Account -Helpers 'PlutusDirect.psm1').changed | Should -Be @('removed plutus-sync from Administrators', 'set ACL of C:\Plutus\Staging')
    }

    It 'refuses an inbox on another volume than the chroot, naming the volumes' {
        $split = $Account.Clone(); $split.InboxPath = 'E:\Inbox'
        { Invoke-LabScript -Name 'Set-PlutusErpSftpAccount.ps1' -Parameters $split -Helpers 'PlutusDirect.psm1' } | Should -Throw 'chroot, inbox and staging must be on one volume, got E:, C:'
    }

    It 'refuses an uppercase account name at binding (sshd Match User compares lowercase)' {
        $upper = $Account.Clone(); $upper.UserName = 'Plutus-Sync'
        { Invoke-LabScript -Name 'Set-PlutusErpSftpAccount.ps1' -Parameters $upper -Helpers 'PlutusDirect.psm1' } | Should -Throw ([WildcardPattern]::Escape("Cannot validate argument on parameter 'UserName'. The argument `"Plutus-Sync`" does not match the `"(?-i)^[a-z0-9._-]{1,20}$`" pattern. Supply an argument that matches `"(?-i)^[a-z0-9._-]{1,20}$`" and try the command again."))
    }
}
