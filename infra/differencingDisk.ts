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
}

/** A differencing child of a master disk; delete removes exactly the child path. */
export class DifferencingDisk extends pulumi.ComponentResource {
  public readonly path: string;

  constructor(name: string, args: DifferencingDiskArgs, opts?: pulumi.ComponentResourceOptions) {
    super("plutus:disk:DifferencingDisk", name, {}, opts);
    const same = (a: string, b: string) => a.toLowerCase() === b.toLowerCase();
    if (args.protectedPaths.some((p) => same(p, args.path)) || same(args.path, args.masterPath)) {
      throw new pulumi.ResourceError(`the child disk path ${args.path} is a master disk; choose a vmFolder that does not hold the masters`, this);
    }
    if (!args.protectedPaths.some((p) => same(p, args.masterPath))) {
      throw new pulumi.ResourceError(`the master ${args.masterPath} is not in protectedPaths; pass every master there`, this);
    }
    this.path = args.path;
    new PowerShellCommand(
      `${name}-vhdx`,
      {
        host: args.host,
        create: { script: "New-PlutusDifferencingDisk.ps1", parameters: { MasterPath: args.masterPath, Path: args.path } },
        delete: {
          script: "Remove-PlutusVhd.ps1",
          parameters: { Path: args.path, ExpectedVhdType: "Differencing", ProtectedPath: [...args.protectedPaths] },
        },
        triggers: [args.masterPath, args.path],
        deleteBeforeReplace: true,
      },
      { parent: this },
    );
    this.registerOutputs({ path: this.path });
  }
}
