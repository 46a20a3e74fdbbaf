import { constants, lstatSync, promises as fs } from "node:fs";
import { join } from "node:path";
import { jsonProblem } from "./orderFile";

/** What the watcher sees of an outbox file when an event (or a rescan) names it. */
export interface FileLook {
  size: number;
  mtimeMs: number;
  /**
   * The content is a JSON object (an order written in place is not one until its last byte is
   * written), or the entry is something the pass quarantines at once (a link, a folder, too big).
   * Undefined: a regular file whose content has not been read for this size and mtime (shapeOf).
   */
  complete: boolean | undefined;
}

/** `read`: the file has settled; read its content (readLook) and judge again with it. */
export type Verdict = { take: true } | { take: false; recheckAt?: number; read?: true };

/**
 * When the watcher hands a file to a delivery batch.
 *
 * Taken once it is complete and its size and modification time have not changed for `settleMs`
 * since it was first looked at, however it arrived. A file complete at first sight may be a
 * rename, or an in-place write between two `write` calls (`{...}`, then a newline): inotify as
 * libuv reports it does not tell the two apart, and the mtime cannot either (a rename right after
 * the write keeps a fresh one; coarse or skewed file system clocks make an in-place write look
 * old), and taking such a prefix delivers the order twice. A file that never becomes complete is
 * left to the minAgeSeconds rule of the rescan and the cron pass, which quarantine it with its
 * reason.
 */
export class CompletenessRule {
  /** `incomplete`: read at this size and mtime and not a JSON object (not read again until it changes). */
  private readonly seen = new Map<string, { size: number; mtimeMs: number; since: number; incomplete?: true }>();

  constructor(private readonly settleMs: number) {}

  /** `look` undefined: the file is gone. Duplicate calls with the same look are harmless. */
  judge(name: string, look: FileLook | undefined, now: number): Verdict {
    const before = this.seen.get(name);
    if (!look) {
      this.seen.delete(name);
      return { take: false };
    }
    if (!before || before.size !== look.size || before.mtimeMs !== look.mtimeMs) {
      this.seen.set(name, { size: look.size, mtimeMs: look.mtimeMs, since: now });
      return { take: false, recheckAt: now + this.settleMs };
    }
    if (now - before.since < this.settleMs) return { take: false, recheckAt: before.since + this.settleMs };
    // Content is read only now: a file still growing costs one lstat per look, never a read.
    if (look.complete === undefined) return before.incomplete ? { take: false } : { take: false, read: true };
    if (!look.complete) {
      before.incomplete = true;
      return { take: false };
    }
    this.seen.delete(name);
    return { take: true };
  }

  /** Files seen and not yet taken (being written, or never complete). */
  get tracked(): number {
    return this.seen.size;
  }

  forget(name: string): void {
    this.seen.delete(name);
  }
}

/**
 * The cheap look at an outbox file for every event and recheck: one lstat, never a read.
 * `complete` is known without reading for what the pass quarantines at once (not a regular
 * file, larger than `maxFileBytes`) and for a file with a second hard link (a producer's
 * link-then-unlink rename half done: not yet). Undefined when the file is gone.
 */
export function shapeOf(outbox: string, name: string, maxFileBytes: number): FileLook | undefined {
  const stat = lstatSync(join(outbox, name), { throwIfNoEntry: false });
  if (!stat) return undefined;
  const seen = { size: stat.size, mtimeMs: stat.mtimeMs };
  if (!stat.isFile() || stat.size > maxFileBytes) return { ...seen, complete: true };
  if (stat.nlink > 1) return { ...seen, complete: false };
  return { ...seen, complete: undefined };
}

/**
 * Reads a settled outbox file for the completeness rule (asynchronously: a large file does not
 * hold up other orders) and checks it is a JSON object, never following links, never blocking
 * on a fifo. The size and mtime are those the read saw; a file changed during the read is not
 * complete. Undefined when the file is gone.
 */
export async function readLook(outbox: string, name: string, maxFileBytes: number): Promise<FileLook | undefined> {
  const shape = shapeOf(outbox, name, maxFileBytes);
  if (!shape || shape.complete !== undefined) return shape;
  let file: fs.FileHandle;
  try {
    file = await fs.open(join(outbox, name), constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "ENOENT" ? undefined : { ...shape, complete: true };
  }
  try {
    const before = await file.stat();
    // Swapped for something else between the lstat and the open: the rule looks again.
    if (!before.isFile() || before.size > maxFileBytes) return { size: before.size, mtimeMs: before.mtimeMs, complete: false };
    const content = Buffer.allocUnsafe(before.size);
    let offset = 0;
    while (offset < content.length) {
      const { bytesRead } = await file.read(content, offset, content.length - offset, offset);
      if (bytesRead === 0) break;
      offset += bytesRead;
    }
    const after = await file.stat();
    if (offset !== before.size || after.size !== before.size || after.mtimeMs !== before.mtimeMs) {
      return { size: after.size, mtimeMs: after.mtimeMs, complete: false };
    }
    return { size: before.size, mtimeMs: before.mtimeMs, complete: jsonProblem(content) === undefined };
  } finally {
    await file.close();
  }
}
