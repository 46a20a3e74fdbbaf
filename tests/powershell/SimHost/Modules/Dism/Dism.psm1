<# .SYNOPSIS Stub of the Dism module inside a simulated guest: the OpenSSH Server capability. #>
$ErrorActionPreference = 'Stop'
Import-Module -Name PlutusSimHost

function Install-SimOpenSsh {
    param([hashtable]$State, [string]$How)
    $guest = Get-SimMachine -State $State
    $folder = Join-Path -Path $guest.osFolder -ChildPath 'Windows/System32/OpenSSH'
    $null = New-Item -ItemType Directory -Path $folder -Force
    foreach ($exe in 'sshd.exe', 'ssh-keygen.exe') { Microsoft.PowerShell.Management\Copy-Item -LiteralPath (Join-Path $PSScriptRoot "../../bin/$exe") -Destination (Join-Path $folder $exe) -Force }
    $guest.services['sshd'] = @{ Status = 'Stopped'; StartType = 'Manual'; starts = 0; PathName = '"C:\Windows\System32\OpenSSH\sshd.exe"' }
    $guest.firewall += @(@{ Name = 'OpenSSH-Server-In-TCP'; DisplayName = 'OpenSSH SSH Server (sshd)'; Enabled = 'True'; Direction = 'Inbound'; Action = 'Allow'; Protocol = 'TCP'; LocalPort = @('22'); RemoteAddress = @('Any') })
    Add-SimChange $State "installed OpenSSH Server ($How)"
}

function Add-WindowsCapability {
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)][switch]$Online, [Parameter(Mandatory = $true)][string]$Name, [Parameter(Mandatory = $false)][string]$Source, [switch]$LimitAccess)
    if ((Get-SimContext) -eq 'host') { throw 'Add-WindowsCapability: the simulated host only installs capabilities inside a guest.' }
    if ($Name -ne 'OpenSSH.Server~~~~0.0.1.0') { throw "Add-WindowsCapability: unknown capability '$Name'." }
    if ($Source -and -not (Test-Path -LiteralPath $Source -PathType Container)) { throw "Add-WindowsCapability: the source files could not be found ('$Source')." }
    Update-SimHost { param($s) Install-SimOpenSsh -State $s -How $(if ($Source) { 'fod' } else { 'capability' }) }
    [pscustomobject]@{ Online = $true; RestartNeeded = $false }
}

Export-ModuleMember -Function Add-WindowsCapability, Install-SimOpenSsh
