<#
.SYNOPSIS
    Ensures a Generation 2 VM with its disks, switch, memory, processors and Secure Boot template, and starts it.
.DESCRIPTION
    Get, compare, set: creates the VM when missing; on an existing VM corrects memory, processor
    count, switch and Secure Boot template (stopping it first when a setting needs that); disables
    checkpoints (client Hyper-V enables automatic ones) and attaches missing disks. Prints one JSON line with what changed.
.PARAMETER Name
    Exact VM name.
.PARAMETER VmFolder
    Folder that holds the VM's configuration.
.PARAMETER MemoryMB
    Static memory in MB.
.PARAMETER Cpus
    Number of virtual processors.
.PARAMETER SwitchName
    The Internal switch the single network adapter connects to.
.PARAMETER OsDiskPath
    The differencing child disk to boot from.
.PARAMETER SeedDiskPath
    Optional cloud-init seed disk attached as a second SCSI disk; empty for none.
.PARAMETER SecureBootTemplate
    MicrosoftUEFICertificateAuthority for Linux, MicrosoftWindows for Windows.
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory = $true)][string]$Name,
    [Parameter(Mandatory = $true)][string]$VmFolder,
    [Parameter(Mandatory = $true)][int64]$MemoryMB,
    [Parameter(Mandatory = $true)][int]$Cpus,
    [Parameter(Mandatory = $true)][string]$SwitchName,
    [Parameter(Mandatory = $true)][string]$OsDiskPath,
    [Parameter(Mandatory = $false)][string]$SeedDiskPath = '',
    [Parameter(Mandatory = $true)][ValidateSet('MicrosoftUEFICertificateAuthority', 'MicrosoftWindows')][string]$SecureBootTemplate
)
$ErrorActionPreference = 'Stop'
$changes = New-Object -TypeName System.Collections.Generic.List[string]
$memoryBytes = $MemoryMB * 1048576

$vm = Hyper-V\Get-VM | Microsoft.PowerShell.Core\Where-Object { $_.Name -eq $Name }
if ($null -eq $vm) {
    $vm = Hyper-V\New-VM -Name $Name -Generation 2 -MemoryStartupBytes $memoryBytes -Path $VmFolder -VHDPath $OsDiskPath -SwitchName $SwitchName
    Hyper-V\Set-VMMemory -VM $vm -DynamicMemoryEnabled $false -StartupBytes $memoryBytes
    Hyper-V\Set-VMProcessor -VM $vm -Count $Cpus
    Hyper-V\Set-VMFirmware -VM $vm -EnableSecureBoot On -SecureBootTemplate $SecureBootTemplate -FirstBootDevice (Hyper-V\Get-VMHardDiskDrive -VM $vm | Microsoft.PowerShell.Utility\Select-Object -First 1)
    $changes.Add("created VM '$Name'")
} else {
    $needsOff = ($vm.MemoryStartup -ne $memoryBytes) -or ($vm.ProcessorCount -ne $Cpus) -or ((Hyper-V\Get-VMFirmware -VM $vm).SecureBootTemplate -ne $SecureBootTemplate)
    if ($needsOff -and $vm.State -ne 'Off') {
        Hyper-V\Stop-VM -VM $vm -Force
        $changes.Add("stopped VM '$Name' to change its settings")
    }
    if ($vm.MemoryStartup -ne $memoryBytes) {
        Hyper-V\Set-VMMemory -VM $vm -DynamicMemoryEnabled $false -StartupBytes $memoryBytes
        $changes.Add("memory set to $MemoryMB MB")
    }
    if ($vm.ProcessorCount -ne $Cpus) {
        Hyper-V\Set-VMProcessor -VM $vm -Count $Cpus
        $changes.Add("processors set to $Cpus")
    }
    if ((Hyper-V\Get-VMFirmware -VM $vm).SecureBootTemplate -ne $SecureBootTemplate) {
        Hyper-V\Set-VMFirmware -VM $vm -EnableSecureBoot On -SecureBootTemplate $SecureBootTemplate
        $changes.Add("Secure Boot template set to $SecureBootTemplate")
    }
    $nic = Hyper-V\Get-VMNetworkAdapter -VM $vm | Microsoft.PowerShell.Utility\Select-Object -First 1
    if ($nic.SwitchName -ne $SwitchName) {
        Hyper-V\Connect-VMNetworkAdapter -VMNetworkAdapter $nic -SwitchName $SwitchName
        $changes.Add("network adapter connected to '$SwitchName'")
    }
}
# Client Hyper-V (Windows 10/11) turns on automatic checkpoints for new VMs: a checkpoint would
# redirect writes into an .avhdx the lab's disk steps know nothing about. No checkpoints at all.
$vm = Hyper-V\Get-VM -Id $vm.Id
$automatic = $vm.PSObject.Properties['AutomaticCheckpointsEnabled']
if (($null -ne $automatic -and $automatic.Value) -or [string]$vm.CheckpointType -ne 'Disabled') {
    if ($null -ne $automatic) {
        Hyper-V\Set-VM -VM $vm -AutomaticCheckpointsEnabled $false -CheckpointType Disabled
    } else {
        Hyper-V\Set-VM -VM $vm -CheckpointType Disabled
    }
    $changes.Add('checkpoints disabled (automatic and manual)')
}
# Guest Service Interface (Copy-VMFile), selected by its id: the display name is localised.
$guestServiceInterface = Hyper-V\Get-VMIntegrationService -VM $vm | Microsoft.PowerShell.Core\Where-Object { $_.Id -like '*\6C09BB55-D683-4DA0-8931-C9BF705F6480' }
if ($null -ne $guestServiceInterface -and -not $guestServiceInterface.Enabled) {
    $guestServiceInterface | Hyper-V\Enable-VMIntegrationService
    $changes.Add('Guest Service Interface enabled')
}
$attached = @(Hyper-V\Get-VMHardDiskDrive -VM $vm | Microsoft.PowerShell.Core\ForEach-Object { $_.Path })
foreach ($disk in @($OsDiskPath, $SeedDiskPath)) {
    if ($disk -and -not ($attached -contains $disk)) {
        Hyper-V\Add-VMHardDiskDrive -VM $vm -ControllerType SCSI -Path $disk
        $changes.Add("attached '$disk'")
    }
}
$vm = Hyper-V\Get-VM -Id $vm.Id
if ($vm.State -ne 'Running') {
    Hyper-V\Start-VM -VM $vm
    $changes.Add("started VM '$Name'")
}
[pscustomobject]@{ name = $Name; id = [string]$vm.Id; changed = @($changes) } | Microsoft.PowerShell.Utility\ConvertTo-Json -Compress
