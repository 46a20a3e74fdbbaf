<#
.SYNOPSIS
    The simulated Hyper-V host behind the stub modules (Hyper-V, NetNat, Storage, ...).
.DESCRIPTION
    One host model, kept as JSON in $env:PLUTUS_SIM_ROOT/state.json so that every pwsh process that
    runs a lab step (the end-to-end test runs each step in its own process, as Pulumi does) sees the
    same host. Disks are real placeholder files; their volumes are real folders, exposed under a
    drive letter as a PowerShell drive and, for .NET calls that resolve "E:/x" against the process
    working directory, as a symlink "E:" in $root/cwd. Every change is appended to the host's
    change log, so a test can assert that a second run made no change at all.
#>
$ErrorActionPreference = 'Stop'
$script:Context = 'host'

function Get-SimRoot {
    $root = $env:PLUTUS_SIM_ROOT
    if (-not $root) { throw 'PLUTUS_SIM_ROOT is not set: the simulated host has no home (call New-SimHost first).' }
    return $root
}

function Read-SimState {
    $text = [System.IO.File]::ReadAllText((Join-Path -Path (Get-SimRoot) -ChildPath 'state.json'))
    return ($text | ConvertFrom-Json -AsHashtable -Depth 64)
}

function Save-SimState {
    param([Parameter(Mandatory = $true)][hashtable]$State)
    $file = Join-Path -Path (Get-SimRoot) -ChildPath 'state.json'
    [System.IO.File]::WriteAllText("$file.tmp", ($State | ConvertTo-Json -Depth 64))
    Move-Item -LiteralPath "$file.tmp" -Destination $file -Force
}

function Add-SimChange {
    param([hashtable]$State, [string]$What)
    $State.changes += @("$($script:Context): $What")
}

function Get-SimContext { $script:Context }

function New-SimHost {
    <#
    .SYNOPSIS
        Creates an empty simulated host under Root and points this process (and its children) at it.
    #>
    param(
        [Parameter(Mandatory = $true)][string]$Root,
        [bool]$Automount = $true,
        [int64]$FreeMemoryMB = 16384
    )
    $null = New-Item -ItemType Directory -Path $Root -Force
    foreach ($sub in 'cwd', 'volumes', 'bin') { $null = New-Item -ItemType Directory -Path (Join-Path $Root $sub) -Force }
    $env:PLUTUS_SIM_ROOT = (Resolve-Path -LiteralPath $Root).ProviderPath
    Save-SimState -State @{
        automount = $Automount
        freeMemoryMB = $FreeMemoryMB
        nextDiskNumber = 1
        nextIfIndex = 20
        nextMac = 1
        switches = @()
        hostVnics = @()
        netAdapters = @(@{ Name = 'Ethernet'; MacAddress = '00-15-5D-00-00-FF'; ifIndex = 4; Physical = $true; Status = 'Up' })
        ipAddresses = @(@{ ifIndex = 4; IPAddress = '192.0.2.10'; PrefixLength = 24; PrefixOrigin = 'Dhcp' })
        nats = @()
        hostVolumes = @()
        vhds = @{}
        vms = @()
        guests = @{}
        changes = @()
    }
    Enter-SimWorkingDirectory
}

function Enter-SimWorkingDirectory {
    # .NET resolves "E:/x" against the process working directory, where the drive-letter symlinks are.
    [System.Environment]::CurrentDirectory = Join-Path -Path (Get-SimRoot) -ChildPath 'cwd'
}

function Get-SimChanges {
    <# .SYNOPSIS The host's change log (what every mutating stub call did). #>
    @((Read-SimState).changes)
}

function Update-SimHost {
    <# .SYNOPSIS Runs Change on the state (a hashtable) and saves it; returns what Change returns. #>
    param([Parameter(Mandatory = $true)][scriptblock]$Change)
    $state = Read-SimState
    $result = & $Change $state
    Save-SimState -State $state
    return $result
}

function Get-SimVolumeFolder {
    param([string]$VhdPath, [int]$PartitionNumber)
    $key = ([System.BitConverter]::ToString([System.Security.Cryptography.SHA256]::HashData([System.Text.Encoding]::UTF8.GetBytes($VhdPath)))).Replace('-', '').Substring(0, 16)
    Join-Path -Path (Get-SimRoot) -ChildPath "volumes/$key-$PartitionNumber"
}

function Add-SimVhd {
    <#
    .SYNOPSIS
        Puts a master disk on the simulated host: a placeholder file and its partitions.
    .PARAMETER Layout
        WindowsGpt (Generation 2 Windows: EFI, MSR, Windows, Recovery), WindowsMbr (Generation 1),
        UbuntuGpt (EFI and root), Empty.
    #>
    param([Parameter(Mandatory = $true)][string]$Path, [ValidateSet('WindowsGpt', 'WindowsMbr', 'UbuntuGpt', 'Empty')][string]$Layout = 'WindowsGpt')
    $Path = Resolve-SimPath -Path $Path
    $null = New-Item -ItemType Directory -Path (Split-Path -Parent $Path) -Force
    [System.IO.File]::WriteAllText($Path, "simulated VHDX ($Layout)")
    $partitions = switch ($Layout) {
        'WindowsGpt' { @(@{ n = 1; Type = 'System'; fs = 'FAT32' }, @{ n = 2; Type = 'Reserved'; fs = '' }, @{ n = 3; Type = 'Basic'; fs = 'NTFS'; windows = $true }, @{ n = 4; Type = 'Recovery'; fs = 'NTFS' }) }
        'WindowsMbr' { @(@{ n = 1; Type = 'IFS'; fs = 'NTFS' }, @{ n = 2; Type = 'IFS'; fs = 'NTFS'; windows = $true }) }
        'UbuntuGpt' { @(@{ n = 1; Type = 'System'; fs = 'FAT32' }, @{ n = 2; Type = 'Unknown'; fs = '' }) }
        'Empty' { @() }
    }
    $style = switch ($Layout) { 'WindowsMbr' { 'MBR' } 'Empty' { 'RAW' } default { 'GPT' } }
    $list = @()
    foreach ($p in $partitions) {
        $folder = Get-SimVolumeFolder -VhdPath $Path -PartitionNumber $p.n
        $null = New-Item -ItemType Directory -Path $folder -Force
        if ($p.windows) { $null = New-Item -ItemType Directory -Path (Join-Path $folder 'Windows/System32') -Force }
        $list += @{ PartitionNumber = $p.n; Type = $p.Type; FileSystem = $p.fs; Label = ''; Folder = $folder; DriveLetter = '' }
    }
    Update-SimHost {
        param($s)
        $s.vhds[$Path] = @{ Path = $Path; VhdType = 'Dynamic'; ParentPath = ''; Size = 42949672960; DiskNumber = $null; Attached = $false; PartitionStyle = $style; Partitions = $list }
    } | Out-Null
}

function Get-SimFreeLetter {
    param([hashtable]$State)
    $used = @($State.vhds.Values | ForEach-Object { $_.Partitions } | ForEach-Object { $_.DriveLetter } | Where-Object { $_ })
    foreach ($letter in [char[]]'EFGHIJKLMNOPQRSTUVWXYZ') { if ($used -notcontains [string]$letter) { return [string]$letter } }
    throw 'simulated host: no free drive letter'
}

function Mount-SimLetter {
    <# .SYNOPSIS Exposes a volume folder under a drive letter (PowerShell drive and cwd symlink). #>
    param([string]$Letter, [string]$Folder)
    if (Get-PSDrive -Name $Letter -ErrorAction SilentlyContinue) { Remove-PSDrive -Name $Letter -Force -Scope Global }
    $null = New-PSDrive -Name $Letter -PSProvider FileSystem -Root $Folder -Scope Global
    $link = Join-Path -Path (Get-SimRoot) -ChildPath "cwd/$($Letter):"
    if (Test-Path -LiteralPath $link) { Remove-Item -LiteralPath $link -Force }
    $null = New-Item -ItemType SymbolicLink -Path $link -Target $Folder
    Enter-SimWorkingDirectory
}

function Dismount-SimLetter {
    param([string]$Letter)
    if (Get-PSDrive -Name $Letter -ErrorAction SilentlyContinue) { Remove-PSDrive -Name $Letter -Force -Scope Global }
    $link = Join-Path -Path (Get-SimRoot) -ChildPath "cwd/$($Letter):"
    if (Test-Path -LiteralPath $link) { Remove-Item -LiteralPath $link -Force }
}

function Restore-SimLetters {
    <# .SYNOPSIS In a new process: the drive letters of the disks that are still mounted. #>
    if (-not $env:PLUTUS_SIM_ROOT -or $script:Context -ne 'host') { return }
    if (-not (Test-Path -LiteralPath (Join-Path -Path $env:PLUTUS_SIM_ROOT -ChildPath 'state.json'))) { return }
    Enter-SimWorkingDirectory
    foreach ($drive in @((Read-SimState).hostVolumes)) { if ($drive) { Mount-SimLetter -Letter $drive.DriveLetter -Folder $drive.Folder } }
    foreach ($vhd in (Read-SimState).vhds.Values) {
        foreach ($p in $vhd.Partitions) { if ($vhd.Attached -and $p.DriveLetter) { Mount-SimLetter -Letter $p.DriveLetter -Folder $p.Folder } }
    }
}

function Resolve-SimPath {
    <# .SYNOPSIS A host path (D:\x on a simulated drive, or a plain Linux path) as the file system sees it. #>
    param([string]$Path)
    $ExecutionContext.SessionState.Path.GetUnresolvedProviderPathFromPSPath($Path)
}

function Add-SimHostDrive {
    <# .SYNOPSIS A fixed drive of the host (D:, ...): a folder under the root, in this and every later process. #>
    param([Parameter(Mandatory = $true)][ValidatePattern('^[D-Z]$')][string]$Letter)
    $folder = Join-Path -Path (Get-SimRoot) -ChildPath "host/$Letter"
    $null = New-Item -ItemType Directory -Path $folder -Force
    Update-SimHost { param($s) $s.hostVolumes = @(@($s.hostVolumes) | Where-Object { $_ -and $_.DriveLetter -ne $Letter }) + @(@{ DriveLetter = $Letter; Folder = $folder; SizeRemaining = 500GB }) } | Out-Null
    Mount-SimLetter -Letter $Letter -Folder $folder
    return $folder
}

function Find-SimVhd {
    param([hashtable]$State, [string]$Path)
    $full = Resolve-SimPath -Path $Path
    if (-not $State.vhds.ContainsKey($full) -or -not (Test-Path -LiteralPath $full -PathType Leaf)) {
        throw "Hyper-V was unable to find the virtual disk '$Path' (simulated host): the file does not exist or is not a virtual disk."
    }
    return $State.vhds[$full]
}

function Find-SimDisk {
    param([hashtable]$State, [int]$Number)
    $vhd = $State.vhds.Values | Where-Object { $_.Attached -and $_.DiskNumber -eq $Number } | Select-Object -First 1
    if ($null -eq $vhd) { throw "No MSFT_Disk objects found with property 'Number' equal to '$Number' (simulated host)." }
    return $vhd
}

function ConvertTo-SimPartition {
    param([hashtable]$Vhd, [hashtable]$Partition)
    $letter = if ($Partition.DriveLetter) { [char]$Partition.DriveLetter } else { [char]0 }
    [pscustomobject]@{
        PSTypeName = 'Microsoft.Management.Infrastructure.CimInstance#ROOT/Microsoft/Windows/Storage/MSFT_Partition'
        DiskNumber = $Vhd.DiskNumber; PartitionNumber = $Partition.PartitionNumber; Type = $Partition.Type; DriveLetter = $letter
        AccessPaths = @(if ($Partition.DriveLetter) { "$($Partition.DriveLetter):\" })
    }
}

function Assert-SimHostContext {
    param([string]$Cmdlet)
    if ($script:Context -ne 'host') { throw "$Cmdlet is a host cmdlet; it was called inside the guest '$($script:Context)' (simulated host)." }
}

# ---------------- guests ----------------

function Get-SimGuest {
    param([hashtable]$State, [string]$VmName)
    if (-not $State.guests.ContainsKey($VmName)) { throw "simulated host: VM '$VmName' has no guest state" }
    $State.guests[$VmName]
}

function Get-SimCurrentGuest {
    param([hashtable]$State)
    Get-SimGuest -State $State -VmName $script:Context
}

function Start-SimGuest {
    <#
    .SYNOPSIS
        What the first boot of a VM does: Windows applies Panther\unattend.xml (computer name,
        Administrator password); a Generation 2 VM cannot boot an MBR disk.
    #>
    param([hashtable]$State, [hashtable]$Vm)
    $bootDisk = $State.vhds[(Resolve-SimPath -Path $Vm.Disks[0].Path)]
    $guest = $State.guests[$Vm.Name]
    if ($null -eq $guest) {
        $guest = @{ booted = $false; bootError = ''; adminPassword = $null; computerName = ''; osFolder = ''
            netAdapters = @(@{ Name = 'Ethernet'; MacAddress = '00-15-5D-00-10-01'; ifIndex = 6; Physical = $true; Status = 'Up'; Dhcp = 'Enabled' })
            ipAddresses = @(@{ ifIndex = 6; IPAddress = '169.254.20.7'; PrefixLength = 16; PrefixOrigin = 'WellKnown' })
            routes = @(); dns = @(); services = @{}; users = @(@{ Name = 'Administrator'; SID = 'S-1-5-21-1-500' }); admins = @('S-1-5-21-1-500')
            acls = @{}; firewall = @(); nextSid = 1001; capabilities = @() }
        $State.guests[$Vm.Name] = $guest
    }
    if ($Vm.Generation -eq 2 -and $bootDisk.PartitionStyle -ne 'GPT') {
        $guest.bootError = 'No UEFI-compatible file system was found (Generation 2 VM, MBR boot disk).'
        return
    }
    $windows = $bootDisk.Partitions | Where-Object { Test-Path -LiteralPath (Join-Path $_.Folder 'Windows') -PathType Container } | Select-Object -First 1
    if ($null -eq $windows) { $guest.booted = $true; return }
    $guest.osFolder = $windows.Folder
    $answer = Join-Path $windows.Folder 'Windows/Panther/unattend.xml'
    if (-not $guest.booted -and (Test-Path -LiteralPath $answer)) {
        $xml = [xml][System.IO.File]::ReadAllText($answer)
        $ns = New-Object System.Xml.XmlNamespaceManager $xml.NameTable
        $ns.AddNamespace('u', 'urn:schemas-microsoft-com:unattend')
        $encoded = $xml.SelectSingleNode('//u:AdministratorPassword/u:Value', $ns).InnerText
        $plain = [System.Text.Encoding]::Unicode.GetString([System.Convert]::FromBase64String($encoded))
        if (-not $plain.EndsWith('AdministratorPassword')) { throw 'simulated guest: the unattend.xml password is not encoded the way Windows Setup decodes it' }
        $guest.adminPassword = $plain.Substring(0, $plain.Length - 'AdministratorPassword'.Length)
        $guest.computerName = $xml.SelectSingleNode('//u:ComputerName', $ns).InnerText
    }
    $guest.booted = $true
}

function Enter-SimGuest {
    <#
    .SYNOPSIS
        Makes this runspace the inside of a guest: guest cmdlets act on its state, C: is its system volume.
    #>
    param([Parameter(Mandatory = $true)][string]$VmName)
    $state = Read-SimState
    $guest = Get-SimGuest -State $state -VmName $VmName
    $script:Context = $VmName
    if ($guest.osFolder) {
        if (Get-PSDrive -Name C -ErrorAction SilentlyContinue) { Remove-PSDrive -Name C -Force -Scope Global }
        $null = New-PSDrive -Name C -PSProvider FileSystem -Root $guest.osFolder -Scope Global
        $link = Join-Path -Path (Get-SimRoot) -ChildPath 'cwd/C:'
        if (Test-Path -LiteralPath $link) { Remove-Item -LiteralPath $link -Force }
        $null = New-Item -ItemType SymbolicLink -Path $link -Target $guest.osFolder
    }
    Enter-SimWorkingDirectory
    $env:ProgramData = 'C:\ProgramData'
    $env:SystemRoot = 'C:\Windows'
    $env:COMPUTERNAME = $guest.computerName
    $env:PLUTUS_SIM_GUEST_C = $guest.osFolder
    $env:PLUTUS_SIM_GUEST_VM = $VmName
    $env:PLUTUS_SIM_PWSH = Join-Path -Path $PSHOME -ChildPath 'pwsh'
    # The guest's programs (msiexec.exe) are found on PATH, as in C:\Windows\System32.
    $bin = (Resolve-Path -LiteralPath (Join-Path -Path $PSScriptRoot -ChildPath '../../bin')).ProviderPath
    if (($env:PATH -split [System.IO.Path]::PathSeparator) -notcontains $bin) { $env:PATH = $bin + [System.IO.Path]::PathSeparator + $env:PATH }
    Import-SimShadowModules
    Import-Module -Name PlutusSimGuest -Global -Force
}

function Invoke-SimGuestCommand {
    <#
    .SYNOPSIS
        PowerShell Direct: checks the VM and the credential, then runs the script block's text in a
        new runspace that is the guest (nothing of the caller's session is visible there, as with
        the real Invoke-Command -VMName; arguments are passed by value).
    #>
    param([string]$VmName, [System.Management.Automation.PSCredential]$Credential, [scriptblock]$ScriptBlock, [object[]]$ArgumentList)
    Assert-SimDirect -VmName $VmName -Credential $Credential
    $saved = @{ ProgramData = $env:ProgramData; SystemRoot = $env:SystemRoot; COMPUTERNAME = $env:COMPUTERNAME; PATH = $env:PATH }
    $runspace = [runspacefactory]::CreateRunspace()
    $runspace.Open()
    $ps = [powershell]::Create()
    $ps.Runspace = $runspace
    try {
        $null = $ps.AddCommand('Import-Module').AddParameter('Name', 'PlutusSimHost').AddStatement().AddCommand('PlutusSimHost\Enter-SimGuest').AddParameter('VmName', $VmName).AddStatement()
        $null = $ps.AddScript($ScriptBlock.ToString())
        foreach ($argument in @($ArgumentList)) { $null = $ps.AddArgument($argument) }
        try {
            $output = $ps.Invoke()
        } catch {
            $inner = $_.Exception
            while ($inner.InnerException) { $inner = $inner.InnerException }
            throw $inner.Message
        }
        if ($ps.HadErrors -and $ps.Streams.Error.Count -gt 0) { throw $ps.Streams.Error[0].Exception.Message }
        return $output
    } finally {
        $ps.Dispose()
        $runspace.Dispose()
        $env:ProgramData = $saved.ProgramData; $env:SystemRoot = $saved.SystemRoot; $env:COMPUTERNAME = $saved.COMPUTERNAME; $env:PATH = $saved.PATH
        $link = Join-Path -Path (Get-SimRoot) -ChildPath 'cwd/C:'
        if (Test-Path -LiteralPath $link) { Remove-Item -LiteralPath $link -Force }
    }
}

function Assert-SimDirect {
    param([string]$VmName, [System.Management.Automation.PSCredential]$Credential)
    $state = Read-SimState
    $vm = $state.vms | Where-Object { $_.Name -eq $VmName }
    if ($null -eq $vm) { throw "The virtual machine $VmName could not be found (simulated host)." }
    if ($vm.State -ne 'Running') { throw "The virtual machine $VmName is not in running state (simulated host)." }
    $guest = $state.guests[$VmName]
    if ($null -ne $guest -and [int]$guest.setupAttemptsLeft -gt 0) {
        # Still in setup: PowerShell Direct refuses the credential for a while.
        $guest.setupAttemptsLeft = [int]$guest.setupAttemptsLeft - 1
        Save-SimState -State $state
        throw 'The credential is invalid (simulated host: the guest is still in setup).'
    }
    if ($null -eq $guest -or -not $guest.booted) { throw "An error has occurred which Windows PowerShell cannot handle. A remote session might have ended (simulated host: $($guest.bootError))." }
    if ($Credential.UserName -ne '.\Administrator' -or $null -eq $guest.adminPassword -or $Credential.GetNetworkCredential().Password -ne $guest.adminPassword) {
        throw 'The credential is invalid (simulated host).'
    }
}

function Get-SimMachine {
    <# .SYNOPSIS The state of the machine this runspace is: the host itself, or the guest it has entered. #>
    param([hashtable]$State)
    if ($script:Context -eq 'host') { return $State }
    return (Get-SimGuest -State $State -VmName $script:Context)
}

function Import-SimShadowModules {
    <#
    .SYNOPSIS
        Imports, into the global scope, the stubs that stand in for modules pwsh on Linux already has
        (so a module-qualified call such as Microsoft.PowerShell.Management\Get-Service reaches them).
    #>
    foreach ($name in 'Microsoft.PowerShell.Management', 'Microsoft.PowerShell.Security', 'Microsoft.PowerShell.Core') {
        Import-Module -Name (Join-Path -Path $PSScriptRoot -ChildPath "../$name/$name.psm1") -Global -Force
    }
}

function Enable-SimWindowsIdentity {
    <#
    .SYNOPSIS
        Windows identities for a script that checks elevation (their .NET types throw on Linux): the
        type names resolve to stand-ins whose IsInRole answers $env:PLUTUS_SIM_ELEVATED -eq '1'.
    #>
    if (-not ('PlutusSim.WindowsIdentity' -as [type])) {
        Add-Type -TypeDefinition @'
namespace PlutusSim {
    public class WindowsIdentity { public static WindowsIdentity GetCurrent() { return new WindowsIdentity(); } }
    public class WindowsPrincipal {
        public WindowsPrincipal(WindowsIdentity identity) { }
        public bool IsInRole(object role) { return System.Environment.GetEnvironmentVariable("PLUTUS_SIM_ELEVATED") == "1"; }
    }
}
'@
    }
    $accelerators = [psobject].Assembly.GetType('System.Management.Automation.TypeAccelerators')
    $accelerators::Add('System.Security.Principal.WindowsIdentity', [PlutusSim.WindowsIdentity])
    $accelerators::Add('System.Security.Principal.WindowsPrincipal', [PlutusSim.WindowsPrincipal])
}

Restore-SimLetters
Export-ModuleMember -Function *-Sim*, Resolve-SimPath, Read-SimState, Save-SimState, Update-SimHost, Add-SimChange, Find-SimVhd, Find-SimDisk, ConvertTo-SimPartition, Assert-SimHostContext, Get-SimContext, Get-SimRoot
