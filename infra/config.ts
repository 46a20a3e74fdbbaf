import * as pulumi from "@pulumi/pulumi";

/** How Pulumi reaches the Hyper-V host. */
export type HostAccessConfig =
  | { readonly mode: "local" }
  | {
      readonly mode: "ssh";
      readonly host: string;
      readonly port: number;
      readonly user: string;
      /** The host's SSH public key line (`ssh-ed25519 AAAA…`), pinned. */
      readonly hostKey: string;
      readonly privateKey: pulumi.Output<string>;
    };

export type OpenSshSource =
  | { readonly kind: "capability" }
  | { readonly kind: "fod"; readonly path: string }
  | { readonly kind: "msi"; readonly path: string };

export interface VmSizing {
  readonly name: string;
  readonly ip: string;
  readonly memoryMB: number;
  readonly cpus: number;
}

export interface ErpFolders {
  /** Windows path of the sshd ChrootDirectory, e.g. C:\Plutus. */
  readonly chrootDirectory: string;
  /** Windows path of the ERP inbox, inside the chroot. */
  readonly inbox: string;
  /** Windows path of the staging folder, inside the chroot, same volume as the inbox. */
  readonly staging: string;
  /** The inbox as the SFTP client sees it inside the chroot, e.g. /Inbox. */
  readonly sftpInbox: string;
  /** The staging folder as the SFTP client sees it inside the chroot, e.g. /Staging. */
  readonly sftpStaging: string;
}

/** The whole stack configuration, typed and validated. */
export interface LabConfig {
  readonly hostAccess: HostAccessConfig;
  readonly ubuntuMasterVhdx: string;
  readonly windowsMasterVhdx: string;
  readonly vmFolder: string;
  readonly switchName: string;
  readonly subnet: { readonly address: string; readonly prefixLength: number; readonly cidr: string };
  readonly gatewayIp: string;
  readonly nat: boolean;
  readonly dnsServers: readonly string[];
  readonly webVm: VmSizing;
  readonly erpVm: VmSizing;
  readonly webAdminUser: string;
  readonly windowsAdminPassword: pulumi.Output<string>;
  readonly openSshSource: OpenSshSource;
  readonly erpFolders: ErpFolders;
  readonly agentMinAgeSeconds: number;
  /** Where `npm run build` leaves the agent bundle; undefined = agent/dist/bundle in this repository. */
  readonly agentBundleDir: string | undefined;
  /** `watch`: also the systemd service plutus-sync-watch (orders within a second); cron runs in both modes. */
  readonly agentMode: AgentMode;
}

export type AgentMode = "cron" | "watch";

/** The configuration values as read from the stack, before validation (secrets stay Outputs). */
export interface RawLabConfig {
  readonly [key: string]: unknown;
}

/** Every key the program reads, with the secret ones marked. */
export const CONFIG_KEYS = {
  hostAccess: { secret: false },
  hostSshAddress: { secret: false },
  hostSshPort: { secret: false },
  hostSshUser: { secret: false },
  hostSshHostKey: { secret: false },
  hostSshPrivateKey: { secret: true },
  ubuntuMasterVhdx: { secret: false },
  windowsMasterVhdx: { secret: false },
  vmFolder: { secret: false },
  switchName: { secret: false },
  subnet: { secret: false },
  gatewayIp: { secret: false },
  nat: { secret: false },
  dnsServers: { secret: false },
  webVm: { secret: false },
  erpVm: { secret: false },
  webAdminUser: { secret: false },
  windowsAdminPassword: { secret: true },
  openSshSource: { secret: false },
  erpChrootDirectory: { secret: false },
  erpInboxFolder: { secret: false },
  erpStagingFolder: { secret: false },
  agentMinAgeSeconds: { secret: false },
  agentBundleDir: { secret: false },
  agentMode: { secret: false },
} as const;

export type ConfigKey = keyof typeof CONFIG_KEYS;

/** Thrown when the stack configuration is invalid; lists every problem at once. */
export class LabConfigError extends pulumi.RunError {
  constructor(readonly problems: readonly string[]) {
    super(`invalid stack configuration (fix with \`pulumi config set\`, see docs/infra.md):\n${problems.map((p) => `  - ${p}`).join("\n")}`);
    this.name = "LabConfigError";
  }
}

/** Reads every key from the stack config once; only infra/index.ts calls this. */
export function readLabConfig(cfg: pulumi.Config): LabConfig {
  const raw: Record<string, unknown> = {};
  for (const [key, meta] of Object.entries(CONFIG_KEYS)) {
    if (meta.secret) {
      raw[key] = cfg.getSecret(key);
    } else {
      const text = cfg.get(key);
      raw[key] = text === undefined ? undefined : parseMaybeJson(text);
    }
  }
  return parseLabConfig(raw);
}

/** Object and number values arrive as JSON text; plain strings stay strings. */
function parseMaybeJson(text: string): unknown {
  const trimmed = text.trim();
  if (/^[[{]/.test(trimmed) || /^-?\d+(\.\d+)?$/.test(trimmed) || trimmed === "true" || trimmed === "false") {
    try {
      return JSON.parse(trimmed);
    } catch {
      return text;
    }
  }
  return text;
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
/** Hyper-V object names: printable, no path separators or quotes that break Hyper-V's own tools. */
const HYPERV_NAME = /^[A-Za-z0-9][A-Za-z0-9 ._-]{0,62}$/;
const WINDOWS_ABSOLUTE = /^[A-Za-z]:\\/;
const WINDOWS_FORBIDDEN = /[<>"|?*\u0000-\u001f]|:.*:/;
const SSH_PUBLIC_KEY = /^(ssh-ed25519|ecdsa-sha2-nistp(256|384|521)|ssh-rsa) [A-Za-z0-9+/]+={0,3}( [^\r\n]*)?$/;
const LINUX_USER = /^[a-z_][a-z0-9_-]{0,31}$/;

export function ipToNumber(ip: string): number {
  return ip.split(".").reduce((acc, part) => acc * 256 + Number(part), 0);
}

export function inSubnet(ip: string, network: string, prefixLength: number): boolean {
  const size = 2 ** (32 - prefixLength);
  const base = Math.floor(ipToNumber(network) / size) * size;
  const value = ipToNumber(ip);
  return value >= base && value < base + size;
}

/** Validates raw values; throws LabConfigError listing every problem with its fix. */
export function parseLabConfig(raw: RawLabConfig): LabConfig {
  const problems: string[] = [];
  const problem = (key: string, what: string, fix: string) => problems.push(`plutus:${key}: ${what}; ${fix}`);
  const setHint = (key: string, example: string) => `set it with \`pulumi config set ${key} ${example}\``;

  const str = (key: ConfigKey, example: string, opts: { optional?: boolean } = {}): string | undefined => {
    const value = raw[key];
    if (value === undefined || value === null || value === "") {
      if (!opts.optional) problem(key, "is not set", setHint(key, example));
      return undefined;
    }
    if (typeof value !== "string") {
      problem(key, `must be text, got ${JSON.stringify(value)}`, setHint(key, example));
      return undefined;
    }
    return value;
  };
  const windowsPath = (key: ConfigKey, example: string, what: string): string | undefined => {
    const value = str(key, example);
    if (value === undefined) return undefined;
    if (!WINDOWS_ABSOLUTE.test(value) || WINDOWS_FORBIDDEN.test(value) || /[\r\n]/.test(value)) {
      problem(key, `${JSON.stringify(value)} is not an absolute Windows path for the ${what} (like ${example}, no < > " | ? * or control characters)`, setHint(key, `'${example}'`));
      return undefined;
    }
    return value.replace(/\\+$/, "");
  };
  const ipv4 = (key: string, value: unknown, example: string): string | undefined => {
    if (typeof value !== "string" || !IPV4.test(value)) {
      problem(key, `${JSON.stringify(value)} is not an IPv4 address like ${example}`, setHint(key.split(".")[0], example));
      return undefined;
    }
    return value;
  };
  const whole = (key: string, value: unknown, min: number, max: number, unit: string): number | undefined => {
    if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
      problem(key, `${JSON.stringify(value)} must be a whole number of ${unit} from ${min} to ${max}`, `correct it in Pulumi.<stack>.yaml`);
      return undefined;
    }
    return value;
  };

  // Host access
  let hostAccess: HostAccessConfig | undefined;
  const mode = raw.hostAccess ?? "local";
  if (mode === "local") {
    hostAccess = { mode: "local" };
  } else if (mode === "ssh") {
    const host = str("hostSshAddress", "hyperv01.example.local");
    if (host !== undefined && !/^[A-Za-z0-9.:_-]+$/.test(host)) {
      problem("hostSshAddress", `${JSON.stringify(host)} is not a host name or IP address`, setHint("hostSshAddress", "hyperv01.example.local"));
    }
    const port = raw.hostSshPort === undefined ? 22 : whole("hostSshPort", raw.hostSshPort, 1, 65535, "port");
    const user = str("hostSshUser", "Administrator");
    if (user !== undefined && !/^[A-Za-z0-9._\\@-]{1,104}$/.test(user)) {
      problem("hostSshUser", `${JSON.stringify(user)} is not a Windows account name`, setHint("hostSshUser", "Administrator"));
    }
    const hostKey = str("hostSshHostKey", "'ssh-ed25519 AAAA…'");
    if (hostKey !== undefined && !SSH_PUBLIC_KEY.test(hostKey.trim())) {
      problem(
        "hostSshHostKey",
        "is not an SSH public key line (ssh-ed25519 AAAA…): without it the host's identity is not checked",
        "copy C:\\ProgramData\\ssh\\ssh_host_ed25519_key.pub from the host and `pulumi config set hostSshHostKey \"<its content>\"`",
      );
    }
    const privateKey = raw.hostSshPrivateKey;
    if (!pulumi.Output.isInstance(privateKey)) {
      problem("hostSshPrivateKey", "is not set (the key Pulumi logs in to the host with)", "pipe the key file in (never put the key on the command line): `Get-Content -Raw $HOME\\.ssh\\id_ed25519 | pulumi config set --secret hostSshPrivateKey`");
    }
    if (host && port && user && hostKey && pulumi.Output.isInstance(privateKey) && SSH_PUBLIC_KEY.test(hostKey.trim())) {
      hostAccess = { mode: "ssh", host, port, user, hostKey: hostKey.trim(), privateKey: privateKey as pulumi.Output<string> };
    }
  } else {
    problem("hostAccess", `${JSON.stringify(mode)} is not local or ssh`, "use `pulumi config set hostAccess local` when Pulumi runs on the Hyper-V host, or `ssh` to reach it over SSH");
  }

  const ubuntuMasterVhdx = windowsPath("ubuntuMasterVhdx", "D:\\Masters\\ubuntu-24.04.vhdx", "Ubuntu master disk");
  const windowsMasterVhdx = windowsPath("windowsMasterVhdx", "D:\\Masters\\ws2022-sysprep.vhdx", "Windows Server 2022 master disk");
  for (const [key, value] of [["ubuntuMasterVhdx", ubuntuMasterVhdx], ["windowsMasterVhdx", windowsMasterVhdx]] as const) {
    if (value !== undefined && !/\.vhdx$/i.test(value)) problem(key, `${JSON.stringify(value)} must end in .vhdx`, "point it at the master .vhdx file");
  }
  if (ubuntuMasterVhdx && windowsMasterVhdx && ubuntuMasterVhdx.toLowerCase() === windowsMasterVhdx.toLowerCase()) {
    problem("windowsMasterVhdx", "is the same file as ubuntuMasterVhdx", "give each operating system its own master disk");
  }
  const vmFolder = windowsPath("vmFolder", "D:\\Plutus\\VMs", "folder that holds the VMs and their child disks");
  for (const [key, value] of [["ubuntuMasterVhdx", ubuntuMasterVhdx], ["windowsMasterVhdx", windowsMasterVhdx]] as const) {
    if (value && vmFolder && value.toLowerCase().startsWith(`${vmFolder.toLowerCase()}\\`)) {
      problem(key, `${JSON.stringify(value)} lies inside vmFolder ${JSON.stringify(vmFolder)}`, "keep the masters outside the lab's VM folder, so resetting the lab can never touch them");
    }
  }

  const switchName = str("switchName", "PlutusLab");
  if (switchName !== undefined && !HYPERV_NAME.test(switchName)) {
    problem("switchName", `${JSON.stringify(switchName)} is not a usable switch name (1-63 letters, digits, space . _ -, starting with a letter or digit)`, setHint("switchName", "PlutusLab"));
  }

  let subnet: LabConfig["subnet"] | undefined;
  const subnetText = str("subnet", "192.168.77.0/24");
  if (subnetText !== undefined) {
    const m = /^([\d.]+)\/(\d{1,2})$/.exec(subnetText);
    const prefixLength = m ? Number(m[2]) : NaN;
    if (!m || !IPV4.test(m[1]) || prefixLength < 8 || prefixLength > 30) {
      problem("subnet", `${JSON.stringify(subnetText)} is not an IPv4 CIDR with a prefix from /8 to /30 like 192.168.77.0/24`, setHint("subnet", "192.168.77.0/24"));
    } else if (ipToNumber(m[1]) % 2 ** (32 - prefixLength) !== 0) {
      problem("subnet", `${JSON.stringify(subnetText)} has host bits set`, setHint("subnet", `the network address, e.g. 192.168.77.0/${prefixLength}`));
    } else {
      subnet = { address: m[1], prefixLength, cidr: subnetText };
    }
  }
  const gatewayIp = raw.gatewayIp === undefined ? (problem("gatewayIp", "is not set", setHint("gatewayIp", "192.168.77.1")), undefined) : ipv4("gatewayIp", raw.gatewayIp, "192.168.77.1");
  const nat = raw.nat === undefined ? true : raw.nat;
  if (typeof nat !== "boolean") problem("nat", `${JSON.stringify(nat)} must be true or false`, setHint("nat", "true"));
  let dnsServers: string[] = [];
  if (raw.dnsServers === undefined) {
    dnsServers = ["1.1.1.1"];
  } else if (!Array.isArray(raw.dnsServers)) {
    problem("dnsServers", "must be a list of IPv4 addresses", "write it as a YAML list in Pulumi.<stack>.yaml");
  } else if (raw.dnsServers.length === 0) {
    // The VM scripts take -DnsServers as a mandatory string[], which refuses an empty array only after the VM is built.
    problem("dnsServers", "is an empty list; the VMs need at least one DNS server", "list one or more IPv4 addresses (e.g. [1.1.1.1]) in Pulumi.<stack>.yaml, or remove the key to use 1.1.1.1");
  } else {
    dnsServers = raw.dnsServers.map((v, i) => ipv4(`dnsServers[${i}]`, v, "1.1.1.1")).filter((v): v is string => v !== undefined);
  }

  const vm = (key: "webVm" | "erpVm", defaults: { memoryMB: number; cpus: number; name: string; ip: string }): VmSizing | undefined => {
    const value = raw[key];
    if (value === undefined || typeof value !== "object" || value === null || Array.isArray(value)) {
      problem(key, "must be an object with name, ip, memoryMB and cpus", `set it in Pulumi.<stack>.yaml, e.g. ${key}: {name: ${defaults.name}, ip: ${defaults.ip}, memoryMB: ${defaults.memoryMB}, cpus: ${defaults.cpus}}`);
      return undefined;
    }
    const v = value as Record<string, unknown>;
    const unknown = Object.keys(v).filter((k) => !["name", "ip", "memoryMB", "cpus"].includes(k));
    if (unknown.length > 0) problem(key, `has unknown key(s) ${unknown.join(", ")}`, "use only name, ip, memoryMB and cpus");
    const name = typeof v.name === "string" && HYPERV_NAME.test(v.name) ? v.name : undefined;
    if (name === undefined) problem(`${key}.name`, `${JSON.stringify(v.name)} is not a usable VM name (1-63 letters, digits, space . _ -)`, `e.g. ${defaults.name}`);
    const ip = ipv4(`${key}.ip`, v.ip, defaults.ip);
    const memoryMB = whole(`${key}.memoryMB`, v.memoryMB, 512, 1_048_576, "MB");
    if (memoryMB !== undefined && memoryMB % 2 !== 0) problem(`${key}.memoryMB`, `${memoryMB} must be even (Hyper-V allocates memory in 2 MB steps)`, "use e.g. 2048");
    const cpus = whole(`${key}.cpus`, v.cpus, 1, 64, "virtual processors");
    return name && ip && memoryMB !== undefined && cpus !== undefined ? { name, ip, memoryMB, cpus } : undefined;
  };
  const webVm = vm("webVm", { name: "plutus-web", ip: "192.168.77.10", memoryMB: 2048, cpus: 2 });
  const erpVm = vm("erpVm", { name: "plutus-erp", ip: "192.168.77.20", memoryMB: 4096, cpus: 2 });
  if (webVm && erpVm) {
    if (webVm.name.toLowerCase() === erpVm.name.toLowerCase()) problem("erpVm.name", `is the same as webVm.name (${webVm.name})`, "give each VM its own name");
    if (webVm.ip === erpVm.ip) problem("erpVm.ip", `is the same as webVm.ip (${webVm.ip})`, "give each VM its own address");
  }
  if (subnet && gatewayIp) {
    const check = (key: string, ip: string) => {
      if (!inSubnet(ip, subnet!.address, subnet!.prefixLength)) {
        problem(key, `${ip} is outside the subnet ${subnet!.cidr}`, `choose an address inside ${subnet!.cidr}`);
      } else {
        const size = 2 ** (32 - subnet!.prefixLength);
        const offset = ipToNumber(ip) - ipToNumber(subnet!.address);
        if (offset === 0 || offset === size - 1) problem(key, `${ip} is the network or broadcast address of ${subnet!.cidr}`, "choose a host address");
      }
    };
    check("gatewayIp", gatewayIp);
    if (webVm) check("webVm.ip", webVm.ip);
    if (erpVm) check("erpVm.ip", erpVm.ip);
    for (const [key, sizing] of [["webVm.ip", webVm], ["erpVm.ip", erpVm]] as const) {
      if (sizing && sizing.ip === gatewayIp) problem(key, `is the host gateway address ${gatewayIp}`, "choose another address");
    }
  }

  const webAdminUser = str("webAdminUser", "plutusadmin");
  if (webAdminUser !== undefined && (!LINUX_USER.test(webAdminUser) || ["root", "plutus", "ubuntu"].includes(webAdminUser))) {
    problem("webAdminUser", `${JSON.stringify(webAdminUser)} is not a usable Linux account name (lowercase, up to 32 characters; not root, plutus or ubuntu)`, setHint("webAdminUser", "plutusadmin"));
  }
  const windowsAdminPassword = raw.windowsAdminPassword;
  if (!pulumi.Output.isInstance(windowsAdminPassword)) {
    problem("windowsAdminPassword", "is not set (the ERP VM's Administrator password)", "run `pulumi config set --secret windowsAdminPassword` and type a password of 14+ characters");
  }

  let openSshSource: OpenSshSource | undefined;
  const source = raw.openSshSource ?? { kind: "capability" };
  const sourceObj = typeof source === "object" && source !== null ? (source as Record<string, unknown>) : {};
  if (sourceObj.kind === "capability") {
    openSshSource = { kind: "capability" };
  } else if (sourceObj.kind === "fod" || sourceObj.kind === "msi") {
    const p = sourceObj.path;
    const ok = typeof p === "string" && WINDOWS_ABSOLUTE.test(p) && !WINDOWS_FORBIDDEN.test(p) && !/[\r\n]/.test(p);
    if (!ok || (sourceObj.kind === "msi" && !/\.msi$/i.test(p as string))) {
      problem(
        "openSshSource.path",
        `${JSON.stringify(p)} is not an absolute Windows path${sourceObj.kind === "msi" ? " to the OpenSSH-Win64 .msi" : " to the Features-on-Demand source folder"} on the Hyper-V host`,
        "fix openSshSource in Pulumi.<stack>.yaml",
      );
    } else {
      openSshSource = { kind: sourceObj.kind, path: p as string };
    }
  } else {
    problem("openSshSource", `${JSON.stringify(source)} is not one of {kind: capability}, {kind: fod, path: …}, {kind: msi, path: …}`, "fix openSshSource in Pulumi.<stack>.yaml");
  }

  const chroot = windowsPath("erpChrootDirectory", "C:\\Plutus", "ERP's SFTP chroot folder");
  const inbox = windowsPath("erpInboxFolder", "C:\\Plutus\\Inbox", "ERP inbox");
  const staging = windowsPath("erpStagingFolder", "C:\\Plutus\\Staging", "staging folder");
  let erpFolders: ErpFolders | undefined;
  if (chroot && inbox && staging) {
    const rel = (key: ConfigKey, p: string): string | undefined => {
      if (!p.toLowerCase().startsWith(`${chroot.toLowerCase()}\\`)) {
        problem(key, `${JSON.stringify(p)} is not inside erpChrootDirectory ${JSON.stringify(chroot)}`, `the SFTP account only sees the chroot; put it under ${chroot}\\`);
        return undefined;
      }
      return `/${p.slice(chroot.length + 1).split("\\").join("/")}`;
    };
    const sftpInbox = rel("erpInboxFolder", inbox);
    const sftpStaging = rel("erpStagingFolder", staging);
    if (sftpInbox && sftpStaging && sftpInbox.toLowerCase() === sftpStaging.toLowerCase()) {
      problem("erpStagingFolder", "is the same folder as erpInboxFolder", "use a separate folder on the same volume, e.g. C:\\Plutus\\Staging");
    } else if (sftpInbox && sftpStaging) {
      if (sftpInbox.toLowerCase().startsWith(`${sftpStaging.toLowerCase()}/`) || sftpStaging.toLowerCase().startsWith(`${sftpInbox.toLowerCase()}/`)) {
        problem("erpStagingFolder", "must not be nested in erpInboxFolder or contain it", "use sibling folders such as C:\\Plutus\\Inbox and C:\\Plutus\\Staging");
      } else {
        erpFolders = { chrootDirectory: chroot, inbox, staging, sftpInbox, sftpStaging };
      }
    }
  }

  const minAge = raw.agentMinAgeSeconds === undefined ? 30 : whole("agentMinAgeSeconds", raw.agentMinAgeSeconds, 0, 3600, "seconds");
  const agentBundleDir = str("agentBundleDir", "/path/to/agent/dist/bundle", { optional: true });
  let agentMode: AgentMode = "cron";
  if (raw.agentMode !== undefined) {
    if (raw.agentMode === "cron" || raw.agentMode === "watch") agentMode = raw.agentMode;
    else problem("agentMode", `must be "cron" or "watch", got ${JSON.stringify(raw.agentMode)}`, "pulumi config set plutus:agentMode watch (or cron, the default)");
  }

  if (problems.length > 0) throw new LabConfigError(problems);
  return {
    hostAccess: hostAccess!,
    ubuntuMasterVhdx: ubuntuMasterVhdx!,
    windowsMasterVhdx: windowsMasterVhdx!,
    vmFolder: vmFolder!,
    switchName: switchName!,
    subnet: subnet!,
    gatewayIp: gatewayIp!,
    nat: nat as boolean,
    dnsServers,
    webVm: webVm!,
    erpVm: erpVm!,
    webAdminUser: webAdminUser!,
    windowsAdminPassword: windowsAdminPassword as pulumi.Output<string>,
    openSshSource: openSshSource!,
    erpFolders: erpFolders!,
    agentMinAgeSeconds: minAge!,
    agentBundleDir,
    agentMode,
  };
}
