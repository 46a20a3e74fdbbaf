BeforeAll {
    . (Join-Path -Path $PSScriptRoot -ChildPath 'SimHost.Common.ps1')
}

Describe 'New-PlutusDifferencingDisk.ps1 and Remove-PlutusVhd.ps1' {
    BeforeEach {
        $script:Root = New-TestHost
        # Windows paths on a simulated fixed drive D:, as the stack config gives them.
        $script:D = PlutusSimHost\Add-SimHostDrive -Letter D
        $script:Master = 'D:\Masters\ubuntu.vhdx'
        $script:Child = 'D:\Lab\plutus-web\plutus-web-os.vhdx'
        $script:MasterFull = "$D/Masters/ubuntu.vhdx"
        $script:ChildFull = "$D/Lab/plutus-web/plutus-web-os.vhdx"
        PlutusSimHost\Add-SimVhd -Path $Master -Layout UbuntuGpt
    }
    AfterEach { Remove-TestHost -Root $script:Root }

    It 'creates the child of the master and sets the master read-only; a second run changes nothing' {
        $first = Invoke-LabScript -Name 'New-PlutusDifferencingDisk.ps1' -Parameters @{ MasterPath = $Master; Path = $Child }
        $first.changed | Should -Be @("set master '$MasterFull' read-only", "created differencing disk '$ChildFull'")
        (Get-Item -LiteralPath $Master).IsReadOnly | Should -BeTrue
        $vhd = Hyper-V\Get-VHD -Path $Child
        $vhd.VhdType | Should -Be 'Differencing'
        $vhd.ParentPath | Should -Be $MasterFull
        $second = Invoke-LabScript -Name 'New-PlutusDifferencingDisk.ps1' -Parameters @{ MasterPath = $Master; Path = $Child }
        $second.changed | Should -BeNullOrEmpty
        $second.HostChanges | Should -BeNullOrEmpty
    }

    It 'sets a master that lost its read-only flag read-only again, and nothing else' {
        $null = Invoke-LabScript -Name 'New-PlutusDifferencingDisk.ps1' -Parameters @{ MasterPath = $Master; Path = $Child }
        (Get-Item -LiteralPath $Master).IsReadOnly = $false
        (Invoke-LabScript -Name 'New-PlutusDifferencingDisk.ps1' -Parameters @{ MasterPath = $Master; Path = $Child }).changed | Should -Be @("set master '$MasterFull' read-only")
    }

    It 'refuses a missing master, the master as its own child, and a foreign disk in the child''s place' {
        $missing = 'D:\Masters\none.vhdx'
        { Invoke-LabScript -Name 'New-PlutusDifferencingDisk.ps1' -Parameters @{ MasterPath = $missing; Path = $Child } } | Should -Throw "Master disk '$missing' not found. Copy the generalized master there or fix the stack config."
        { Invoke-LabScript -Name 'New-PlutusDifferencingDisk.ps1' -Parameters @{ MasterPath = $Master; Path = $Master } } | Should -Throw "The child disk path '$Master' is the master itself; choose another vmFolder."
        PlutusSimHost\Add-SimVhd -Path $Child -Layout Empty
        { Invoke-LabScript -Name 'New-PlutusDifferencingDisk.ps1' -Parameters @{ MasterPath = $Master; Path = $Child } } | Should -Throw "'$ChildFull' exists but is not a differencing child of '$MasterFull' (type Dynamic, parent ''). Move it away and run again."
    }

    It 'deletes exactly the child, never the master nor a disk of another type' {
        $null = Invoke-LabScript -Name 'New-PlutusDifferencingDisk.ps1' -Parameters @{ MasterPath = $Master; Path = $Child }
        { Invoke-LabScript -Name 'Remove-PlutusVhd.ps1' -Parameters @{ Path = $Master; ExpectedVhdType = 'Differencing'; ProtectedPath = @($Master) } } | Should -Throw "Refusing to delete '$MasterFull': it is a protected master disk."
        { Invoke-LabScript -Name 'Remove-PlutusVhd.ps1' -Parameters @{ Path = $Child; ExpectedVhdType = 'Dynamic'; ProtectedPath = @($Master) } } | Should -Throw "Refusing to delete '$ChildFull': it is a Differencing disk, the lab created a Dynamic disk there."
        $removed = Invoke-LabScript -Name 'Remove-PlutusVhd.ps1' -Parameters @{ Path = $Child; ExpectedVhdType = 'Differencing'; ProtectedPath = @($Master) }
        $removed.changed | Should -Be @("deleted '$ChildFull'")
        Test-Path -LiteralPath $ChildFull | Should -BeFalse
        Test-Path -LiteralPath $MasterFull | Should -BeTrue
        (Get-Item -LiteralPath $MasterFull).IsReadOnly | Should -BeTrue
        (Invoke-LabScript -Name 'Remove-PlutusVhd.ps1' -Parameters @{ Path = $Child; ExpectedVhdType = 'Differencing'; ProtectedPath = @($Master) }).changed | Should -BeNullOrEmpty
    }
}

Describe 'New-PlutusCloudInitSeed.ps1' {
    BeforeEach { $script:Root = New-TestHost -Automount $false; $script:Seed = Join-Path $Root 'host/D/Lab/plutus-web/plutus-web-seed.vhdx' }
    AfterEach { Remove-TestHost -Root $script:Root }

    It 'creates a FAT32 CIDATA volume with the three documents as UTF-8 without BOM; a second run changes nothing; one changed document is rewritten alone' {
        $documents = @{ Path = $Seed; MetaData = "instance-id: plutus-web-1`n"; NetworkConfig = "version: 2`n"; UserData = "#cloud-config`nhostname: plutus-web`n# caf$([char]0xE9)`n" }
        $first = Invoke-LabScript -Name 'New-PlutusCloudInitSeed.ps1' -Parameters $documents
        $first.changed | Should -Be @("created seed disk '$Seed'", 'wrote user-data', 'wrote meta-data', 'wrote network-config')
        $vhd = (PlutusSimHost\Read-SimState).vhds[$Seed]
        $vhd.Attached | Should -BeFalse
        $volume = $vhd.Partitions[0]
        $volume.FileSystem | Should -Be 'FAT32'
        $volume.Label | Should -Be 'CIDATA'
        $bytes = [System.IO.File]::ReadAllBytes((Join-Path $volume.Folder 'user-data'))
        $bytes[0..2] | Should -Be @(0x23, 0x63, 0x6C)
        [System.Text.Encoding]::UTF8.GetString($bytes) | Should -BeExactly $documents.UserData
        $second = Invoke-LabScript -Name 'New-PlutusCloudInitSeed.ps1' -Parameters $documents
        $second.changed | Should -BeNullOrEmpty
        @($second.HostChanges | Where-Object { $_ -notmatch 'Mount-VHD|Dismount-VHD|Add-PartitionAccessPath' }) | Should -BeNullOrEmpty
        $documents.MetaData = "instance-id: plutus-web-2`n"
        (Invoke-LabScript -Name 'New-PlutusCloudInitSeed.ps1' -Parameters $documents).changed | Should -Be @('wrote meta-data')
    }

    It 'refuses a disk whose volume is not labelled CIDATA' {
        $null = Invoke-LabScript -Name 'New-PlutusCloudInitSeed.ps1' -Parameters @{ Path = $Seed; MetaData = 'a'; NetworkConfig = 'b'; UserData = 'c' }
        $state = PlutusSimHost\Read-SimState; $state.vhds[$Seed].Partitions[0].Label = 'DATA'; PlutusSimHost\Save-SimState -State $state
        { Invoke-LabScript -Name 'New-PlutusCloudInitSeed.ps1' -Parameters @{ Path = $Seed; MetaData = 'a'; NetworkConfig = 'b'; UserData = 'c' } } | Should -Throw "'$Seed' exists but its volume is labelled 'DATA', not CIDATA. Move it away and run again."
        (PlutusSimHost\Read-SimState).vhds[$Seed].Attached | Should -BeFalse
    }
}

Describe 'Set-PlutusWindowsUnattend.ps1' {
    BeforeEach {
        $script:Root = New-TestHost -Automount $false
        $script:Master = Join-Path $Root 'host/D/Masters/windows.vhdx'
        $script:Child = Join-Path $Root 'host/D/Lab/plutus-erp/plutus-erp-os.vhdx'
    }
    AfterEach { Remove-TestHost -Root $script:Root }

    It 'writes Windows\Panther\unattend.xml as UTF-8 without BOM into the child only, even with automount off; a second run changes nothing' {
        PlutusSimHost\Add-SimVhd -Path $Master -Layout WindowsGpt
        $null = Invoke-LabScript -Name 'New-PlutusDifferencingDisk.ps1' -Parameters @{ MasterPath = $Master; Path = $Child }
        $parameters = @{ DiskPath = $Child; VmName = 'plutus-erp'; ComputerName = 'PLUTUS-ERP'; AdminPassword = "S3cure'Pa`$s-0f-Lab" }
        (Invoke-LabScript -Name 'Set-PlutusWindowsUnattend.ps1' -Parameters $parameters).changed | Should -Be @('wrote Windows\Panther\unattend.xml')
        $state = PlutusSimHost\Read-SimState
        $windows = $state.vhds[$Child].Partitions | Where-Object { $_.PartitionNumber -eq 3 }
        $bytes = [System.IO.File]::ReadAllBytes((Join-Path $windows.Folder 'Windows/Panther/unattend.xml'))
        [System.Text.Encoding]::ASCII.GetString($bytes, 0, 5) | Should -Be '<?xml'
        ([xml][System.Text.Encoding]::UTF8.GetString($bytes)).unattend.settings[0].component.ComputerName | Should -Be 'PLUTUS-ERP'
        $masterWindows = $state.vhds[$Master].Partitions | Where-Object { $_.PartitionNumber -eq 3 }
        Test-Path -LiteralPath (Join-Path $masterWindows.Folder 'Windows/Panther') | Should -BeFalse
        $state.vhds[$Child].Attached | Should -BeFalse
        (Invoke-LabScript -Name 'Set-PlutusWindowsUnattend.ps1' -Parameters $parameters).changed | Should -BeNullOrEmpty
        $renamed = $parameters.Clone(); $renamed.ComputerName = 'PLUTUS-ERP2'
        (Invoke-LabScript -Name 'Set-PlutusWindowsUnattend.ps1' -Parameters $renamed).changed | Should -Be @('wrote Windows\Panther\unattend.xml')
        ([xml][System.IO.File]::ReadAllText((Join-Path $windows.Folder 'Windows/Panther/unattend.xml'))).unattend.settings[0].component.ComputerName | Should -Be 'PLUTUS-ERP2'
    }

    It 'refuses the master itself' {
        PlutusSimHost\Add-SimVhd -Path $Master -Layout WindowsGpt
        { Invoke-LabScript -Name 'Set-PlutusWindowsUnattend.ps1' -Parameters @{ DiskPath = $Master; VmName = 'plutus-erp'; ComputerName = 'PLUTUS-ERP'; AdminPassword = 'S3cure!Pass-0f-Lab' } } | Should -Throw "'$Master' is not a differencing child disk; unattend.xml is only ever written into a child, never a master."
    }

    It 'detects a Generation 1 (MBR) Windows master at once, before any VM is built' {
        PlutusSimHost\Add-SimVhd -Path $Master -Layout WindowsMbr
        $null = Invoke-LabScript -Name 'New-PlutusDifferencingDisk.ps1' -Parameters @{ MasterPath = $Master; Path = $Child }
        { Invoke-LabScript -Name 'Set-PlutusWindowsUnattend.ps1' -Parameters @{ DiskPath = $Child; VmName = 'plutus-erp'; ComputerName = 'PLUTUS-ERP'; AdminPassword = 'S3cure!Pass-0f-Lab' } } |
            Should -Throw "'$Child' has an MBR partition table: its master '$Master' is a Generation 1 (BIOS) disk, and the lab's VMs are Generation 2 (UEFI), which cannot boot it. Build a Generation 2 master (GPT; see docs/infra.md) and run again."
        (PlutusSimHost\Read-SimState).vhds[$Child].Attached | Should -BeFalse
    }

    It 'refuses an Administrator password that Windows would reject, saying which rule, before touching the disk' {
        PlutusSimHost\Add-SimVhd -Path $Master -Layout WindowsGpt
        $null = Invoke-LabScript -Name 'New-PlutusDifferencingDisk.ps1' -Parameters @{ MasterPath = $Master; Path = $Child }
        $advice = 'Set plutus:windowsAdminPassword again (pulumi config set --secret windowsAdminPassword).'
        $cases = @(
            @('Sh0rt-but-Ok', "The Administrator password has 12 characters; it needs at least 14 (and at most 127). $advice"),
            @('onlylowercaseletters', "The Administrator password has characters of only 1 of the kinds uppercase, lowercase, digits, symbols; Windows needs 3. $advice"),
            @('MyAdministrator-Pass1', "The Administrator password contains the account name Administrator, which Windows refuses. $advice")
        )
        foreach ($case in $cases) {
            { Invoke-LabScript -Name 'Set-PlutusWindowsUnattend.ps1' -Parameters @{ DiskPath = $Child; VmName = 'plutus-erp'; ComputerName = 'PLUTUS-ERP'; AdminPassword = $case[0] } } | Should -Throw $case[1]
        }
        @(PlutusSimHost\Get-SimChanges | Where-Object { $_ -match 'Mount-VHD' }) | Should -BeNullOrEmpty
    }
}
