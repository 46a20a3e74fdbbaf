import { promises as fs, constants } from "node:fs";
import { join } from "node:path";
import { writeFileAtomic } from "./durableFs";

/**
 * The durable record of every delivery that reached the commit point. Where a local file sits
 * plus this journal is its state; the remote rename is the single commit point.
 *
 *   commit    written and fsynced BEFORE the rename: staging name, target name, hash
 *   published the rename happened (or recovery proved it): the order is in the ERP's hands
 *   archived  the local file left the outbox: the entry is finished
 *   abandoned recovery proved the rename never happened and removed the staging copy: the file
 *             is still in the outbox and will be sent again as a new delivery
 */
export type JournalRecord =
  | { t: "commit"; id: string; name: string; sha256: string; size: number; staging: string; target: string; at: string }
  | { t: "published"; id: string; target: string; at: string }
  | { t: "archived"; id: string; archivedAs: string | null; at: string }
  | { t: "abandoned"; id: string; reason: string; at: string };

export type EntryState = "committing" | "published";

export interface JournalEntry {
  id: string;
  state: EntryState;
  /** The outbox file name. */
  name: string;
  sha256: string;
  size: number;
  /** File name in the remote staging folder. */
  staging: string;
  /** File name in the remote inbox. */
  target: string;
}

const JOURNAL_FILE = "journal.jsonl";

export class Journal {
  private readonly open = new Map<string, JournalEntry>();
  private queue: { line: string; resolve: () => void; reject: (e: unknown) => void }[] = [];
  private flushing: Promise<void> | undefined;

  private constructor(
    private readonly path: string,
    private handle: fs.FileHandle,
    /** Lines that could not be parsed (a torn final write after a crash). */
    readonly skippedLines: number,
  ) {}

  static async open(stateDir: string): Promise<Journal> {
    const path = join(stateDir, JOURNAL_FILE);
    const { records, skipped } = await readRecords(path);
    const handle = await fs.open(path, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT, 0o600);
    const journal = new Journal(path, handle, skipped);
    for (const record of records) journal.apply(record);
    return journal;
  }

  /** The unfinished entries, read without opening the journal for writing (for `status`). */
  static async peek(stateDir: string): Promise<JournalEntry[]> {
    const { records } = await readRecords(join(stateDir, JOURNAL_FILE));
    const journal = new Journal("", undefined as unknown as fs.FileHandle, 0);
    for (const record of records) journal.apply(record);
    return journal.entries();
  }

  /** Entries that are not finished: in doubt (committing) or awaiting local archiving (published). */
  entries(): JournalEntry[] {
    return [...this.open.values()];
  }

  entryFor(name: string): JournalEntry | undefined {
    for (const entry of this.open.values()) if (entry.name === name) return entry;
    return undefined;
  }

  /** Appends and fsyncs; concurrent calls share one write and one fsync (group commit). */
  async record(record: JournalRecord): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.queue.push({ line: JSON.stringify(record) + "\n", resolve, reject });
      if (!this.flushing) this.flushing = this.flush();
    });
    this.apply(record);
  }

  private async flush(): Promise<void> {
    while (this.queue.length > 0) {
      const batch = this.queue;
      this.queue = [];
      try {
        await this.handle.write(batch.map((item) => item.line).join(""));
        await this.handle.datasync();
        for (const item of batch) item.resolve();
      } catch (error) {
        for (const item of batch) item.reject(error);
      }
    }
    this.flushing = undefined;
  }

  private apply(record: JournalRecord): void {
    switch (record.t) {
      case "commit":
        this.open.set(record.id, {
          id: record.id,
          state: "committing",
          name: record.name,
          sha256: record.sha256,
          size: record.size,
          staging: record.staging,
          target: record.target,
        });
        break;
      case "published": {
        const entry = this.open.get(record.id);
        if (entry) {
          entry.state = "published";
          entry.target = record.target;
        }
        break;
      }
      case "archived":
      case "abandoned":
        this.open.delete(record.id);
        break;
    }
  }

  /** Rewrites the journal with only the unfinished entries, so it does not grow forever. */
  async compact(): Promise<void> {
    if (this.flushing) await this.flushing;
    const lines: string[] = [];
    for (const entry of this.open.values()) {
      lines.push(JSON.stringify({ t: "commit", id: entry.id, name: entry.name, sha256: entry.sha256, size: entry.size, staging: entry.staging, target: entry.target, at: new Date().toISOString() } satisfies JournalRecord));
      if (entry.state === "published") lines.push(JSON.stringify({ t: "published", id: entry.id, target: entry.target, at: new Date().toISOString() } satisfies JournalRecord));
    }
    await this.handle.close();
    await writeFileAtomic(this.path, lines.map((l) => l + "\n").join(""));
    this.handle = await fs.open(this.path, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT, 0o600);
  }

  async close(): Promise<void> {
    if (this.flushing) await this.flushing;
    await this.handle.close();
  }
}

async function readRecords(path: string): Promise<{ records: JournalRecord[]; skipped: number }> {
  let text = "";
  try {
    text = await fs.readFile(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
  }
  const records: JournalRecord[] = [];
  let skipped = 0;
  for (const line of text.split("\n")) {
    if (line.trim() === "") continue;
    try {
      records.push(JSON.parse(line) as JournalRecord);
    } catch {
      skipped++;
    }
  }
  return { records, skipped };
}
