import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { parse as parseYaml } from "yaml";
import { CANARY_PREFIX, HOST_KEY_SHA256_PATTERN } from "@plutus/shared";
import { makeFixtureBundle, runProgram, nameOfUrn, SECRETS, type ProgramRun } from "./harness";
import {
  renderAgentInstallStdin,
  renderCanaryCommand,
  renderInstallCommand,
  renderUninstallArmCommand,
  renderUninstallCommand,
  renderWaitCommand,
} from "../../infra/agentDeployment";
import { renderCommandLine, sha256Hex } from "../../infra/powershell";
import { renderInstanceId, renderNetworkConfig, renderUserData, type CloudInitInput } from "../../infra/ubuntuVm";
import { windowsPasswordFingerprint } from "../../infra/windowsVm";
import * as crypto from "node:crypto";
import { readBundle, type AgentBundle } from "../../infra/bundle";

let run: ProgramRun;
let bundle: AgentBundle;
beforeAll(async () => {
  const dir = makeFixtureBundle();
  try {
    bundle = readBundle(dir);
    run = await runProgram({ "plutus:agentBundleDir": dir });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}, 60_000);

const names = (filter: (r: ProgramRun["resources"][number]) => boolean) => run.resources.filter(filter).map((r) => r.name).sort();
const parentName = (name: string) => nameOfUrn(run.byName(name).parent);
const deps = (name: string) => run.byName(name).dependencies.map(nameOfUrn);
const stdinDoc = (name: string) => JSON.parse(run.byName(name).inputs.stdin);

const HOST_COMMANDS = [
  "lab-network-switch-run",
  "web-disk-vhdx-run",
  "erp-disk-vhdx-run",
  "web-vm-seed-run",
  "web-vm-vm-run",
  "erp-vm-unattend-run",
  "erp-vm-vm-run",
  "erp-vm-guest-run",
  "erp-openssh-account-run",
  "erp-openssh-sshd-run",
];

test("creates exactly the expected resources, each child under its component", () => {
  expect(names((r) => r.type === "command:local:Command")).toEqual([...HOST_COMMANDS].sort());
  expect(names((r) => r.type === "command:remote:Command")).toEqual(["agent-install", "agent-uninstall", "agent-wait", "canary-run"]);
  expect(names((r) => r.type === "tls:index/privateKey:PrivateKey")).toEqual(["erp-host-key", "sync-key", "web-admin-key", "web-host-key"]);
  for (const key of ["erp-host-key", "sync-key", "web-admin-key", "web-host-key"]) expect(run.byName(key).inputs).toEqual({ algorithm: "ED25519" });
  const components = run.resources.filter((r) => r.type.startsWith("plutus:")).map((r) => `${r.type} ${r.name} <- ${nameOfUrn(r.parent)}`).sort();
  expect(components).toEqual([
    "plutus:agentDeployment:AgentDeployment agent <- ",
    "plutus:agentDeployment:Canary canary <- ",
    "plutus:disk:DifferencingDisk erp-disk <- ",
    "plutus:disk:DifferencingDisk web-disk <- ",
    "plutus:erpOpenSsh:ErpOpenSsh erp-openssh <- ",
    "plutus:network:LabNetwork lab-network <- ",
    "plutus:powershell:PowerShellCommand erp-disk-vhdx <- erp-disk",
    "plutus:powershell:PowerShellCommand erp-openssh-account <- erp-openssh",
    "plutus:powershell:PowerShellCommand erp-openssh-sshd <- erp-openssh",
    "plutus:powershell:PowerShellCommand erp-vm-guest <- erp-vm",
    "plutus:powershell:PowerShellCommand erp-vm-unattend <- erp-vm",
    "plutus:powershell:PowerShellCommand erp-vm-vm <- erp-vm",
    "plutus:powershell:PowerShellCommand lab-network-switch <- lab-network",
    "plutus:powershell:PowerShellCommand web-disk-vhdx <- web-disk",
    "plutus:powershell:PowerShellCommand web-vm-seed <- web-vm",
    "plutus:powershell:PowerShellCommand web-vm-vm <- web-vm",
    "plutus:ubuntuVm:UbuntuVm web-vm <- ",
    "plutus:windowsVm:WindowsVm erp-vm <- ",
  ]);
  for (const name of HOST_COMMANDS) expect(parentName(name)).toBe(name.replace(/-run$/, ""));
  for (const name of ["agent-wait", "agent-uninstall", "agent-install"]) expect(parentName(name)).toBe("agent");
  expect(parentName("canary-run")).toBe("canary");
});

test("orders the work: switch and disks before VMs, OpenSSH after the Windows VM, agent after both, canary last", () => {
  expect(deps("web-vm-seed-run")).toEqual(expect.arrayContaining(["lab-network-switch-run", "web-disk-vhdx-run"]));
  expect(deps("web-vm-vm-run")).toEqual(expect.arrayContaining(["lab-network-switch-run", "web-disk-vhdx-run", "web-vm-seed-run"]));
  expect(deps("erp-vm-unattend-run")).toEqual(expect.arrayContaining(["lab-network-switch-run", "erp-disk-vhdx-run"]));
  expect(deps("erp-vm-vm-run")).toEqual(expect.arrayContaining(["lab-network-switch-run", "erp-disk-vhdx-run", "erp-vm-unattend-run"]));
  expect(deps("erp-vm-guest-run")).toEqual(["erp-vm-vm-run"]);
  expect(deps("erp-openssh-account-run")).toEqual(expect.arrayContaining(["erp-vm-vm-run", "erp-vm-guest-run"]));
  expect(deps("erp-openssh-sshd-run")).toEqual(expect.arrayContaining(["erp-vm-guest-run", "erp-openssh-account-run"]));
  expect(deps("agent-wait")).toEqual(expect.arrayContaining(["web-vm-vm-run", "erp-openssh-sshd-run"]));
  expect(deps("agent-uninstall")).toEqual(expect.arrayContaining(["agent-wait"]));
  expect(deps("agent-install")).toEqual(expect.arrayContaining(["agent-uninstall"]));
  expect(deps("canary-run")).toEqual(expect.arrayContaining(["agent-install"]));
});

test("named Hyper-V objects are deleted before their replacement; guest-side steps are not", () => {
  const dbr = names((r) => r.deleteBeforeReplace);
  // agent-install has no delete; deleting it first only matters for a stack whose stored agent-install still uninstalls
  expect(dbr).toEqual(["agent-install", "erp-disk-vhdx-run", "erp-vm-vm-run", "lab-network-switch-run", "web-disk-vhdx-run", "web-vm-seed-run", "web-vm-vm-run"]);
});

test("host commands: one fixed command line per step, data on stdin, script hashes in triggers", () => {
  for (const name of HOST_COMMANDS) {
    const inputs = run.byName(name).inputs;
    expect(inputs.create).toBe(renderCommandLine("create"));
    expect(inputs.interpreter).toEqual(["cmd.exe", "/C"]);
    const doc = JSON.parse(inputs.stdin);
    const script = fs.readFileSync(path.join(__dirname, "../../infra/scripts", doc.create.name.match(/\((.+)\)$/)[1]), "utf8");
    expect(doc.create.script).toBe(script);
    const hash = require("node:crypto").createHash("sha256").update(script).digest("hex");
    expect(inputs.triggers[0]).toBe(hash);
    if (doc.delete) expect(inputs.delete).toBe(renderCommandLine("delete"));
    else expect(inputs.delete).toBeUndefined();
    expect(inputs.create.length).toBeLessThan(8191);
  }
  expect(stdinDoc("lab-network-switch-run").create.parameters).toEqual({
    SwitchName: "PlutusLab",
    GatewayIp: "192.168.77.1",
    PrefixLength: 24,
    SubnetCidr: "192.168.77.0/24",
    EnableNat: true,
    NatName: "PlutusLab-nat",
  });
  expect(stdinDoc("web-disk-vhdx-run").create.parameters).toEqual({
    MasterPath: "D:\\Masters\\ubuntu-24.04-server-cloudimg-amd64.vhdx",
    Path: "D:\\Plutus\\VMs\\plutus-web\\plutus-web-os.vhdx",
  });
  expect(stdinDoc("web-vm-vm-run").create.parameters).toEqual({
    Name: "plutus-web",
    VmFolder: "D:\\Plutus\\VMs",
    MemoryMB: 2048,
    Cpus: 2,
    SwitchName: "PlutusLab",
    OsDiskPath: "D:\\Plutus\\VMs\\plutus-web\\plutus-web-os.vhdx",
    SeedDiskPath: "D:\\Plutus\\VMs\\plutus-web\\plutus-web-cidata.vhdx",
    SecureBootTemplate: "MicrosoftUEFICertificateAuthority",
  });
  expect(stdinDoc("erp-vm-vm-run").create.parameters.SecureBootTemplate).toBe("MicrosoftWindows");
  expect(stdinDoc("erp-vm-unattend-run").create.parameters).toEqual({ DiskPath: "D:\\Plutus\\VMs\\plutus-erp\\plutus-erp-os.vhdx", VmName: "plutus-erp", ComputerName: "PLUTUS-ERP" });
  const sshd = stdinDoc("erp-openssh-sshd-run").create;
  expect(sshd.parameters.AllowedClientIp).toBe("192.168.77.10");
  expect(sshd.parameters.SourceKind).toBe("capability");
  expect(sshd.parameters.SshdConfig).toContain(
    'Match User plutus-sync\r\n    AuthorizedKeysFile __PROGRAMDATA__/ssh/plutus-sync_authorized_keys\r\n    ChrootDirectory "C:\\Plutus"\r\n    ForceCommand internal-sftp\r\n    AllowTcpForwarding no\r\n',
  );
  expect(sshd.parameters.SshdConfig).toContain("\r\nPasswordAuthentication no\r\n");
  expect(Object.keys(sshd.secrets).sort()).toEqual(["AdminPassword", "HostPrivateKey"]);
  const account = stdinDoc("erp-openssh-account-run").create.parameters;
  expect(account).toMatchObject({ UserName: "plutus-sync", ChrootDirectory: "C:\\Plutus", InboxPath: "C:\\Plutus\\Inbox", StagingPath: "C:\\Plutus\\Staging" });
  expect(account.PublicKey).toBe(run.keys.get("sync-key")!.publicKeyOpenssh);
});

/** A fresh temporary folder, removed after the test that made it. */
const temps: string[] = [];
afterEach(() => {
  for (const dir of temps.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});
function tempDir(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  temps.push(dir);
  return dir;
}

test("stack outputs: addresses, fingerprints as ssh-keygen prints them, sync key, agentConfig, canary", () => {
  const dir = tempDir("plutus-fp-");
  const fingerprint = (key: string) => {
    const file = path.join(dir, `${key}.pub`);
    fs.writeFileSync(file, run.keys.get(key)!.publicKeyOpenssh);
    return execFileSync("ssh-keygen", ["-lf", file], { encoding: "utf8" }).split(" ")[1];
  };
  expect(run.outputs.webHost).toBe("192.168.77.10");
  expect(run.outputs.erpHost).toBe("192.168.77.20");
  expect(run.outputs.webHostKeySha256).toBe(fingerprint("web-host-key"));
  expect(run.outputs.erpHostKeySha256).toBe(fingerprint("erp-host-key"));
  expect(run.outputs.erpHostKeySha256).toMatch(HOST_KEY_SHA256_PATTERN);
  // the generated private key really is the OpenSSH form of the same key
  const privFile = path.join(dir, "erp");
  fs.writeFileSync(privFile, run.keys.get("erp-host-key")!.privateKeyOpenssh, { mode: 0o600 });
  expect(execFileSync("ssh-keygen", ["-y", "-f", privFile], { encoding: "utf8" }).trim()).toBe(run.keys.get("erp-host-key")!.publicKeyOpenssh.trim());
  expect(run.outputs.syncPublicKey).toBe(run.keys.get("sync-key")!.publicKeyOpenssh);
  expect(run.outputs.agentConfig).toEqual({
    outbox: "/var/lib/plutus/outbox",
    archive: "/var/lib/plutus/archive",
    quarantine: "/var/lib/plutus/quarantine",
    stateDir: "/var/lib/plutus/state",
    logDir: "/var/log/plutus",
    minAgeSeconds: 30,
    remote: {
      host: "192.168.77.20",
      port: 22,
      username: "plutus-sync",
      privateKeyPath: "/etc/plutus/id_ed25519",
      hostKeySha256: fingerprint("erp-host-key"),
      inbox: "/Inbox",
      staging: "/Staging",
    },
    concurrency: 256,
    maxFileBytes: 10485760,
    passDeadlineSeconds: 240,
    operationTimeoutSeconds: 30,
    connectTimeoutSeconds: 20,
    retries: 3,
    retryBaseDelayMs: 500,
    logLevel: "info",
    logRetentionDays: 30,
    watch: { settleMs: 200, rescanSeconds: 60 },
    log: { syslog: false, syslogSocket: "/dev/log" },
    health: { lastSuccessCriticalMinutes: 15, failedRunsWarning: 2, failedRunsCritical: 3, oldestWaitingWarningMinutes: 10, oldestWaitingCriticalMinutes: 30, erpInboxMaxAgeMinutes: 30 },
    metrics: {},
    alertTimeoutSeconds: 30,
  });
  expect(run.outputs.canary).toEqual({ ran: false, detail: "no canary result (preview, or the step has not run)" });
  expect(run.secretOutputs).toEqual([]);
});

test("secrets never appear in command text, outputs or scripts, in clear or base64; they travel on secret stdin", () => {
  const secrets = [
    SECRETS["plutus:windowsAdminPassword"],
    ...["sync-key", "web-host-key", "erp-host-key", "web-admin-key"].map((k) => run.keys.get(k)!.privateKeyOpenssh),
  ];
  const forms = (s: string) => [s, s.trim().split("\n")[1] ?? s, Buffer.from(s).toString("base64"), Buffer.from(s, "utf16le").toString("base64")].filter((f) => f.length >= 12);
  const decode = (line: string) => {
    const m = / -EncodedCommand (\S+)$/.exec(line);
    return m ? Buffer.from(m[1], "base64").toString("utf16le") : "";
  };
  const texts: string[] = [];
  for (const r of run.resources.filter((x) => x.type.startsWith("command:"))) {
    for (const k of ["create", "update", "delete"]) {
      if (typeof r.inputs[k] === "string") texts.push(r.inputs[k], decode(r.inputs[k]));
    }
    texts.push(JSON.stringify(r.inputs.triggers ?? []));
  }
  texts.push(JSON.stringify(run.outputs));
  for (const f of fs.readdirSync(path.join(__dirname, "../../infra/scripts"))) texts.push(fs.readFileSync(path.join(__dirname, "../../infra/scripts", f), "utf8"));
  for (const secret of secrets) for (const form of forms(secret)) for (const t of texts) expect(t.includes(form)).toBe(false);

  // where they do go: stdin of the steps that need them, marked secret
  expect(stdinDoc("erp-vm-unattend-run").create.secrets).toEqual({ AdminPassword: SECRETS["plutus:windowsAdminPassword"] });
  expect(stdinDoc("erp-openssh-sshd-run").create.secrets.HostPrivateKey).toBe(run.keys.get("erp-host-key")!.privateKeyOpenssh);
  expect(JSON.parse(run.byName("agent-install").inputs.stdin.split("\n")[1]).privateKey).toBe(run.keys.get("sync-key")!.privateKeyOpenssh);
  for (const name of ["erp-vm-unattend-run", "erp-vm-guest-run", "erp-openssh-account-run", "erp-openssh-sshd-run", "web-vm-seed-run", "agent-install"]) {
    expect(run.byName(name).additionalSecretOutputs).toContain("stdin");
    expect(run.byName(name).secretInputs).toContain("stdin");
  }
  for (const name of ["lab-network-switch-run", "web-disk-vhdx-run", "web-vm-vm-run"]) expect(run.byName(name).secretInputs).toEqual([]);
  // the password fingerprint in these triggers is itself kept secret
  for (const name of ["erp-disk-vhdx-run", "erp-vm-vm-run"]) expect(run.byName(name).secretInputs).toEqual(["triggers"]);
  for (const name of ["agent-wait", "agent-uninstall", "canary-run"]) expect(run.byName(name).secretInputs).toEqual(["connection"]);
});

test("cloud-init documents: valid YAML, #cloud-config first, no BOM, admin user and pre-generated host key", () => {
  const seed = stdinDoc("web-vm-seed-run").create;
  const docs: Record<string, string> = { "user-data": seed.secrets.UserData, "meta-data": seed.parameters.MetaData, "network-config": seed.parameters.NetworkConfig };
  for (const text of Object.values(docs)) {
    expect(text.startsWith("#cloud-config\n")).toBe(true);
    expect(text.charCodeAt(0)).not.toBe(0xfeff);
  }
  const user = parseYaml(docs["user-data"]);
  expect(user.users).toEqual([
    { name: "plutusadmin", groups: ["sudo"], shell: "/bin/bash", sudo: "ALL=(ALL) NOPASSWD:ALL", lock_passwd: true, ssh_authorized_keys: [run.keys.get("web-admin-key")!.publicKeyOpenssh.trim()] },
  ]);
  expect(user.ssh_keys).toEqual({ ed25519_private: run.keys.get("web-host-key")!.privateKeyOpenssh, ed25519_public: run.keys.get("web-host-key")!.publicKeyOpenssh.trim() });
  expect(user.ssh_pwauth).toBe(false);
  const meta = parseYaml(docs["meta-data"]);
  expect(meta["local-hostname"]).toBe("plutus-web");
  expect(meta["instance-id"]).toMatch(/^plutus-web-[0-9a-f]{16}$/);
  expect(parseYaml(docs["network-config"])).toEqual({
    version: 2,
    ethernets: {
      eth0: {
        match: { driver: "hv_netvsc" },
        "set-name": "eth0",
        dhcp4: false,
        addresses: ["192.168.77.10/24"],
        routes: [{ to: "default", via: "192.168.77.1" }],
        nameservers: { addresses: ["1.1.1.1", "9.9.9.9"] },
      },
    },
  });
});

test("no delete step can touch a master disk", () => {
  const masters = ["D:\\Masters\\ubuntu-24.04-server-cloudimg-amd64.vhdx", "D:\\Masters\\ws2022-std-sysprep.vhdx"];
  const deletes = HOST_COMMANDS.map((n) => [n, stdinDoc(n).delete] as const).filter(([, d]) => d);
  expect(deletes.map(([n, d]) => `${n}: ${d.name.match(/\((.+)\)$/)[1]}`).sort()).toEqual([
    "erp-disk-vhdx-run: Remove-PlutusVhd.ps1",
    "erp-vm-vm-run: Remove-PlutusVm.ps1",
    "lab-network-switch-run: Remove-PlutusNetwork.ps1",
    "web-disk-vhdx-run: Remove-PlutusVhd.ps1",
    "web-vm-seed-run: Remove-PlutusVhd.ps1",
    "web-vm-vm-run: Remove-PlutusVm.ps1",
  ]);
  for (const [, d] of deletes) {
    const { ProtectedPath, ...rest } = d.parameters;
    for (const value of Object.values(rest)) for (const m of masters) expect(String(value).toLowerCase()).not.toBe(m.toLowerCase());
    if (d.name.includes("Remove-PlutusVhd.ps1")) expect(ProtectedPath).toEqual(masters);
  }
  // The delete scripts delete only their -Path / -Name, never by wildcard or prefix.
  const removeVhd = fs.readFileSync(path.join(__dirname, "../../infra/scripts/Remove-PlutusVhd.ps1"), "utf8");
  expect(removeVhd.match(/Remove-Item[^\n]*/g)).toEqual(["Remove-Item -LiteralPath $full -Force"]);
  expect(removeVhd).toContain("throw \"Refusing to delete '$full': it is a protected master disk.\"");
  for (const f of ["Remove-PlutusVm.ps1", "Remove-PlutusNetwork.ps1", "Remove-PlutusVhd.ps1"]) {
    const text = fs.readFileSync(path.join(__dirname, "../../infra/scripts", f), "utf8");
    expect(text).not.toMatch(/\*|-like|-match|Remove-Item -Path|-Recurse/);
  }
});

test("agent deployment: the resources run exactly the exported commands; bundle, config and key only on stdin", () => {
  expect(run.byName("agent-wait").inputs.create).toBe(renderWaitCommand());
  const install = run.byName("agent-install").inputs;
  expect(install.create).toBe(renderInstallCommand(bundle));
  expect(install.create).toMatch(new RegExp(`^sudo -n bash -c '[^']+' plutus-sync-install ${bundle.archiveSha256} ${bundle.archive.toString("base64").length + 1} cron$`));
  expect(install.delete).toBeUndefined();
  const stdin = install.stdin as string;
  const newline = stdin.indexOf("\n");
  expect(Buffer.from(stdin.slice(0, newline), "base64").equals(bundle.archive)).toBe(true);
  const doc = JSON.parse(stdin.slice(newline + 1));
  expect(Object.keys(doc)).toEqual(["agentConfig", "privateKey"]);
  expect(doc.agentConfig).toEqual(run.outputs.agentConfig);
  expect(stdin).toBe(renderAgentInstallStdin(bundle, doc.agentConfig, run.keys.get("sync-key")!.privateKeyOpenssh));
  const instanceId = parseYaml(stdinDoc("web-vm-seed-run").create.parameters.MetaData)["instance-id"];
  expect(install.triggers).toEqual([bundle.checksum, JSON.stringify(run.outputs.agentConfig), instanceId]);
  // uninstall: its own resource, never replaced (no triggers), so its delete runs only on destroy
  const uninstall = run.byName("agent-uninstall").inputs;
  expect(uninstall.create).toBe(renderUninstallArmCommand());
  expect(uninstall.delete).toBe(renderUninstallCommand());
  expect(uninstall.delete).toBe(
    'if [ -x /opt/plutus-sync/install.sh ]; then sudo bash /opt/plutus-sync/install.sh --uninstall; else echo "plutus-sync is not installed on this host; nothing to remove"; fi',
  );
  expect(uninstall.triggers).toBeUndefined();
  expect(run.byName("canary-run").inputs.create).toBe(renderCanaryCommand({ outbox: "/var/lib/plutus/outbox", quarantine: "/var/lib/plutus/quarantine", minAgeSeconds: 30 }));
  expect(run.byName("canary-run").inputs.create).toContain(CANARY_PREFIX);
  for (const name of ["agent-wait", "agent-uninstall", "agent-install", "canary-run"]) {
    const c = run.byName(name).inputs.connection;
    expect({ host: c.host, user: c.user, hostKey: c.hostKey, proxy: c.proxy }).toEqual({
      host: "192.168.77.10",
      user: "plutusadmin",
      hostKey: run.keys.get("web-host-key")!.publicKeyOpenssh,
      proxy: undefined,
    });
    expect(c.privateKey).toBe(run.keys.get("web-admin-key")!.privateKeyOpenssh);
    // every remote command is valid bash
    for (const step of ["create", "delete"]) if (run.byName(name).inputs[step]) execFileSync("bash", ["-n", "-c", run.byName(name).inputs[step]]);
  }
});

test("every command is safe when Pulumi replaces it create-then-delete: a command that can be replaced and has a delete deletes first", () => {
  const commands = run.resources.filter((r) => r.type.startsWith("command:"));
  expect(commands.length).toBe(HOST_COMMANDS.length + 4);
  const verdicts = commands.map((r) => {
    // @pulumi/command replaces a command only when its triggers change (replaceOnChanges triggers[*]).
    expect([r.name, r.replaceOnChanges]).toEqual([r.name, ["triggers[*]"]]);
    const replaceable = Array.isArray(r.inputs.triggers) && r.inputs.triggers.length > 0;
    const undoes = typeof r.inputs.delete === "string";
    // By default the replacement is created first and the old one deleted last: a delete that
    // undoes the create would then undo the replacement (issue 13, defect 1).
    return `${r.name}: ${replaceable && undoes && !r.deleteBeforeReplace ? "UNSAFE" : "safe"}`;
  });
  expect(verdicts.filter((v) => v.endsWith("UNSAFE"))).toEqual([]);
  // the uninstall still happens on destroy: after the canary and the install, which depend on it
  expect(deps("canary-run")).toContain("agent-install");
  expect(deps("agent-install")).toContain("agent-uninstall");
  expect(run.byName("agent-uninstall").deleteBeforeReplace).toBe(false);
});

test("no command passes its previous output in the environment (addPreviousOutputInEnv: false)", () => {
  const commands = run.resources.filter((r) => r.type.startsWith("command:"));
  expect(commands.map((r) => [r.name, r.inputs.addPreviousOutputInEnv])).toEqual(commands.map((r) => [r.name, false]));
});

test("every apt-get the program emits (commands, stdin, cloud-init) waits for the dpkg lock", () => {
  const texts = run.resources
    .filter((r) => r.type.startsWith("command:"))
    .flatMap((r) => ["create", "update", "delete", "stdin"].map((k) => r.inputs[k]).filter((t): t is string => typeof t === "string"));
  const seed = stdinDoc("web-vm-seed-run").create;
  texts.push(seed.secrets.UserData, seed.parameters.MetaData, seed.parameters.NetworkConfig);
  expect(texts.length).toBeGreaterThan(2 * HOST_COMMANDS.length);
  const calls = texts.flatMap((t) => t.match(/apt-get[^\n;&|]*/g) ?? []);
  expect(calls.filter((c) => !c.includes("-o DPkg::Lock::Timeout=600"))).toEqual([]);
});

test("a missing bundle stops the program with 'run npm run build first'", async () => {
  await expect(runProgram({ "plutus:agentBundleDir": "/nonexistent/bundle" })).rejects.toThrow(
    "agent bundle not found at /nonexistent/bundle (missing plutus-sync.cjs, sync_plutus.sh, install.sh, SHA256SUMS): run npm run build first",
  );
  const dir = tempDir("plutus-bad-");
  for (const f of ["plutus-sync.cjs", "sync_plutus.sh", "install.sh"]) fs.writeFileSync(path.join(dir, f), f);
  fs.writeFileSync(path.join(dir, "SHA256SUMS"), `${"0".repeat(64)}  plutus-sync.cjs\n`);
  expect(() => readBundle(dir)).toThrow(`agent bundle at ${dir} is inconsistent: plutus-sync.cjs does not match SHA256SUMS; run npm run build again`);
});

test("a host reached over SSH: host commands are remote with the pinned key, the web VM is reached through it", async () => {
  const hostKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDNYwzxlmXBT27kLvO1w1rEX9rHbDiy00rC5xzcwLv/o";
  const ssh = await runProgram({
    "plutus:hostAccess": "ssh",
    "plutus:hostSshAddress": "hyperv01.lab.local",
    "plutus:hostSshUser": "Administrator",
    "plutus:hostSshHostKey": hostKey,
  });
  const sw = ssh.byName("lab-network-switch-run");
  expect(sw.type).toBe("command:remote:Command");
  expect(sw.inputs.connection).toMatchObject({ host: "hyperv01.lab.local", port: 22, user: "Administrator", hostKey, privateKey: SECRETS["plutus:hostSshPrivateKey"] });
  expect(sw.inputs.create).toBe(renderCommandLine("create"));
  expect(ssh.byName("agent-install").inputs.connection.proxy).toEqual({
    dialErrorLimit: 10,
    perDialTimeout: 15,
    host: "hyperv01.lab.local",
    port: 22,
    user: "Administrator",
    hostKey,
    privateKey: SECRETS["plutus:hostSshPrivateKey"],
  });
}, 60_000);

const scriptHash = (file: string) => sha256Hex(fs.readFileSync(path.join(__dirname, "../../infra/scripts", file), "utf8"));
/** The resources a top-level input of `name` depends on through its value (not dependsOn). */
const propDeps = (name: string, input: string) => (run.byName(name).propertyDependencies[input] ?? []).map(nameOfUrn).sort();

test("a replaced disk or seed replaces its VM first: the VM's disk paths are outputs of the disk commands", () => {
  // deleteBeforeReplace takes along only dependents whose properties depend on the replaced resource.
  expect(propDeps("web-vm-vm-run", "stdin")).toEqual(["web-disk-vhdx-run", "web-vm-seed-run"]);
  expect(propDeps("web-vm-vm-run", "triggers")).toEqual(["web-admin-key", "web-disk-vhdx-run", "web-host-key", "web-vm-seed-run"]);
  expect(propDeps("erp-vm-unattend-run", "stdin")).toEqual(["erp-disk-vhdx-run"]);
  expect(propDeps("erp-vm-unattend-run", "triggers")).toEqual(["erp-disk-vhdx-run"]);
  expect(propDeps("erp-vm-vm-run", "stdin")).toEqual(["erp-disk-vhdx-run"]);
  expect(propDeps("erp-vm-vm-run", "triggers")).toEqual(["erp-disk-vhdx-run"]);
  // and a rebuilt VM is configured again: guest, ERP account and sshd, agent and canary
  expect(propDeps("erp-vm-guest-run", "triggers")).toEqual(["erp-vm-vm-run"]);
  for (const name of ["erp-openssh-account-run", "erp-openssh-sshd-run"]) {
    expect(propDeps(name, "triggers")).toEqual(["erp-vm-guest-run"]);
    expect(stdinDoc(name).create.parameters.VmName).toBe("plutus-erp");
  }
  for (const name of ["agent-wait", "agent-install", "canary-run"]) expect(propDeps(name, "triggers")).toContain("web-vm-vm-run");
  expect(propDeps("canary-run", "triggers")).toEqual(["erp-host-key", "erp-openssh-sshd-run", "erp-vm-guest-run", "web-admin-key", "web-host-key", "web-vm-vm-run"]);
  // the values themselves are the plain paths
  expect(stdinDoc("web-vm-vm-run").create.parameters).toMatchObject({
    OsDiskPath: "D:\\Plutus\\VMs\\plutus-web\\plutus-web-os.vhdx",
    SeedDiskPath: "D:\\Plutus\\VMs\\plutus-web\\plutus-web-cidata.vhdx",
  });
  expect(stdinDoc("erp-vm-unattend-run").create.parameters.DiskPath).toBe("D:\\Plutus\\VMs\\plutus-erp\\plutus-erp-os.vhdx");
});

test("VM and unattend triggers hold the disk and master paths and the disk scripts' hashes", () => {
  const disk = [scriptHash("New-PlutusDifferencingDisk.ps1"), scriptHash("Remove-PlutusVhd.ps1")];
  const seed = [scriptHash("New-PlutusCloudInitSeed.ps1"), scriptHash("Remove-PlutusVhd.ps1")];
  const vmScripts = [scriptHash("New-PlutusVm.ps1"), scriptHash("Remove-PlutusVm.ps1")];
  const instanceId = parseYaml(stdinDoc("web-vm-seed-run").create.parameters.MetaData)["instance-id"];
  const password = crypto.scryptSync(SECRETS["plutus:windowsAdminPassword"], "plutus:windowsAdminPassword", 32, { N: 16384, r: 8, p: 1 }).toString("hex");
  expect(run.byName("web-vm-vm-run").inputs.triggers).toEqual([
    ...vmScripts,
    "plutus-web",
    "D:\\Plutus\\VMs\\plutus-web\\plutus-web-os.vhdx",
    "D:\\Masters\\ubuntu-24.04-server-cloudimg-amd64.vhdx",
    ...disk,
    "D:\\Plutus\\VMs\\plutus-web\\plutus-web-cidata.vhdx",
    ...seed,
    instanceId,
  ]);
  expect(run.byName("web-vm-seed-run").inputs.triggers).toEqual([...seed, "D:\\Plutus\\VMs\\plutus-web\\plutus-web-cidata.vhdx", instanceId]);
  const erpDisk = ["D:\\Plutus\\VMs\\plutus-erp\\plutus-erp-os.vhdx", "D:\\Masters\\ws2022-std-sysprep.vhdx", ...disk];
  expect(run.byName("erp-vm-vm-run").inputs.triggers).toEqual([...vmScripts, "plutus-erp", ...erpDisk, password]);
  expect(run.byName("erp-vm-unattend-run").inputs.triggers).toEqual([scriptHash("Set-PlutusWindowsUnattend.ps1"), ...erpDisk, "PLUTUS-ERP", password]);
  // a new password rebuilds the child disk: only a fresh disk applies unattend.xml
  expect(run.byName("erp-disk-vhdx-run").inputs.triggers).toEqual([...disk, "D:\\Masters\\ws2022-std-sysprep.vhdx", "D:\\Plutus\\VMs\\plutus-erp\\plutus-erp-os.vhdx", password]);
  expect(run.byName("web-disk-vhdx-run").inputs.triggers).toEqual([...disk, "D:\\Masters\\ubuntu-24.04-server-cloudimg-amd64.vhdx", "D:\\Plutus\\VMs\\plutus-web\\plutus-web-os.vhdx"]);
});

test("the password fingerprint is a secret scrypt hash that changes with the password", async () => {
  const value = async (o: any) => ({ value: await o.promise(), secret: await o.isSecret });
  const a = await value(windowsPasswordFingerprint("Correct-Horse-1"));
  const b = await value(windowsPasswordFingerprint("Correct-Horse-2"));
  expect(a).toEqual({ value: crypto.scryptSync("Correct-Horse-1", "plutus:windowsAdminPassword", 32, { N: 16384, r: 8, p: 1 }).toString("hex"), secret: true });
  expect(b.value).toMatch(/^[0-9a-f]{64}$/);
  expect(b.value).not.toBe(a.value);
  expect(a.value).not.toContain("Correct-Horse-1");
});

test("the cloud-init instance-id covers the whole user-data (admin user included) but not the host private key", () => {
  const web = run.keys.get("web-host-key")!;
  const input: CloudInitInput = {
    hostname: "plutus-web",
    adminUser: "plutusadmin",
    adminPublicKey: run.keys.get("web-admin-key")!.publicKeyOpenssh,
    hostPrivateKey: web.privateKeyOpenssh,
    hostPublicKey: web.publicKeyOpenssh,
    ip: "192.168.77.10",
    prefixLength: 24,
    gateway: "192.168.77.1",
    dnsServers: ["1.1.1.1", "9.9.9.9"],
  };
  const id = renderInstanceId(input);
  expect(id).toBe(`plutus-web-${sha256Hex(`${renderUserData({ ...input, hostPrivateKey: "" })}\n${renderNetworkConfig(input)}`).slice(0, 16)}`);
  expect(parseYaml(stdinDoc("web-vm-seed-run").create.parameters.MetaData)["instance-id"]).toBe(id);
  expect(renderInstanceId({ ...input, adminUser: "opsadmin" })).not.toBe(id);
  expect(renderInstanceId({ ...input, adminPublicKey: run.keys.get("sync-key")!.publicKeyOpenssh })).not.toBe(id);
  expect(renderInstanceId({ ...input, ip: "192.168.77.11" })).not.toBe(id);
  expect(renderInstanceId({ ...input, hostPrivateKey: "other" })).toBe(id);
  expect(renderUserData({ ...input, hostPrivateKey: "" })).not.toContain("PRIVATE KEY");
});

test("the PowerShell Direct steps get PlutusDirect.psm1 as their Helpers parameter, its hash right after their script's in the triggers", () => {
  const helper = fs.readFileSync(path.join(__dirname, "../../infra/scripts/PlutusDirect.psm1"), "utf8");
  const users = ["erp-vm-guest-run", "erp-openssh-account-run", "erp-openssh-sshd-run"];
  for (const name of HOST_COMMANDS) {
    const doc = stdinDoc(name);
    const script = doc.create.name.match(/\((.+)\)$/)[1];
    if (users.includes(name)) {
      expect([name, doc.create.parameters.Helpers]).toEqual([name, [helper]]);
      expect([name, run.byName(name).inputs.triggers.slice(0, 2)]).toEqual([name, [scriptHash(script), sha256Hex(helper)]]);
    } else {
      // steps without helpers keep the stdin document and triggers they always had
      expect([name, "Helpers" in doc.create.parameters, doc.delete && "Helpers" in doc.delete.parameters]).toEqual([name, false, doc.delete ? false : undefined]);
      expect([name, run.byName(name).inputs.triggers.includes(sha256Hex(helper))]).toEqual([name, false]);
    }
    // a script that calls a helper function is always sent with the helper that defines it
    const calls = /\b(ConvertTo-PlutusAdministratorCredential|Connect-PlutusPowerShellDirect)\b/.test(doc.create.script);
    expect([name, calls]).toEqual([name, users.includes(name)]);
  }
});
