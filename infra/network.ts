import * as pulumi from "@pulumi/pulumi";
import type { HostAccessConfig } from "./config";
import { PowerShellCommand } from "./powershell";

export interface LabNetworkArgs {
  /** How to reach the Hyper-V host. */
  readonly host: HostAccessConfig;
  /** Exact name of the Internal switch. */
  readonly switchName: string;
  /** Lab subnet, e.g. 192.168.77.0/24. */
  readonly subnetCidr: string;
  /** Prefix length of the subnet. */
  readonly prefixLength: number;
  /** The host vNIC's address: the VMs' gateway. */
  readonly gatewayIp: string;
  /** Whether to create a NAT for the subnet. */
  readonly nat: boolean;
}

/** The Internal switch, the host's vNIC address and the NAT (checked for overlaps). */
export class LabNetwork extends pulumi.ComponentResource {
  public readonly switchName: string;
  public readonly natName: string;

  constructor(name: string, args: LabNetworkArgs, opts?: pulumi.ComponentResourceOptions) {
    super("plutus:network:LabNetwork", name, {}, opts);
    if (!args.switchName) throw new pulumi.ResourceError("switchName is empty; set plutus:switchName", this);
    this.switchName = args.switchName;
    this.natName = `${args.switchName}-nat`;
    new PowerShellCommand(
      `${name}-switch`,
      {
        host: args.host,
        create: {
          script: "Set-PlutusNetwork.ps1",
          parameters: {
            SwitchName: args.switchName,
            GatewayIp: args.gatewayIp,
            PrefixLength: args.prefixLength,
            SubnetCidr: args.subnetCidr,
            EnableNat: args.nat,
            NatName: this.natName,
          },
        },
        delete: {
          script: "Remove-PlutusNetwork.ps1",
          parameters: { SwitchName: args.switchName, NatName: this.natName, GatewayIp: args.gatewayIp },
        },
        triggers: [args.switchName],
        deleteBeforeReplace: true,
      },
      { parent: this },
    );
    this.registerOutputs({ switchName: this.switchName, natName: this.natName });
  }
}
