<#
.SYNOPSIS
    Writes Windows\Panther\unattend.xml into a Windows child disk before its first boot.
.DESCRIPTION
    The disk is mounted, written and dismounted in finally. Skipped when the VM already exists (its
    first boot consumed the answer file). An identical unattend.xml is left alone.
.PARAMETER DiskPath
    The Windows differencing child disk (never the master).
.PARAMETER VmName
    The VM that boots from the disk.
.PARAMETER ComputerName
    The guest's computer name (NetBIOS, up to 15 characters).
.PARAMETER AdminPassword
    The Administrator password; secret, arrives on stdin only.
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory = $true)][string]$DiskPath,
    [Parameter(Mandatory = $true)][string]$VmName,
    [Parameter(Mandatory = $true)][ValidatePattern('^[A-Za-z0-9-]{1,15}$')][string]$ComputerName,
    [Parameter(Mandatory = $true)][string]$AdminPassword
)
$ErrorActionPreference = 'Stop'

# Windows Setup rejects a password that breaks these rules only at first boot, where the lab would
# wait for PowerShell Direct until its deadline: say so now. 14+ is what docs/infra.md asks for.
$advice = 'Set plutus:windowsAdminPassword again (pulumi config set --secret windowsAdminPassword).'
if ($AdminPassword.Length -lt 14 -or $AdminPassword.Length -gt 127) {
    throw "The Administrator password has $($AdminPassword.Length) characters; it needs at least 14 (and at most 127). $advice"
}
$kinds = @('[A-Z]', '[a-z]', '[0-9]', '[^A-Za-z0-9]' | Microsoft.PowerShell.Core\Where-Object { $AdminPassword -cmatch $_ }).Count
if ($kinds -lt 3) {
    throw "The Administrator password has characters of only $kinds of the kinds uppercase, lowercase, digits, symbols; Windows needs 3. $advice"
}
if ($AdminPassword -match 'Administrator') {
    throw "The Administrator password contains the account name Administrator, which Windows refuses. $advice"
}

$existing = Hyper-V\Get-VM | Microsoft.PowerShell.Core\Where-Object { $_.Name -eq $VmName }
if ($null -ne $existing) {
    [pscustomobject]@{ path = $DiskPath; changed = @(); note = "VM '$VmName' exists; unattend.xml applies only before its first boot" } | Microsoft.PowerShell.Utility\ConvertTo-Json -Compress
    return
}
$vhd = Hyper-V\Get-VHD -Path $DiskPath
if ($vhd.VhdType -ne 'Differencing') {
    throw "'$DiskPath' is not a differencing child disk; unattend.xml is only ever written into a child, never a master."
}

$encodedPassword = [System.Convert]::ToBase64String([System.Text.Encoding]::Unicode.GetBytes($AdminPassword + 'AdministratorPassword'))
$component = 'processorArchitecture="amd64" publicKeyToken="31bf3856ad364e35" language="neutral" versionScope="nonSxS"'
$lines = @(
    '<?xml version="1.0" encoding="utf-8"?>',
    '<unattend xmlns="urn:schemas-microsoft-com:unattend">',
    '  <settings pass="specialize">',
    "    <component name=""Microsoft-Windows-Shell-Setup"" $component>",
    ('      <ComputerName>{0}</ComputerName>' -f [System.Security.SecurityElement]::Escape($ComputerName)),
    '      <TimeZone>UTC</TimeZone>',
    '    </component>',
    '  </settings>',
    '  <settings pass="oobeSystem">',
    "    <component name=""Microsoft-Windows-International-Core"" $component>",
    '      <InputLocale>en-US</InputLocale><SystemLocale>en-US</SystemLocale><UILanguage>en-US</UILanguage><UserLocale>en-US</UserLocale>',
    '    </component>',
    "    <component name=""Microsoft-Windows-Shell-Setup"" $component>",
    '      <OOBE><HideEULAPage>true</HideEULAPage><HideLocalAccountScreen>true</HideLocalAccountScreen><HideOEMRegistrationScreen>true</HideOEMRegistrationScreen><HideOnlineAccountScreens>true</HideOnlineAccountScreens><HideWirelessSetupInOOBE>true</HideWirelessSetupInOOBE><ProtectYourPC>3</ProtectYourPC><SkipMachineOOBE>true</SkipMachineOOBE><SkipUserOOBE>true</SkipUserOOBE></OOBE>',
    ('      <UserAccounts><AdministratorPassword><Value>{0}</Value><PlainText>false</PlainText></AdministratorPassword></UserAccounts>' -f $encodedPassword),
    '    </component>',
    '  </settings>',
    '</unattend>'
)
$bytes = (New-Object -TypeName System.Text.UTF8Encoding -ArgumentList $false).GetBytes(($lines -join "`r`n") + "`r`n")

$changes = @()
$mounted = Hyper-V\Mount-VHD -Path $DiskPath -Passthru
try {
    # The lab's VMs are Generation 2 (UEFI): an MBR disk comes from a Generation 1 master and would
    # never boot, which would only show as PowerShell Direct timing out half an hour later.
    $style = (Storage\Get-Disk -Number $mounted.DiskNumber).PartitionStyle
    if ($style -ne 'GPT') {
        throw "'$DiskPath' has an $style partition table: its master '$($vhd.ParentPath)' is a Generation 1 (BIOS) disk, and the lab's VMs are Generation 2 (UEFI), which cannot boot it. Build a Generation 2 master (GPT; see docs/infra.md) and run again."
    }
    $windowsRoot = $null
    foreach ($partition in @(Storage\Get-Partition -DiskNumber $mounted.DiskNumber)) {
        # No letter reads as [char]0, which is not $null: compare the code.
        if ([int][char]$partition.DriveLetter -eq 0) {
            # Automount may be off on the host (mountvol /N): give the data partitions a letter.
            if ($partition.Type -ne 'Basic') { continue }
            $partition | Storage\Add-PartitionAccessPath -AssignDriveLetter
            $partition = Storage\Get-Partition -DiskNumber $mounted.DiskNumber -PartitionNumber $partition.PartitionNumber
            if ([int][char]$partition.DriveLetter -eq 0) { continue }
        }
        $candidate = "$($partition.DriveLetter):\Windows"
        if (Microsoft.PowerShell.Management\Test-Path -LiteralPath $candidate -PathType Container) { $windowsRoot = $candidate }
    }
    if ($null -eq $windowsRoot) {
        throw "No Windows folder found on '$DiskPath'; is the master a generalized Windows Server 2022 disk?"
    }
    $panther = Microsoft.PowerShell.Management\Join-Path -Path $windowsRoot -ChildPath 'Panther'
    $null = Microsoft.PowerShell.Management\New-Item -ItemType Directory -Path $panther -Force
    $target = Microsoft.PowerShell.Management\Join-Path -Path $panther -ChildPath 'unattend.xml'
    $same = $false
    if (Microsoft.PowerShell.Management\Test-Path -LiteralPath $target -PathType Leaf) {
        $same = [System.Convert]::ToBase64String([System.IO.File]::ReadAllBytes($target)) -eq [System.Convert]::ToBase64String($bytes)
    }
    if (-not $same) {
        [System.IO.File]::WriteAllBytes($target, $bytes)
        $changes = @('wrote Windows\Panther\unattend.xml')
    }
} finally {
    Hyper-V\Dismount-VHD -Path $DiskPath
}
[pscustomobject]@{ path = $DiskPath; changed = $changes } | Microsoft.PowerShell.Utility\ConvertTo-Json -Compress
