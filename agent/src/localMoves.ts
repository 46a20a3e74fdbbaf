import { promises as fs, lstatSync, readFileSync, renameSync, statSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { fsyncDir, moveWithoutOverwrite, writeFileAtomic } from "./durableFs";
import { crashPoint } from "./crashHook";
import { errorCode, errorMessage } from "./errors";

/**
 * Moves an outbox entry into the quarantine folder with `<name>.reason` (JSON) beside it.
 * Order names end in `.json`, so no reason file can ever take the place of a quarantined order.
 * The reason is made durable first, then the entry is moved: a kill in between leaves the entry in
 * the outbox and a reason without its file (not counted as quarantined, see listQuarantined), which
 * the next pass's quarantine of that name replaces. A folder stays in the outbox under a set-aside
 * name instead (see freeSetAsideName), and so does a symlink, fifo or socket when the quarantine is
 * on another volume; the note still goes to the quarantine folder. Returns where the entry now is.
 */
export async function quarantineFile(path: string | Buffer, displayName: string, reason: string, quarantineDir: string): Promise<string> {
  const safeName = displayName.replace(/[\0/]/g, "_") || "unnamed";
  if (lstatSync(path, { throwIfNoEntry: false })?.isDirectory()) return setAsideWithNote(path, displayName, reason, quarantineDir);
  let prepared: string | undefined;
  const writeReason = async (dest: string) => {
    // Beside an identical copy a crash left (another volume), its reason is already there.
    if (lstatSync(dest, { throwIfNoEntry: false }) && lstatSync(`${dest}.reason`, { throwIfNoEntry: false })) return;
    const note = { file: basename(dest), originalName: displayName, reason, quarantinedAt: new Date().toISOString() };
    prepared = dest;
    await writeFileAtomic(`${dest}.reason`, JSON.stringify(note, null, 2) + "\n", 0o640);
    crashPoint("after-quarantine-reason");
  };
  try {
    return await moveWithoutOverwrite(path, quarantineDir, safeName, writeReason);
  } catch (error) {
    // The entry did not move: the reason written for it would speak of a file that is not there.
    if (prepared !== undefined && !lstatSync(prepared, { throwIfNoEntry: false })) await fs.rm(`${prepared}.reason`, { force: true }).catch(() => undefined);
    // A symlink, fifo or socket cannot be copied to a quarantine on another volume: set aside
    // like a folder, or it would fail every pass.
    if (errorCode(error) !== "EXDEV") throw error;
    return setAsideWithNote(path, displayName, reason, quarantineDir, errorMessage(error));
  }
}

/** The note first (naming the set-aside name it will have), then the rename: never one without the other's record. */
async function setAsideWithNote(path: string | Buffer, displayName: string, reason: string, quarantineDir: string, notMovedBecause?: string): Promise<string> {
  const keptAs = freeSetAsideName(path);
  const keptAsText = keptAs.toString("utf8");
  const notePath = await freeNotePath(quarantineDir, basename(keptAsText).replace(/[\0/]/g, "_"));
  const note = { file: null, keptInOutboxAs: keptAsText, originalName: displayName, reason, ...(notMovedBecause ? { notMovedBecause } : {}), quarantinedAt: new Date().toISOString() };
  await writeFileAtomic(notePath, JSON.stringify(note, null, 2) + "\n", 0o640);
  crashPoint("after-quarantine-reason");
  renameSync(path, keptAs);
  await fsyncDir(dirname(keptAsText));
  return keptAsText;
}

/**
 * A folder belongs to whoever made it (the web shop's account), and the agent, not being root,
 * cannot take it over: moved into the quarantine folder, a handle kept open on it would let that
 * account write inside the agent's own folder. So it is renamed within the outbox to
 * `<name>.set-aside` (`<name>.1.set-aside`, … when taken), which the scan ignores. A rename within
 * one folder also needs no write permission on the folder being renamed, unlike a move out.
 */
function freeSetAsideName(path: string | Buffer): Buffer {
  const raw = typeof path === "string" ? Buffer.from(path) : path;
  for (let attempt = 0; attempt < 1000; attempt++) {
    const dest = Buffer.concat([raw, Buffer.from(attempt === 0 ? ".set-aside" : `.${attempt}.set-aside`)]);
    if (!lstatSync(dest, { throwIfNoEntry: false })) return dest;
  }
  throw new Error(`no free set-aside name for ${raw.toString("utf8")} after 1000 attempts`);
}

/**
 * `<name>.reason` in quarantine, numbered when taken. The name ends in `.set-aside`, so it can
 * never be the note of a quarantined order (those end in `.json.reason`). A note whose entry is
 * not in the outbox (left by a kill before the rename, or its folder removed by hand) is replaced.
 */
async function freeNotePath(quarantineDir: string, name: string): Promise<string> {
  await fs.mkdir(quarantineDir, { recursive: true, mode: 0o750 });
  for (let attempt = 0; attempt < 1000; attempt++) {
    const candidate = join(quarantineDir, `${attempt === 0 ? name : `${name}.${attempt}`}.reason`);
    if (!lstatSync(candidate, { throwIfNoEntry: false }) || !setAsideNoteIsLive(candidate)) return candidate;
  }
  throw new Error(`no free name for the note ${name}.reason in ${quarantineDir} after 1000 attempts`);
}

/** Notes of entries set aside in the outbox: `<name>.set-aside.reason`, `<name>.set-aside.<n>.reason`. */
const SET_ASIDE_NOTE = /\.set-aside(\.\d+)?\.reason$/;

/**
 * Whether a set-aside note speaks of an entry that is in the outbox. A note that cannot be read,
 * or names an entry it cannot name exactly (not UTF-8), is counted as live: the operator must see
 * it, and it is never replaced.
 */
function setAsideNoteIsLive(notePath: string): boolean {
  try {
    const keptAs = (JSON.parse(readFileSync(notePath, "utf8")) as { keptInOutboxAs?: unknown }).keptInOutboxAs;
    return typeof keptAs !== "string" || keptAs.includes("\uFFFD") || lstatSync(keptAs, { throwIfNoEntry: false }) !== undefined;
  } catch {
    return true;
  }
}

/** Local calendar date, the folder name under the archive. */
export function dayFolder(date: Date): string {
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
}

export async function archiveFile(path: string, name: string, archiveDir: string, deliveredAt: Date): Promise<string> {
  return moveWithoutOverwrite(path, join(archiveDir, dayFolder(deliveredAt)), name);
}

/**
 * What is quarantined, by name in the quarantine folder: every file there but reasons and temporary
 * files, and the notes of entries set aside in the outbox (while the entry is there). A reason
 * without its file is not counted: a kill between writing it and the move left the file in the
 * outbox (the next pass quarantines it again and replaces the reason), or the file was removed by
 * hand.
 */
export async function listQuarantined(quarantineDir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await fs.readdir(quarantineDir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw error;
  }
  return names.filter((n) => !n.endsWith(".tmp") && (!n.endsWith(".reason") || (SET_ASIDE_NOTE.test(n) && setAsideNoteIsLive(join(quarantineDir, n))))).sort();
}

export async function countQuarantined(quarantineDir: string): Promise<number> {
  return (await listQuarantined(quarantineDir)).length;
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
