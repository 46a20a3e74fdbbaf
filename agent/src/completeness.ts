import { closeSync, fstatSync, lstatSync, openSync, readSync, constants } from "node:fs";
import { join } from "node:path";
import { jsonProblem } from "./orderFile";

/** What an lstat of an outbox file tells, without reading it. */
export interface FileStamp {
  size: number;
  mtimeMs: number;
}

/** What the watcher sees of an outbox file once it reads it. */
export interface FileLook extends FileStamp {
  /**
   * The content is a JSON object (an order written in place is not one until its last byte is
   * written), or the entry is something the pass quarantines at once (a link, a folder, too big).
   */
  complete: boolean;
}

export type Verdict = { take: true } | { take: false; recheckAt?: number };

/**
 * When the watcher hands a file to a delivery batch.
 *
 * Taken once it is complete and its size and modification time have not changed for `settleMs`
 * since it was first looked at, however it arrived. A file complete at first sight may be a
 * rename, or an in-place write between two `write` calls (`{...}`, then a newline): inotify as
 * libuv reports it does not tell the two apart, and the mtime cannot either (a rename right after
 * the write keeps a fresh one; coarse or skewed file system clocks make an in-place write look
 * old), and taking such a prefix delivers the order twice. The content is read only once the
 * stamp has been still for `settleMs` (a file growing in place costs an lstat per look, not a read
 * and a parse of up to maxFileBytes on the event loop), and once per stamp. A file that never
 * becomes complete is left to the minAgeSeconds rule of the rescan and the cron pass, which
 * quarantine it with its reason.
 */
export class CompletenessRule {
  private readonly seen = new Map<string, { size: number; mtimeMs: number; since: number; notAnOrder?: true }>();

  constructor(private readonly settleMs: number) {}

  /**
   * `stamp` undefined: the file is gone. `look` reads the file; called only when the stamp has been
   * still for settleMs. Duplicate calls with the same stamp are harmless.
   */
  judge(name: string, stamp: FileStamp | undefined, now: number, look: () => FileLook | undefined): Verdict {
    const before = this.seen.get(name);
    if (!stamp) {
      this.seen.delete(name);
      return { take: false };
    }
    if (!before || changed(before, stamp)) return this.startSettling(name, stamp, now);
    if (now - before.since < this.settleMs) return { take: false, recheckAt: before.since + this.settleMs };
    if (before.notAnOrder) return { take: false };
    const content = look();
    if (!content) {
      this.seen.delete(name);
      return { take: false };
    }
    if (changed(before, content)) return this.startSettling(name, content, now);
    if (!content.complete) {
      before.notAnOrder = true;
      return { take: false };
    }
    this.seen.delete(name);
    return { take: true };
  }

  private startSettling(name: string, stamp: FileStamp, now: number): Verdict {
    this.seen.set(name, { size: stamp.size, mtimeMs: stamp.mtimeMs, since: now });
    return { take: false, recheckAt: now + this.settleMs };
  }

  /** Files seen and not yet taken (being written, or never complete). */
  get tracked(): number {
    return this.seen.size;
  }

  forget(name: string): void {
    this.seen.delete(name);
  }

  /**
   * Forgets every tracked file not in `present` (a fresh outbox listing). A file that never
   * became complete is quarantined by a pass, and its move out of the outbox is no event the
   * watcher handles: without this its entry would stay for the life of the process.
   */
  retainOnly(present: ReadonlySet<string>): void {
    for (const name of this.seen.keys()) if (!present.has(name)) this.seen.delete(name);
  }
}

function changed(before: FileStamp, now: FileStamp): boolean {
  return before.size !== now.size || before.mtimeMs !== now.mtimeMs;
}

/** The stamp of one outbox file (never following a link); undefined when it is gone. */
export function stampOf(outbox: string, name: string): FileStamp | undefined {
  const stat = lstatSync(join(outbox, name), { throwIfNoEntry: false });
  return stat && { size: stat.size, mtimeMs: stat.mtimeMs };
}

/**
 * Looks at one outbox file for the completeness rule: lstat, and for a regular file of at most
 * `maxFileBytes` a read and a JSON check (never following links, never blocking on a fifo).
 * Undefined when the file is gone.
 */
export function lookAt(outbox: string, name: string, maxFileBytes: number): FileLook | undefined {
  const path = join(outbox, name);
  const stat = lstatSync(path, { throwIfNoEntry: false });
  if (!stat) return undefined;
  const seen = { size: stat.size, mtimeMs: stat.mtimeMs };
  if (!stat.isFile() || stat.size > maxFileBytes) return { ...seen, complete: true };
  // A second link may be a producer's link-then-unlink "rename" half done: wait for the rule.
  if (stat.nlink > 1) return { ...seen, complete: false };
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "ENOENT" ? undefined : { ...seen, complete: true };
  }
  try {
    const content = Buffer.allocUnsafe(stat.size);
    let offset = 0;
    while (offset < content.length) {
      const read = readSync(fd, content, offset, content.length - offset, offset);
      if (read === 0) break;
      offset += read;
    }
    const after = fstatSync(fd);
    if (offset !== stat.size || after.size !== stat.size || after.mtimeMs !== stat.mtimeMs) {
      return { size: after.size, mtimeMs: after.mtimeMs, complete: false };
    }
    return { ...seen, complete: jsonProblem(content) === undefined };
  } finally {
    closeSync(fd);
  }
}
