<# .SYNOPSIS Stub of the Storage module on the simulated host: disks are the mounted VHDs; in a guest, C: is its NTFS system volume. #>
$ErrorActionPreference = 'Stop'
Import-Module -Name PlutusSimHost

function Get-Disk {
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)][uint32]$Number)
    $vhd = Find-SimDisk -State (Read-SimState) -Number $Number
    [pscustomobject]@{ Number = $Number; PartitionStyle = $vhd.PartitionStyle; Location = $vhd.Path; Size = $vhd.Size }
}

function Get-Partition {
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)][uint32]$DiskNumber, [Parameter(Mandatory = $false)][uint32]$PartitionNumber)
    $vhd = Find-SimDisk -State (Read-SimState) -Number $DiskNumber
    $partitions = @($vhd.Partitions)
    if ($PSBoundParameters.ContainsKey('PartitionNumber')) {
        $partitions = @($partitions | Where-Object { $_.PartitionNumber -eq $PartitionNumber })
        if ($partitions.Count -eq 0) { throw "No MSFT_Partition objects found with property 'PartitionNumber' equal to '$PartitionNumber'." }
    }
    foreach ($p in $partitions) { ConvertTo-SimPartition -Vhd $vhd -Partition $p }
}

function Add-PartitionAccessPath {
    [CmdletBinding()]
    param([Parameter(Mandatory = $true, ValueFromPipeline = $true)]$InputObject, [Parameter(Mandatory = $true)][switch]$AssignDriveLetter)
    process {
        $assigned = Update-SimHost {
            param($s)
            $vhd = Find-SimDisk -State $s -Number $InputObject.DiskNumber
            $p = $vhd.Partitions | Where-Object { $_.PartitionNumber -eq $InputObject.PartitionNumber }
            if ($p.DriveLetter) { throw 'The requested access path is already in use.' }
            if (-not $p.FileSystem) { throw 'The access path is not valid: the partition has no file system (simulated host).' }
            $p.DriveLetter = Get-SimFreeLetter -State $s
            Add-SimChange $s "Add-PartitionAccessPath disk $($InputObject.DiskNumber) partition $($p.PartitionNumber) -> $($p.DriveLetter):"
            $p
        }
        Mount-SimLetter -Letter $assigned.DriveLetter -Folder $assigned.Folder
    }
}

function Initialize-Disk {
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)][uint32]$Number, [Parameter(Mandatory = $true)][ValidateSet('MBR', 'GPT')][string]$PartitionStyle)
    Update-SimHost {
        param($s)
        $vhd = Find-SimDisk -State $s -Number $Number
        if ($vhd.PartitionStyle -ne 'RAW') { throw "Initialize-Disk: disk $Number has already been initialized." }
        $vhd.PartitionStyle = $PartitionStyle
        Add-SimChange $s "Initialize-Disk $Number $PartitionStyle"
    }
}

function New-Partition {
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)][uint32]$DiskNumber, [Parameter(Mandatory = $true)][switch]$UseMaximumSize, [switch]$AssignDriveLetter)
    $made = Update-SimHost {
        param($s)
        $vhd = Find-SimDisk -State $s -Number $DiskNumber
        if ($vhd.PartitionStyle -eq 'RAW') { throw "New-Partition: disk $DiskNumber is not initialized." }
        $n = @($vhd.Partitions).Count + 1
        $folder = Get-SimVolumeFolder -VhdPath $vhd.Path -PartitionNumber $n
        $null = New-Item -ItemType Directory -Path $folder -Force
        $letter = if ($AssignDriveLetter) { Get-SimFreeLetter -State $s } else { '' }
        $p = @{ PartitionNumber = $n; Type = if ($vhd.PartitionStyle -eq 'GPT') { 'Basic' } else { 'IFS' }; FileSystem = ''; Label = ''; Folder = $folder; DriveLetter = $letter }
        $vhd.Partitions += @($p)
        Add-SimChange $s "New-Partition disk $DiskNumber"
        @{ vhd = $vhd; p = $p }
    }
    if ($made.p.DriveLetter) { Mount-SimLetter -Letter $made.p.DriveLetter -Folder $made.p.Folder }
    ConvertTo-SimPartition -Vhd $made.vhd -Partition $made.p
}

function Format-Volume {
    [CmdletBinding(SupportsShouldProcess = $true)]
    param([Parameter(Mandatory = $true)]$Partition, [Parameter(Mandatory = $true)][ValidateSet('FAT32', 'NTFS', 'exFAT')][string]$FileSystem, [Parameter(Mandatory = $true)][string]$NewFileSystemLabel)
    Update-SimHost {
        param($s)
        $vhd = Find-SimDisk -State $s -Number $Partition.DiskNumber
        $p = $vhd.Partitions | Where-Object { $_.PartitionNumber -eq $Partition.PartitionNumber }
        $p.FileSystem = $FileSystem; $p.Label = $NewFileSystemLabel
        Get-ChildItem -LiteralPath $p.Folder -Force | Remove-Item -Recurse -Force
        Add-SimChange $s "Format-Volume disk $($Partition.DiskNumber) partition $($p.PartitionNumber) $FileSystem $NewFileSystemLabel"
        [pscustomobject]@{ DriveLetter = $p.DriveLetter; FileSystemType = $FileSystem; FileSystemLabel = $NewFileSystemLabel }
    }
}

function Get-Volume {
    [CmdletBinding()]
    param([Parameter(Mandatory = $false)][char]$DriveLetter)
    $state = Read-SimState
    if ((Get-SimContext) -ne 'host') {
        $volumes = @([pscustomobject]@{ DriveLetter = [char]'C'; FileSystemType = 'NTFS'; FileSystemLabel = ''; SizeRemaining = 50GB })
    } else {
        $volumes = @(foreach ($vhd in $state.vhds.Values) {
                foreach ($p in $vhd.Partitions) { if ($vhd.Attached -and $p.DriveLetter) { [pscustomobject]@{ DriveLetter = [char]$p.DriveLetter; FileSystemType = $p.FileSystem; FileSystemLabel = $p.Label; SizeRemaining = 1GB } } }
            })
        foreach ($d in @($state.hostVolumes)) { if ($d) { $volumes += [pscustomobject]@{ DriveLetter = [char]$d.DriveLetter; FileSystemType = 'NTFS'; FileSystemLabel = ''; SizeRemaining = [int64]$d.SizeRemaining } } }
        $volumes = @($volumes | Sort-Object -Property DriveLetter)
    }
    if ($PSBoundParameters.ContainsKey('DriveLetter')) {
        $volumes = @($volumes | Where-Object { $_.DriveLetter -eq $DriveLetter })
        if ($volumes.Count -eq 0) { throw "No MSFT_Volume objects found with property 'DriveLetter' equal to '$DriveLetter'." }
    }
    $volumes
}

Export-ModuleMember -Function Get-Disk, Get-Partition, Add-PartitionAccessPath, Initialize-Disk, New-Partition, Format-Volume, Get-Volume
