<#
.SYNOPSIS
    Ensures a cloud-init NoCloud seed disk: a small VHDX with one FAT32 volume labelled CIDATA.
.DESCRIPTION
    Writes user-data, meta-data and network-config as UTF-8 without BOM. Get, compare, set: an
    existing seed whose three files are byte-identical is left alone; otherwise it is rewritten. The
    seed must not be attached to a running VM while it is rewritten.
.PARAMETER Path
    Full path of the seed VHDX.
.PARAMETER MetaData
    The meta-data document (holds the unique instance-id).
.PARAMETER NetworkConfig
    The network-config document (version 2, static address).
.PARAMETER UserData
    The user-data document; secret (holds the VM's SSH host private key), arrives on stdin only.
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory = $true)][string]$Path,
    [Parameter(Mandatory = $true)][string]$MetaData,
    [Parameter(Mandatory = $true)][string]$NetworkConfig,
    [Parameter(Mandatory = $true)][string]$UserData
)
$ErrorActionPreference = 'Stop'
$utf8 = New-Object -TypeName System.Text.UTF8Encoding -ArgumentList $false
$wanted = [ordered]@{ 'user-data' = $UserData; 'meta-data' = $MetaData; 'network-config' = $NetworkConfig }

function Get-PlutusSeedVolume {
    param([string]$DiskPath)
    $disk = Hyper-V\Get-VHD -Path $DiskPath
    $partition = Storage\Get-Partition -DiskNumber $disk.DiskNumber | Microsoft.PowerShell.Core\Where-Object { $_.Type -ne 'Reserved' } | Microsoft.PowerShell.Utility\Select-Object -First 1
    # No letter reads as [char]0, which is not $null: compare the code.
    if ([int][char]$partition.DriveLetter -eq 0) {
        $partition | Storage\Add-PartitionAccessPath -AssignDriveLetter
        $partition = Storage\Get-Partition -DiskNumber $disk.DiskNumber -PartitionNumber $partition.PartitionNumber
    }
    return "$($partition.DriveLetter):\"
}

# As PowerShell's providers see the path (GetFullPath would resolve against the process folder).
$full = $ExecutionContext.SessionState.Path.GetUnresolvedProviderPathFromPSPath($Path)
$changes = New-Object -TypeName System.Collections.Generic.List[string]
# A seed attached to a VM cannot be mounted, and cloud-init reads it only at the first boot of a
# new instance-id, whose change replaces the VM (and detaches the seed) before this step runs.
$users = @(Hyper-V\Get-VM | Microsoft.PowerShell.Core\ForEach-Object {
        $vm = $_
        Hyper-V\Get-VMHardDiskDrive -VM $vm | Microsoft.PowerShell.Core\Where-Object { $_.Path -and $ExecutionContext.SessionState.Path.GetUnresolvedProviderPathFromPSPath($_.Path) -eq $full } | Microsoft.PowerShell.Core\ForEach-Object { $vm.Name }
    })
if ($users.Count -gt 0) {
    [pscustomobject]@{ path = $full; changed = @(); note = "attached to VM '$($users -join "', '")'; left as it is (cloud-init reads it only at that VM's first boot)" } | Microsoft.PowerShell.Utility\ConvertTo-Json -Compress
    return
}
$created = $false
if (-not (Microsoft.PowerShell.Management\Test-Path -LiteralPath $full -PathType Leaf)) {
    $null = Microsoft.PowerShell.Management\New-Item -ItemType Directory -Path (Microsoft.PowerShell.Management\Split-Path -Path $full -Parent) -Force
    $null = Hyper-V\New-VHD -Path $full -SizeBytes 67108864 -Dynamic
    $created = $true
    $changes.Add("created seed disk '$full'")
}
$null = Hyper-V\Mount-VHD -Path $full -Passthru
try {
    $disk = Hyper-V\Get-VHD -Path $full
    if ($created) {
        $null = Storage\Initialize-Disk -Number $disk.DiskNumber -PartitionStyle MBR
        $partition = Storage\New-Partition -DiskNumber $disk.DiskNumber -UseMaximumSize -AssignDriveLetter
        $null = Storage\Format-Volume -Partition $partition -FileSystem FAT32 -NewFileSystemLabel 'CIDATA' -Confirm:$false
    }
    $root = Get-PlutusSeedVolume -DiskPath $full
    $label = (Storage\Get-Volume -DriveLetter $root.Substring(0, 1)).FileSystemLabel
    if ($label -ne 'CIDATA') {
        throw "'$full' exists but its volume is labelled '$label', not CIDATA. Move it away and run again."
    }
    foreach ($name in $wanted.Keys) {
        $target = Microsoft.PowerShell.Management\Join-Path -Path $root -ChildPath $name
        $bytes = $utf8.GetBytes([string]$wanted[$name])
        $same = $false
        if (Microsoft.PowerShell.Management\Test-Path -LiteralPath $target -PathType Leaf) {
            $current = [System.IO.File]::ReadAllBytes($target)
            $same = ($current.Length -eq $bytes.Length) -and ([System.Convert]::ToBase64String($current) -eq [System.Convert]::ToBase64String($bytes))
        }
        if (-not $same) {
            [System.IO.File]::WriteAllBytes($target, $bytes)
            $changes.Add("wrote $name")
        }
    }
} finally {
    Hyper-V\Dismount-VHD -Path $full
}
[pscustomobject]@{ path = $full; changed = @($changes) } | Microsoft.PowerShell.Utility\ConvertTo-Json -Compress
