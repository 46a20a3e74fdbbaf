import * as pulumi from "@pulumi/pulumi";
import type { HostAccessConfig } from "./config";
import { PowerShellCommand } from "./powershell";

export interface DifferencingDiskArgs {
  /** How to reach the Hyper-V host. */
  readonly host: HostAccessConfig;
  /** Full path of the master VHDX (must exist; set read-only, never written). */
  readonly masterPath: string;
  /** Full path of the child VHDX. */
  readonly path: string;
  /** Paths a delete must never touch (all masters). */
  readonly protectedPaths: readonly string[];
  /** Extra values whose change must rebuild the child from the master (e.g. a password fingerprint). */
  readonly triggers?: pulumi.Input<unknown>[];
}

/** What a VM needs to know about its OS disk: the path (tied to the disk resource) and what rebuilds it. */
export interface OsDisk {
  /** Full path of the child VHDX, as an Output of the disk command: a disk replacement replaces its users. */
  readonly path: pulumi.Output<string>;
  /** Full path of the master the child was made from. */
  readonly masterPath: string;
  /** SHA-256 of the disk's create and delete scripts. */
  readonly scriptHashes: readonly string[];
}

/** A differencing child of a master disk; delete removes exactly the child path. */
export class DifferencingDisk extends pulumi.ComponentResource implements OsDisk {
  public readonly path: pulumi.Output<string>;
  public readonly masterPath: string;
  public readonly scriptHashes: readonly string[];

  constructor(name: string, args: DifferencingDiskArgs, opts?: pulumi.ComponentResourceOptions) {
    super("plutus:disk:DifferencingDisk", name, {}, opts);
    const same = (a: string, b: string) => a.toLowerCase() === b.toLowerCase();
    if (args.protectedPaths.some((p) => same(p, args.path)) || same(args.path, args.masterPath)) {
      throw new pulumi.ResourceError(`the child disk path ${args.path} is a master disk; choose a vmFolder that does not hold the masters`, this);
    }
    if (!args.protectedPaths.some((p) => same(p, args.masterPath))) {
      throw new pulumi.ResourceError(`the master ${args.masterPath} is not in protectedPaths; pass every master there`, this);
    }
    this.masterPath = args.masterPath;
    const vhdx = new PowerShellCommand(
      `${name}-vhdx`,
      {
        host: args.host,
        create: { script: "New-PlutusDifferencingDisk.ps1", parameters: { MasterPath: args.masterPath, Path: args.path } },
        delete: {
          script: "Remove-PlutusVhd.ps1",
          parameters: { Path: args.path, ExpectedVhdType: "Differencing", ProtectedPath: [...args.protectedPaths] },
        },
        triggers: [args.masterPath, args.path, ...(args.triggers ?? [])],
        deleteBeforeReplace: true,
      },
      { parent: this },
    );
    this.scriptHashes = [...vhdx.scriptHashes];
    this.path = vhdx.after(args.path);
    this.registerOutputs({ path: this.path });
  }
}
