import * as pulumi from "@pulumi/pulumi";
import { newVmParameters, type LabVmArgs } from "./labVm";
import { sha256Hex, PowerShellCommand } from "./powershell";

/*
 * cloud-init documents are written as "#cloud-config" followed by JSON: JSON is YAML, so every value
 * (keys, user names, addresses) is escaped by JSON.stringify and can never change the document's
 * structure. Files are written by the seed script as UTF-8 without BOM.
 */

export interface CloudInitInput {
  readonly hostname: string;
  readonly adminUser: string;
  readonly adminPublicKey: string;
  readonly hostPrivateKey: string;
  readonly hostPublicKey: string;
  readonly ip: string;
  readonly prefixLength: number;
  readonly gateway: string;
  readonly dnsServers: readonly string[];
}

const doc = (value: unknown) => `#cloud-config\n${JSON.stringify(value, null, 2)}\n`;

export function renderUserData(i: CloudInitInput): string {
  return doc({
    hostname: i.hostname,
    preserve_hostname: false,
    users: [
      {
        name: i.adminUser,
        groups: ["sudo"],
        shell: "/bin/bash",
        sudo: "ALL=(ALL) NOPASSWD:ALL",
        lock_passwd: true,
        ssh_authorized_keys: [i.adminPublicKey.trim()],
      },
    ],
    disable_root: true,
    ssh_pwauth: false,
    ssh_deletekeys: true,
    ssh_genkeytypes: [],
    ssh_keys: { ed25519_private: i.hostPrivateKey, ed25519_public: i.hostPublicKey.trim() },
  });
}

export function renderNetworkConfig(i: CloudInitInput): string {
  return doc({
    version: 2,
    ethernets: {
      eth0: {
        match: { driver: "hv_netvsc" },
        "set-name": "eth0",
        dhcp4: false,
        addresses: [`${i.ip}/${i.prefixLength}`],
        routes: [{ to: "default", via: i.gateway }],
        nameservers: { addresses: [...i.dnsServers] },
      },
    },
  });
}

/**
 * A unique instance-id per seed content: a hash of the whole user-data (with the host *private* key
 * left out: the host public key, which is in it, stands for the pair) and the network-config. Any
 * change (admin user, keys, address) gives a new id, so cloud-init runs again on the next boot.
 */
export function renderInstanceId(i: CloudInitInput): string {
  const userDataWithoutSecret = renderUserData({ ...i, hostPrivateKey: "" });
  return `${i.hostname}-${sha256Hex([userDataWithoutSecret, renderNetworkConfig(i)].join("\n")).slice(0, 16)}`;
}

export function renderMetaData(i: CloudInitInput): string {
  return doc({ "instance-id": renderInstanceId(i), "local-hostname": i.hostname });
}

/** The Ubuntu VM's arguments; its vmName is also the guest's hostname. */
export interface UbuntuVmArgs extends LabVmArgs {
  /** Full path of the cloud-init seed VHDX. */
  readonly seedDiskPath: string;
  /** Paths a delete must never touch (the masters). */
  readonly protectedPaths: readonly string[];
  /** cloud-init admin user (passwordless sudo, key login). */
  readonly adminUser: string;
  /** The admin user's SSH public key line. */
  readonly adminPublicKey: pulumi.Input<string>;
  /** Pre-generated ed25519 host key, private part (secret). */
  readonly hostPrivateKey: pulumi.Input<string>;
  /** Pre-generated ed25519 host key, public line. */
  readonly hostPublicKey: pulumi.Input<string>;
}

/** The Ubuntu web VM: Gen2, Linux Secure Boot template, cloud-init NoCloud seed disk, static IP. */
export class UbuntuVm extends pulumi.ComponentResource {
  public readonly vmName: string;
  public readonly ip: string;
  public readonly instanceId: pulumi.Output<string>;
  /** The instance-id, as an Output of the VM command: changes whenever the VM is (re)created. */
  public readonly instance: pulumi.Output<string>;
  /** The user-data document (secret: it holds the host private key). */
  public readonly userData: pulumi.Output<string>;
  public readonly metaData: pulumi.Output<string>;
  public readonly networkConfig: pulumi.Output<string>;

  constructor(name: string, args: UbuntuVmArgs, opts?: pulumi.ComponentResourceOptions) {
    super("plutus:ubuntuVm:UbuntuVm", name, {}, opts);
    if (args.protectedPaths.some((p) => p.toLowerCase() === args.seedDiskPath.toLowerCase())) {
      throw new pulumi.ResourceError(`the seed disk path ${args.seedDiskPath} is a master disk; choose another vmFolder`, this);
    }
    this.vmName = args.vmName;
    this.ip = args.ip;
    const input = pulumi
      .all([pulumi.output(args.adminPublicKey), pulumi.output(args.hostPrivateKey), pulumi.output(args.hostPublicKey)])
      .apply(([adminPublicKey, hostPrivateKey, hostPublicKey]): CloudInitInput => ({
        hostname: args.vmName,
        adminUser: args.adminUser,
        adminPublicKey,
        hostPrivateKey,
        hostPublicKey,
        ip: args.ip,
        prefixLength: args.prefixLength,
        gateway: args.gateway,
        dnsServers: args.dnsServers,
      }));
    // Only user-data holds a secret; the others are derived from public values and stay readable.
    const publicPart = pulumi
      .all([pulumi.output(args.adminPublicKey), pulumi.output(args.hostPublicKey)])
      .apply(([adminPublicKey, hostPublicKey]) => ({
        hostname: args.vmName, adminUser: args.adminUser, adminPublicKey, hostPrivateKey: "", hostPublicKey,
        ip: args.ip, prefixLength: args.prefixLength, gateway: args.gateway, dnsServers: args.dnsServers,
      }));
    this.userData = pulumi.secret(input.apply(renderUserData));
    this.metaData = publicPart.apply(renderMetaData);
    this.networkConfig = publicPart.apply(renderNetworkConfig);
    this.instanceId = publicPart.apply(renderInstanceId);

    const seed = new PowerShellCommand(
      `${name}-seed`,
      {
        host: args.host,
        create: {
          script: "New-PlutusCloudInitSeed.ps1",
          parameters: { Path: args.seedDiskPath, MetaData: this.metaData, NetworkConfig: this.networkConfig },
          secrets: { UserData: this.userData },
        },
        delete: {
          script: "Remove-PlutusVhd.ps1",
          parameters: { Path: args.seedDiskPath, ExpectedVhdType: "Dynamic", ProtectedPath: [...args.protectedPaths] },
        },
        triggers: [args.seedDiskPath, this.instanceId],
        deleteBeforeReplace: true,
      },
      { parent: this, dependsOn: mergeDependsOn(opts?.dependsOn) },
    );
    // The seed path as an output of the seed command: replacing the seed replaces the VM first.
    const seedDiskPath = seed.after(args.seedDiskPath);
    const vm = new PowerShellCommand(
      `${name}-vm`,
      {
        host: args.host,
        create: {
          script: "New-PlutusVm.ps1",
          parameters: newVmParameters(args, seedDiskPath, "MicrosoftUEFICertificateAuthority"),
        },
        delete: { script: "Remove-PlutusVm.ps1", parameters: { Name: args.vmName } },
        triggers: [
          args.vmName,
          args.osDisk.path,
          args.osDisk.masterPath,
          ...args.osDisk.scriptHashes,
          seedDiskPath,
          ...seed.scriptHashes,
          this.instanceId,
        ],
        deleteBeforeReplace: true,
      },
      { parent: this, dependsOn: mergeDependsOn(opts?.dependsOn, seed) },
    );
    this.instance = vm.after(this.instanceId);
    this.registerOutputs({ vmName: this.vmName, ip: this.ip, instanceId: this.instanceId, instance: this.instance });
  }
}

/** opts.dependsOn (plain resources) plus more resources; components pass this to their children. */
export function mergeDependsOn(base: pulumi.ComponentResourceOptions["dependsOn"], ...more: pulumi.Resource[]): pulumi.Resource[] {
  if (base === undefined) return more;
  if (pulumi.Output.isInstance(base)) throw new Error("dependsOn must be plain resources, not an Output");
  const list = (Array.isArray(base) ? base : [base]) as unknown[];
  if (list.some((r) => !pulumi.Resource.isInstance(r))) throw new Error("dependsOn must be plain resources, not Outputs");
  return [...(list as pulumi.Resource[]), ...more];
}
