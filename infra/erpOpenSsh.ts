import * as pulumi from "@pulumi/pulumi";
import type { ErpFolders, HostAccessConfig, OpenSshSource } from "./config";
import { PowerShellCommand } from "./powershell";
import { mergeDependsOn } from "./ubuntuVm";

export const SYNC_ACCOUNT = "plutus-sync";

export interface SshdConfigInput {
  readonly syncUser: string;
  readonly authorizedKeysFileName: string;
  readonly chrootDirectory: string;
}

/** The complete sshd_config of the ERP: key-only logins, the sync account jailed to SFTP in its chroot. */
export function renderSshdConfig(i: SshdConfigInput): string {
  if (!/^[a-z0-9._-]+$/.test(i.syncUser)) throw new Error(`sync account ${JSON.stringify(i.syncUser)} must be lowercase (sshd's Match User compares lowercase)`);
  if (/["\r\n]/.test(i.chrootDirectory)) throw new Error(`chroot ${JSON.stringify(i.chrootDirectory)} must not hold quotes or line breaks`);
  return [
    "# Managed by the Plutus Pulumi stack (Install-PlutusErpOpenSsh.ps1); local edits are overwritten.",
    "Port 22",
    "HostKey __PROGRAMDATA__/ssh/ssh_host_ed25519_key",
    "PubkeyAuthentication yes",
    "PasswordAuthentication no",
    "PermitEmptyPasswords no",
    "KbdInteractiveAuthentication no",
    "AllowTcpForwarding no",
    "AllowAgentForwarding no",
    "GatewayPorts no",
    "PermitTunnel no",
    "X11Forwarding no",
    "AuthorizedKeysFile .ssh/authorized_keys",
    "Subsystem sftp sftp-server.exe",
    "",
    "Match Group administrators",
    "    AuthorizedKeysFile __PROGRAMDATA__/ssh/administrators_authorized_keys",
    "",
    `Match User ${i.syncUser}`,
    `    AuthorizedKeysFile __PROGRAMDATA__/ssh/${i.authorizedKeysFileName}`,
    `    ChrootDirectory "${i.chrootDirectory}"`,
    "    ForceCommand internal-sftp",
    "    AllowTcpForwarding no",
    "    PermitTTY no",
    "    X11Forwarding no",
    "",
  ].join("\r\n");
}

export interface ErpOpenSshArgs {
  /** How to reach the Hyper-V host. */
  readonly host: HostAccessConfig;
  /** Exact name of the ERP VM; pass WindowsVm.readyVmName so a rebuilt VM is configured again. */
  readonly vmName: pulumi.Input<string>;
  /** Administrator password of the guest (secret). */
  readonly adminPassword: pulumi.Input<string>;
  /** Where OpenSSH Server comes from. */
  readonly source: OpenSshSource;
  /** Pre-generated ed25519 host key, private part (secret). */
  readonly hostPrivateKey: pulumi.Input<string>;
  /** Pre-generated ed25519 host key, public line. */
  readonly hostPublicKey: pulumi.Input<string>;
  /** The sync account's public key line. */
  readonly syncPublicKey: pulumi.Input<string>;
  /** Chroot, inbox and staging folders. */
  readonly folders: ErpFolders;
  /** The only address allowed to reach port 22. */
  readonly allowedClientIp: string;
  /** How long PowerShell Direct is retried, in seconds. */
  readonly guestDeadlineSeconds?: number;
}

/** OpenSSH Server on the ERP with the SFTP-only, chrooted `plutus-sync` account. */
export class ErpOpenSsh extends pulumi.ComponentResource {
  public readonly syncUser = SYNC_ACCOUNT;
  public readonly sshdConfig: string;
  /** The VM name, as an Output of the sshd step: a rebuilt ERP re-runs what uses it (the canary). */
  public readonly configuredVmName: pulumi.Output<string>;

  constructor(name: string, args: ErpOpenSshArgs, opts?: pulumi.ComponentResourceOptions) {
    super("plutus:erpOpenSsh:ErpOpenSsh", name, {}, opts);
    const authorizedKeysFileName = `${SYNC_ACCOUNT}_authorized_keys`;
    try {
      this.sshdConfig = renderSshdConfig({ syncUser: SYNC_ACCOUNT, authorizedKeysFileName, chrootDirectory: args.folders.chrootDirectory });
    } catch (err) {
      throw new pulumi.ResourceError(`${(err as Error).message}; fix erpChrootDirectory`, this);
    }
    const deadline = args.guestDeadlineSeconds ?? 1800;
    const account = new PowerShellCommand(
      `${name}-account`,
      {
        host: args.host,
        create: {
          script: "Set-PlutusErpSftpAccount.ps1",
          helpers: ["PlutusDirect.psm1"],
          parameters: {
            VmName: args.vmName,
            UserName: SYNC_ACCOUNT,
            ChrootDirectory: args.folders.chrootDirectory,
            InboxPath: args.folders.inbox,
            StagingPath: args.folders.staging,
            PublicKey: args.syncPublicKey,
            AuthorizedKeysFileName: authorizedKeysFileName,
            DeadlineSeconds: deadline,
          },
          secrets: { AdminPassword: args.adminPassword },
        },
        triggers: [args.vmName],
      },
      { parent: this, dependsOn: mergeDependsOn(opts?.dependsOn) },
    );
    const sshd = new PowerShellCommand(
      `${name}-sshd`,
      {
        host: args.host,
        create: {
          script: "Install-PlutusErpOpenSsh.ps1",
          helpers: ["PlutusDirect.psm1"],
          parameters: {
            VmName: args.vmName,
            SourceKind: args.source.kind,
            SourcePath: args.source.kind === "capability" ? "" : args.source.path,
            HostPublicKey: args.hostPublicKey,
            SshdConfig: this.sshdConfig,
            AllowedClientIp: args.allowedClientIp,
            DeadlineSeconds: deadline,
          },
          secrets: { AdminPassword: args.adminPassword, HostPrivateKey: args.hostPrivateKey },
        },
        triggers: [args.vmName],
      },
      { parent: this, dependsOn: mergeDependsOn(opts?.dependsOn, account) },
    );
    this.configuredVmName = sshd.after(args.vmName);
    this.registerOutputs({ syncUser: this.syncUser, configuredVmName: this.configuredVmName });
  }
}
