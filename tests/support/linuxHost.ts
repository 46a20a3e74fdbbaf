import { spawn, execFileSync } from "node:child_process";
import { appendFileSync, chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { randomBytes, randomInt } from "node:crypto";
import { join } from "node:path";
import { SSHD, generateKey, requireRootAndSshd, waitForBanner } from "./sshd";

/**
 * The Ubuntu web VM's stand-in: this machine's own file system, reached the way Pulumi reaches the
 * VM, over SSH with a pinned host key and root login by key, through an sshd that runs in a network
 * namespace of its own (veth pair, a /30 of 10.213.x.0). Must run as root.
 *
 * Programs started through this host's SSH see the namespace's network: services in the root
 * namespace are reached at `gatewayAddress` (the other end of the veth), as the VM reaches the ERP.
 */
export interface LinuxHost {
  /** Network namespace the host's sshd (and everything started through it) runs in. */
  readonly namespace: string;
  /** The host's address, as Pulumi would connect to it. */
  readonly address: string;
  /** This machine's end of the veth, as seen from inside the namespace. */
  readonly gatewayAddress: string;
  readonly port: number;
  readonly user: string;
  readonly privateKeyPath: string;
  /** The host key line (`ssh-ed25519 AAAA…`), as the stack pins it. */
  readonly hostPublicKey: string;
  /** Folder holding the fake `cloud-init` put on the SSH sessions' PATH, when asked for. */
  readonly fakeBinDir: string | undefined;
  /** Runs one command string over SSH (the remote login shell runs it, as for Pulumi's remote.Command). */
  ssh(command: string, options?: { input?: string | Buffer; timeoutMs?: number }): Promise<CommandResult>;
  /** Copies a local folder to `remoteDir` over SFTP (scp), replacing what was there. */
  copyDir(localDir: string, remoteDir: string): Promise<void>;
  /** Runs argv inside the host's network namespace, without SSH (e.g. cron's view of the world). */
  exec(argv: string[], options?: { input?: string | Buffer; timeoutMs?: number }): Promise<CommandResult>;
  destroy(): Promise<void>;
}

export interface CommandResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface LinuxHostOptions {
  /**
   * Log in as this account instead of root: created for the test with a login shell and
   * passwordless sudo, like the admin user cloud-init makes on the VM. Removed by destroy().
   */
  adminUser?: string;
  /**
   * Put a fake `cloud-init` on the SSH sessions' PATH (this machine has none). It understands only
   * `cloud-init status [--wait] [--long]` (a finished boot: `status: done`, exit 0) and fails
   * loudly on anything else.
   */
  fakeCloudInit?: boolean;
}

const FIXTURE_ROOT = "/srv/plutus-test";
const PREFIX = "plutus-host-";

export async function startLinuxHost(options: LinuxHostOptions = {}): Promise<LinuxHost> {
  requireRootAndSshd();
  removeStaleHosts();
  const tag = `${process.pid}-${randomBytes(3).toString("hex")}`;
  const namespace = `${PREFIX}${tag}`;
  const suffix = randomBytes(3).toString("hex");
  const outerIf = `plh${suffix}`;
  const innerIf = `pln${suffix}`;
  const subnet = freeSubnet();
  const gatewayAddress = `10.213.${subnet}.1`;
  const address = `10.213.${subnet}.2`;

  mkdirSync(FIXTURE_ROOT, { recursive: true, mode: 0o755 });
  chmodSync(FIXTURE_ROOT, 0o755);
  // sshd's StrictModes wants the authorized_keys chain root-owned and not world-writable: not /tmp.
  const root = join(FIXTURE_ROOT, `host-${tag}`);
  mkdirSync(root, { mode: 0o755 });

  const cleanups: Array<() => void> = [];
  const destroyNow = () => {
    for (const step of cleanups.reverse()) {
      try {
        step();
      } catch {
        // keep going: every later step must still run
      }
    }
    cleanups.length = 0;
  };
  cleanups.push(() => rmSync(root, { recursive: true, force: true }));
  try {
    ip(["netns", "add", namespace]);
    cleanups.push(() => deleteNamespace(namespace));
    ip(["link", "add", outerIf, "type", "veth", "peer", "name", innerIf]);
    cleanups.push(() => ip(["link", "del", outerIf], true));
    ip(["link", "set", innerIf, "netns", namespace]);
    ip(["addr", "add", `${gatewayAddress}/30`, "dev", outerIf]);
    ip(["link", "set", outerIf, "up"]);
    ip(["-n", namespace, "addr", "add", `${address}/30`, "dev", innerIf]);
    ip(["-n", namespace, "link", "set", innerIf, "up"]);
    ip(["-n", namespace, "link", "set", "lo", "up"]);

    const hostKeyPath = join(root, "ssh_host_ed25519_key");
    generateKey(hostKeyPath);
    const privateKeyPath = join(root, "root_ed25519");
    generateKey(privateKeyPath);
    const authorizedKeysDir = join(root, "authorized_keys");
    mkdirSync(authorizedKeysDir, { mode: 0o755 });
    writeFileSync(join(authorizedKeysDir, "root"), readFileSync(`${privateKeyPath}.pub`), { mode: 0o644 });
    const user = options.adminUser ?? "root";
    if (options.adminUser) {
      const admin = options.adminUser;
      if (!/^[a-z][a-z0-9-]{0,30}$/.test(admin)) throw new Error(`adminUser ${admin}: not a plain account name`);
      if (!existsSync("/usr/bin/sudo")) {
        // The VM's admin user works through sudo; a real sudo, not a stand-in.
        execFileSync("apt-get", ["install", "-y", "-qq", "sudo"], { stdio: "ignore", env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" } });
      }
      removeAccount(admin);
      execFileSync("useradd", ["--create-home", "--home-dir", join(root, "home"), "--shell", "/bin/bash", admin]);
      // useradd locks the account ("!"); sshd without PAM then refuses it even with a valid key.
      execFileSync("usermod", ["-p", "*", admin]);
      cleanups.push(() => removeAccount(admin));
      const sudoers = `/etc/sudoers.d/${admin}`;
      writeFileSync(`${sudoers}.tmp`, `${admin} ALL=(ALL:ALL) NOPASSWD: ALL\n`, { mode: 0o440 });
      execFileSync("visudo", ["-c", "-q", "-f", `${sudoers}.tmp`]);
      renameSync(`${sudoers}.tmp`, sudoers);
      cleanups.push(() => rmSync(sudoers, { force: true }));
      writeFileSync(join(authorizedKeysDir, admin), readFileSync(`${privateKeyPath}.pub`), { mode: 0o644 });
    }

    let fakeBinDir: string | undefined;
    const sessionPath = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"];
    if (options.fakeCloudInit) {
      fakeBinDir = join(root, "bin");
      mkdirSync(fakeBinDir, { mode: 0o755 });
      writeFileSync(
        join(fakeBinDir, "cloud-init"),
        [
          "#!/bin/sh",
          "# FAKE cloud-init of the test host: only `cloud-init status --wait`, answered as a finished boot.",
          '[ "${1:-}" = status ] || { echo "fake cloud-init (test fixture): unsupported arguments: $*" >&2; exit 64; }',
          "shift",
          "long=no",
          'for a in "$@"; do case "$a" in --wait) ;; --long) long=yes ;; *) echo "fake cloud-init (test fixture): unsupported argument: $a" >&2; exit 64 ;; esac; done',
          'echo "status: done"',
          'if [ "$long" = yes ]; then echo "extended_status: done"; echo "detail: fake cloud-init of the plutus test host"; echo "errors: []"; fi',
          "exit 0",
          "",
        ].join("\n"),
        { mode: 0o755 },
      );
      sessionPath.unshift(fakeBinDir);
    }

    const port = 22;
    const logPath = join(root, "sshd.log");
    const configPath = join(root, "sshd_config");
    writeFileSync(
      configPath,
      [
        `Port ${port}`,
        `ListenAddress ${address}`,
        `HostKey ${hostKeyPath}`,
        `PidFile ${join(root, "sshd.pid")}`,
        `AuthorizedKeysFile ${authorizedKeysDir}/%u`,
        "AuthenticationMethods publickey",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        "PermitRootLogin prohibit-password",
        `AllowUsers ${user}`,
        "LogLevel VERBOSE",
        `SetEnv PATH=${sessionPath.join(":")}`,
        "Subsystem sftp internal-sftp",
        "",
      ].join("\n"),
      { mode: 0o600 },
    );
    execFileSync(SSHD, ["-t", "-f", configPath]);
    mkdirSync("/run/sshd", { recursive: true, mode: 0o755 });
    const child = spawn("ip", ["netns", "exec", namespace, SSHD, "-D", "-e", "-f", configPath], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    child.stderr?.on("data", (chunk: Buffer) => {
      // sshd may still be talking while destroy() removes the folder.
      try {
        appendFileSync(logPath, chunk);
      } catch {
        /* the fixture is being torn down */
      }
    });
    cleanups.push(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    });
    await waitForBanner(address, port);

    const knownHostsPath = join(root, "known_hosts");
    const hostPublicKey = readFileSync(`${hostKeyPath}.pub`, "utf8").trim().split(" ").slice(0, 2).join(" ");
    writeFileSync(knownHostsPath, `${address} ${hostPublicKey}\n`, { mode: 0o644 });
    const sshOptions = [
      "-F", "/dev/null",
      "-i", privateKeyPath,
      "-o", "IdentitiesOnly=yes",
      "-o", "BatchMode=yes",
      "-o", "StrictHostKeyChecking=yes",
      "-o", `UserKnownHostsFile=${knownHostsPath}`,
      "-o", "GlobalKnownHostsFile=/dev/null",
      "-o", "ConnectTimeout=5",
      "-o", "LogLevel=ERROR",
    ];

    return {
      namespace,
      address,
      gatewayAddress,
      port,
      user,
      privateKeyPath,
      hostPublicKey,
      fakeBinDir,
      ssh: (command, opts = {}) => run("ssh", [...sshOptions, "-p", String(port), `${user}@${address}`, command], opts),
      copyDir: async (localDir, remoteDir) => {
        const cleared = await run("ssh", [...sshOptions, "-p", String(port), `${user}@${address}`, `rm -rf -- '${remoteDir}'`], {});
        if (cleared.code !== 0) throw new Error(`clearing ${remoteDir} on the test host failed: ${cleared.stderr}`);
        const copied = await run("scp", [...sshOptions, "-P", String(port), "-r", "-p", localDir, `${user}@${address}:${remoteDir}`], {});
        if (copied.code !== 0) throw new Error(`scp -r ${localDir} ${user}@${address}:${remoteDir} failed: ${copied.stderr}`);
      },
      exec: (argv, opts = {}) => run("ip", ["netns", "exec", namespace, ...argv], opts),
      destroy: async () => {
        const exited = child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise<void>((r) => child.once("exit", () => r()));
        destroyNow();
        await exited;
      },
    };
  } catch (error) {
    destroyNow();
    throw error;
  }
}

function run(file: string, argv: string[], options: { input?: string | Buffer; timeoutMs?: number }): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, argv, { stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 60_000);
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
    child.stdin.end(options.input ?? "");
  });
}

/** Removes a test account and whatever it still runs; its home lives in the fixture folder. */
function removeAccount(name: string): void {
  try {
    execFileSync("id", ["-u", name], { stdio: "ignore" });
  } catch {
    return;
  }
  try {
    execFileSync("pkill", ["-KILL", "-u", name], { stdio: "ignore" });
  } catch {
    // nothing running
  }
  execFileSync("userdel", [name], { stdio: "ignore" });
}

function ip(argv: string[], ignoreErrors = false): void {
  try {
    execFileSync("ip", argv, { stdio: ["ignore", "ignore", "pipe"] });
  } catch (error) {
    if (!ignoreErrors) throw new Error(`ip ${argv.join(" ")} failed: ${(error as { stderr?: Buffer }).stderr?.toString().trim()}`, { cause: error });
  }
}

/** Kills whatever still runs in the namespace (sshd and its sessions), then deletes it and its veth. */
function deleteNamespace(namespace: string): void {
  let pids: string[] = [];
  try {
    pids = execFileSync("ip", ["netns", "pids", namespace]).toString().split(/\s+/).filter(Boolean);
  } catch {
    // already gone
  }
  for (const pid of pids) {
    try {
      process.kill(Number(pid), "SIGKILL");
    } catch {
      // exited meanwhile
    }
  }
  ip(["netns", "del", namespace], true);
}

/** Namespaces (and fixture folders) left by a test process that no longer exists. */
function removeStaleHosts(): void {
  const names = execFileSync("ip", ["netns", "list"]).toString().split("\n").map((l) => l.split(" ")[0]);
  for (const name of names) {
    const match = new RegExp(`^${PREFIX}(\\d+)-[0-9a-f]+$`).exec(name);
    if (!match || isAlive(Number(match[1]))) continue;
    deleteNamespace(name);
    rmSync(join(FIXTURE_ROOT, `host-${name.slice(PREFIX.length)}`), { recursive: true, force: true });
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function freeSubnet(): number {
  const used = execFileSync("ip", ["-o", "-4", "addr", "show"]).toString();
  for (let attempt = 0; attempt < 50; attempt++) {
    const candidate = randomInt(0, 256);
    if (!used.includes(`10.213.${candidate}.`)) return candidate;
  }
  throw new Error("no free 10.213.x.0/30 subnet for the test host's veth");
}
