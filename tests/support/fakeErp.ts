import { promises as fs } from "node:fs";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { watch, FSWatcher } from "chokidar";

/** One file the fake ERP took out of the inbox. */
export interface Consumed {
  name: string;
  sha256: string;
  size: number;
  at: number;
}

export interface FakeErpOptions {
  /** Names a real ERP may legitimately see; anything else counts as "partial/temporary seen". */
  isFinalName?: (name: string) => boolean;
  /** Called each time a file is about to be taken from the inbox, before it is read (fault triggers). */
  onAppear?: (name: string) => void;
  /** Backstop scan interval, in case a watcher event is missed. */
  pollMs?: number;
}

/** An order name as the agent publishes it: `*.json`, not hidden, not a staging/probe name. */
export function looksFinal(name: string): boolean {
  return /\.json$/i.test(name) && !name.startsWith(".") && !/\.part$|\.probe$|^plutus-[0-9a-f]{12}-/i.test(name);
}

/**
 * Plays the ERP's import job on the local folder behind the SFTP inbox: every file is hashed,
 * recorded and removed as soon as it appears (chokidar, i.e. inotify, plus a polling backstop).
 * Every name ever seen is kept, so a temporary or partial name showing up, even for a moment
 * the watcher caught, is never missed.
 */
export class FakeErp {
  readonly consumed: Consumed[] = [];
  /** Every name ever noticed in the inbox, in order of first sight. */
  readonly seen: string[] = [];
  /** Names that are not final order names (staging, `.part`, probe, hidden…). */
  readonly temporarySeen: string[] = [];
  /** While paused, files are noticed but left in the inbox (an ERP that is slow or stopped). */
  paused = false;
  private readonly seenSet = new Set<string>();
  private readonly busy = new Set<string>();
  private watcher: FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private errors: string[] = [];

  private constructor(
    readonly inboxDir: string,
    private readonly options: FakeErpOptions,
  ) {}

  static async start(inboxDir: string, options: FakeErpOptions = {}): Promise<FakeErp> {
    const erp = new FakeErp(inboxDir, options);
    const watcher = watch(inboxDir, { depth: 0, ignoreInitial: false, persistent: true, awaitWriteFinish: false });
    erp.watcher = watcher;
    watcher.on("add", (path: string) => void erp.take(path.slice(path.lastIndexOf("/") + 1)));
    watcher.on("error", (error: unknown) => erp.errors.push(String(error)));
    await new Promise<void>((resolve) => watcher.once("ready", () => resolve()));
    erp.timer = setInterval(() => void erp.scan(), options.pollMs ?? 200);
    erp.timer.unref();
    await erp.scan();
    return erp;
  }

  /** Watcher problems (should stay empty). */
  get watchErrors(): readonly string[] {
    return this.errors;
  }

  private notice(name: string): void {
    if (this.seenSet.has(name)) return;
    this.seenSet.add(name);
    this.seen.push(name);
    if (!(this.options.isFinalName ?? looksFinal)(name)) this.temporarySeen.push(name);
  }

  private async scan(): Promise<void> {
    if (this.stopped) return;
    let names: string[];
    try {
      names = await fs.readdir(this.inboxDir);
    } catch {
      return; // the inbox may be missing on purpose
    }
    await Promise.all(names.map((name) => this.take(name)));
  }

  private async take(name: string): Promise<void> {
    if (this.stopped) return;
    this.notice(name);
    if (this.paused || this.busy.has(name)) return;
    this.busy.add(name);
    this.options.onAppear?.(name);
    const path = join(this.inboxDir, name);
    try {
      const stat = await fs.lstat(path);
      if (!stat.isFile()) return;
      const content = await fs.readFile(path);
      await fs.unlink(path);
      this.consumed.push({ name, sha256: createHash("sha256").update(content).digest("hex"), size: content.length, at: Date.now() });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT") this.errors.push(`${name}: ${String(error)}`);
    } finally {
      this.busy.delete(name);
    }
  }

  /** Takes everything now in the inbox (also while paused, when `force`), then resolves. */
  async drain(force = false): Promise<void> {
    const wasPaused = this.paused;
    if (force) this.paused = false;
    try {
      for (let i = 0; i < 50; i++) {
        await this.scan();
        const left = await fs.readdir(this.inboxDir).catch(() => [] as string[]);
        if (left.length === 0 && this.busy.size === 0) return;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    } finally {
      this.paused = wasPaused;
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await this.watcher?.close();
  }
}
