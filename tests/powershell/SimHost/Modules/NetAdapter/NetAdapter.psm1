<# .SYNOPSIS Stub of the NetAdapter module: the host's adapters, or the guest's inside a guest. #>
$ErrorActionPreference = 'Stop'
Import-Module -Name PlutusSimHost

function Get-NetAdapter {
    [CmdletBinding()]
    param([switch]$Physical)
    foreach ($a in (Get-SimMachine -State (Read-SimState)).netAdapters) {
        if ($Physical -and -not $a.Physical) { continue }
        [pscustomobject]@{ Name = $a.Name; MacAddress = $a.MacAddress; ifIndex = $a.ifIndex; Status = $a.Status }
    }
}

Export-ModuleMember -Function Get-NetAdapter
