import * as pulumi from "@pulumi/pulumi";
import { parseLabConfig, LabConfigError } from "../../infra/config";
import { devStackConfig, runProgram } from "./harness";

/** The dev stack as raw values (objects parsed), with secrets as Outputs. */
function devRaw(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const raw: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(devStackConfig())) {
    const key = k.replace(/^plutus:/, "");
    raw[key] = /^[[{]|^\d+$|^(true|false)$/.test(v) ? JSON.parse(v) : v;
  }
  raw.windowsAdminPassword = pulumi.secret("x");
  return { ...raw, ...overrides };
}

function problems(overrides: Record<string, unknown>): string[] {
  try {
    parseLabConfig(devRaw(overrides));
  } catch (err) {
    expect(err).toBeInstanceOf(LabConfigError);
    return [...(err as LabConfigError).problems];
  }
  throw new Error("expected the configuration to be rejected");
}

test("the dev stack config is valid and derives chroot-relative SFTP paths", () => {
  const lab = parseLabConfig(devRaw());
  expect(lab.erpFolders).toEqual({ chrootDirectory: "C:\\Plutus", inbox: "C:\\Plutus\\Inbox", staging: "C:\\Plutus\\Staging", sftpInbox: "/Inbox", sftpStaging: "/Staging" });
  expect(lab.subnet).toEqual({ address: "192.168.77.0", prefixLength: 24, cidr: "192.168.77.0/24" });
  expect(lab.hostAccess).toEqual({ mode: "local" });
  expect(lab.dnsServers).toEqual(["1.1.1.1", "9.9.9.9"]);
  expect(lab.agentMode).toBe("cron");
  expect(parseLabConfig(devRaw({ agentMode: "watch" })).agentMode).toBe("watch");
});

test.each([
  [{ hostAccess: "winrm" }, 'plutus:hostAccess: "winrm" is not local or ssh; use `pulumi config set hostAccess local` when Pulumi runs on the Hyper-V host, or `ssh` to reach it over SSH'],
  [{ ubuntuMasterVhdx: undefined }, "plutus:ubuntuMasterVhdx: is not set; set it with `pulumi config set ubuntuMasterVhdx D:\\Masters\\ubuntu-24.04.vhdx`"],
  [{ ubuntuMasterVhdx: "masters/ubuntu.vhdx" }, "plutus:ubuntuMasterVhdx: \"masters/ubuntu.vhdx\" is not an absolute Windows path for the Ubuntu master disk (like D:\\Masters\\ubuntu-24.04.vhdx, no < > \" | ? * or control characters); set it with `pulumi config set ubuntuMasterVhdx 'D:\\Masters\\ubuntu-24.04.vhdx'`"],
  [{ windowsMasterVhdx: "D:\\Masters\\ws2022.iso" }, 'plutus:windowsMasterVhdx: "D:\\\\Masters\\\\ws2022.iso" must end in .vhdx; point it at the master .vhdx file'],
  [{ ubuntuMasterVhdx: "D:\\Plutus\\VMs\\ubuntu.vhdx" }, 'plutus:ubuntuMasterVhdx: "D:\\\\Plutus\\\\VMs\\\\ubuntu.vhdx" lies inside vmFolder "D:\\\\Plutus\\\\VMs"; keep the masters outside the lab\'s VM folder, so resetting the lab can never touch them'],
  [{ switchName: "Lab\"; Remove-VM *" }, 'plutus:switchName: "Lab\\"; Remove-VM *" is not a usable switch name (1-63 letters, digits, space . _ -, starting with a letter or digit); set it with `pulumi config set switchName PlutusLab`'],
  [{ subnet: "192.168.77.5/24" }, 'plutus:subnet: "192.168.77.5/24" has host bits set; set it with `pulumi config set subnet the network address, e.g. 192.168.77.0/24`'],
  [{ subnet: "10.0.0.0/33" }, 'plutus:subnet: "10.0.0.0/33" is not an IPv4 CIDR with a prefix from /8 to /30 like 192.168.77.0/24; set it with `pulumi config set subnet 192.168.77.0/24`'],
  [{ gatewayIp: "192.168.78.1" }, "plutus:gatewayIp: 192.168.78.1 is outside the subnet 192.168.77.0/24; choose an address inside 192.168.77.0/24"],
  [{ nat: "yes" }, 'plutus:nat: "yes" must be true or false; set it with `pulumi config set nat true`'],
  [{ webVm: { name: "plutus-web", ip: "192.168.77.1", memoryMB: 2048, cpus: 2 } }, "plutus:webVm.ip: is the host gateway address 192.168.77.1; choose another address"],
  [{ erpVm: { name: "plutus-erp", ip: "192.168.77.10", memoryMB: 4096, cpus: 2 } }, "plutus:erpVm.ip: is the same as webVm.ip (192.168.77.10); give each VM its own address"],
  [{ webVm: { name: "plutus-web", ip: "192.168.77.10", memoryMB: 2047, cpus: 2 } }, "plutus:webVm.memoryMB: 2047 must be even (Hyper-V allocates memory in 2 MB steps); use e.g. 2048"],
  [{ erpVm: { name: "plutus-erp", ip: "192.168.77.20", memoryMB: 4096, cpus: 0 } }, "plutus:erpVm.cpus: 0 must be a whole number of virtual processors from 1 to 64; correct it in Pulumi.<stack>.yaml"],
  [{ windowsAdminPassword: undefined }, "plutus:windowsAdminPassword: is not set (the ERP VM's Administrator password); run `pulumi config set --secret windowsAdminPassword` and type a password of 14+ characters"],
  [{ openSshSource: { kind: "msi", path: "C:\\OpenSSH.zip" } }, 'plutus:openSshSource.path: "C:\\\\OpenSSH.zip" is not an absolute Windows path to the OpenSSH-Win64 .msi on the Hyper-V host; fix openSshSource in Pulumi.<stack>.yaml'],
  [{ erpInboxFolder: "D:\\Inbox" }, 'plutus:erpInboxFolder: "D:\\\\Inbox" is not inside erpChrootDirectory "C:\\\\Plutus"; the SFTP account only sees the chroot; put it under C:\\Plutus\\'],
  [{ erpStagingFolder: "C:\\Plutus\\Inbox" }, "plutus:erpStagingFolder: is the same folder as erpInboxFolder; use a separate folder on the same volume, e.g. C:\\Plutus\\Staging"],
  [{ webAdminUser: "root" }, 'plutus:webAdminUser: "root" is not a usable Linux account name (lowercase, up to 32 characters; not root, plutus or ubuntu); set it with `pulumi config set webAdminUser plutusadmin`'],
  [{ dnsServers: [] }, "plutus:dnsServers: is an empty list; the VMs need at least one DNS server; list one or more IPv4 addresses (e.g. [1.1.1.1]) in Pulumi.<stack>.yaml, or remove the key to use 1.1.1.1"],
  [{ agentMode: "daemon" }, 'plutus:agentMode: must be "cron" or "watch", got "daemon"; pulumi config set plutus:agentMode watch (or cron, the default)'],
  [{ vmFolder: "D:\\Lab\nVMs" }, 'plutus:vmFolder: "D:\\\\Lab\\nVMs" is not an absolute Windows path for the folder that holds the VMs and their child disks (like D:\\Plutus\\VMs, no < > " | ? * or control characters); set it with `pulumi config set vmFolder \'D:\\Plutus\\VMs\'`'],
])("rejects %j with its message", (overrides, message) => {
  expect(problems(overrides)).toEqual([message]);
});

test("ssh host access needs address, user, pinned host key and the private key secret", () => {
  expect(problems({ hostAccess: "ssh", hostSshHostKey: "not-a-key" })).toEqual([
    "plutus:hostSshAddress: is not set; set it with `pulumi config set hostSshAddress hyperv01.example.local`",
    "plutus:hostSshUser: is not set; set it with `pulumi config set hostSshUser Administrator`",
    "plutus:hostSshHostKey: is not an SSH public key line (ssh-ed25519 AAAA…): without it the host's identity is not checked; copy C:\\ProgramData\\ssh\\ssh_host_ed25519_key.pub from the host and `pulumi config set hostSshHostKey \"<its content>\"`",
    "plutus:hostSshPrivateKey: is not set (the key Pulumi logs in to the host with); pipe the key file in (never put the key on the command line): `Get-Content -Raw $HOME\\.ssh\\id_ed25519 | pulumi config set --secret hostSshPrivateKey`",
  ]);
});

test("the whole program stops with every problem listed", async () => {
  await expect(runProgram({ "plutus:windowsAdminPassword": undefined, "plutus:switchName": undefined })).rejects.toThrow(
    "invalid stack configuration (fix with `pulumi config set`, see docs/infra.md):\n" +
      "  - plutus:switchName: is not set; set it with `pulumi config set switchName PlutusLab`\n" +
      "  - plutus:windowsAdminPassword: is not set (the ERP VM's Administrator password); run `pulumi config set --secret windowsAdminPassword` and type a password of 14+ characters",
  );
});
