import { promises as fs, constants } from "node:fs";
import { join } from "node:path";
import { fsyncDir, writeFileAtomic } from "./durableFs";
import { durablePoint } from "./crashHook";

/**
 * The durable record of every delivery that reached the commit point. Where a local file sits
 * plus this journal is its state; the remote rename is the single commit point.
 *
 *   commit    written and fsynced BEFORE the rename: the remote staging and inbox folders and
 *             names used, the hash, and the id of the staging folder's sentinel (see Courier)
 *   published the rename happened (or recovery proved it): the order is in the ERP's hands
 *   archived  the local file left the outbox: the entry is finished
 *   abandoned an operator decided an in-doubt entry was never delivered (`resolve --resend`):
 *             the file is still in the outbox and is sent again as a new delivery
 */
export type JournalRecord =
  | ({ t: "commit"; id: string; name: string; sha256: string; size: number; staging: string; target: string; at: string } & RemoteFolders)
  | { t: "published"; id: string; target: string; at: string }
  | { t: "archived"; id: string; archivedAs: string | null; at: string }
  | { t: "abandoned"; id: string; reason: string; at: string }
  | { t: "doubt"; id: string; reason: string; at: string };

export type EntryState = "committing" | "published";

/** In a `doubt` reason: between the reason as reported and what a later pass found on the server. */
export const EVIDENCE_MARK = "; since then: ";

/** What a later pass found on the server about an in-doubt entry, if anything. */
export function doubtEvidence(doubt: string | undefined): string | undefined {
  const at = doubt?.indexOf(EVIDENCE_MARK) ?? -1;
  return at === -1 ? undefined : doubt!.slice(at + EVIDENCE_MARK.length);
}

/**
 * Where an upload went, as the commit record saw it. Absent in records written before these were
 * kept: such an entry can only be decided from a staging copy that is still there.
 */
export interface RemoteFolders {
  /** The remote staging folder the upload went to. */
  stagingDir?: string;
  /** The remote inbox folder the rename targets. */
  inboxDir?: string;
  /** Content of the staging folder's sentinel when the upload was made there. */
  sentinel?: string;
  /**
   * Why this committing entry waits for an operator (`resolve`): a pass reported it in doubt (a
   * `doubt` record), or `plutus-sync repair` rebuilt it from a damaged journal and nothing on the
   * server could decide it. The agent never acts on it alone.
   */
  doubt?: string;
}

export interface JournalEntry extends RemoteFolders {
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

export const JOURNAL_FILE = "journal.jsonl";

export class Journal {
  private readonly open = new Map<string, JournalEntry>();
  private queue: { line: string; resolve: () => void; reject: (e: unknown) => void }[] = [];
  private flushing: Promise<void> | undefined;

  private constructor(
    private readonly path: string,
    private handle: fs.FileHandle,
    /** Bytes in the file that are whole records; a failed append is cut back to this. */
    private size: number,
    /** A torn final line (killed mid-write) that was cut off on open. */
    readonly skippedLines: number,
  ) {}

  static async open(stateDir: string): Promise<Journal> {
    const path = join(stateDir, JOURNAL_FILE);
    const { records, wholeBytes, tornTail, existed } = await readRecords(path);
    const handle = await fs.open(path, constants.O_RDWR | constants.O_APPEND | constants.O_CREAT, 0o600);
    try {
      if (tornTail) {
        // Appending after a torn line would glue the next record onto it.
        await handle.truncate(wholeBytes);
        await handle.sync();
      }
      if (!existed) await fsyncDir(stateDir);
      if (tornTail || !existed) durablePoint(path);
    } catch (error) {
      await handle.close();
      throw error;
    }
    const journal = new Journal(path, handle, wholeBytes, tornTail ? 1 : 0);
    for (const record of records) journal.apply(record);
    return journal;
  }

  /** The unfinished entries, read without opening the journal for writing (for `status`). */
  static async peek(stateDir: string): Promise<JournalEntry[]> {
    const { records } = await readRecords(join(stateDir, JOURNAL_FILE));
    const journal = new Journal("", undefined as unknown as fs.FileHandle, 0, 0);
    for (const record of records) journal.apply(record);
    return journal.entries();
  }

  /** Entries that are not finished: in doubt (committing) or awaiting local archiving (published). */
  entries(): JournalEntry[] {
    return [...this.open.values()];
  }

  entry(id: string): JournalEntry | undefined {
    return this.open.get(id);
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

  /**
   * Appends without waiting for (or starting) an fsync: the line goes to disk with the next
   * durable record, in order. Only for records that recovery can re-derive from the server.
   */
  note(record: JournalRecord): void {
    this.queue.push({ line: JSON.stringify(record) + "\n", resolve: () => undefined, reject: () => undefined });
    this.apply(record);
  }

  private async flush(): Promise<void> {
    while (this.queue.length > 0) {
      const batch = this.queue;
      this.queue = [];
      const bytes = Buffer.from(batch.map((item) => item.line).join(""));
      try {
        for (let offset = 0; offset < bytes.length; ) {
          const { bytesWritten } = await this.handle.write(bytes, offset, bytes.length - offset);
          if (bytesWritten <= 0) throw new Error(`journal ${this.path}: the write made no progress`);
          offset += bytesWritten;
        }
        await this.handle.datasync();
        durablePoint(this.path);
        this.size += bytes.length;
        for (const item of batch) item.resolve();
      } catch (error) {
        // A partial append (disk full) must not stay: the next record would be glued onto it.
        await this.handle.truncate(this.size).catch(() => undefined);
        for (const item of batch) item.reject(error);
      }
    }
    this.flushing = undefined;
  }

  private apply(record: JournalRecord): void {
    switch (record.t) {
      case "commit": {
        const { t: _t, at: _at, ...entry } = record;
        this.open.set(record.id, { ...entry, state: "committing" });
        break;
      }
      case "published": {
        const entry = this.open.get(record.id);
        if (entry) {
          entry.state = "published";
          entry.target = record.target;
        }
        break;
      }
      case "doubt": {
        const entry = this.open.get(record.id);
        if (entry) entry.doubt = record.reason;
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
    await this.drain();
    const lines: string[] = [];
    for (const entry of this.open.values()) {
      const { state: _state, doubt, ...commit } = entry;
      lines.push(JSON.stringify({ t: "commit", ...commit, at: new Date().toISOString() } satisfies JournalRecord));
      if (doubt !== undefined) lines.push(JSON.stringify({ t: "doubt", id: entry.id, reason: doubt, at: new Date().toISOString() } satisfies JournalRecord));
      if (entry.state === "published") lines.push(JSON.stringify({ t: "published", id: entry.id, target: entry.target, at: new Date().toISOString() } satisfies JournalRecord));
    }
    const content = lines.map((l) => l + "\n").join("");
    await this.handle.close();
    await writeFileAtomic(this.path, content);
    durablePoint(this.path);
    this.handle = await fs.open(this.path, constants.O_RDWR | constants.O_APPEND | constants.O_CREAT, 0o600);
    this.size = Buffer.byteLength(content);
  }

  /** Writes and fsyncs whatever is queued, notes included. */
  private async drain(): Promise<void> {
    if (this.queue.length > 0) this.flushing ??= this.flush();
    if (this.flushing) await this.flushing;
  }

  async close(): Promise<void> {
    await this.drain();
    await this.handle.close();
  }
}

export class JournalCorruptError extends Error {}

/**
 * Parses the journal. Only the last line may be torn (a crash mid-append); a damaged line before
 * it means the file cannot be trusted, and without it exactly-once cannot be promised.
 */
async function readRecords(path: string): Promise<{ records: JournalRecord[]; wholeBytes: number; tornTail: boolean; existed: boolean }> {
  let content: Buffer;
  try {
    content = await fs.readFile(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
    return { records: [], wholeBytes: 0, tornTail: false, existed: false };
  }
  const wholeBytes = content.lastIndexOf(0x0a) + 1;
  const records: JournalRecord[] = [];
  const lines = content.subarray(0, wholeBytes).toString("utf8").split("\n");
  // The split leaves one empty string after the final newline; the journal never writes an empty
  // line, so any other blank line is a record overwritten (e.g. by spaces), not nothing.
  for (let i = 0; i < lines.length - 1; i++) {
    let record: unknown;
    try {
      record = JSON.parse(lines[i]);
    } catch {
      record = undefined;
    }
    if (!isJournalRecord(record)) throw new JournalCorruptError(`journal ${path} is damaged at line ${i + 1}`);
    records.push(record);
  }
  return { records, wholeBytes, tornTail: wholeBytes < content.length, existed: true };
}

const RECORD_TYPES = new Set(["commit", "published", "archived", "abandoned", "doubt"]);

/** A parsed line that has the shape of a record: anything else is damage, even when it is JSON. */
export function isJournalRecord(value: unknown): value is JournalRecord {
  if (typeof value !== "object" || value === null) return false;
  const record = value as Record<string, unknown>;
  if (typeof record.t !== "string" || !RECORD_TYPES.has(record.t) || typeof record.id !== "string") return false;
  if (record.t === "doubt") return typeof record.reason === "string";
  if (record.t !== "commit") return true;
  return ["name", "sha256", "staging", "target"].every((k) => typeof record[k] === "string") && typeof record.size === "number";
}
