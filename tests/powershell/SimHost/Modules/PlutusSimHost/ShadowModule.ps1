# Dot-sourced by the stubs that stand in for a module PowerShell 7 on Linux has but without the
# Windows cmdlets (Microsoft.PowerShell.Management, Microsoft.PowerShell.Security): the real module
# is imported inside the stub, and each of its cmdlets the stub does not replace is re-exported as
# a generated proxy with the real parameters, so module-qualified calls still reach them.
function Import-PlutusShadowedModule {
    param([string]$Name, [string[]]$Replaced)
    $manifest = Join-Path -Path $PSHOME -ChildPath "Modules/$Name/$Name.psd1"
    $real = @(Get-Module -Name $Name -All | Where-Object { $_.Path -eq $manifest -or $_.ModuleBase -eq (Split-Path -Parent $manifest) })
    if ($real.Count -eq 0) { $real = @(Import-Module -Name $manifest -PassThru -Global) }
    $script:RealCmdlets = @{}
    $cmdlets = @($real | ForEach-Object { $_.ExportedCmdlets.Values; $_.NestedModules | ForEach-Object { $_.ExportedCmdlets.Values } } | Sort-Object -Property Name -Unique)
    if ($cmdlets.Count -eq 0) { throw "cannot find the cmdlets of the real $Name module under $PSHOME" }
    foreach ($exported in $cmdlets) {
        # Resolved again in this session, so that .Parameters (dynamic ones included) can be read.
        $command = $ExecutionContext.InvokeCommand.GetCmdletByTypeName($exported.ImplementingType.FullName)
        $script:RealCmdlets[$command.Name] = $command
        if ($Replaced -contains $command.Name) { continue }
        $proxy = [System.Management.Automation.ProxyCommand]::Create([System.Management.Automation.CommandMetadata]::new($command))
        $proxy = $proxy.Replace("`$ExecutionContext.InvokeCommand.GetCommand('$Name\$($command.Name)', [System.Management.Automation.CommandTypes]::Cmdlet, `$PSBoundParameters)", "`$script:RealCmdlets['$($command.Name)']")
        $proxy = $proxy.Replace("`$ExecutionContext.InvokeCommand.GetCommand('$Name\$($command.Name)', [System.Management.Automation.CommandTypes]::Cmdlet)", "`$script:RealCmdlets['$($command.Name)']")
        # Bound to this module, so the proxy sees $script:RealCmdlets wherever it is called from.
        Set-Item -Path "function:script:$($command.Name)" -Value ($ExecutionContext.SessionState.Module.NewBoundScriptBlock([scriptblock]::Create($proxy)))
    }
}
