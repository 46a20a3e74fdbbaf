import { promises as fs, constants, lstatSync, renameSync } from "node:fs";
import { dirname, join } from "node:path";
import { randomBytes } from "node:crypto";
import { errorCode } from "./errors";

/** Makes a rename or unlink in `dir` survive a power cut. */
export async function fsyncDir(dir: string): Promise<void> {
  return dirSyncs.sync(dir);
}

/**
 * Group commit for directory fsyncs: a caller waits for an fsync that STARTED after its call, so
 * its rename is covered; callers arriving while one runs share the next one. With many files in
 * flight this turns one fsync per file into one per batch.
 */
class DirSyncs {
  private readonly state = new Map<string, { running?: Promise<void>; next?: Promise<void> }>();

  sync(dir: string): Promise<void> {
    let s = this.state.get(dir);
    if (!s) this.state.set(dir, (s = {}));
    const st = s;
    if (!st.running) {
      st.running = fsyncDirNow(dir).finally(() => {
        st.running = undefined;
      });
      return st.running;
    }
    st.next ??= st.running.catch(() => undefined).then(() => {
      st.next = undefined;
      return this.sync(dir);
    });
    return st.next;
  }
}
const dirSyncs = new DirSyncs();

async function fsyncDirNow(dir: string): Promise<void> {
  const handle = await fs.open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Replaces `path` with `content` so that readers see the old or the new file, never a mix. */
export async function writeFileAtomic(path: string, content: string | Buffer, mode = 0o600): Promise<void> {
  const temp = join(dirname(path), `.${randomBytes(6).toString("hex")}.tmp`);
  const handle = await fs.open(temp, "wx", mode);
  try {
    await handle.writeFile(content);
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await fs.rename(temp, path);
  } catch (error) {
    await fs.rm(temp, { force: true });
    throw error;
  }
  await fsyncDir(dirname(path));
}

/** Folders this process already created: one mkdir per day folder, not one per file. */
const madeDirs = new Set<string>();

/**
 * Moves a file into `destDir` without ever replacing an existing file: `name`, then
 * `<stem>.1<ext>`, `<stem>.2<ext>`, … Only the agent writes `destDir` (under the pass lock), so
 * "look, then rename" cannot race. Across volumes it copies, fsyncs, then unlinks; a crash in
 * between leaves an identical copy behind, which the next call recognises instead of copying
 * again. Returns the destination path.
 */
export async function moveWithoutOverwrite(source: string | Buffer, destDir: string, name: string): Promise<string> {
  if (!madeDirs.has(destDir)) {
    await fs.mkdir(destDir, { recursive: true, mode: 0o750 });
    madeDirs.add(destDir);
  }
  for (let attempt = 0; attempt < 1000; attempt++) {
    const dest = join(destDir, attempt === 0 ? name : numbered(name, attempt));
    // Synchronous: a page-cached lstat/rename costs microseconds, a thread-pool round trip far more.
    const existing = lstatSync(dest, { throwIfNoEntry: false });
    if (existing) {
      if (await sameRegularFileContent(source, dest)) {
        await fs.unlink(source);
        return dest;
      }
      continue;
    }
    try {
      renameSync(source, dest);
    } catch (error) {
      if (errorCode(error) !== "EXDEV") throw error;
      if (!(await copyExclusive(source, dest))) continue;
      // The copy's folder entry must be durable before the original goes.
      await fsyncDir(destDir);
      await fs.unlink(source);
      return dest;
    }
    await fsyncDir(destDir);
    return dest;
  }
  throw new Error(`no free name for ${name} in ${destDir} after 1000 attempts`);
}

async function sameRegularFileContent(a: string | Buffer, b: string): Promise<boolean> {
  const [statA, statB] = await Promise.all([fs.lstat(a), fs.lstat(b)]);
  if (!statA.isFile() || !statB.isFile() || statA.size !== statB.size) return false;
  const [contentA, contentB] = await Promise.all([fs.readFile(a), fs.readFile(b)]);
  return contentA.equals(contentB);
}

/** Copies without replacing; false when `dest` exists. Removes a partial copy on failure. */
async function copyExclusive(source: string | Buffer, dest: string): Promise<boolean> {
  const sourceStat = await fs.lstat(source);
  if (!sourceStat.isFile()) {
    // A fifo, socket or symlink cannot be copied as data; across volumes it must stay put.
    throw Object.assign(new Error(`cannot move a ${describeKind(sourceStat)} across volumes`), { code: "EXDEV" });
  }
  let handle;
  try {
    handle = await fs.open(dest, "wx", 0o640);
  } catch (error) {
    if (errorCode(error) === "EEXIST") return false;
    throw error;
  }
  try {
    await handle.writeFile(await fs.readFile(source));
    await handle.sync();
    await handle.close();
  } catch (error) {
    await handle.close().catch(() => undefined);
    await fs.rm(dest, { force: true });
    throw error;
  }
  return true;
}

export function describeKind(stat: import("node:fs").Stats): string {
  if (stat.isSymbolicLink()) return "symbolic link";
  if (stat.isDirectory()) return "directory";
  if (stat.isFIFO()) return "fifo";
  if (stat.isSocket()) return "socket";
  if (stat.isCharacterDevice() || stat.isBlockDevice()) return "device";
  return "regular file";
}

function numbered(name: string, n: number): string {
  const dot = name.lastIndexOf(".");
  return dot > 0 ? `${name.slice(0, dot)}.${n}${name.slice(dot)}` : `${name}.${n}`;
}
