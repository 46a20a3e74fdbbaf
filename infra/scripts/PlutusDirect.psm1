<#
.SYNOPSIS
    Host-side functions shared by the scripts that reach a guest over PowerShell Direct.
.DESCRIPTION
    Never run on its own: a step that lists it in `helpers` (infra/powershell.ts) gets its text as
    the script's Helpers parameter, and the script loads it with New-Module. The functions exist on
    the Hyper-V host only; a script block sent into the guest with Invoke-Command cannot see them.
#>
$ErrorActionPreference = 'Stop'

function ConvertTo-PlutusAdministratorCredential {
    <#
    .SYNOPSIS
        The guest's built-in .\Administrator credential, for PowerShell Direct.
    .PARAMETER Password
        The Administrator password.
    #>
    [CmdletBinding()]
    [OutputType([System.Management.Automation.PSCredential])]
    param(
        [Parameter(Mandatory = $true)][string]$Password
    )
    $secure = Microsoft.PowerShell.Security\ConvertTo-SecureString -String $Password -AsPlainText -Force
    New-Object -TypeName System.Management.Automation.PSCredential -ArgumentList '.\Administrator', $secure
}

function Connect-PlutusPowerShellDirect {
    <#
    .SYNOPSIS
        Retries PowerShell Direct into a VM every 10 s until it accepts the credential (it fails while the guest is still in setup) or the deadline passes.
    .PARAMETER VmName
        Exact VM name.
    .PARAMETER Credential
        The guest credential.
    .PARAMETER DeadlineSeconds
        How long to keep retrying.
    .PARAMETER Session
        Connect with New-PSSession and return the open session (the caller removes it); without it,
        one Invoke-Command proves PowerShell Direct works and nothing is returned.
    .PARAMETER Advice
        A sentence appended to the error when the deadline passes.
    #>
    [CmdletBinding()]
    param(
        [Parameter(Mandatory = $true)][string]$VmName,
        [Parameter(Mandatory = $true)][System.Management.Automation.PSCredential]$Credential,
        [Parameter(Mandatory = $true)][int]$DeadlineSeconds,
        [Parameter(Mandatory = $false)][switch]$Session,
        [Parameter(Mandatory = $false)][string]$Advice = ''
    )
    $deadline = (Microsoft.PowerShell.Utility\Get-Date).AddSeconds($DeadlineSeconds)
    $attempt = 0
    while ($true) {
        $attempt++
        try {
            if ($Session) {
                $opened = Microsoft.PowerShell.Core\New-PSSession -VMName $VmName -Credential $Credential -ErrorAction Stop
                if ($null -ne $opened) { return $opened }
            } else {
                $null = Microsoft.PowerShell.Core\Invoke-Command -VMName $VmName -Credential $Credential -ScriptBlock { $env:COMPUTERNAME } -ErrorAction Stop
                return
            }
        } catch {
            if ((Microsoft.PowerShell.Utility\Get-Date) -ge $deadline) {
                $message = "PowerShell Direct to '$VmName' still fails after $attempt attempts in $DeadlineSeconds s: $($_.Exception.Message)"
                if ($Advice) { $message += ". $Advice" }
                throw $message
            }
            Microsoft.PowerShell.Utility\Start-Sleep -Seconds 10
        }
    }
}

Microsoft.PowerShell.Core\Export-ModuleMember -Function @('ConvertTo-PlutusAdministratorCredential', 'Connect-PlutusPowerShellDirect')
