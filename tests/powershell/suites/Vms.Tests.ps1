BeforeAll {
    . (Join-Path -Path $PSScriptRoot -ChildPath 'SimHost.Common.ps1')
}

Describe 'New-PlutusVm.ps1 and Remove-PlutusVm.ps1' {
    BeforeEach {
        $script:Root = New-TestHost
        $script:Master = Join-Path $Root 'host/D/Masters/ubuntu.vhdx'
        $script:Folder = Join-Path $Root 'host/D/Lab'
        $script:Os = Join-Path $Folder 'plutus-web/plutus-web-os.vhdx'
        $script:Seed = Join-Path $Folder 'plutus-web/plutus-web-seed.vhdx'
        PlutusSimHost\Add-SimVhd -Path $Master -Layout UbuntuGpt
        $null = Hyper-V\New-VMSwitch -Name 'plutus-lab' -SwitchType Internal
        $null = Hyper-V\New-VMSwitch -Name 'other' -SwitchType Internal
        $null = Invoke-LabScript -Name 'New-PlutusDifferencingDisk.ps1' -Parameters @{ MasterPath = $Master; Path = $Os }
        $null = Invoke-LabScript -Name 'New-PlutusCloudInitSeed.ps1' -Parameters @{ Path = $Seed; MetaData = 'a'; NetworkConfig = 'b'; UserData = 'c' }
        $script:Vm = @{ Name = 'plutus-web'; VmFolder = $Folder; MemoryMB = 2048; Cpus = 2; SwitchName = 'plutus-lab'; OsDiskPath = $Os; SeedDiskPath = $Seed; SecureBootTemplate = 'MicrosoftUEFICertificateAuthority' }
    }
    AfterEach { Remove-TestHost -Root $script:Root; $env:PLUTUS_SIM_HOST_LANGUAGE = $null }

    It 'creates a Generation 2 VM exactly as asked and starts it; a second run changes nothing' {
        $first = Invoke-LabScript -Name 'New-PlutusVm.ps1' -Parameters $Vm
        $first.changed | Should -Be @("created VM 'plutus-web'", 'checkpoints disabled (automatic and manual)', 'Guest Service Interface enabled', "attached '$Seed'", "started VM 'plutus-web'")
        $made = (PlutusSimHost\Read-SimState).vms | Where-Object { $_.Name -eq 'plutus-web' }
        $made.Generation | Should -Be 2
        $made.MemoryStartup | Should -Be 2147483648
        $made.DynamicMemoryEnabled | Should -BeFalse
        $made.ProcessorCount | Should -Be 2
        $made.SecureBootTemplate | Should -Be 'MicrosoftUEFICertificateAuthority'
        $made.FirstBootDevice | Should -Be $Os
        @($made.Disks.Path) | Should -Be @($Os, $Seed)
        $made.CheckpointType | Should -Be 'Disabled'
        $made.AutomaticCheckpointsEnabled | Should -BeFalse
        $made.IntegrationServices['Guest Service Interface'] | Should -BeTrue
        $made.State | Should -Be 'Running'
        $first.id | Should -Be $made.Id
        $second = Invoke-LabScript -Name 'New-PlutusVm.ps1' -Parameters $Vm
        $second.changed | Should -BeNullOrEmpty
        $second.HostChanges | Should -BeNullOrEmpty
    }

    It 'enables the Guest Service Interface by its id on a host whose display names are localised' {
        $env:PLUTUS_SIM_HOST_LANGUAGE = 'de-DE'
        (Invoke-LabScript -Name 'New-PlutusVm.ps1' -Parameters $Vm).changed | Should -Contain 'Guest Service Interface enabled'
        ((PlutusSimHost\Read-SimState).vms | Where-Object { $_.Name -eq 'plutus-web' }).IntegrationServices['Guest Service Interface'] | Should -BeTrue
    }

    It 'corrects drifted memory alone, stopping and starting the VM for it' {
        $null = Invoke-LabScript -Name 'New-PlutusVm.ps1' -Parameters $Vm
        $drifted = $Vm.Clone(); $drifted.MemoryMB = 3072
        $result = Invoke-LabScript -Name 'New-PlutusVm.ps1' -Parameters $drifted
        $result.changed | Should -Be @("stopped VM 'plutus-web' to change its settings", 'memory set to 3072 MB', "started VM 'plutus-web'")
        $result.HostChanges | Should -Be @('host: Stop-VM plutus-web', 'host: Set-VMMemory plutus-web 3221225472', 'host: Start-VM plutus-web')
    }

    It 'reconnects a drifted network adapter alone, without stopping the VM' {
        $null = Invoke-LabScript -Name 'New-PlutusVm.ps1' -Parameters $Vm
        Hyper-V\Connect-VMNetworkAdapter -VMNetworkAdapter (Hyper-V\Get-VMNetworkAdapter -VM (Hyper-V\Get-VM -Name 'plutus-web')) -SwitchName 'other'
        $result = Invoke-LabScript -Name 'New-PlutusVm.ps1' -Parameters $Vm
        $result.changed | Should -Be @("network adapter connected to 'plutus-lab'")
        $result.HostChanges | Should -Be @('host: Connect-VMNetworkAdapter plutus-web plutus-lab')
    }

    It 'refuses a Secure Boot template it does not know, at binding' {
        $bad = $Vm.Clone(); $bad.SecureBootTemplate = 'OpenSourceShieldedVM'
        { Invoke-LabScript -Name 'New-PlutusVm.ps1' -Parameters $bad } | Should -Throw "Cannot validate argument on parameter 'SecureBootTemplate'. The argument `"OpenSourceShieldedVM`" does not belong to the set `"MicrosoftUEFICertificateAuthority,MicrosoftWindows`" specified by the ValidateSet attribute. Supply an argument that is in the set and then try the command again."
    }

    It 'removes exactly the named VM, turning it off first, and leaves its disks to their own steps' {
        $null = Invoke-LabScript -Name 'New-PlutusVm.ps1' -Parameters $Vm
        $other = $Vm.Clone(); $other.Name = 'plutus-web-2'; $other.SeedDiskPath = ''
        $null = Invoke-LabScript -Name 'New-PlutusVm.ps1' -Parameters $other
        $removed = Invoke-LabScript -Name 'Remove-PlutusVm.ps1' -Parameters @{ Name = 'plutus-web' }
        $removed.changed | Should -Be @("removed VM 'plutus-web'")
        $removed.HostChanges | Should -Be @('host: Stop-VM plutus-web -TurnOff', 'host: Remove-VM plutus-web')
        @((PlutusSimHost\Read-SimState).vms.Name) | Should -Be @('plutus-web-2')
        Test-Path -LiteralPath $Os | Should -BeTrue
        (Invoke-LabScript -Name 'Remove-PlutusVm.ps1' -Parameters @{ Name = 'plutus-web' }).HostChanges | Should -BeNullOrEmpty
    }

    It 'leaves a seed attached to a VM alone (it cannot be mounted then), and says so' {
        $null = Invoke-LabScript -Name 'New-PlutusVm.ps1' -Parameters $Vm
        $again = Invoke-LabScript -Name 'New-PlutusCloudInitSeed.ps1' -Parameters @{ Path = $Seed; MetaData = 'a'; NetworkConfig = 'b'; UserData = 'c' }
        $again.changed | Should -BeNullOrEmpty
        $again.note | Should -Be "attached to VM 'plutus-web'; left as it is (cloud-init reads it only at that VM's first boot)"
        $again.HostChanges | Should -BeNullOrEmpty
    }

    It 'treats a VM name as exact, never as a wildcard' {
        $null = Invoke-LabScript -Name 'New-PlutusVm.ps1' -Parameters $Vm
        (Invoke-LabScript -Name 'Remove-PlutusVm.ps1' -Parameters @{ Name = 'plutus-*' }).changed | Should -BeNullOrEmpty
        @((PlutusSimHost\Read-SimState).vms.Name) | Should -Be @('plutus-web')
    }
}
