import { promises as fs, readFileSync, statSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { moveWithoutOverwrite, writeFileAtomic } from "./durableFs";
import { errorCode, errorMessage } from "./errors";

/**
 * Moves an outbox entry into the quarantine folder and writes `<name>.reason` (JSON) beside it.
 * Order names end in `.json`, so no reason file can ever take the place of a quarantined order.
 */
export async function quarantineFile(path: string | Buffer, displayName: string, reason: string, quarantineDir: string): Promise<string> {
  const safeName = displayName.replace(/[\0/]/g, "_") || "unnamed";
  const dest = await moveWithoutOverwrite(path, quarantineDir, safeName);
  const note = { file: basename(dest), originalName: displayName, reason, quarantinedAt: new Date().toISOString() };
  await writeFileAtomic(`${dest}.reason`, JSON.stringify(note, null, 2) + "\n", 0o640);
  return dest;
}

/** Local calendar date, the folder name under the archive. */
export function dayFolder(date: Date): string {
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
}

export async function archiveFile(path: string, name: string, archiveDir: string, deliveredAt: Date): Promise<string> {
  return moveWithoutOverwrite(path, join(archiveDir, dayFolder(deliveredAt)), name);
}

/** Files waiting in quarantine (their `.reason` companions not counted). */
export async function countQuarantined(quarantineDir: string): Promise<number> {
  try {
    const names = await fs.readdir(quarantineDir);
    return names.filter((n) => !n.endsWith(".reason") && !n.endsWith(".tmp")).length;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return 0;
    throw error;
  }
}

/**
 * A move refused by permissions, said with what to do: the usual cause is a folder someone made
 * as root (an archive day folder created by hand), which the agent's account cannot write.
 */
export function explainMoveError(error: unknown): string {
  const code = errorCode(error);
  const { dest, path } = error as { dest?: string; path?: string };
  if ((code !== "EACCES" && code !== "EPERM") || (dest ?? path) === undefined) return errorMessage(error);
  const folder = dest !== undefined ? dirname(dest) : dirname(path!);
  const stat = statSync(folder, { throwIfNoEntry: false });
  if (!stat) return errorMessage(error);
  const owner = `${accountName(stat.uid)}:${groupName(stat.gid)} ${(stat.mode & 0o7777).toString(8).padStart(4, "0")}`;
  const me = accountName(process.getuid?.() ?? -1);
  return `${errorMessage(error)}: the folder ${folder} is ${owner}, not writable by ${me}; give it back to the agent (chown ${me}:${me} ${folder}, see "Moving an order to the archive by hand" in the operations guide); the file waits and is archived by the next run`;
}

function accountName(uid: number): string {
  return lookup("/etc/passwd", uid) ?? String(uid);
}

function groupName(gid: number): string {
  return lookup("/etc/group", gid) ?? String(gid);
}

function lookup(file: string, id: number): string | undefined {
  try {
    return readFileSync(file, "utf8").split("\n").map((l) => l.split(":")).find((f) => f[2] === String(id))?.[0];
  } catch {
    return undefined;
  }
}
