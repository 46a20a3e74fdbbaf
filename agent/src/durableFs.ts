import { promises as fs, constants, lstatSync, renameSync, type Stats } from "node:fs";
import type { FileHandle } from "node:fs/promises";
import { dirname, join } from "node:path";
import { randomBytes } from "node:crypto";
import { errorCode } from "./errors";
import { crashPoint } from "./crashHook";

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
 * "look, then rename" cannot race. Across volumes it copies (to a temporary name, renamed to
 * `dest` once durable), fsyncs, then unlinks; a crash in between leaves an identical copy behind,
 * which the next call recognises instead of copying again. Returns the destination path.
 *
 * `prepare(dest)` runs before the source leaves its place for `dest` (before the rename or copy,
 * and before the source is unlinked beside an identical copy): what must be durable before the
 * file is found at `dest` (a quarantine reason) is written there, so a kill never leaves the file
 * moved without it.
 */
export async function moveWithoutOverwrite(source: string | Buffer, destDir: string, name: string, prepare?: (dest: string) => Promise<void>): Promise<string> {
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
        await prepare?.(dest);
        await fs.unlink(source);
        return dest;
      }
      continue;
    }
    await prepare?.(dest);
    try {
      renameSync(source, dest);
    } catch (error) {
      if (errorCode(error) !== "EXDEV") throw error;
      const copied = await copyExclusive(source, dest);
      if (!copied) continue;
      // The copy's folder entry must be durable before the original goes.
      await fsyncDir(destDir);
      // Only the file that was copied goes: a file put under the name since then stays.
      const now = lstatSync(source, { throwIfNoEntry: false });
      if (now && now.dev === copied.dev && now.ino === copied.ino) await fs.unlink(source);
      return dest;
    }
    await fsyncDir(destDir);
    return dest;
  }
  throw new Error(`no free name for ${name} in ${destDir} after 1000 attempts`);
}

/** Bytes read or written at once when copying or comparing files: memory stays bounded. */
const COPY_CHUNK_BYTES = 1024 * 1024;

/** Opens what is at `path` now without following a link or blocking on a fifo. */
function openNoFollow(path: string | Buffer): Promise<FileHandle> {
  return fs.open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
}

async function sameRegularFileContent(a: string | Buffer, b: string): Promise<boolean> {
  const handles: FileHandle[] = [];
  try {
    for (const path of [a, b]) {
      const handle = await openNoFollow(path).catch(() => undefined);
      if (!handle) return false;
      handles.push(handle);
    }
    const [statA, statB] = await Promise.all(handles.map((h) => h.stat()));
    if (!statA.isFile() || !statB.isFile() || statA.size !== statB.size) return false;
    const chunkA = Buffer.allocUnsafe(COPY_CHUNK_BYTES);
    const chunkB = Buffer.allocUnsafe(COPY_CHUNK_BYTES);
    for (let position = 0; ; ) {
      const [readA, readB] = await Promise.all([handles[0].read(chunkA, 0, COPY_CHUNK_BYTES, position), handles[1].read(chunkB, 0, COPY_CHUNK_BYTES, position)]);
      if (readA.bytesRead !== readB.bytesRead || !chunkA.subarray(0, readA.bytesRead).equals(chunkB.subarray(0, readB.bytesRead))) return false;
      if (readA.bytesRead === 0) return true;
      position += readA.bytesRead;
    }
  } finally {
    await Promise.all(handles.map((h) => h.close().catch(() => undefined)));
  }
}

/**
 * Copies without replacing; false when `dest` exists. The source is read through the descriptor
 * that was checked (a link or fifo swapped in under its name is never followed or opened for a
 * blocking read), in bounded chunks, and runs of zeros stay holes, so a large sparse file costs
 * neither memory nor disk. Removes a partial copy on failure. Returns the source's identity.
 */
async function copyExclusive(source: string | Buffer, dest: string): Promise<Stats | false> {
  let input: FileHandle;
  try {
    input = await openNoFollow(source);
  } catch (error) {
    // A symlink cannot be copied as data; across volumes it must stay put.
    if (errorCode(error) === "ELOOP") throw Object.assign(new Error("cannot move a symbolic link across volumes"), { code: "EXDEV" });
    // Opening a unix socket fails so.
    if (errorCode(error) === "ENXIO") throw Object.assign(new Error("cannot move a socket across volumes"), { code: "EXDEV" });
    throw error;
  }
  try {
    const sourceStat = await input.stat();
    if (!sourceStat.isFile()) {
      // A fifo, socket or folder cannot be copied as data; across volumes it must stay put.
      throw Object.assign(new Error(`cannot move a ${describeKind(sourceStat)} across volumes`), { code: "EXDEV" });
    }
    if (lstatSync(dest, { throwIfNoEntry: false })) return false;
    // The copy is written under a temporary name and linked to `dest` only once complete and
    // durable: a kill mid-copy leaves no partial file under the order's name (only the agent writes
    // this folder, under the pass lock, so the next move of this name truncates and reuses it).
    const partial = partialCopyPath(dest);
    const output = await fs.open(partial, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW, 0o640);
    try {
      const chunk = Buffer.allocUnsafe(COPY_CHUNK_BYTES);
      const zeros = Buffer.alloc(COPY_CHUNK_BYTES);
      let position = 0;
      for (;;) {
        const { bytesRead } = await input.read(chunk, 0, COPY_CHUNK_BYTES, position);
        if (bytesRead === 0) break;
        const data = chunk.subarray(0, bytesRead);
        if (!data.equals(zeros.subarray(0, bytesRead))) {
          for (let written = 0; written < bytesRead; ) {
            written += (await output.write(data, written, bytesRead - written, position + written)).bytesWritten;
          }
        }
        position += bytesRead;
        crashPoint("during-copy");
      }
      await output.truncate(position);
      await output.sync();
      await output.close();
    } catch (error) {
      await output.close().catch(() => undefined);
      await fs.rm(partial, { force: true });
      throw error;
    }
    // Look, then rename, as on one volume (only the agent writes here); a rename, unlike a hard
    // link, works on every file system an archive may be on (vfat, SMB).
    if (lstatSync(dest, { throwIfNoEntry: false })) {
      await fs.rm(partial, { force: true });
      return false;
    }
    renameSync(partial, dest);
    return sourceStat;
  } finally {
    await input.close().catch(() => undefined);
  }
}

/** Where a copy across volumes is written before it is linked under `dest` (its `.tmp` end keeps it out of listings). */
export function partialCopyPath(dest: string): string {
  return `${dest}.copy.tmp`;
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
