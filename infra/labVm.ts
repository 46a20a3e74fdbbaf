import * as pulumi from "@pulumi/pulumi";
import type { HostAccessConfig } from "./config";
import type { OsDisk } from "./differencingDisk";

/** What every lab VM takes alike: the host, where the VM lives, its hardware and its static address. */
export interface LabVmArgs {
  /** How to reach the Hyper-V host. */
  readonly host: HostAccessConfig;
  /** Exact VM name. */
  readonly vmName: string;
  /** Folder for the VM configuration. */
  readonly vmFolder: string;
  /** The OS differencing disk (its path output ties the VM to the disk resource). */
  readonly osDisk: OsDisk;
  /** The Internal switch to connect to. */
  readonly switchName: string;
  /** Static memory in MB. */
  readonly memoryMB: number;
  /** Virtual processors. */
  readonly cpus: number;
  /** Static IPv4 address. */
  readonly ip: string;
  /** Subnet prefix length. */
  readonly prefixLength: number;
  /** Default gateway. */
  readonly gateway: string;
  /** DNS servers. */
  readonly dnsServers: readonly string[];
}

/** The parameters of New-PlutusVm.ps1 for a lab VM: the same script builds both VMs. */
export function newVmParameters(
  args: LabVmArgs,
  seedDiskPath: pulumi.Input<string>,
  secureBootTemplate: "MicrosoftUEFICertificateAuthority" | "MicrosoftWindows",
): Record<string, pulumi.Input<string | number>> {
  return {
    Name: args.vmName,
    VmFolder: args.vmFolder,
    MemoryMB: args.memoryMB,
    Cpus: args.cpus,
    SwitchName: args.switchName,
    OsDiskPath: args.osDisk.path,
    SeedDiskPath: seedDiskPath,
    SecureBootTemplate: secureBootTemplate,
  };
}
