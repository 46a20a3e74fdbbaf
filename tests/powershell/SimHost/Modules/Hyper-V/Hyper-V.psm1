<#
.SYNOPSIS
    Stub of the Hyper-V module: the cmdlets the lab scripts call, with the parameters they use,
    acting on the simulated host (PlutusSimHost). A parameter not declared here fails at binding.
#>
$ErrorActionPreference = 'Stop'
Import-Module -Name PlutusSimHost

function ConvertTo-SimVm {
    param([hashtable]$Vm)
    [pscustomobject]@{
        PSTypeName = 'Microsoft.HyperV.PowerShell.VirtualMachine'
        Name = $Vm.Name; Id = [guid]$Vm.Id; State = $Vm.State; Generation = $Vm.Generation; Path = $Vm.Path
        MemoryStartup = $Vm.MemoryStartup; DynamicMemoryEnabled = $Vm.DynamicMemoryEnabled; ProcessorCount = $Vm.ProcessorCount
        CheckpointType = $Vm.CheckpointType; AutomaticCheckpointsEnabled = $Vm.AutomaticCheckpointsEnabled
    }
}

function Find-SimVm {
    param([hashtable]$State, $VM)
    $found = $State.vms | Where-Object { $_.Id -eq [string]$VM.Id }
    if ($null -eq $found) { throw "Hyper-V was unable to find a virtual machine with name '$($VM.Name)' (simulated host)." }
    return $found
}

function Get-VM {
    [CmdletBinding()]
    param([Parameter(Mandatory = $false)][guid]$Id, [Parameter(Mandatory = $false, Position = 0)][string]$Name)
    Assert-SimHostContext -Cmdlet 'Get-VM'
    $state = Read-SimState
    $vms = @($state.vms)
    if ($PSBoundParameters.ContainsKey('Id')) {
        $vms = @($vms | Where-Object { $_.Id -eq [string]$Id })
        if ($vms.Count -eq 0) { throw "Hyper-V was unable to find a virtual machine with id '$Id' (simulated host)." }
    }
    if ($Name) { $vms = @($vms | Where-Object { $_.Name -like $Name }) }
    foreach ($vm in $vms) { ConvertTo-SimVm -Vm $vm }
}

function New-VM {
    [CmdletBinding()]
    param(
        [Parameter(Mandatory = $true)][string]$Name,
        [Parameter(Mandatory = $true)][ValidateSet(1, 2)][int16]$Generation,
        [Parameter(Mandatory = $true)][int64]$MemoryStartupBytes,
        [Parameter(Mandatory = $true)][string]$Path,
        [Parameter(Mandatory = $true)][string]$VHDPath,
        [Parameter(Mandatory = $true)][string]$SwitchName
    )
    Assert-SimHostContext -Cmdlet 'New-VM'
    $created = Update-SimHost {
        param($s)
        if ($s.switches | Where-Object { $_.Name -eq $SwitchName }) { } else { throw "Hyper-V was unable to find a virtual switch with name '$SwitchName' (simulated host)." }
        $disk = Find-SimVhd -State $s -Path $VHDPath
        $vm = @{ Name = $Name; Id = [string][guid]::NewGuid(); State = 'Off'; Generation = [int]$Generation; Path = $Path
            MemoryStartup = $MemoryStartupBytes; DynamicMemoryEnabled = $true; ProcessorCount = 1
            CheckpointType = 'Production'; AutomaticCheckpointsEnabled = $true
            SecureBoot = 'On'; SecureBootTemplate = 'MicrosoftWindows'; FirstBootDevice = ''
            Disks = @(@{ ControllerType = 'SCSI'; ControllerLocation = 0; Path = $VHDPath }); SwitchName = $SwitchName
            IntegrationServices = @{ 'Guest Service Interface' = $false; Heartbeat = $true } }
        $s.vms += @($vm)
        Add-SimChange $s "New-VM $Name"
        $vm
    }
    ConvertTo-SimVm -Vm $created
}

function Set-VM {
    [CmdletBinding()]
    param(
        [Parameter(Mandatory = $true)]$VM,
        [Parameter(Mandatory = $false)][bool]$AutomaticCheckpointsEnabled,
        [Parameter(Mandatory = $false)][ValidateSet('Disabled', 'Production', 'ProductionOnly', 'Standard')][string]$CheckpointType
    )
    $setAutomatic = $PSBoundParameters.ContainsKey('AutomaticCheckpointsEnabled')
    Update-SimHost {
        param($s)
        $vm = Find-SimVm -State $s -VM $VM
        if ($setAutomatic) { $vm.AutomaticCheckpointsEnabled = $AutomaticCheckpointsEnabled }
        if ($CheckpointType) { $vm.CheckpointType = $CheckpointType }
        Add-SimChange $s "Set-VM $($vm.Name) checkpoints"
    }
}

function Set-VMMemory {
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)]$VM, [Parameter(Mandatory = $true)][bool]$DynamicMemoryEnabled, [Parameter(Mandatory = $true)][int64]$StartupBytes)
    Update-SimHost {
        param($s)
        $vm = Find-SimVm -State $s -VM $VM
        if ($vm.State -ne 'Off') { throw "Failed to modify device 'Memory': the VM '$($vm.Name)' must be off to change static memory (simulated host)." }
        $vm.DynamicMemoryEnabled = $DynamicMemoryEnabled; $vm.MemoryStartup = $StartupBytes
        Add-SimChange $s "Set-VMMemory $($vm.Name) $StartupBytes"
    }
}

function Set-VMProcessor {
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)]$VM, [Parameter(Mandatory = $true)][int64]$Count)
    Update-SimHost {
        param($s)
        $vm = Find-SimVm -State $s -VM $VM
        if ($vm.State -ne 'Off') { throw "Failed to modify device 'Processor': the VM '$($vm.Name)' must be off (simulated host)." }
        $vm.ProcessorCount = $Count
        Add-SimChange $s "Set-VMProcessor $($vm.Name) $Count"
    }
}

function Get-VMFirmware {
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)]$VM)
    $vm = Find-SimVm -State (Read-SimState) -VM $VM
    if ($vm.Generation -ne 2) { throw "Get-VMFirmware: '$($vm.Name)' is a Generation 1 VM (simulated host)." }
    [pscustomobject]@{ VMName = $vm.Name; SecureBoot = $vm.SecureBoot; SecureBootTemplate = $vm.SecureBootTemplate; FirstBootDevice = $vm.FirstBootDevice }
}

function Set-VMFirmware {
    [CmdletBinding()]
    param(
        [Parameter(Mandatory = $true)]$VM,
        [Parameter(Mandatory = $true)][ValidateSet('On', 'Off')][string]$EnableSecureBoot,
        [Parameter(Mandatory = $true)][ValidateSet('MicrosoftUEFICertificateAuthority', 'MicrosoftWindows', 'OpenSourceShieldedVM')][string]$SecureBootTemplate,
        [Parameter(Mandatory = $false)]$FirstBootDevice
    )
    Update-SimHost {
        param($s)
        $vm = Find-SimVm -State $s -VM $VM
        if ($vm.State -ne 'Off') { throw "Set-VMFirmware: the VM '$($vm.Name)' must be off (simulated host)." }
        $vm.SecureBoot = $EnableSecureBoot; $vm.SecureBootTemplate = $SecureBootTemplate
        if ($null -ne $FirstBootDevice) {
            if (-not $FirstBootDevice.Path) { throw 'Set-VMFirmware: FirstBootDevice is not a boot device (simulated host).' }
            $vm.FirstBootDevice = $FirstBootDevice.Path
        }
        Add-SimChange $s "Set-VMFirmware $($vm.Name) $SecureBootTemplate"
    }
}

function Get-VMHardDiskDrive {
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)]$VM)
    $vm = Find-SimVm -State (Read-SimState) -VM $VM
    foreach ($d in $vm.Disks) { [pscustomobject]@{ VMName = $vm.Name; ControllerType = $d.ControllerType; ControllerLocation = $d.ControllerLocation; Path = $d.Path } }
}

function Add-VMHardDiskDrive {
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)]$VM, [Parameter(Mandatory = $true)][ValidateSet('IDE', 'SCSI')][string]$ControllerType, [Parameter(Mandatory = $true)][string]$Path)
    Update-SimHost {
        param($s)
        $vm = Find-SimVm -State $s -VM $VM
        $disk = Find-SimVhd -State $s -Path $Path
        if ($vm.Generation -eq 2 -and $ControllerType -eq 'IDE') { throw 'Generation 2 VMs have no IDE controller (simulated host).' }
        $vm.Disks += @(@{ ControllerType = $ControllerType; ControllerLocation = @($vm.Disks).Count; Path = $Path })
        Add-SimChange $s "Add-VMHardDiskDrive $($vm.Name) $Path"
    }
}

function Get-VMIntegrationService {
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)]$VM)
    $vm = Find-SimVm -State (Read-SimState) -VM $VM
    $ids = @{ 'Guest Service Interface' = '6C09BB55-D683-4DA0-8931-C9BF705F6480'; Heartbeat = '84EAAE65-2F2E-45F5-9BB5-0E857DC8EB47' }
    foreach ($name in $vm.IntegrationServices.Keys) {
        # The display name is localised on a non-English host (e.g. 'Gastdienstschnittstelle'); the id is not.
        $shown = if ($env:PLUTUS_SIM_HOST_LANGUAGE -eq 'de-DE' -and $name -eq 'Guest Service Interface') { 'Gastdienstschnittstelle' } else { $name }
        [pscustomobject]@{ VMName = $vm.Name; Name = $shown; Id = "Microsoft:$($vm.Id)\$($ids[$name])"; Enabled = $vm.IntegrationServices[$name] }
    }
}

function Enable-VMIntegrationService {
    [CmdletBinding()]
    param([Parameter(Mandatory = $false)]$VM, [Parameter(Mandatory = $false)][string]$Name, [Parameter(Mandatory = $false, ValueFromPipeline = $true)]$VMIntegrationService)
    process {
        Update-SimHost {
            param($s)
            if ($null -ne $VMIntegrationService) {
                $vm = $s.vms | Where-Object { $_.Name -eq $VMIntegrationService.VMName }
                $key = @($vm.IntegrationServices.Keys | Where-Object { $VMIntegrationService.Id.EndsWith(@{ 'Guest Service Interface' = '6C09BB55-D683-4DA0-8931-C9BF705F6480'; Heartbeat = '84EAAE65-2F2E-45F5-9BB5-0E857DC8EB47' }[$_]) })[0]
            } else {
                $vm = Find-SimVm -State $s -VM $VM
                $shownGsi = if ($env:PLUTUS_SIM_HOST_LANGUAGE -eq 'de-DE') { 'Gastdienstschnittstelle' } else { 'Guest Service Interface' }
                $key = if ($Name -eq $shownGsi) { 'Guest Service Interface' } elseif ($vm.IntegrationServices.ContainsKey($Name) -and $Name -ne 'Guest Service Interface') { $Name } else { $null }
                if ($null -eq $key) { throw "No integration service named '$Name' was found for '$($vm.Name)' (simulated host)." }
            }
            $vm.IntegrationServices[$key] = $true
            Add-SimChange $s "Enable-VMIntegrationService $($vm.Name) $key"
        }
    }
}

function Start-VM {
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)]$VM)
    Update-SimHost {
        param($s)
        $vm = Find-SimVm -State $s -VM $VM
        if ($vm.State -eq 'Running') { return }
        foreach ($d in $vm.Disks) { $disk = Find-SimVhd -State $s -Path $d.Path; if ($disk.Attached) { throw "'$($vm.Name)' failed to start: '$($d.Path)' is in use by the host (mounted) (simulated host)." } }
        $vm.State = 'Running'
        Start-SimGuest -State $s -Vm $vm
        Add-SimChange $s "Start-VM $($vm.Name)"
    }
}

function Stop-VM {
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)]$VM, [switch]$Force, [switch]$TurnOff)
    Update-SimHost {
        param($s)
        $vm = Find-SimVm -State $s -VM $VM
        $vm.State = 'Off'
        Add-SimChange $s "Stop-VM $($vm.Name)$(if ($TurnOff) { ' -TurnOff' })"
    }
}

function Remove-VM {
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)]$VM, [switch]$Force)
    Update-SimHost {
        param($s)
        $vm = Find-SimVm -State $s -VM $VM
        if ($vm.State -ne 'Off') { throw "Remove-VM: '$($vm.Name)' must be off (simulated host)." }
        $s.vms = @($s.vms | Where-Object { $_.Id -ne $vm.Id })
        $s.guests.Remove($vm.Name)
        Add-SimChange $s "Remove-VM $($vm.Name)"
    }
}

function Get-VMNetworkAdapter {
    [CmdletBinding()]
    param([Parameter(Mandatory = $false)]$VM, [switch]$ManagementOS)
    $state = Read-SimState
    if ($ManagementOS) {
        foreach ($v in $state.hostVnics) { [pscustomobject]@{ Name = $v.SwitchName; SwitchName = $v.SwitchName; MacAddress = $v.MacAddress; IsManagementOs = $true } }
    } else {
        $vm = Find-SimVm -State $state -VM $VM
        [pscustomobject]@{ VMName = $vm.Name; Name = 'Network Adapter'; SwitchName = $vm.SwitchName; IsManagementOs = $false }
    }
}

function Connect-VMNetworkAdapter {
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)]$VMNetworkAdapter, [Parameter(Mandatory = $true)][string]$SwitchName)
    Update-SimHost {
        param($s)
        if (-not ($s.switches | Where-Object { $_.Name -eq $SwitchName })) { throw "Hyper-V was unable to find a virtual switch with name '$SwitchName' (simulated host)." }
        $vm = $s.vms | Where-Object { $_.Name -eq $VMNetworkAdapter.VMName }
        $vm.SwitchName = $SwitchName
        Add-SimChange $s "Connect-VMNetworkAdapter $($vm.Name) $SwitchName"
    }
}

function Get-VMSwitch {
    [CmdletBinding()]
    param()
    foreach ($sw in (Read-SimState).switches) { [pscustomobject]@{ Name = $sw.Name; SwitchType = $sw.SwitchType; Id = [guid]$sw.Id } }
}

function New-VMSwitch {
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)][string]$Name, [Parameter(Mandatory = $true)][ValidateSet('Internal', 'Private')][string]$SwitchType)
    Update-SimHost {
        param($s)
        $id = [string][guid]::NewGuid()
        $s.switches += @(@{ Name = $Name; SwitchType = $SwitchType; Id = $id })
        if ($SwitchType -eq 'Internal') {
            $mac = '00155D0000{0:X2}' -f [int]$s.nextMac; $s.nextMac++
            $s.hostVnics += @(@{ SwitchName = $Name; MacAddress = $mac })
            $s.netAdapters += @(@{ Name = "vEthernet ($Name)"; MacAddress = ($mac -replace '(..)(?!$)', '$1-'); ifIndex = [int]$s.nextIfIndex; Physical = $false; Status = 'Up' })
            $s.nextIfIndex++
        }
        Add-SimChange $s "New-VMSwitch $Name $SwitchType"
        [pscustomobject]@{ Name = $Name; SwitchType = $SwitchType; Id = [guid]$id }
    }
}

function Remove-VMSwitch {
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)]$VMSwitch, [switch]$Force)
    Update-SimHost {
        param($s)
        $vnic = $s.hostVnics | Where-Object { $_.SwitchName -eq $VMSwitch.Name }
        if ($null -ne $vnic) {
            $adapter = $s.netAdapters | Where-Object { $_.MacAddress.Replace('-', '') -eq $vnic.MacAddress }
            $s.ipAddresses = @($s.ipAddresses | Where-Object { $_.ifIndex -ne $adapter.ifIndex })
            $s.netAdapters = @($s.netAdapters | Where-Object { $_.ifIndex -ne $adapter.ifIndex })
            $s.hostVnics = @($s.hostVnics | Where-Object { $_.SwitchName -ne $VMSwitch.Name })
        }
        $s.switches = @($s.switches | Where-Object { $_.Name -ne $VMSwitch.Name })
        Add-SimChange $s "Remove-VMSwitch $($VMSwitch.Name)"
    }
}

function ConvertTo-SimVhdInfo {
    param([hashtable]$Vhd)
    [pscustomobject]@{ Path = $Vhd.Path; VhdType = $Vhd.VhdType; ParentPath = $Vhd.ParentPath; Size = $Vhd.Size; Attached = [bool]$Vhd.Attached; DiskNumber = $Vhd.DiskNumber; VhdFormat = 'VHDX' }
}

function Get-VHD {
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)][string]$Path)
    Assert-SimHostContext -Cmdlet 'Get-VHD'
    ConvertTo-SimVhdInfo -Vhd (Find-SimVhd -State (Read-SimState) -Path $Path)
}

function New-VHD {
    [CmdletBinding(DefaultParameterSetName = 'Dynamic')]
    param(
        [Parameter(Mandatory = $true)][string]$Path,
        [Parameter(Mandatory = $true, ParameterSetName = 'Differencing')][string]$ParentPath,
        [Parameter(Mandatory = $true, ParameterSetName = 'Differencing')][switch]$Differencing,
        [Parameter(Mandatory = $true, ParameterSetName = 'Dynamic')][uint64]$SizeBytes,
        [Parameter(Mandatory = $true, ParameterSetName = 'Dynamic')][switch]$Dynamic
    )
    Assert-SimHostContext -Cmdlet 'New-VHD'
    $full = Resolve-SimPath -Path $Path
    if (Test-Path -LiteralPath $full) { throw "Failed to create the virtual hard disk: the file '$full' exists (simulated host)." }
    if (-not (Test-Path -LiteralPath (Split-Path -Parent $full) -PathType Container)) { throw "Failed to create the virtual hard disk: the folder of '$full' does not exist (simulated host)." }
    Update-SimHost {
        param($s)
        if ($Differencing) {
            $parent = Find-SimVhd -State $s -Path $ParentPath
            if ($parent.Attached) { throw "Failed to create the differencing disk: the parent '$ParentPath' is mounted (simulated host)." }
            $partitions = @()
            foreach ($p in $parent.Partitions) {
                # The child starts as its parent's content; writes to it never reach the parent.
                $folder = Get-SimVolumeFolder -VhdPath $full -PartitionNumber $p.PartitionNumber
                $null = New-Item -ItemType Directory -Path $folder -Force
                Copy-Item -Path (Join-Path $p.Folder '*') -Destination $folder -Recurse -Force
                $partitions += @(@{ PartitionNumber = $p.PartitionNumber; Type = $p.Type; FileSystem = $p.FileSystem; Label = $p.Label; Folder = $folder; DriveLetter = '' })
            }
            $s.vhds[$full] = @{ Path = $full; VhdType = 'Differencing'; ParentPath = $parent.Path; Size = $parent.Size; DiskNumber = $null; Attached = $false; PartitionStyle = $parent.PartitionStyle; Partitions = $partitions }
        } else {
            $s.vhds[$full] = @{ Path = $full; VhdType = 'Dynamic'; ParentPath = ''; Size = [int64]$SizeBytes; DiskNumber = $null; Attached = $false; PartitionStyle = 'RAW'; Partitions = @() }
        }
        [System.IO.File]::WriteAllText($full, 'simulated VHDX')
        Add-SimChange $s "New-VHD $full"
        ConvertTo-SimVhdInfo -Vhd $s.vhds[$full]
    }
}

function Mount-VHD {
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)][string]$Path, [switch]$Passthru)
    Assert-SimHostContext -Cmdlet 'Mount-VHD'
    $mounted = Update-SimHost {
        param($s)
        $vhd = Find-SimVhd -State $s -Path $Path
        if ($vhd.Attached) { throw "Mount-VHD: '$Path' is already mounted (simulated host)." }
        if ((Get-Item -LiteralPath $vhd.Path).IsReadOnly) { throw "Mount-VHD: '$Path' is read-only; the simulated host refuses to mount a master read-write." }
        if ($s.vms | Where-Object { $_.State -eq 'Running' -and ($_.Disks | Where-Object { (Resolve-SimPath -Path $_.Path) -eq $vhd.Path }) }) { throw "Mount-VHD: '$Path' is in use by a running VM (simulated host)." }
        $vhd.Attached = $true
        $vhd.DiskNumber = [int]$s.nextDiskNumber; $s.nextDiskNumber++
        if ($s.automount) {
            foreach ($p in $vhd.Partitions) { if ($p.Type -in 'Basic', 'IFS' -and $p.FileSystem) { $p.DriveLetter = Get-SimFreeLetter -State $s } }
        }
        Add-SimChange $s "Mount-VHD $Path"
        $vhd
    }
    foreach ($p in $mounted.Partitions) { if ($p.DriveLetter) { Mount-SimLetter -Letter $p.DriveLetter -Folder $p.Folder } }
    if ($Passthru) { ConvertTo-SimVhdInfo -Vhd $mounted }
}

function Dismount-VHD {
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)][string]$Path)
    Assert-SimHostContext -Cmdlet 'Dismount-VHD'
    $letters = Update-SimHost {
        param($s)
        $vhd = Find-SimVhd -State $s -Path $Path
        if (-not $vhd.Attached) { throw "Dismount-VHD: '$Path' is not mounted (simulated host)." }
        $vhd.Attached = $false; $vhd.DiskNumber = $null
        $out = @($vhd.Partitions | Where-Object { $_.DriveLetter } | ForEach-Object { $_.DriveLetter })
        foreach ($p in $vhd.Partitions) { $p.DriveLetter = '' }
        Add-SimChange $s "Dismount-VHD $Path"
        , $out
    }
    foreach ($l in $letters) { Dismount-SimLetter -Letter $l }
}

Export-ModuleMember -Function Get-VM, New-VM, Set-VM, Set-VMMemory, Set-VMProcessor, Get-VMFirmware, Set-VMFirmware, Get-VMHardDiskDrive, Add-VMHardDiskDrive, Get-VMIntegrationService, Enable-VMIntegrationService, Start-VM, Stop-VM, Remove-VM, Get-VMNetworkAdapter, Connect-VMNetworkAdapter, Get-VMSwitch, New-VMSwitch, Remove-VMSwitch, Get-VHD, New-VHD, Mount-VHD, Dismount-VHD
