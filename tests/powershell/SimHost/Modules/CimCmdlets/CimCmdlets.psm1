<# .SYNOPSIS Stub of CimCmdlets: Win32_Service (in a guest) and Win32_OperatingSystem (free memory of the host). #>
$ErrorActionPreference = 'Stop'
Import-Module -Name PlutusSimHost

function Get-CimInstance {
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)][ValidateSet('Win32_Service', 'Win32_OperatingSystem')][string]$ClassName, [Parameter(Mandatory = $false)][string]$Filter)
    $state = Read-SimState
    if ($ClassName -eq 'Win32_OperatingSystem') { return [pscustomobject]@{ FreePhysicalMemory = [int64]$state.freeMemoryMB * 1024 } }
    if ($Filter -notmatch "^Name='([^']+)'$") { throw "Get-CimInstance: only Name='<service>' filters are simulated, got '$Filter'." }
    $machine = Get-SimMachine -State $state
    $service = if ($machine.ContainsKey('services')) { $machine.services[$Matches[1]] } else { $null }
    if ($null -ne $service) { [pscustomobject]@{ Name = $Matches[1]; PathName = $service.PathName } }
}

Export-ModuleMember -Function Get-CimInstance
