import { promises as fs, constants as fsConstants, existsSync } from "node:fs";
import { createHash, randomUUID } from "node:crypto";
import { join } from "node:path";
import type { AgentConfig } from "@plutus/shared";
import { Journal, JournalEntry, JournalRecord, JOURNAL_FILE, isJournalRecord } from "./journal";
import { acquirePassLock } from "./lock";
import { RemoteLink } from "./remoteLink";
import { sftpTarget } from "./sftpSession";
import { Courier, traceOrder } from "./courier";
import { agentId } from "./stateFiles";
import { isOrderFileName } from "./orderFile";
import { writeFileAtomic } from "./durableFs";
import { InDoubtError, StateError, errorMessage } from "./errors";
import type { Logger } from "./logger";

/** What `plutus-sync repair` did: one line per finding, and whether anything still needs an operator. */
export interface RepairReport {
  lines: string[];
  inDoubt: number;
  failed: number;
}

/** The fields of a journal line as far as they could be read. */
interface Salvaged {
  line: number;
  t?: string;
  id?: string;
  name?: string;
  sha256?: string;
  size?: number;
  staging?: string;
  target?: string;
  stagingDir?: string;
  inboxDir?: string;
  sentinel?: string;
}

const RECORD_TYPES = new Set(["commit", "published", "archived", "abandoned"]);

/**
 * Makes a damaged journal usable again without guessing. Every readable record is kept; a damaged
 * line is read field by field as far as it can be. A commit record whose remote folders, staging
 * name and sentinel survive is settled by the same rule as recovery (staging copy present: not
 * delivered; absent in the proven staging folder: delivered). An order whose record cannot be read
 * well enough (every outbox order no readable record owns, when the line's name is lost too) is
 * looked for on the server: its bytes in the inbox = delivered, a staging upload of ours with its
 * bytes = never renamed; neither = in doubt, held for `plutus-sync resolve`. Only then is the
 * journal rewritten (the damaged one kept beside it), and passes can run again.
 */
export async function repairJournal(config: AgentConfig, privateKey: Buffer, log: Logger): Promise<RepairReport> {
  const path = join(config.stateDir, JOURNAL_FILE);
  if (!existsSync(path)) return { lines: [`no journal in ${config.stateDir}: nothing to repair`], inDoubt: 0, failed: 0 };
  const lock = await acquirePassLock(config.stateDir, (config.passDeadlineSeconds + 60) * 1000).catch((error) => {
    throw new StateError(`cannot take the pass lock in ${config.stateDir}: ${errorMessage(error)}`, { cause: error });
  });
  if (!lock) throw new StateError(`a pass is running on ${config.stateDir}; try again when it has finished`);
  const link = new RemoteLink(sftpTarget(config, privateKey), log, config.retries, config.retryBaseDelayMs);
  try {
    const content = await fs.readFile(path);
    const { records, damaged } = readLeniently(content);
    if (damaged.length === 0) return { lines: [`journal ${path} is intact: nothing to repair`], inDoubt: 0, failed: 0 };

    const report: RepairReport = { lines: [], inDoubt: 0, failed: 0 };
    const say = (line: string) => report.lines.push(line);
    const open = new Map<string, JournalEntry>();
    const rebuilt = new Set<string>();
    const questions: { line: number; name?: string }[] = [];
    for (const item of [...records, ...damaged].sort((a, b) => a.line - b.line)) {
      if ("record" in item) apply(open, item.record);
      else if (item.fields.t === "commit" || item.fields.t === undefined || !RECORD_TYPES.has(item.fields.t)) {
        const commit = completeCommit(item.fields) ?? (await completeFromOutbox(config, item.fields));
        if (commit) {
          apply(open, commit);
          rebuilt.add(commit.id);
          say(`line ${item.line}: the commit record of ${commit.name} could be read`);
        } else questions.push({ line: item.line, name: item.fields.name });
      } else if (item.fields.id !== undefined) {
        // A damaged note of a later step: applied as far as it says which entry it closes.
        const at = new Date().toISOString();
        const entry = open.get(item.fields.id);
        if (item.fields.t === "published") apply(open, { t: "published", id: item.fields.id, target: item.fields.target ?? entry?.target ?? "", at });
        else apply(open, { t: item.fields.t as "archived", id: item.fields.id, archivedAs: null, at } as JournalRecord);
        say(`line ${item.line}: a damaged "${item.fields.t}" record of ${entry?.name ?? `entry ${item.fields.id}`} could be read`);
      } else {
        // Which entry it closed is lost: the entry stays open and is settled from the server.
        say(`line ${item.line}: a damaged "${item.fields.t}" record without a readable id; any entry it closed is checked against the ERP`);
      }
    }

    const id = await agentId(config.stateDir);
    const owned = new Set([...open.values()].map((e) => e.name));
    const candidates = new Map<string, number>();
    for (const question of questions) {
      if (question.name !== undefined && isOrderFileName(question.name)) {
        if (!owned.has(question.name)) candidates.set(question.name, question.line);
        continue;
      }
      say(`line ${question.line}: unreadable; which order it recorded is lost, so every order in the outbox that no readable record owns is looked for on the ERP`);
      for (const name of (await fs.readdir(config.outbox)).filter(isOrderFileName).sort()) if (!owned.has(name) && !candidates.has(name)) candidates.set(name, question.line);
    }

    let sweepOwed = false;
    if (candidates.size > 0) {
      const session = await link.session();
      for (const [name, line] of candidates) {
        const local = await fs.readFile(join(config.outbox, name)).catch((error) => {
          if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
          throw error;
        });
        if (!local) {
          say(`${name}: not in the outbox any more; nothing to hold`);
          continue;
        }
        const sha256 = createHash("sha256").update(local).digest("hex");
        const trace = await traceOrder(session, config, id, name, local, sha256);
        const base = { name, sha256, size: local.length, staging: "", target: name, stagingDir: config.remote.staging, inboxDir: config.remote.inbox };
        if (trace === "in-inbox") {
          const entryId = randomUUID();
          open.set(entryId, { id: entryId, state: "published", ...base });
          say(`${name}: in the ERP's inbox with the same SHA-256: delivered`);
        } else if (trace === "in-staging") {
          sweepOwed = true;
          say(`${name}: its upload is still in the ERP's staging folder, never renamed: not delivered; the next run sends it`);
        } else {
          const entryId = randomUUID();
          const doubt = `its journal record (line ${line}) was damaged, and the ERP has neither these bytes in its inbox nor an upload of them in staging (it may have taken the order already)`;
          open.set(entryId, { id: entryId, state: "committing", ...base, doubt });
          report.inDoubt++;
          say(`${name}: in doubt: ${doubt}; settle it with plutus-sync resolve`);
        }
      }
    }

    const kept = join(config.stateDir, `${JOURNAL_FILE}.damaged-${new Date().toISOString().replace(/[-:]/g, "")}`);
    await fs.copyFile(path, kept, fsConstants.COPYFILE_EXCL);
    await writeFileAtomic(path, journalText(open.values()));
    if (sweepOwed) await fs.writeFile(join(config.stateDir, "staging-sweep"), `${new Date().toISOString()}\n`, { mode: 0o600 });
    log.warn("journal repaired", { event: "journal-repaired", damagedLines: damaged.map((d) => d.line), keptAs: kept, inDoubt: report.inDoubt });
    say(`the damaged journal is kept as ${kept}`);

    // The rebuilt entries are settled now, the way recovery would; what fails here, the next pass retries.
    const journal = await Journal.open(config.stateDir);
    try {
      const courier = new Courier(config, journal, link, log, id);
      for (const entry of journal.entries()) {
        if (!rebuilt.has(entry.id) && !(entry.state === "published" && entry.staging === "")) continue;
        try {
          const settled = entry.state === "committing" ? (await courier.settle(entry)).entry : entry;
          const outcome = await courier.archive(settled, undefined);
          say(`${entry.name}: delivered${outcome.archived ? (outcome.path ? `; archived as ${outcome.path}` : "; no outbox file left to archive") : `; archiving failed (${outcome.error}); the next run archives it`}`);
        } catch (error) {
          if (error instanceof InDoubtError) {
            report.inDoubt++;
            log.error("delivery in doubt; settle it with plutus-sync resolve", { event: "in-doubt", file: entry.name, reason: error.message });
            say(`${entry.name}: in doubt: ${error.message}`);
            continue;
          }
          report.failed++;
          say(`${entry.name}: could not be settled now (${errorMessage(error)}); the next run settles it`);
        }
      }
      for (const entry of journal.entries()) {
        if (entry.doubt !== undefined) log.error("delivery in doubt; settle it with plutus-sync resolve", { event: "in-doubt", file: entry.name, reason: entry.doubt });
      }
    } finally {
      await journal.compact().catch((error) => log.error("could not compact the journal", { event: "journal-compact-failed", error: errorMessage(error) }));
      await journal.close().catch(() => undefined);
    }
    return report;
  } finally {
    link.shutdown("repair finished");
    await lock.release().catch(() => undefined);
  }
}

function readLeniently(content: Buffer): { records: { line: number; record: JournalRecord }[]; damaged: { line: number; fields: Salvaged }[] } {
  // A torn last line (no newline) is what a crash mid-append leaves; opening the journal drops it.
  const whole = content.subarray(0, content.lastIndexOf(0x0a) + 1).toString("utf8").split("\n");
  const records: { line: number; record: JournalRecord }[] = [];
  const damaged: { line: number; fields: Salvaged }[] = [];
  whole.forEach((text, i) => {
    if (i === whole.length - 1) return;
    let record: unknown;
    try {
      record = JSON.parse(text);
    } catch {
      record = undefined;
    }
    if (isJournalRecord(record)) records.push({ line: i + 1, record });
    else damaged.push({ line: i + 1, fields: salvage(text, i + 1) });
  });
  return { records, damaged };
}

/** Reads `"key":"value"` pairs out of a line that is no longer JSON; a field that does not read cleanly is left out. */
function salvage(text: string, line: number): Salvaged {
  const str = (key: string, shape?: RegExp): string | undefined => {
    const match = new RegExp(`"${key}":("(?:[^"\\\\\\u0000-\\u001f]|\\\\.)*")`).exec(text);
    if (!match) return undefined;
    try {
      const value = JSON.parse(match[1]) as string;
      return shape && !shape.test(value) ? undefined : value;
    } catch {
      return undefined;
    }
  };
  const size = /"size":(\d{1,15})[,}]/.exec(text);
  return {
    line,
    t: str("t"),
    id: str("id", /^[0-9a-f-]{36}$/),
    name: str("name"),
    sha256: str("sha256", /^[0-9a-f]{64}$/),
    size: size ? Number(size[1]) : undefined,
    staging: str("staging", /^plutus-[0-9a-f]{12}-[0-9a-f-]{36}\.part$/),
    target: str("target"),
    stagingDir: str("stagingDir", /^\//),
    inboxDir: str("inboxDir", /^\//),
    sentinel: str("sentinel", /^[0-9a-f]{32}$/),
  };
}

/**
 * A damaged commit record that still says where its upload went (id, name, staging name and folder,
 * sentinel, inbox folder and target) can be settled like any other; a lost hash or size is taken
 * from the outbox file of that name by the caller's check only when those survive too.
 */
function completeCommit(f: Salvaged): Extract<JournalRecord, { t: "commit" }> | undefined {
  if (f.id === undefined || f.name === undefined || f.staging === undefined || f.target === undefined) return undefined;
  if (f.stagingDir === undefined || f.inboxDir === undefined || f.sentinel === undefined || f.sha256 === undefined || f.size === undefined) return undefined;
  return { t: "commit", id: f.id, name: f.name, sha256: f.sha256, size: f.size, staging: f.staging, target: f.target, stagingDir: f.stagingDir, inboxDir: f.inboxDir, sentinel: f.sentinel, at: new Date().toISOString() };
}

/** A commit record that lost only its hash or size: those of the outbox file of that name, which is what was read and sent. */
async function completeFromOutbox(config: AgentConfig, f: Salvaged): Promise<Extract<JournalRecord, { t: "commit" }> | undefined> {
  if (f.name === undefined || !isOrderFileName(f.name) || (f.sha256 !== undefined && f.size !== undefined)) return undefined;
  const local = await fs.readFile(join(config.outbox, f.name)).catch(() => undefined);
  if (!local) return undefined;
  return completeCommit({ ...f, sha256: createHash("sha256").update(local).digest("hex"), size: local.length });
}

function apply(open: Map<string, JournalEntry>, record: JournalRecord): void {
  if (record.t === "commit") {
    const { t: _t, at: _at, ...entry } = record;
    open.set(record.id, { ...entry, state: "committing" });
  } else if (record.t === "published") {
    const entry = open.get(record.id);
    if (entry) open.set(record.id, { ...entry, state: "published", target: record.target || entry.target });
  } else open.delete(record.id);
}

function journalText(entries: Iterable<JournalEntry>): string {
  const at = new Date().toISOString();
  const lines: string[] = [];
  for (const entry of entries) {
    const { state, ...commit } = entry;
    lines.push(JSON.stringify({ t: "commit", ...commit, at }));
    if (state === "published") lines.push(JSON.stringify({ t: "published", id: entry.id, target: entry.target, at }));
  }
  return lines.map((l) => `${l}\n`).join("");
}
