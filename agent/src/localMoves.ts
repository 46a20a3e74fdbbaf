import { promises as fs, lstatSync, readFileSync, renameSync, statSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { moveWithoutOverwrite, writeFileAtomic } from "./durableFs";
import { errorCode, errorMessage } from "./errors";

/**
 * Moves an outbox entry into the quarantine folder and writes `<name>.reason` (JSON) beside it.
 * Order names end in `.json`, so no reason file can ever take the place of a quarantined order.
 * A folder stays in the outbox under a set-aside name instead (see setAsideInOutbox); its note
 * still goes to the quarantine folder. Returns where the entry now is.
 */
export async function quarantineFile(path: string | Buffer, displayName: string, reason: string, quarantineDir: string): Promise<string> {
  const safeName = displayName.replace(/[\0/]/g, "_") || "unnamed";
  if (lstatSync(path, { throwIfNoEntry: false })?.isDirectory()) {
    const keptAs = setAsideInOutbox(path);
    const notePath = await freeNotePath(quarantineDir, basename(keptAs).replace(/[\0/]/g, "_"));
    const note = { file: null, keptInOutboxAs: keptAs, originalName: displayName, reason, quarantinedAt: new Date().toISOString() };
    await writeFileAtomic(notePath, JSON.stringify(note, null, 2) + "\n", 0o640);
    return keptAs;
  }
  const dest = await moveWithoutOverwrite(path, quarantineDir, safeName);
  const note = { file: basename(dest), originalName: displayName, reason, quarantinedAt: new Date().toISOString() };
  await writeFileAtomic(`${dest}.reason`, JSON.stringify(note, null, 2) + "\n", 0o640);
  return dest;
}

/**
 * A folder belongs to whoever made it (the web shop's account), and the agent, not being root,
 * cannot take it over: moved into the quarantine folder, a handle kept open on it would let that
 * account write inside the agent's own folder. So it is renamed within the outbox to
 * `<name>.set-aside` (`<name>.1.set-aside`, … when taken), which the scan ignores. A rename within
 * one folder also needs no write permission on the folder being renamed, unlike a move out.
 */
function setAsideInOutbox(path: string | Buffer): string {
  const raw = typeof path === "string" ? Buffer.from(path) : path;
  for (let attempt = 0; attempt < 1000; attempt++) {
    const dest = Buffer.concat([raw, Buffer.from(attempt === 0 ? ".set-aside" : `.${attempt}.set-aside`)]);
    if (lstatSync(dest, { throwIfNoEntry: false })) continue;
    renameSync(path, dest);
    return dest.toString("utf8");
  }
  throw new Error(`no free set-aside name for ${raw.toString("utf8")} after 1000 attempts`);
}

/**
 * `<name>.reason` in quarantine, numbered when taken. The name ends in `.set-aside`, so it can
 * never be the note of a quarantined order (those end in `.json.reason`).
 */
async function freeNotePath(quarantineDir: string, name: string): Promise<string> {
  await fs.mkdir(quarantineDir, { recursive: true, mode: 0o750 });
  for (let attempt = 0; attempt < 1000; attempt++) {
    const candidate = join(quarantineDir, `${attempt === 0 ? name : `${name}.${attempt}`}.reason`);
    if (!lstatSync(candidate, { throwIfNoEntry: false })) return candidate;
  }
  throw new Error(`no free name for the note ${name}.reason in ${quarantineDir} after 1000 attempts`);
}

/** Local calendar date, the folder name under the archive. */
export function dayFolder(date: Date): string {
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
}

export async function archiveFile(path: string, name: string, archiveDir: string, deliveredAt: Date): Promise<string> {
  return moveWithoutOverwrite(path, join(archiveDir, dayFolder(deliveredAt)), name);
}

/** Entries quarantined: files in quarantine, and notes of folders set aside in the outbox. */
export async function countQuarantined(quarantineDir: string): Promise<number> {
  try {
    const names = await fs.readdir(quarantineDir);
    const quarantined = new Set(names.filter((n) => !n.endsWith(".tmp")).map((n) => n.replace(/\.reason$/, "")));
    return quarantined.size;
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
