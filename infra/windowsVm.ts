import * as pulumi from "@pulumi/pulumi";
import { newVmParameters, type LabVmArgs } from "./labVm";
import { PowerShellCommand, secretFingerprint } from "./powershell";
import { mergeDependsOn } from "./ubuntuVm";

/** The Windows VM's arguments; its osDisk is a child of the generalized (sysprep) master. */
export interface WindowsVmArgs extends LabVmArgs {
  /** Guest computer name (NetBIOS, up to 15 characters). */
  readonly computerName: string;
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
  /** The VM name, as an Output of the last configuration step: a VM rebuild re-runs what uses it. */
  public readonly readyVmName: pulumi.Output<string>;

  constructor(name: string, args: WindowsVmArgs, opts?: pulumi.ComponentResourceOptions) {
    super("plutus:windowsVm:WindowsVm", name, {}, opts);
    if (!/^[A-Za-z0-9-]{1,15}$/.test(args.computerName) || /^\d+$/.test(args.computerName)) {
      throw new pulumi.ResourceError(`computer name ${JSON.stringify(args.computerName)} must be 1-15 letters, digits or dashes, not all digits`, this);
    }
    this.vmName = args.vmName;
    this.ip = args.ip;
    const deadline = args.guestDeadlineSeconds ?? 1800;
    // The password only takes effect through unattend.xml on a fresh child disk: a new password
    // rebuilds the disk (index.ts passes the same fingerprint to it), the answer file and the VM.
    // Only a scrypt fingerprint, marked secret, is in the triggers, never the password.
    const passwordFingerprint = windowsPasswordFingerprint(args.adminPassword);
    const diskTriggers = [args.osDisk.path, args.osDisk.masterPath, ...args.osDisk.scriptHashes];

    const unattend = new PowerShellCommand(
      `${name}-unattend`,
      {
        host: args.host,
        create: {
          script: "Set-PlutusWindowsUnattend.ps1",
          parameters: { DiskPath: args.osDisk.path, VmName: args.vmName, ComputerName: args.computerName },
          secrets: { AdminPassword: args.adminPassword },
        },
        triggers: [...diskTriggers, args.computerName, passwordFingerprint],
      },
      { parent: this, dependsOn: mergeDependsOn(opts?.dependsOn) },
    );
    const vm = new PowerShellCommand(
      `${name}-vm`,
      {
        host: args.host,
        create: {
          script: "New-PlutusVm.ps1",
          parameters: newVmParameters(args, "", "MicrosoftWindows"),
        },
        delete: { script: "Remove-PlutusVm.ps1", parameters: { Name: args.vmName } },
        triggers: [args.vmName, ...diskTriggers, passwordFingerprint],
        deleteBeforeReplace: true,
      },
      { parent: this, dependsOn: mergeDependsOn(opts?.dependsOn, unattend) },
    );
    const ready = new PowerShellCommand(
      `${name}-guest`,
      {
        host: args.host,
        create: {
          script: "Set-PlutusWindowsGuest.ps1",
          helpers: ["PlutusDirect.psm1"],
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
        triggers: [vm.after(args.vmName)],
      },
      { parent: this, dependsOn: [vm] },
    );
    this.readyVmName = ready.after(args.vmName);
    this.ready = ready;
    this.registerOutputs({ vmName: this.vmName, ip: this.ip, readyVmName: this.readyVmName });
  }
}

/** The fingerprint of the Windows Administrator password that rebuilds the ERP disk and VM when it changes. */
export function windowsPasswordFingerprint(password: pulumi.Input<string>): pulumi.Output<string> {
  return secretFingerprint("windowsAdminPassword", password);
}
