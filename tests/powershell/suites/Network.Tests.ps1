BeforeAll {
    . (Join-Path -Path $PSScriptRoot -ChildPath 'SimHost.Common.ps1')
    $script:Lab = @{ SwitchName = 'plutus-lab'; GatewayIp = '10.77.0.1'; PrefixLength = 24; SubnetCidr = '10.77.0.0/24'; EnableNat = $true; NatName = 'plutus-nat' }
}

Describe 'Set-PlutusNetwork.ps1 and Remove-PlutusNetwork.ps1' {
    BeforeEach { $script:Root = New-TestHost }
    AfterEach { Remove-TestHost -Root $script:Root }

    It 'creates exactly the switch, the gateway address on its vNIC and the NAT; a second run changes nothing' {
        $first = Invoke-LabScript -Name 'Set-PlutusNetwork.ps1' -Parameters $Lab
        $first.changed | Should -Be @("created Internal switch 'plutus-lab'", 'set 10.77.0.1/24 on the host vNIC', "created NAT 'plutus-nat' for 10.77.0.0/24")
        $state = PlutusSimHost\Read-SimState
        @($state.switches).Name | Should -Be @('plutus-lab')
        $vnic = $state.netAdapters | Where-Object { $_.Name -eq 'vEthernet (plutus-lab)' }
        @($state.ipAddresses | Where-Object { $_.ifIndex -eq $vnic.ifIndex }).IPAddress | Should -Be @('10.77.0.1')
        @($state.ipAddresses | Where-Object { $_.ifIndex -eq 4 }).IPAddress | Should -Be @('192.0.2.10')
        @($state.nats).InternalIPInterfaceAddressPrefix | Should -Be @('10.77.0.0/24')

        $second = Invoke-LabScript -Name 'Set-PlutusNetwork.ps1' -Parameters $Lab
        $second.changed | Should -BeNullOrEmpty
        $second.HostChanges | Should -BeNullOrEmpty
    }

    It 'corrects a drifted gateway address alone' {
        $null = Invoke-LabScript -Name 'Set-PlutusNetwork.ps1' -Parameters $Lab
        $vnic = (PlutusSimHost\Read-SimState).netAdapters | Where-Object { $_.Name -eq 'vEthernet (plutus-lab)' }
        NetTCPIP\Remove-NetIPAddress -InterfaceIndex $vnic.ifIndex -IPAddress '10.77.0.1' -Confirm:$false
        $null = NetTCPIP\New-NetIPAddress -InterfaceIndex $vnic.ifIndex -IPAddress '10.77.0.9' -PrefixLength 24
        $fixed = Invoke-LabScript -Name 'Set-PlutusNetwork.ps1' -Parameters $Lab
        $fixed.changed | Should -Be @('removed 10.77.0.9/24 from the host vNIC', 'set 10.77.0.1/24 on the host vNIC')
        $fixed.HostChanges | Should -Be @("host: Remove-NetIPAddress 10.77.0.9 from $($vnic.ifIndex)", "host: New-NetIPAddress 10.77.0.1/24 on $($vnic.ifIndex)")
    }

    It 'leaves a DHCP address on the vNIC alone when it sets the gateway address' {
        $null = Invoke-LabScript -Name 'Set-PlutusNetwork.ps1' -Parameters $Lab
        $state = PlutusSimHost\Read-SimState
        $vnic = $state.netAdapters | Where-Object { $_.Name -eq 'vEthernet (plutus-lab)' }
        $state.ipAddresses = @($state.ipAddresses | Where-Object { $_.IPAddress -ne '10.77.0.1' }) + @(@{ ifIndex = $vnic.ifIndex; IPAddress = '169.254.3.3'; PrefixLength = 16; PrefixOrigin = 'WellKnown' })
        PlutusSimHost\Save-SimState -State $state
        (Invoke-LabScript -Name 'Set-PlutusNetwork.ps1' -Parameters $Lab).changed | Should -Be @('set 10.77.0.1/24 on the host vNIC')
    }

    It 'refuses a NAT prefix that overlaps another NAT, naming it' {
        $state = PlutusSimHost\Read-SimState
        $state.nats = @(@{ Name = 'docker-nat'; InternalIPInterfaceAddressPrefix = '10.77.0.128/25'; ExternalIPInterfaceAddressPrefix = '' })
        PlutusSimHost\Save-SimState -State $state
        { Invoke-LabScript -Name 'Set-PlutusNetwork.ps1' -Parameters $Lab } | Should -Throw "The NAT 'docker-nat' (10.77.0.128/25) overlaps the lab subnet 10.77.0.0/24. Choose another subnet, or remove that NAT if it is unused."
    }

    It 'ignores a NAT that has no internal prefix (external-only NAT) in the overlap check' {
        $state = PlutusSimHost\Read-SimState
        $state.nats = @(@{ Name = 'vpn-nat'; InternalIPInterfaceAddressPrefix = ''; ExternalIPInterfaceAddressPrefix = '192.0.2.0/24' })
        PlutusSimHost\Save-SimState -State $state
        $result = Invoke-LabScript -Name 'Set-PlutusNetwork.ps1' -Parameters $Lab
        $result.changed | Should -Contain "created NAT 'plutus-nat' for 10.77.0.0/24"
    }

    It 'refuses a switch of the same name that is not Internal' {
        $state = PlutusSimHost\Read-SimState
        $state.switches = @(@{ Name = 'plutus-lab'; SwitchType = 'Private'; Id = [string][guid]::NewGuid() })
        PlutusSimHost\Save-SimState -State $state
        { Invoke-LabScript -Name 'Set-PlutusNetwork.ps1' -Parameters $Lab } | Should -Throw "A switch named 'plutus-lab' exists but is Private, not Internal. Rename or remove it, or set another switchName."
    }

    It 'turns the NAT off when asked, and only it' {
        $null = Invoke-LabScript -Name 'Set-PlutusNetwork.ps1' -Parameters $Lab
        $off = $Lab.Clone(); $off.EnableNat = $false
        (Invoke-LabScript -Name 'Set-PlutusNetwork.ps1' -Parameters $off).HostChanges | Should -Be @('host: Remove-NetNat plutus-nat')
    }

    It 'removes exactly its NAT, address and switch, never another switch; a second removal changes nothing' {
        $null = Invoke-LabScript -Name 'Set-PlutusNetwork.ps1' -Parameters $Lab
        $null = Hyper-V\New-VMSwitch -Name 'other-lab' -SwitchType Internal
        $removal = @{ SwitchName = 'plutus-lab'; NatName = 'plutus-nat'; GatewayIp = '10.77.0.1' }
        $removed = Invoke-LabScript -Name 'Remove-PlutusNetwork.ps1' -Parameters $removal
        $removed.changed | Should -Be @("removed NAT 'plutus-nat'", "removed 10.77.0.1 from the switch's host vNIC", "removed switch 'plutus-lab'")
        $state = PlutusSimHost\Read-SimState
        @($state.switches).Name | Should -Be @('other-lab')
        @($state.nats).Count | Should -Be 0
        @($state.ipAddresses).IPAddress | Should -Be @('192.0.2.10')
        (Invoke-LabScript -Name 'Remove-PlutusNetwork.ps1' -Parameters $removal).HostChanges | Should -BeNullOrEmpty
    }

    It 'fails at binding on a parameter the script does not have' {
        $bad = $Lab.Clone(); $bad.VlanId = 7
        { Invoke-LabScript -Name 'Set-PlutusNetwork.ps1' -Parameters $bad } | Should -Throw "A parameter cannot be found that matches parameter name 'VlanId'."
    }
}
