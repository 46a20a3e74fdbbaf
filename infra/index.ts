import * as path from "node:path";
import * as pulumi from "@pulumi/pulumi";
import * as tls from "@pulumi/tls";
import { parseAgentConfig, type AgentConfig } from "@plutus/shared";
import { readLabConfig, type VmSizing } from "./config";
import { readBundle, BundleError, type AgentBundle } from "./bundle";
import { LabNetwork } from "./network";
import { DifferencingDisk, type OsDisk } from "./differencingDisk";
import type { LabVmArgs } from "./labVm";
import { UbuntuVm } from "./ubuntuVm";
import { WindowsVm, windowsPasswordFingerprint } from "./windowsVm";
import { ErpOpenSsh, SYNC_ACCOUNT } from "./erpOpenSsh";
import { AgentDeployment, Canary, type WebVmConnection } from "./agentDeployment";
import { sshFingerprintSha256 } from "./keys";

const lab = readLabConfig(new pulumi.Config());

const bundleDir = lab.agentBundleDir ?? path.resolve(__dirname, "..", "agent", "dist", "bundle");
let bundle: AgentBundle;
try {
  bundle = readBundle(bundleDir);
} catch (err) {
  if (err instanceof BundleError) throw new pulumi.RunError(err.message);
  throw err;
}

const host = lab.hostAccess;
const masters = [lab.ubuntuMasterVhdx, lab.windowsMasterVhdx];
const vmDir = (name: string) => `${lab.vmFolder}\\${name}`;

// Keys: generated once, kept in the (encrypted) state; private parts are secrets.
const ed25519 = { algorithm: "ED25519" } as const;
const syncKey = new tls.PrivateKey("sync-key", ed25519);
const webHostKey = new tls.PrivateKey("web-host-key", ed25519);
const erpHostKey = new tls.PrivateKey("erp-host-key", ed25519);
const webAdminKey = new tls.PrivateKey("web-admin-key", ed25519);

const network = new LabNetwork("lab-network", {
  host,
  switchName: lab.switchName,
  subnetCidr: lab.subnet.cidr,
  prefixLength: lab.subnet.prefixLength,
  gatewayIp: lab.gatewayIp,
  nat: lab.nat,
});

const webDisk = new DifferencingDisk("web-disk", {
  host,
  masterPath: lab.ubuntuMasterVhdx,
  path: `${vmDir(lab.webVm.name)}\\${lab.webVm.name}-os.vhdx`,
  protectedPaths: masters,
});
// The Administrator password is only applied by unattend.xml on a fresh child: a new password
// rebuilds the ERP disk (and with it the VM). Only a secret scrypt fingerprint is in the triggers.
const erpDisk = new DifferencingDisk("erp-disk", {
  host,
  masterPath: lab.windowsMasterVhdx,
  path: `${vmDir(lab.erpVm.name)}\\${lab.erpVm.name}-os.vhdx`,
  protectedPaths: masters,
  triggers: [windowsPasswordFingerprint(lab.windowsAdminPassword)],
});

/** What both VMs take alike from the lab: host, folder, switch, size and address on the lab subnet. */
function labVmArgs(vm: VmSizing, osDisk: OsDisk): LabVmArgs {
  return {
    host,
    vmName: vm.name,
    vmFolder: lab.vmFolder,
    osDisk,
    switchName: network.switchName,
    memoryMB: vm.memoryMB,
    cpus: vm.cpus,
    ip: vm.ip,
    prefixLength: lab.subnet.prefixLength,
    gateway: lab.gatewayIp,
    dnsServers: lab.dnsServers,
  };
}

const webVm = new UbuntuVm(
  "web-vm",
  {
    ...labVmArgs(lab.webVm, webDisk),
    seedDiskPath: `${vmDir(lab.webVm.name)}\\${lab.webVm.name}-cidata.vhdx`,
    protectedPaths: masters,
    adminUser: lab.webAdminUser,
    adminPublicKey: webAdminKey.publicKeyOpenssh,
    hostPrivateKey: webHostKey.privateKeyOpenssh,
    hostPublicKey: webHostKey.publicKeyOpenssh,
  },
  { dependsOn: [network, webDisk] },
);

const erpVm = new WindowsVm(
  "erp-vm",
  {
    ...labVmArgs(lab.erpVm, erpDisk),
    computerName: lab.erpVm.name.replace(/[^A-Za-z0-9-]/g, "-").slice(0, 15).toUpperCase(),
    adminPassword: lab.windowsAdminPassword,
  },
  { dependsOn: [network, erpDisk] },
);

const erpSsh = new ErpOpenSsh(
  "erp-openssh",
  {
    host,
    vmName: erpVm.readyVmName,
    adminPassword: lab.windowsAdminPassword,
    source: lab.openSshSource,
    hostPrivateKey: erpHostKey.privateKeyOpenssh,
    hostPublicKey: erpHostKey.publicKeyOpenssh,
    syncPublicKey: syncKey.publicKeyOpenssh,
    folders: lab.erpFolders,
    allowedClientIp: lab.webVm.ip,
  },
  { dependsOn: [erpVm] },
);

const erpFingerprint = erpHostKey.publicKeyOpenssh.apply(sshFingerprintSha256);
const webFingerprint = webHostKey.publicKeyOpenssh.apply(sshFingerprintSha256);

const config: pulumi.Output<AgentConfig> = erpFingerprint.apply((hostKeySha256) =>
  parseAgentConfig(
    {
      outbox: "/var/lib/plutus/outbox",
      archive: "/var/lib/plutus/archive",
      quarantine: "/var/lib/plutus/quarantine",
      stateDir: "/var/lib/plutus/state",
      logDir: "/var/log/plutus",
      minAgeSeconds: lab.agentMinAgeSeconds,
      remote: {
        host: lab.erpVm.ip,
        port: 22,
        username: SYNC_ACCOUNT,
        privateKeyPath: "/etc/plutus/id_ed25519",
        hostKeySha256,
        inbox: lab.erpFolders.sftpInbox,
        staging: lab.erpFolders.sftpStaging,
      },
    },
    "the stack's agentConfig",
  ),
);

const webConnection: WebVmConnection = {
  host: lab.webVm.ip,
  user: lab.webAdminUser,
  privateKey: webAdminKey.privateKeyOpenssh,
  hostKey: webHostKey.publicKeyOpenssh,
  proxy:
    host.mode === "ssh"
      ? { host: host.host, port: host.port, user: host.user, privateKey: host.privateKey, hostKey: host.hostKey }
      : undefined,
};

const agent = new AgentDeployment(
  "agent",
  { connection: webConnection, bundle, agentConfig: config, syncPrivateKey: syncKey.privateKeyOpenssh, vmTriggers: [webVm.instance], agentMode: lab.agentMode },
  { dependsOn: [webVm, erpSsh] },
);

const canaryRun = new Canary(
  "canary",
  {
    connection: webConnection,
    canary: { outbox: "/var/lib/plutus/outbox", quarantine: "/var/lib/plutus/quarantine", minAgeSeconds: lab.agentMinAgeSeconds },
    triggers: [bundle.checksum, config.apply((c) => JSON.stringify(c)), webVm.instance, erpSsh.configuredVmName],
  },
  { dependsOn: [agent.installed] },
);

export const webHost = lab.webVm.ip;
export const erpHost = lab.erpVm.ip;
export const webHostKeySha256 = webFingerprint;
export const erpHostKeySha256 = erpFingerprint;
export const syncPublicKey = syncKey.publicKeyOpenssh;
export const agentConfig = config;
export const canary = canaryRun.result;
