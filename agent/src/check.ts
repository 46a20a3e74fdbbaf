import { promises as fs, constants } from "node:fs";
import { randomBytes } from "node:crypto";
import type { AgentConfig } from "@plutus/shared";
import { SftpSession, sftpTarget } from "./sftpSession";
import { ConfigError, errorMessage } from "./errors";

/**
 * OpenSSH and Win32-OpenSSH ("OpenSSH_9.2p1", "OpenSSH_for_Windows_8.1") publish by link + unlink,
 * so a RENAME can never replace an order another writer put there first. Others (ProFTPD's
 * mod_sftp checks, then renames) can.
 */
export function linksOnRename(serverSoftware: string): boolean {
  return /^OpenSSH_/.test(serverSoftware);
}

/**
 * Proves the configuration end to end without sending an order: local folders, then the
 * connection and host key, then that staging and inbox exist and accept a probe file. The probe
 * is named `.plutus-check-<random>.probe` (never `*.json`) and removed at once.
 */
export async function runCheck(config: AgentConfig, privateKey: Buffer, say: (line: string) => void): Promise<void> {
  await fs.access(config.outbox, constants.R_OK | constants.W_OK | constants.X_OK).catch((error) => {
    throw new ConfigError(`outbox ${config.outbox} is not readable and writable by this account: ${errorMessage(error)}`);
  });
  for (const dir of [config.stateDir, config.archive, config.quarantine, config.logDir]) {
    await fs.mkdir(dir, { recursive: true, mode: 0o750 }).catch(() => undefined);
    await fs.access(dir, constants.W_OK).catch((error) => {
      throw new ConfigError(`${dir} is not writable by this account: ${errorMessage(error)}`);
    });
  }
  say(`OK local folders: ${config.outbox}, ${config.archive}, ${config.quarantine}, ${config.stateDir}, ${config.logDir}`);
  const session = await SftpSession.connect(sftpTarget(config, privateKey));
  try {
    say(`OK connected to ${config.remote.username}@${config.remote.host}:${config.remote.port}, host key ${config.remote.hostKeySha256}, server software ${session.serverSoftware}`);
    if (!linksOnRename(session.serverSoftware)) {
      say(
        `WARNING server software ${session.serverSoftware} is not OpenSSH or Win32-OpenSSH: exactly-once delivery is only guaranteed where RENAME never replaces a file (see README, "Supported ERP servers")`,
      );
    }
    for (const [what, folder] of [
      ["staging", config.remote.staging],
      ["inbox", config.remote.inbox],
    ] as const) {
      const stat = await session.stat(folder).catch((error) => {
        throw new ConfigError(`remote ${what} ${folder} cannot be used: ${errorMessage(error)}`);
      });
      if (!stat.isDirectory()) throw new ConfigError(`remote ${what} ${folder} is not a folder`);
    }
    const probe = `.plutus-check-${randomBytes(6).toString("hex")}.probe`;
    const stagingProbe = `${config.remote.staging.replace(/\/+$/, "")}/${probe}`;
    const inboxProbe = `${config.remote.inbox.replace(/\/+$/, "")}/${probe}`;
    try {
      const handle = await session.open(stagingProbe, "wx+");
      await session.write(handle, Buffer.from("plutus-sync check\n"));
      await session.closeHandle(handle);
    } catch (error) {
      throw new ConfigError(`remote staging ${config.remote.staging} is not writable: ${errorMessage(error)}`);
    }
    try {
      await session.rename(stagingProbe, inboxProbe);
    } catch (error) {
      await session.unlink(stagingProbe).catch(() => undefined);
      throw new ConfigError(`cannot rename from staging into inbox ${config.remote.inbox} (both must be writable and on one volume): ${errorMessage(error)}`);
    }
    await session.unlink(inboxProbe).catch(() => undefined);
    say(`OK remote staging ${config.remote.staging} and inbox ${config.remote.inbox} exist and are writable`);
  } finally {
    session.close();
  }
}
