import type { Stats } from "node:fs";
import { dirname } from "node:path";

/**
 * chokidar's `ignored` for the outbox: what its initial scan finds is not watched, until it changes.
 *
 * chokidar 4 puts an `fs.watch` (an inotify watch, a listener, the file's Stats and its own
 * bookkeeping) on every file it tracks, about 3.7 KiB resident per file: a backlog of 100,000
 * orders at start cost 360 MiB before the first delivery. Those files need no event: the watcher's
 * rescan after `ready` hands each of them to the pass or to the completeness rule, which looks at
 * them again until they are taken. What does need an event is a change after that (an in-place
 * write to a file the rule found not to be an order, a name gone and created again). Any such
 * change gives the file a new ctime (every write, rename, link, chmod or truncate sets it, from the
 * file system's own clock), and chokidar re-reads the folder on the folder's own event, asks this
 * filter again and, the ctime being different, tracks the file from then on and emits `add`. On a
 * file system with whole-second timestamps (ext3, ext4 with 128-byte inodes) a write within the
 * same second keeps the ctime: the size is compared too, which catches a file completed in place
 * (it grows). So each entry of the initial scan is remembered by its path, ctime and size only
 * (about 150 bytes), and forgotten once it changed or left the outbox.
 */
export class StartScanFilter {
  /** Path (as chokidar builds it: root + "/" + name) → [ctimeMs, size] when the initial scan saw it. */
  private readonly unchanged = new Map<string, [number, number]>();
  private scanning = true;

  /** `root`: the outbox exactly as passed to chokidar (absolute, no trailing slash). */
  constructor(private readonly root: string) {}

  /** The function for chokidar's `ignored` option (called with and without Stats). */
  readonly ignored = (path: string, stats?: Stats): boolean => {
    // Without Stats chokidar only asks before it lstats: never ignore on a name alone.
    if (!stats || dirname(path) !== this.root) return false;
    if (this.scanning) {
      this.unchanged.set(path, [stats.ctimeMs, stats.size]);
      return true;
    }
    const seen = this.unchanged.get(path);
    if (seen === undefined) return false;
    if (seen[0] === stats.ctimeMs && seen[1] === stats.size) return true;
    this.unchanged.delete(path);
    return false;
  };

  /**
   * chokidar is ready: its initial scan is over. Called before the rescan that takes over what the
   * scan found (everything it saw until now is in that rescan's listing).
   */
  scanDone(): void {
    this.scanning = false;
  }

  /** Entries remembered and not yet changed or gone. */
  get size(): number {
    return this.unchanged.size;
  }

  /** Forgets every entry whose name is not in `present` (a fresh outbox listing): it was delivered or moved. */
  retainOnly(present: ReadonlySet<string>): void {
    const from = this.root.length + 1;
    for (const path of this.unchanged.keys()) if (!present.has(path.slice(from))) this.unchanged.delete(path);
  }
}
