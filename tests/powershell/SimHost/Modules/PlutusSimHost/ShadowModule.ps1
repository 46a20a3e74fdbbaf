# Dot-sourced by the stubs that stand in for a module PowerShell 7 on Linux has but without the
# Windows cmdlets (Microsoft.PowerShell.Management, Microsoft.PowerShell.Security): the real module
# is imported inside the stub, and each of its cmdlets the stub does not replace is re-exported as
# a generated proxy with the real parameters, so module-qualified calls still reach them.
function Import-PlutusShadowedModule {
    param([string]$Name, [string[]]$Replaced)
    $real = Import-Module -Name (Join-Path -Path $PSHOME -ChildPath "Modules/$Name/$Name.psd1") -PassThru -Force
    $script:RealCmdlets = @{}
    foreach ($command in $real.ExportedCmdlets.Values) {
        $script:RealCmdlets[$command.Name] = $command
        if ($Replaced -contains $command.Name) { continue }
        $proxy = [System.Management.Automation.ProxyCommand]::Create([System.Management.Automation.CommandMetadata]::new($command))
        $proxy = $proxy.Replace("`$ExecutionContext.InvokeCommand.GetCommand('$Name\$($command.Name)', [System.Management.Automation.CommandTypes]::Cmdlet, `$PSBoundParameters)", "`$script:RealCmdlets['$($command.Name)']")
        $proxy = $proxy.Replace("`$ExecutionContext.InvokeCommand.GetCommand('$Name\$($command.Name)', [System.Management.Automation.CommandTypes]::Cmdlet)", "`$script:RealCmdlets['$($command.Name)']")
        # Bound to this module, so the proxy sees $script:RealCmdlets wherever it is called from.
        Set-Item -Path "function:script:$($command.Name)" -Value ($ExecutionContext.SessionState.Module.NewBoundScriptBlock([scriptblock]::Create($proxy)))
    }
}
