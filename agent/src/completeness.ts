import { closeSync, fstatSync, lstatSync, openSync, readSync, constants } from "node:fs";
import { join } from "node:path";
import { jsonProblem } from "./orderFile";

/** What the watcher sees of an outbox file when an event (or a rescan) names it. */
export interface FileLook {
  size: number;
  mtimeMs: number;
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
 * A file that is complete the first time it is looked at was renamed in (or written and closed
 * before its first event was handled): taken at once. A file first seen incomplete is being
 * written in place: taken once it is complete and its size and modification time have not changed
 * for `settleMs`. A file that never becomes complete is left to the minAgeSeconds rule of the
 * rescan and the cron pass, which quarantine it with its reason.
 */
export class CompletenessRule {
  private readonly seen = new Map<string, { size: number; mtimeMs: number; since: number }>();

  constructor(private readonly settleMs: number) {}

  /** `look` undefined: the file is gone. Duplicate calls with the same look are harmless. */
  judge(name: string, look: FileLook | undefined, now: number): Verdict {
    const before = this.seen.get(name);
    if (!look) {
      this.seen.delete(name);
      return { take: false };
    }
    if (!before) {
      if (look.complete) return { take: true };
      this.seen.set(name, { size: look.size, mtimeMs: look.mtimeMs, since: now });
      return { take: false, recheckAt: now + this.settleMs };
    }
    if (before.size !== look.size || before.mtimeMs !== look.mtimeMs) {
      this.seen.set(name, { size: look.size, mtimeMs: look.mtimeMs, since: now });
      return { take: false, recheckAt: now + this.settleMs };
    }
    if (now - before.since < this.settleMs) return { take: false, recheckAt: before.since + this.settleMs };
    if (!look.complete) return { take: false };
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

  /**
   * Forgets every tracked file not in `present` (a fresh outbox listing). A file that never
   * became complete is quarantined by a pass, and its move out of the outbox is no event the
   * watcher handles: without this its entry would stay for the life of the process.
   */
  retainOnly(present: ReadonlySet<string>): void {
    for (const name of this.seen.keys()) if (!present.has(name)) this.seen.delete(name);
  }
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
