import { spawn, ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync, appendFileSync } from "node:fs";
import { connect } from "node:net";
import { createServer } from "node:net";
import { join } from "node:path";
import { userInfo } from "node:os";
import { startEmbeddedSftpServer } from "./embeddedSftpServer";

export const SYSTEM_SSHD = "/usr/sbin/sshd";

export interface StandInKeys {
  hostKeyPath: string;
  hostKey: string;
  clientPublicKey: string;
}

export interface ErpStandIn {
  kind: "openssh" | "embedded";
  port: number;
  username: string;
  /** SFTP paths the agent uses. */
  inbox: string;
  staging: string;
  /** Local folders behind them. */
  inboxDir: string;
  stagingDir: string;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => (typeof address === "object" && address ? resolve(address.port) : reject(new Error("no free port"))));
    });
  });
}

async function waitForSsh(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect(port, "127.0.0.1");
      socket.once("data", (d) => {
        socket.destroy();
        resolve(d.toString().startsWith("SSH-2.0"));
      });
      socket.once("error", () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`the ERP stand-in did not answer on 127.0.0.1:${port} within ${timeoutMs} ms`);
}

/**
 * OpenSSH's own sshd with a private config under `dir`, serving only SFTP (internal-sftp) to the
 * current account, public key only. Without root there is no ChrootDirectory, so the SFTP paths
 * are the folders' absolute paths.
 */
export async function startOpenSshStandIn(dir: string, keys: StandInKeys): Promise<ErpStandIn> {
  const user = userInfo().username;
  const erpRoot = join(dir, "erp");
  const inboxDir = join(erpRoot, "Inbox");
  const stagingDir = join(erpRoot, "Staging");
  mkdirSync(inboxDir, { recursive: true });
  mkdirSync(stagingDir, { recursive: true });
  const authorizedKeys = join(dir, "authorized_keys");
  writeFileSync(authorizedKeys, keys.clientPublicKey + "\n", { mode: 0o600 });
  if (process.getuid?.() === 0) mkdirSync("/run/sshd", { recursive: true, mode: 0o755 });
  const port = await freePort();
  const config = join(dir, "sshd_config");
  writeFileSync(
    config,
    [
      `Port ${port}`,
      "ListenAddress 127.0.0.1",
      `HostKey ${keys.hostKeyPath}`,
      `PidFile ${join(dir, "sshd.pid")}`,
      `AuthorizedKeysFile ${authorizedKeys}`,
      "AuthenticationMethods publickey",
      "PasswordAuthentication no",
      "KbdInteractiveAuthentication no",
      "UsePAM no",
      "StrictModes no",
      "PermitRootLogin prohibit-password",
      "Subsystem sftp internal-sftp",
      `Match User ${user}`,
      "  ForceCommand internal-sftp",
      "  AllowTcpForwarding no",
      "  X11Forwarding no",
      "",
    ].join("\n"),
    { mode: 0o600 },
  );
  const logPath = join(dir, "sshd.log");
  const child: ChildProcess = spawn(SYSTEM_SSHD, ["-D", "-e", "-f", config], { stdio: ["ignore", "ignore", "pipe"] });
  child.stderr?.on("data", (chunk: Buffer) => appendFileSync(logPath, chunk));
  const exited = new Promise<never>((_, reject) =>
    child.once("exit", (code) => reject(new Error(`sshd exited with code ${code}; see ${logPath}`))),
  );
  await Promise.race([waitForSsh(port, 10_000), exited]);
  exited.catch(() => undefined);
  return {
    kind: "openssh",
    port,
    username: user,
    inbox: inboxDir,
    staging: stagingDir,
    inboxDir,
    stagingDir,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      await new Promise<void>((resolve) => {
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
      });
    },
  };
}

/** The ssh2-based fallback: the same contract, jailed like a chroot ("/Inbox", "/Staging"). */
export async function startEmbeddedStandIn(dir: string, keys: StandInKeys): Promise<ErpStandIn> {
  const jail = join(dir, "erp");
  const inboxDir = join(jail, "Inbox");
  const stagingDir = join(jail, "Staging");
  mkdirSync(inboxDir, { recursive: true });
  mkdirSync(stagingDir, { recursive: true });
  const server = await startEmbeddedSftpServer({ root: jail, hostKey: keys.hostKey, username: "plutus-sync", authorizedKey: keys.clientPublicKey });
  return { kind: "embedded", port: server.port, username: "plutus-sync", inbox: "/Inbox", staging: "/Staging", inboxDir, stagingDir, stop: server.close };
}

export function systemSshdAvailable(): boolean {
  return existsSync(SYSTEM_SSHD);
}
