import * as pulumi from "@pulumi/pulumi";
import type { HostAccessConfig } from "./config";
import { PowerShellCommand } from "./powershell";
import { mergeDependsOn } from "./ubuntuVm";

export interface WindowsVmArgs {
  /** How to reach the Hyper-V host. */
  readonly host: HostAccessConfig;
  /** Exact VM name. */
  readonly vmName: string;
  /** Guest computer name (NetBIOS, up to 15 characters). */
  readonly computerName: string;
  /** Folder for the VM configuration. */
  readonly vmFolder: string;
  /** Full path of the OS differencing disk (child of the generalized master). */
  readonly osDiskPath: string;
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
  /** Administrator password (secret). */
  readonly adminPassword: pulumi.Input<string>;
  /** How long PowerShell Direct is retried while the guest boots, in seconds. */
  readonly guestDeadlineSeconds?: number;
}

/** The Windows Server 2022 ERP VM: offline unattend.xml, then configuration over PowerShell Direct. */
export class WindowsVm extends pulumi.ComponentResource {
  public readonly vmName: string;
  public readonly ip: string;
  /** The last configuration step; later guest steps depend on it. */
  public readonly ready: pulumi.Resource;

  constructor(name: string, args: WindowsVmArgs, opts?: pulumi.ComponentResourceOptions) {
    super("plutus:windowsVm:WindowsVm", name, {}, opts);
    if (!/^[A-Za-z0-9-]{1,15}$/.test(args.computerName) || /^\d+$/.test(args.computerName)) {
      throw new pulumi.ResourceError(`computer name ${JSON.stringify(args.computerName)} must be 1-15 letters, digits or dashes, not all digits`, this);
    }
    this.vmName = args.vmName;
    this.ip = args.ip;
    const deadline = args.guestDeadlineSeconds ?? 1800;

    const unattend = new PowerShellCommand(
      `${name}-unattend`,
      {
        host: args.host,
        create: {
          script: "Set-PlutusWindowsUnattend.ps1",
          parameters: { DiskPath: args.osDiskPath, VmName: args.vmName, ComputerName: args.computerName },
          secrets: { AdminPassword: args.adminPassword },
        },
        triggers: [args.osDiskPath, args.computerName],
      },
      { parent: this, dependsOn: mergeDependsOn(opts?.dependsOn) },
    );
    const vm = new PowerShellCommand(
      `${name}-vm`,
      {
        host: args.host,
        create: {
          script: "New-PlutusVm.ps1",
          parameters: {
            Name: args.vmName,
            VmFolder: args.vmFolder,
            MemoryMB: args.memoryMB,
            Cpus: args.cpus,
            SwitchName: args.switchName,
            OsDiskPath: args.osDiskPath,
            SeedDiskPath: "",
            SecureBootTemplate: "MicrosoftWindows",
          },
        },
        delete: { script: "Remove-PlutusVm.ps1", parameters: { Name: args.vmName } },
        triggers: [args.vmName, args.osDiskPath],
        deleteBeforeReplace: true,
      },
      { parent: this, dependsOn: mergeDependsOn(opts?.dependsOn, unattend) },
    );
    this.ready = new PowerShellCommand(
      `${name}-guest`,
      {
        host: args.host,
        create: {
          script: "Set-PlutusWindowsGuest.ps1",
          parameters: {
            VmName: args.vmName,
            IpAddress: args.ip,
            PrefixLength: args.prefixLength,
            Gateway: args.gateway,
            DnsServers: [...args.dnsServers],
            DeadlineSeconds: deadline,
          },
          secrets: { AdminPassword: args.adminPassword },
        },
        triggers: [args.vmName],
      },
      { parent: this, dependsOn: [vm] },
    );
    this.registerOutputs({ vmName: this.vmName, ip: this.ip });
  }
}
