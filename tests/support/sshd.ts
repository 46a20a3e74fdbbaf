import { spawn, execFileSync, ChildProcess } from "node:child_process";
import { createServer, connect } from "node:net";
import { existsSync, mkdirSync, writeFileSync, chmodSync, chownSync, rmSync, readFileSync, appendFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { join } from "node:path";

/**
 * A real OpenSSH sshd on 127.0.0.1 playing the ERP: an SFTP-only account jailed with
 * ChrootDirectory, like the Win32-OpenSSH account the infra program sets up. Must run as root.
 */
export const SSHD = "/usr/sbin/sshd";
export const ERP_USER = "plutus-erp";
const FIXTURE_ROOT = "/srv/plutus-test";

export interface SshdOptions {
  /** Extra sshd_config lines placed before the Match block. */
  extraConfig?: string[];
  /** Offer only password authentication (for the "never send a password" test). */
  passwordOnly?: boolean;
  /** Use this host key instead of generating one (two servers presenting the same key). */
  hostKeyPath?: string;
  /**
   * Put the jail (Inbox and Staging) on an ext4 file system of this many bytes on its own loop
   * device, so tests can `chattr +a` the folders (tmpfs and overlay file systems cannot).
   */
  ext4Bytes?: number;
  /** Arguments for the account's `internal-sftp` (e.g. `-P limits`: no limits@openssh.com, as Win32-OpenSSH 8.1). */
  sftpArgs?: string[];
}

export interface ErpServer {
  readonly host: string;
  readonly port: number;
  readonly username: string;
  /** Local folder that sshd serves as the account's root (ChrootDirectory). */
  readonly jail: string;
  /** Local paths of the SFTP folders /Inbox and /Staging. */
  readonly inboxDir: string;
  readonly stagingDir: string;
  readonly clientKeyPath: string;
  readonly hostKeyPath: string;
  readonly hostKeySha256: string;
  readonly logPath: string;
  readonly root: string;
  restart(): Promise<void>;
  stop(): Promise<void>;
  /** Removes every file and folder the fixture made. */
  destroy(): Promise<void>;
}

export function requireRootAndSshd(): void {
  if (process.getuid?.() !== 0) throw new Error("the sshd fixture must run as root (it creates a chroot and a system account)");
  if (!existsSync(SSHD)) throw new Error(`${SSHD} not found: install it with 'apt-get install -y openssh-server'`);
}

/** Two jest workers may both find a shared test account missing: only one of them may create it. */
const ACCOUNTS_LOCK = "/run/lock/plutus-tests-accounts.lock";

export function ensureSystemAccount(name: string): void {
  mkdirSync("/run/lock", { recursive: true, mode: 0o755 });
  // useradd --system locks the account ("!"); sshd without PAM then refuses even a valid key.
  const script = '{ id -u "$1" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$1"; } && usermod -p "*" "$1"';
  execFileSync("flock", ["--exclusive", ACCOUNTS_LOCK, "sh", "-c", script, "sh", name], { stdio: ["ignore", "ignore", "pipe"] });
}

export function uidOf(name: string): number {
  return Number(execFileSync("id", ["-u", name]).toString().trim());
}

export function sha256Fingerprint(publicKeyPath: string): string {
  const line = execFileSync("ssh-keygen", ["-lf", publicKeyPath]).toString();
  const match = /\b(SHA256:[A-Za-z0-9+/]{43})\b/.exec(line);
  if (!match) throw new Error(`ssh-keygen printed no SHA256 fingerprint for ${publicKeyPath}: ${line}`);
  return match[1];
}

export function generateKey(path: string): void {
  execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "plutus-test", "-f", path]);
  chmodSync(path, 0o600);
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => (typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port"))));
    });
  });
}

/** Resolves once something on host:port speaks SSH. */
export async function waitForBanner(host: string, port: number, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect(port, host);
      const timer = setTimeout(() => { socket.destroy(); resolve(false); }, 5_000);
      socket.once("data", (data) => { clearTimeout(timer); socket.destroy(); resolve(data.toString().startsWith("SSH-2.0")); });
      socket.once("error", () => { clearTimeout(timer); resolve(false); });
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing answered SSH on ${host}:${port} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function startErpServer(options: SshdOptions = {}): Promise<ErpServer> {
  requireRootAndSshd();
  ensureSystemAccount(ERP_USER);
  const uid = uidOf(ERP_USER);
  mkdirSync("/run/sshd", { recursive: true, mode: 0o755 });
  mkdirSync(FIXTURE_ROOT, { recursive: true, mode: 0o755 });
  chmodSync(FIXTURE_ROOT, 0o755);
  const root = join(FIXTURE_ROOT, `erp-${process.pid}-${randomBytes(4).toString("hex")}`);
  mkdirSync(root, { mode: 0o755 });
  const jail = join(root, "jail");
  const inboxDir = join(jail, "Inbox");
  const stagingDir = join(jail, "Staging");
  mkdirSync(jail, { mode: 0o755 });
  const volume = options.ext4Bytes ? mountExt4(join(root, "erp-ext4.img"), options.ext4Bytes, jail) : undefined;
  for (const dir of [inboxDir, stagingDir]) {
    mkdirSync(dir, { mode: 0o755 });
    chownSync(dir, uid, uid);
  }
  const hostKeyPath = options.hostKeyPath ?? join(root, "ssh_host_ed25519_key");
  if (!options.hostKeyPath) generateKey(hostKeyPath);
  const clientKeyPath = join(root, "client_ed25519");
  generateKey(clientKeyPath);
  const authorizedKeysDir = join(root, "authorized_keys");
  mkdirSync(authorizedKeysDir, { mode: 0o755 });
  writeFileSync(join(authorizedKeysDir, ERP_USER), readFileSync(`${clientKeyPath}.pub`), { mode: 0o644 });
  const port = await freePort();
  const logPath = join(root, "sshd.log");
  const configPath = join(root, "sshd_config");
  const auth = options.passwordOnly
    ? ["AuthenticationMethods password", "PasswordAuthentication yes", "PubkeyAuthentication no"]
    : ["AuthenticationMethods publickey", "PasswordAuthentication no", "PubkeyAuthentication yes"];
  writeFileSync(
    configPath,
    [
      `Port ${port}`,
      "ListenAddress 127.0.0.1",
      `HostKey ${hostKeyPath}`,
      `PidFile ${join(root, "sshd.pid")}`,
      `AuthorizedKeysFile ${authorizedKeysDir}/%u`,
      ...auth,
      "KbdInteractiveAuthentication no",
      "UsePAM no",
      "PermitRootLogin no",
      "LogLevel VERBOSE",
      "MaxStartups 100:30:200",
      "MaxSessions 50",
      "Subsystem sftp internal-sftp",
      ...(options.extraConfig ?? []),
      `Match User ${ERP_USER}`,
      `  ForceCommand ${["internal-sftp", ...(options.sftpArgs ?? [])].join(" ")}`,
      `  ChrootDirectory ${jail}`,
      "  AllowTcpForwarding no",
      "  X11Forwarding no",
      "",
    ].join("\n"),
    { mode: 0o600 },
  );
  execFileSync(SSHD, ["-t", "-f", configPath]);

  let child: ChildProcess | undefined;
  const start = async () => {
    child = spawn(SSHD, ["-D", "-e", "-f", configPath], { stdio: ["ignore", "ignore", "pipe"] });
    child.stderr?.on("data", (chunk: Buffer) => {
      // sshd may still be talking while destroy() removes the folder.
      try {
        appendFileSync(logPath, chunk);
      } catch {
        /* the fixture is being torn down */
      }
    });
    await waitForBanner("127.0.0.1", port);
  };
  const stop = async () => {
    const running = child;
    child = undefined;
    if (!running || running.exitCode !== null || running.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      running.once("exit", () => resolve());
      running.kill("SIGTERM");
    });
  };
  await start();
  return {
    host: "127.0.0.1",
    port,
    username: ERP_USER,
    jail,
    inboxDir,
    stagingDir,
    clientKeyPath,
    hostKeyPath,
    hostKeySha256: sha256Fingerprint(`${hostKeyPath}.pub`),
    logPath,
    root,
    restart: async () => {
      await stop();
      await start();
    },
    stop,
    destroy: async () => {
      await stop();
      if (volume) unmountExt4(volume, jail);
      rmSync(root, { recursive: true, force: true });
    },
  };
}

/** Creates an ext4 image, attaches it to a free loop device and mounts it on `at`; returns the device. */
function mountExt4(image: string, bytes: number, at: string): string {
  writeFileSync(image, "");
  execFileSync("truncate", ["-s", String(bytes), image]);
  execFileSync("mkfs.ext4", ["-q", "-F", image]);
  const device = execFileSync("losetup", ["--find", "--show", image]).toString().trim();
  try {
    execFileSync("mount", ["-t", "ext4", device, at]);
  } catch (error) {
    execFileSync("losetup", ["-d", device]);
    throw error;
  }
  chmodSync(at, 0o755);
  return device;
}

function unmountExt4(device: string, at: string): void {
  // Flags set by a test would keep the folders from being removed with the image's contents.
  execFileSync("chattr", ["-R", "-a", "-i", at], { stdio: "ignore" });
  execFileSync("umount", [at]);
  execFileSync("losetup", ["-d", device]);
}
