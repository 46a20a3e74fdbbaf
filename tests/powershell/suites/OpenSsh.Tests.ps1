BeforeAll {
    . (Join-Path -Path $PSScriptRoot -ChildPath 'SimHost.Common.ps1')
    $script:Password = "S3cure'Pa`$s-0f-Lab"
    # The text infra/erpOpenSsh.ts renders (renderSshdConfig), CRLF as on Windows.
    $script:SshdConfig = (@(
            '# Managed by the Plutus Pulumi stack (Install-PlutusErpOpenSsh.ps1); local edits are overwritten.',
            'Port 22', 'HostKey __PROGRAMDATA__/ssh/ssh_host_ed25519_key', 'PubkeyAuthentication yes', 'PasswordAuthentication no',
            'PermitEmptyPasswords no', 'KbdInteractiveAuthentication no', 'AllowTcpForwarding no', 'AllowAgentForwarding no', 'GatewayPorts no',
            'PermitTunnel no', 'X11Forwarding no', 'AuthorizedKeysFile .ssh/authorized_keys', 'Subsystem sftp sftp-server.exe', '',
            'Match Group administrators', '    AuthorizedKeysFile __PROGRAMDATA__/ssh/administrators_authorized_keys', '',
            'Match User plutus-sync', '    AuthorizedKeysFile __PROGRAMDATA__/ssh/plutus-sync_authorized_keys', '    ChrootDirectory "C:\Plutus"',
            '    ForceCommand internal-sftp', '    AllowTcpForwarding no', '    PermitTTY no', '    X11Forwarding no', '') -join "`r`n")
}

Describe 'Install-PlutusErpOpenSsh.ps1' {
    BeforeEach {
        $script:Root = New-TestHost
        $master = Join-Path $Root 'host/D/Masters/windows.vhdx'
        $os = Join-Path $Root 'host/D/Lab/plutus-erp/plutus-erp-os.vhdx'
        PlutusSimHost\Add-SimVhd -Path $master -Layout WindowsGpt
        $null = Hyper-V\New-VMSwitch -Name 'plutus-lab' -SwitchType Internal
        $null = Invoke-LabScript -Name 'New-PlutusDifferencingDisk.ps1' -Parameters @{ MasterPath = $master; Path = $os }
        $null = Invoke-LabScript -Name 'Set-PlutusWindowsUnattend.ps1' -Parameters @{ DiskPath = $os; VmName = 'plutus-erp'; ComputerName = 'PLUTUS-ERP'; AdminPassword = $Password }
        $null = Invoke-LabScript -Name 'New-PlutusVm.ps1' -Parameters @{ Name = 'plutus-erp'; VmFolder = (Join-Path $Root 'host/D/Lab'); MemoryMB = 4096; Cpus = 2; SwitchName = 'plutus-lab'; OsDiskPath = $os; SecureBootTemplate = 'MicrosoftWindows' }
        $script:C = (PlutusSimHost\Read-SimState).guests['plutus-erp'].osFolder
        $keyFile = Join-Path $Root 'hostkey'
        & ssh-keygen -q -t ed25519 -N '' -C 'plutus-erp' -f $keyFile
        $script:Fingerprint = (& ssh-keygen -lf "$keyFile.pub")
        $script:Install = @{ VmName = 'plutus-erp'; SourceKind = 'capability'; HostPublicKey = (Get-Content -Raw "$keyFile.pub"); SshdConfig = $SshdConfig; AllowedClientIp = '10.77.0.10'; DeadlineSeconds = 0; AdminPassword = $Password; HostPrivateKey = (Get-Content -Raw $keyFile) }
    }
    AfterEach { Remove-TestHost -Root $script:Root }

    It 'installs OpenSSH, the pre-generated host key, an sshd_config that Debian''s sshd -t accepts, and the firewall rule; a second run changes nothing' {
        $first = Invoke-LabScript -Name 'Install-PlutusErpOpenSsh.ps1' -Parameters $Install -Helpers 'PlutusDirect.psm1'
        $first.changed | Should -Be @(
            'installed OpenSSH Server (capability)',
            'set ACL of C:/ProgramData/ssh (SYSTEM, Administrators full; Authenticated Users read)',
            'installed the pre-generated ed25519 host key', 'installed the host public key', 'wrote sshd_config (sshd -t passed)',
            "disabled firewall rule 'OpenSSH-Server-In-TCP' (TCP 22 open to all)", 'firewall: TCP 22 open to 10.77.0.10 only',
            'sshd starts automatically', 'started sshd')
        $first.hostKey | Should -Be $Fingerprint
        $written = [System.IO.File]::ReadAllBytes((Join-Path $C 'ProgramData/ssh/sshd_config'))
        $written[0] | Should -Be 0x23
        [System.Text.Encoding]::UTF8.GetString($written) | Should -BeExactly $SshdConfig
        Test-Path -LiteralPath (Join-Path $C 'ProgramData/ssh/sshd_config.plutus-candidate') | Should -BeFalse
        # Key files as sshd reads them: ASCII, LF, no BOM (5.1's Out-File would write UTF-16LE).
        [System.IO.File]::ReadAllBytes((Join-Path $C 'ProgramData/ssh/ssh_host_ed25519_key')) | Should -Be ([System.Text.Encoding]::ASCII.GetBytes($Install.HostPrivateKey.Trim() + "`n"))
        [System.IO.File]::ReadAllBytes((Join-Path $C 'ProgramData/ssh/ssh_host_ed25519_key.pub')) | Should -Be ([System.Text.Encoding]::ASCII.GetBytes($Install.HostPublicKey.Trim() + "`n"))
        $guest = (PlutusSimHost\Read-SimState).guests['plutus-erp']
        $guest.services['sshd'].StartType | Should -Be 'Automatic'
        $guest.services['sshd'].starts | Should -Be 1
        @($guest.firewall | ForEach-Object { "$($_.Name) $($_.Enabled) $($_.RemoteAddress -join ',')" }) | Should -Be @('OpenSSH-Server-In-TCP False Any', 'Plutus-SFTP-In True 10.77.0.10')
        @($guest.acls[(Join-Path $C 'ProgramData/ssh/ssh_host_ed25519_key')].rules.sid) | Should -Be @('S-1-5-18', 'S-1-5-32-544')
        $second = Invoke-LabScript -Name 'Install-PlutusErpOpenSsh.ps1' -Parameters $Install -Helpers 'PlutusDirect.psm1'
        $second.changed | Should -BeNullOrEmpty
        $second.HostChanges | Should -BeNullOrEmpty
    }

    It 'replaces a firewall rule whose remote address drifted, and nothing else' {
        $null = Invoke-LabScript -Name 'Install-PlutusErpOpenSsh.ps1' -Parameters $Install -Helpers 'PlutusDirect.psm1'
        $state = PlutusSimHost\Read-SimState
        ($state.guests['plutus-erp'].firewall | Where-Object { $_.Name -eq 'Plutus-SFTP-In' }).RemoteAddress = @('Any')
        PlutusSimHost\Save-SimState -State $state
        $result = Invoke-LabScript -Name 'Install-PlutusErpOpenSsh.ps1' -Parameters $Install -Helpers 'PlutusDirect.psm1'
        $result.changed | Should -Be @('firewall: TCP 22 open to 10.77.0.10 only')
        $result.HostChanges | Should -Be @('plutus-erp: Remove-NetFirewallRule Plutus-SFTP-In', 'plutus-erp: New-NetFirewallRule Plutus-SFTP-In TCP 22 from 10.77.0.10')
    }

    It 'keeps the running sshd_config when sshd -t rejects the new one, and says why' {
        $null = Invoke-LabScript -Name 'Install-PlutusErpOpenSsh.ps1' -Parameters $Install -Helpers 'PlutusDirect.psm1'
        $broken = $Install.Clone(); $broken.SshdConfig = $SshdConfig.Replace('PermitTTY no', 'PermitTTY maybe')
        { Invoke-LabScript -Name 'Install-PlutusErpOpenSsh.ps1' -Parameters $broken -Helpers 'PlutusDirect.psm1' } | Should -Throw 'sshd -t rejected the new sshd_config (exit code 255), the running one is unchanged: */sshd_config line 24: unsupported option "maybe".'
        [System.Text.Encoding]::UTF8.GetString([System.IO.File]::ReadAllBytes((Join-Path $C 'ProgramData/ssh/sshd_config'))) | Should -BeExactly $SshdConfig
        Test-Path -LiteralPath (Join-Path $C 'ProgramData/ssh/sshd_config.plutus-candidate') | Should -BeFalse
        (PlutusSimHost\Read-SimState).guests['plutus-erp'].services['sshd'].starts | Should -Be 1
    }

    It 'refuses a Features-on-Demand source that is not on the host' {
        $fod = $Install.Clone(); $fod.SourceKind = 'fod'; $fod.SourcePath = (Join-Path $Root 'host/D/FoD')
        { Invoke-LabScript -Name 'Install-PlutusErpOpenSsh.ps1' -Parameters $fod -Helpers 'PlutusDirect.psm1' } | Should -Throw "OpenSSH source '$($fod.SourcePath)' not found on the Hyper-V host; fix openSshSource.path."
    }

    It 'installs from the Win32-OpenSSH MSI copied into the guest, with msiexec' {
        $msi = $Install.Clone(); $msi.SourceKind = 'msi'; $msi.SourcePath = (Join-Path $Root 'host/D/OpenSSH-Win64-v9.5.0.0.msi')
        Set-Content -LiteralPath $msi.SourcePath -Value 'msi' -Encoding ascii
        $result = Invoke-LabScript -Name 'Install-PlutusErpOpenSsh.ps1' -Parameters $msi -Helpers 'PlutusDirect.psm1'
        $result.changed[0] | Should -Be 'installed OpenSSH Server (msi)'
        $result.hostKey | Should -Be $Fingerprint
        Test-Path -LiteralPath (Join-Path $C 'Windows/Temp/PlutusOpenSsh.msi') | Should -BeTrue
        (Invoke-LabScript -Name 'Install-PlutusErpOpenSsh.ps1' -Parameters $msi -Helpers 'PlutusDirect.psm1').HostChanges | Should -BeNullOrEmpty
    }

    It 'installs from a Features-on-Demand folder copied into the guest over the session' {
        $fod = $Install.Clone(); $fod.SourceKind = 'fod'; $fod.SourcePath = (Join-Path $Root 'host/D/FoD')
        $null = New-Item -ItemType Directory -Path $fod.SourcePath
        Set-Content -LiteralPath (Join-Path $fod.SourcePath 'OpenSSH-Server-Package.cab') -Value 'cab' -Encoding ascii
        (Invoke-LabScript -Name 'Install-PlutusErpOpenSsh.ps1' -Parameters $fod -Helpers 'PlutusDirect.psm1').changed[0] | Should -Be 'installed OpenSSH Server (fod)'
        Test-Path -LiteralPath (Join-Path $C 'Windows/Temp/PlutusOpenSshSource/OpenSSH-Server-Package.cab') | Should -BeTrue
    }
}
