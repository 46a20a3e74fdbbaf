import { lstatSync, renameSync } from "node:fs";
import { createHash, randomBytes, randomUUID } from "node:crypto";
import { join } from "node:path";
import type { AgentConfig } from "@plutus/shared";
import { EVIDENCE_MARK, Journal, JournalEntry, JournalRecord } from "./journal";
import { RemoteLink } from "./remoteLink";
import { SftpSession, SFTP_NO_SUCH_FILE } from "./sftpSession";
import { archiveFile, explainMoveError } from "./localMoves";
import { moveWithoutOverwrite } from "./durableFs";
import { FileIdentity, hashLocalFile, sameIdentity } from "./orderFile";
import { crashPoint, pausePoint } from "./crashHook";
import { HostileReplyError, InDoubtError, OutcomeUnknownError, TransferError, errorCode, errorMessage, printable } from "./errors";
import type { Logger } from "./logger";

const posixJoin = (folder: string, name: string) => `${folder.replace(/\/+$/, "")}/${name}`;

/** `<stem>.<first 8 hex of sha256>.json`: where an order goes when its name is taken by other content. */
export function conflictName(name: string, sha256: string): string {
  const dot = name.lastIndexOf(".");
  return `${name.slice(0, dot)}.${sha256.slice(0, 8)}${name.slice(dot)}`;
}

/** The durable commit record of an entry (also written again when its target changes). */
function commitRecord(entry: JournalEntry): JournalRecord {
  const { state: _state, doubt: _doubt, ...fields } = entry;
  return { t: "commit", ...fields, at: new Date().toISOString() };
}

export type ArchiveOutcome = { archived: true; path: string | null } | { archived: false; error: string };

/** How an in-doubt entry was decided: `presumed` when only an absent staging copy says "renamed". */
export interface Settlement {
  entry: JournalEntry;
  presumed: boolean;
}

/** What the inbox holds under an entry's target name. */
type TargetContent = { kind: "absent" } | { kind: "ours" } | { kind: "other"; size: number; sha256?: string };

const SENTINEL_CONTENT = /^[0-9a-f]{32}$/;
/** A sentinel file larger than this is read as damaged without reading it. */
const SENTINEL_MAX_BYTES = 1024;

function cannotBeTold(name: string): string {
  return `; whether the ERP got ${name} cannot be told: it stays in the outbox until an operator runs plutus-sync resolve`;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Moves one order through the delivery protocol: upload to a unique staging name, verify size and
 * SHA-256 by reading it back, journal the commit (fsync), RENAME into the inbox, journal the
 * publication, archive locally. Also settles entries whose rename outcome is unknown.
 *
 * "Staging copy absent" only means "renamed" in the very folder the upload went to: a replaced,
 * recreated or re-configured staging folder answers NO_SUCH_FILE too. So the staging folder holds
 * this agent's sentinel, `plutus-<agent id>.sentinel`, whose random content each commit record
 * keeps; an absent copy is only presumed renamed where that sentinel is still found.
 */
export class Courier {
  /** Rename attempts the server refused while the target name was free. */
  renameRefusals = 0;
  /** No new rename attempt after this instant (the pass's stop-starting deadline). */
  stopStartingAt = Infinity;
  private sentinel: Promise<string> | undefined;

  constructor(
    private readonly config: AgentConfig,
    private readonly journal: Journal,
    private readonly link: RemoteLink,
    private readonly log: Logger,
    private readonly agentId: string,
  ) {}

  get stagingPrefix(): string {
    return `plutus-${this.agentId}-`;
  }

  get sentinelName(): string {
    return `plutus-${this.agentId}.sentinel`;
  }

  private stagingPath(entry: Pick<JournalEntry, "staging" | "stagingDir">): string {
    return posixJoin(entry.stagingDir ?? this.config.remote.staging, entry.staging);
  }

  private inboxPath(entry: Pick<JournalEntry, "target" | "inboxDir">): string {
    return posixJoin(entry.inboxDir ?? this.config.remote.inbox, entry.target);
  }

  /** Uploads and verifies; returns the journal entry at the commit point, renamed or not. */
  async uploadAndCommit(name: string, content: Buffer, sha256: string): Promise<JournalEntry> {
    const sentinel = await this.stagingSentinel();
    const session = await this.link.session();
    const staging = `${this.stagingPrefix}${randomUUID()}.part`;
    const stagingPath = posixJoin(this.config.remote.staging, staging);
    const handle = await session.open(stagingPath, "wx+");
    let failure: unknown;
    try {
      const readBack = await session.writeReadBackClose(handle, content);
      crashPoint("after-upload");
      const readBackSha256 = createHash("sha256").update(readBack).digest("hex");
      if (readBack.length !== content.length || readBackSha256 !== sha256) {
        failure = new TransferError(
          `verification of ${stagingPath} failed: sent ${content.length} bytes sha256 ${sha256}, read back ${readBack.length} bytes sha256 ${readBackSha256}`,
        );
      }
    } catch (error) {
      failure = error;
    }
    if (failure) {
      // Best effort: an upload left behind is removed by the next pass's orphan sweep.
      if (session.isOpen) await session.unlink(stagingPath).catch(() => undefined);
      throw failure;
    }
    crashPoint("after-verify");
    const entry: JournalEntry = {
      id: randomUUID(),
      state: "committing",
      name,
      sha256,
      size: content.length,
      staging,
      target: name,
      stagingDir: this.config.remote.staging,
      inboxDir: this.config.remote.inbox,
      sentinel,
    };
    await this.journal.record(commitRecord(entry));
    crashPoint("after-commit-record");
    return entry;
  }

  /**
   * The content of this agent's sentinel in the configured staging folder, created when absent.
   * Read once per pass, before the first upload and after recovery has checked the sentinels
   * that earlier commit records name (a new one must not stand in for a lost one).
   */
  private stagingSentinel(): Promise<string> {
    this.sentinel ??= this.establishSentinel().catch((error) => {
      this.sentinel = undefined;
      throw error;
    });
    return this.sentinel;
  }

  private async establishSentinel(): Promise<string> {
    const session = await this.link.session();
    const path = posixJoin(this.config.remote.staging, this.sentinelName);
    const found = await this.readSentinel(session, path);
    if (found !== undefined && SENTINEL_CONTENT.test(found)) return found;
    // Damaged: replaced by a new one; entries committed under the old one can no longer be proven.
    if (found !== undefined) await session.unlink(path);
    const id = randomBytes(16).toString("hex");
    const handle = await session.open(path, "wx+");
    const readBack = await session.writeReadBackClose(handle, Buffer.from(id));
    if (readBack.toString("utf8") !== id) throw new TransferError(`the staging sentinel ${path} did not read back as written`);
    this.log.info("staging sentinel created", { event: "sentinel-created", path, replacedDamaged: found !== undefined });
    return id;
  }

  /** The sentinel's content as read completely; undefined when the server says it does not exist. */
  private async readSentinel(session: SftpSession, path: string): Promise<string | undefined> {
    let handle: Buffer;
    try {
      handle = await session.open(path, "r");
    } catch (error) {
      if (errorCode(error) === SFTP_NO_SUCH_FILE) return undefined;
      throw error;
    }
    // Any failure to read it is thrown, never taken for "damaged": a damaged sentinel is
    // replaced, and with it every proof that earlier commit records rest on.
    try {
      const { size } = await session.fstat(handle);
      if (size > SENTINEL_MAX_BYTES) return `(${size} bytes)`;
      return (await session.readAll(handle, SENTINEL_MAX_BYTES)).toString("utf8");
    } finally {
      await session.closeHandle(handle).catch(() => undefined);
    }
  }

  /** Why the entry's staging folder cannot be shown to be the one its upload went to; undefined when it can. */
  private async stagingFolderDoubt(session: SftpSession, entry: JournalEntry): Promise<string | undefined> {
    if (entry.sentinel === undefined || entry.stagingDir === undefined) {
      return "its commit record was written before staging folders were proven";
    }
    const path = posixJoin(entry.stagingDir, this.sentinelName);
    const found = await this.readSentinel(session, path);
    if (found === undefined) {
      return `${path} is gone, so ${entry.stagingDir} is not provably the folder the upload went to (replaced, recreated or moved, or the staging path changed)`;
    }
    if (found !== entry.sentinel) return `${path} is not the sentinel that was there at upload time (the folder was replaced or recreated)`;
    return undefined;
  }

  /** "Staging copy absent" as "renamed", only in a proven staging folder, and logged as a presumption. */
  private async presumePublished(session: SftpSession, entry: JournalEntry, seen: string): Promise<JournalEntry> {
    const doubt = await this.stagingFolderDoubt(session, entry);
    if (doubt) {
      throw new InDoubtError(
        `${seen}, but ${doubt}${cannotBeTold(entry.name)}`,
      );
    }
    this.log.warn("staging copy gone from the proven staging folder: presumed delivered", {
      event: "presumed-delivered",
      file: entry.name,
      deliveredAs: entry.target,
      sha256: entry.sha256,
      seen,
    });
    return this.markPublished(entry, `${seen}: the earlier rename took effect`);
  }

  /**
   * Publishes a committed upload with a plain RENAME, which never replaces an existing file.
   * A refused rename is explained by looking at the target: our own bytes (the link half of a
   * rename whose unlink was refused, or an earlier pass), someone else's (deliver under the
   * conflict name), or nothing while our copy is still in staging (refused outright, or the name
   * was held by a file the ERP took meanwhile): retried within the pass. An unanswered rename
   * throws OutcomeUnknownError and stays in doubt for `settle`.
   */
  async publish(entry: JournalEntry): Promise<JournalEntry> {
    const session = await this.link.session();
    const stagingPath = this.stagingPath(entry);
    const targetPath = this.inboxPath(entry);
    for (let refusals = 0; ; ) {
      let refused: unknown;
      try {
        await session.rename(stagingPath, targetPath);
        crashPoint("after-rename");
        return await this.markPublished(entry, "renamed");
      } catch (error) {
        if (error instanceof OutcomeUnknownError) throw error;
        refused = error;
      }
      pausePoint("after-rename-refused");
      const target = await targetContent(session, targetPath, entry);
      if (target.kind === "ours") return this.publishedBesideStagingLink(session, entry, stagingPath);
      if (target.kind === "other") return this.publishUnderConflictName(entry, target);
      if (!(await session.exists(stagingPath))) return this.presumePublished(session, entry, "the rename reported failure and the staging copy is gone");
      // Target free, our copy still in staging: the server refused (a sharing violation on
      // Windows, or a name another writer held until the ERP took it). A missing inbox folder is
      // no refusal worth waiting for.
      const failed = new TransferError(`rename ${stagingPath} -> ${targetPath} failed: ${errorMessage(refused)}${refusals > 0 ? ` (refused ${refusals + 1} times with the target name free)` : ""}`, { cause: refused });
      if (errorCode(refused) === SFTP_NO_SUCH_FILE) throw failed;
      this.renameRefusals++;
      refusals++;
      const retry = refusals <= this.config.retries && Date.now() < this.stopStartingAt;
      this.log.warn(retry ? "rename refused with the target name free; retrying" : "rename refused with the target name free", {
        event: "rename-refused",
        file: entry.name,
        target: entry.target,
        attempt: refusals,
        serverMessage: printable(errorMessage((refused as Error).cause ?? refused), 200),
      });
      if (!retry) throw failed;
      await sleep(Math.min(this.config.retryBaseDelayMs * 2 ** (refusals - 1), Math.max(0, this.stopStartingAt - Date.now())));
    }
  }

  /**
   * The inbox holds our bytes although the rename was refused: on Windows the server linked the
   * file, then could not unlink the staging name (someone opened the new file without
   * FILE_SHARE_DELETE) nor take its link back. `published` is made durable before anything else:
   * the staging link may outlive this pass, and a lost note would make recovery see "staging
   * present, inbox empty" once the ERP took the file, and send it again.
   */
  private async publishedBesideStagingLink(session: SftpSession, entry: JournalEntry, stagingPath: string): Promise<JournalEntry> {
    const published = await this.markPublished(entry, "already in the inbox with the same SHA-256", { durable: true });
    try {
      await session.unlink(stagingPath);
    } catch (error) {
      if (session.isOpen && errorCode(error) !== SFTP_NO_SUCH_FILE) {
        this.log.warn("delivered, but the staging link could not be removed; a later sweep removes it", {
          event: "staging-link-left",
          file: entry.name,
          staging: stagingPath,
          serverMessage: printable(errorMessage((error as Error).cause ?? error), 200),
        });
      }
    }
    return published;
  }

  private async publishUnderConflictName(entry: JournalEntry, other: { size: number; sha256?: string }): Promise<JournalEntry> {
    const alternative = conflictName(entry.name, entry.sha256);
    if (entry.target === alternative) {
      throw new TransferError(`both ${entry.name} and ${alternative} exist in the inbox with other content; not overwriting either`);
    }
    this.log.warn("name taken in the inbox by other content; delivering under another name", {
      event: "conflict",
      file: entry.name,
      deliveredAs: alternative,
      sha256: entry.sha256,
      inboxSize: other.size,
      ...(other.sha256 ? { inboxSha256: other.sha256 } : {}),
    });
    const moved: JournalEntry = { ...entry, target: alternative };
    // Durable before the second rename, so recovery looks for the right name.
    await this.journal.record(commitRecord(moved));
    return this.publish(moved);
  }

  private async markPublished(entry: JournalEntry, how: string, options: { durable?: boolean } = {}): Promise<JournalEntry> {
    const record: JournalRecord = { t: "published", id: entry.id, target: entry.target, at: new Date().toISOString() };
    // A note unless asked otherwise: if it is lost, recovery finds the staging copy gone (in the
    // proven staging folder) and decides "published" again from the server. The archive move that
    // follows fsyncs its folders, and the journal's next durable record or its close flushes both
    // notes; a lost "archived" only makes recovery look for the file again and find it gone.
    if (options.durable) await this.journal.record(record);
    else this.journal.note(record);
    crashPoint("after-published-record");
    if (this.log.isDebugEnabled()) this.log.debug("published", { event: "published", file: entry.name, target: entry.target, how });
    return { ...entry, state: "published" };
  }

  /**
   * Decides an in-doubt rename from what is on the server now:
   *   staging there, target absent      -> it did not happen: rename again
   *   staging there, target ours        -> link made, unlink not: delivered, remove staging
   *   staging there, target not ours    -> it did not, and the name is taken: conflict name
   *   staging gone, folder proven       -> presumed to have happened (the ERP may have taken it)
   *   staging gone, folder not proven   -> InDoubtError: an operator decides (resolve)
   */
  async settle(entry: JournalEntry): Promise<Settlement> {
    if (entry.doubt !== undefined) return this.recheckDoubt(entry, entry.doubt);
    const session: SftpSession = await this.link.session();
    if (await session.exists(this.stagingPath(entry))) return { entry: await this.publish(entry), presumed: false };
    return { entry: await this.presumePublished(session, entry, "the staging copy is gone"), presumed: true };
  }

  /**
   * An entry a pass reported in doubt waits for an operator, but its evidence is read again on
   * every pass. Only one finding settles it without the operator: the staging folder proven again
   * (its sentinel is the one the commit record remembers: the folder was away and came back, e.g. a
   * volume mounted again) AND the upload still in it with its size and SHA-256. A RENAME removes
   * the staging name, so that upload was never renamed (or was linked beside a copy in the inbox,
   * which publish recognises): the entry is exactly what a crash after its commit record leaves,
   * and is made that again (its commit record, durable, without the doubt) and settled by the
   * ordinary rule. Nothing is ever uploaded again without `resolve --resend`. Any other change is
   * only reported (`in-doubt-evidence-changed`, once per change) and kept with the doubt for status.
   */
  private async recheckDoubt(entry: JournalEntry, doubt: string): Promise<Settlement> {
    const marked = doubt.indexOf(EVIDENCE_MARK);
    const reported = marked === -1 ? doubt : doubt.slice(0, marked);
    const before = marked === -1 ? undefined : doubt.slice(marked + EVIDENCE_MARK.length);
    // A pass's own report already ends with the verdict; repair's reason does not.
    const verdict = cannotBeTold(entry.name);
    const reason = reported.endsWith(verdict) ? reported : `${reported}${verdict}`;
    const evidence = await this.doubtEvidence(entry).catch((error) => {
      if (error instanceof HostileReplyError) throw error;
      // Not readable now (a later pass reads it again): the doubt stands as reported.
      return { settles: false, news: before } as const;
    });
    if (evidence.settles) {
      this.log.warn("the staging folder is proven again and still holds the verified upload: the rename never happened; settling the in-doubt delivery", {
        event: "in-doubt-settled",
        file: entry.name,
        staging: this.stagingPath(entry),
        sha256: entry.sha256,
      });
      const ordinary: JournalEntry = { ...entry, doubt: undefined };
      delete ordinary.doubt;
      await this.journal.record(commitRecord(ordinary));
      return { entry: await this.publish(ordinary), presumed: false };
    }
    if (evidence.news !== before && evidence.news !== undefined) {
      this.log.warn("the evidence on an in-doubt delivery has changed; it still waits for plutus-sync resolve", { event: "in-doubt-evidence-changed", file: entry.name, evidence: evidence.news });
    }
    throw new InDoubtError(evidence.news === undefined ? reason : `${reason}${EVIDENCE_MARK}${evidence.news}`);
  }

  /** What the server shows now about an in-doubt entry: whether it settles it, else what an operator should know. */
  private async doubtEvidence(entry: JournalEntry): Promise<{ settles: boolean; news?: string }> {
    // Entries rebuilt by repair name no upload: nothing on the server speaks of them.
    if (!entry.staging.startsWith(this.stagingPrefix) || entry.stagingDir === undefined || entry.sentinel === undefined) return { settles: false };
    const session: SftpSession = await this.link.session();
    const stagingPath = this.stagingPath(entry);
    const folderDoubt = await this.stagingFolderDoubt(session, entry);
    const copy = await targetContent(session, stagingPath, entry);
    if (copy.kind === "ours" && folderDoubt === undefined) return { settles: true };
    if (copy.kind === "ours") {
      return { settles: false, news: `the upload ${stagingPath} is there again with its SHA-256, but ${folderDoubt}: the rename has not happened through that copy; if the ERP does not have ${entry.name}, resolve it with --resend` };
    }
    if (copy.kind === "other") return { settles: false, news: `${stagingPath} is there again but does not hold the upload (${copy.size} bytes): nothing can be decided from it` };
    if (folderDoubt === undefined) {
      return { settles: false, news: `${entry.stagingDir} is proven again (its sentinel is back) and the upload is not in it: the rename most likely took effect; if the ERP has ${entry.name}, resolve it with --delivered` };
    }
    return { settles: false };
  }

  /**
   * For a pass that had nothing to send: proves the connection, the staging folder (its sentinel,
   * read or created) and the inbox, once, so an outage or a changed host key shows while idle.
   */
  async verifyRemote(): Promise<void> {
    await this.stagingSentinel();
    const session = await this.link.session();
    const inbox = await session.stat(this.config.remote.inbox).catch((error) => {
      if (!session.isOpen) throw error;
      throw new TransferError(`remote inbox ${this.config.remote.inbox} cannot be used: ${errorMessage(error)}`, { cause: error });
    });
    if (!inbox.isDirectory()) throw new TransferError(`remote inbox ${this.config.remote.inbox} is not a folder`);
  }

  /** Moves the delivered local file to the archive (see archiveDelivered). */
  archive(entry: JournalEntry, identity: FileIdentity | undefined): Promise<ArchiveOutcome> {
    return archiveDelivered(this.config, this.journal, this.log, entry, identity);
  }

  /**
   * Removes this agent's staging files no open entry needs: uploads that never reached the commit
   * point, and staging links a refused rename left beside a delivered file.
   */
  async removeOrphanUploads(): Promise<number> {
    const session = await this.link.session();
    const committed = new Set(this.journal.entries().filter((e) => e.state === "committing").map((e) => e.staging));
    const names = await session.readdir(this.config.remote.staging);
    let removed = 0;
    const refused: string[] = [];
    let firstError: unknown;
    try {
      // One entry that cannot be removed must not keep the sweep from the others.
      for (const name of names) {
        if (!name.startsWith(this.stagingPrefix) || !name.endsWith(".part") || committed.has(name)) continue;
        try {
          await session.unlink(posixJoin(this.config.remote.staging, name));
          removed++;
        } catch (error) {
          if (!session.isOpen) throw error;
          // Gone meanwhile (a late request's file removed by someone else): nothing left to do.
          if (errorCode(error) === SFTP_NO_SUCH_FILE) continue;
          refused.push(name);
          firstError ??= error;
        }
      }
    } finally {
      if (removed > 0) this.log.info("removed staging uploads no journal entry needs", { event: "orphans-removed", count: removed });
    }
    if (refused.length > 0) {
      throw new TransferError(`${refused.length} abandoned upload(s) in ${this.config.remote.staging} could not be removed (first: ${refused[0]}): ${errorMessage(firstError)}`);
    }
    return removed;
  }
}

/**
 * Sizes first: a target of another size is someone else's without reading a byte. A target of
 * our size is read (at most entry.size bytes, inside the byte budget share the caller holds for
 * this file: its read-back copy is gone by then).
 */
async function targetContent(session: SftpSession, targetPath: string, entry: Pick<JournalEntry, "size" | "sha256">): Promise<TargetContent> {
  let size: number;
  try {
    size = (await session.stat(targetPath)).size;
  } catch (error) {
    if (errorCode(error) === SFTP_NO_SUCH_FILE) return { kind: "absent" };
    throw error;
  }
  if (size !== entry.size) return { kind: "other", size };
  let existing: { sha256: string; size: number } | undefined;
  try {
    existing = await session.hashRemote(targetPath, entry.size);
  } catch (error) {
    // Grown past our size between the stat and the read (readAll's limit): not ours either.
    if (session.isOpen && errorCode(error) === undefined && !(error instanceof HostileReplyError)) return { kind: "other", size };
    throw error;
  }
  if (!existing) return { kind: "absent" };
  return existing.sha256 === entry.sha256 ? { kind: "ours" } : { kind: "other", size: existing.size, sha256: existing.sha256 };
}

/**
 * What the server shows of an order whose commit record was lost (`plutus-sync repair`): the
 * inbox holding these very bytes under its name (delivered), or a staging upload of ours with
 * them (uploaded, never renamed), or neither (undecidable: the ERP may have taken it).
 */
export async function traceOrder(session: SftpSession, config: AgentConfig, agentId: string, name: string, content: Buffer, sha256: string): Promise<"in-inbox" | "in-staging" | "not-found"> {
  const stagingPrefix = `plutus-${agentId}-`;
  const inInbox = await targetContent(session, posixJoin(config.remote.inbox, name), { size: content.length, sha256 });
  if (inInbox.kind === "ours") return "in-inbox";
  for (const staged of await session.readdir(config.remote.staging)) {
    if (!staged.startsWith(stagingPrefix) || !staged.endsWith(".part")) continue;
    const path = posixJoin(config.remote.staging, staged);
    try {
      if ((await session.stat(path)).size !== content.length) continue;
      if ((await session.hashRemote(path, content.length))?.sha256 === sha256) return "in-staging";
    } catch (error) {
      // Gone or grown meanwhile: not the copy looked for.
      if (!session.isOpen) throw error;
    }
  }
  return "not-found";
}

/**
 * Moves the delivered local file to the archive. The file is first renamed to a private claim
 * name in the outbox (ignored by the scan), so what is checked is what is archived: if the web
 * shop replaced the file after it was read, the replacement is a new order and goes back under
 * its name. `identity` is what the inspection saw; without it (recovery) the hash decides.
 */
export async function archiveDelivered(config: AgentConfig, journal: Journal, log: Logger, entry: JournalEntry, identity: FileIdentity | undefined): Promise<ArchiveOutcome> {
  const path = join(config.outbox, entry.name);
  const claim = join(config.outbox, `.plutus-claim-${entry.id}`);
  try {
    // With the identity read this pass, the claim name (a fresh journal id) cannot exist yet;
    // only recovery can find one an earlier pass made.
    const claimedEarlier = identity === undefined && lstatSync(claim, { throwIfNoEntry: false }) !== undefined;
    if (!claimedEarlier) {
      try {
        renameSync(path, claim);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
        journal.note({ t: "archived", id: entry.id, archivedAs: null, at: new Date().toISOString() });
        return { archived: true, path: null };
      }
    }
    const unchanged =
      identity && !claimedEarlier
        ? sameIdentity(lstatSync(claim), identity)
        : (await hashLocalFile(claim, config.maxFileBytes)) === entry.sha256;
    if (!unchanged) {
      const putBack = await moveWithoutOverwrite(claim, config.outbox, entry.name);
      log.warn("the outbox file was replaced after it was read; the new content is a new order", {
        event: "replaced",
        file: entry.name,
        deliveredSha256: entry.sha256,
        newVersionAt: putBack,
      });
      journal.note({ t: "archived", id: entry.id, archivedAs: null, at: new Date().toISOString() });
      return { archived: true, path: null };
    }
    const dest = await archiveFile(claim, entry.name, config.archive, new Date());
    crashPoint("after-archive");
    // Not fsynced on its own: the archive folder already is, and a lost "archived" only makes
    // recovery look for the file again and find it gone.
    journal.note({ t: "archived", id: entry.id, archivedAs: dest, at: new Date().toISOString() });
    return { archived: true, path: dest };
  } catch (error) {
    const reason = explainMoveError(error);
    log.error("delivered but could not be archived; it stays in the outbox and will not be sent again", {
      event: "archive-failed",
      file: entry.name,
      error: reason,
    });
    return { archived: false, error: reason };
  }
}
