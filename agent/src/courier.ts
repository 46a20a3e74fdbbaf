import { lstatSync, renameSync } from "node:fs";
import { createHash, randomUUID } from "node:crypto";
import { join } from "node:path";
import type { AgentConfig } from "@plutus/shared";
import { Journal, JournalEntry } from "./journal";
import { RemoteLink } from "./remoteLink";
import { SftpSession, SFTP_NO_SUCH_FILE } from "./sftpSession";
import { archiveFile } from "./localMoves";
import { moveWithoutOverwrite } from "./durableFs";
import { FileIdentity, hashLocalFile, sameIdentity } from "./orderFile";
import { crashPoint } from "./crashHook";
import { OutcomeUnknownError, TransferError, errorCode, errorMessage } from "./errors";
import type { Logger } from "./logger";

const posixJoin = (folder: string, name: string) => `${folder.replace(/\/+$/, "")}/${name}`;

/** `<stem>.<first 8 hex of sha256>.json`: where an order goes when its name is taken by other content. */
export function conflictName(name: string, sha256: string): string {
  const dot = name.lastIndexOf(".");
  return `${name.slice(0, dot)}.${sha256.slice(0, 8)}${name.slice(dot)}`;
}

export type ArchiveOutcome = { archived: true; path: string | null } | { archived: false; error: string };

/**
 * Moves one order through the delivery protocol: upload to a unique staging name, verify size and
 * SHA-256 by reading it back, journal the commit (fsync), RENAME into the inbox, journal the
 * publication, archive locally. Also settles entries whose rename outcome is unknown.
 */
export class Courier {
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

  private stagingPath(entry: Pick<JournalEntry, "staging">): string {
    return posixJoin(this.config.remote.staging, entry.staging);
  }

  private inboxPath(name: string): string {
    return posixJoin(this.config.remote.inbox, name);
  }

  /** Uploads and verifies; returns the journal entry at the commit point, renamed or not. */
  async uploadAndCommit(name: string, content: Buffer, sha256: string): Promise<JournalEntry> {
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
    const id = randomUUID();
    await this.journal.record({ t: "commit", id, name, sha256, size: content.length, staging, target: name, at: new Date().toISOString() });
    crashPoint("after-commit-record");
    return { id, state: "committing", name, sha256, size: content.length, staging, target: name };
  }

  /**
   * Publishes a committed upload with a plain RENAME, which never replaces an existing file.
   * A refused rename is explained by looking at the target: our own bytes (delivered before), or
   * someone else's (deliver under the conflict name instead). An unanswered rename throws
   * OutcomeUnknownError and stays in doubt for `settle`.
   */
  async publish(entry: JournalEntry): Promise<JournalEntry> {
    const session = await this.link.session();
    const stagingPath = this.stagingPath(entry);
    const targetPath = this.inboxPath(entry.target);
    try {
      await session.rename(stagingPath, targetPath);
      crashPoint("after-rename");
      return await this.markPublished(entry, "renamed");
    } catch (error) {
      if (error instanceof OutcomeUnknownError) throw error;
      const existing = await session.hashRemote(targetPath, this.config.maxFileBytes * 2 + 1024 * 1024);
      if (existing?.sha256 === entry.sha256) {
        await session.unlink(stagingPath).catch(() => undefined);
        return this.markPublished(entry, "already in the inbox with the same SHA-256");
      }
      if (existing) return this.publishUnderConflictName(entry, existing.sha256);
      if (!(await session.exists(stagingPath))) {
        return this.markPublished(entry, "rename reported failure but the staging copy is gone and moved");
      }
      throw new TransferError(`rename ${stagingPath} -> ${targetPath} failed: ${errorMessage(error)}`, { cause: error });
    }
  }

  private async publishUnderConflictName(entry: JournalEntry, otherSha256: string): Promise<JournalEntry> {
    const alternative = conflictName(entry.name, entry.sha256);
    if (entry.target === alternative) {
      throw new TransferError(`both ${entry.name} and ${alternative} exist in the inbox with other content; not overwriting either`);
    }
    this.log.warn("name taken in the inbox by other content; delivering under another name", {
      event: "conflict",
      file: entry.name,
      deliveredAs: alternative,
      sha256: entry.sha256,
      inboxSha256: otherSha256,
    });
    const moved: JournalEntry = { ...entry, target: alternative };
    // Durable before the second rename, so recovery looks for the right name.
    await this.journal.record({ t: "commit", id: entry.id, name: entry.name, sha256: entry.sha256, size: entry.size, staging: entry.staging, target: alternative, at: new Date().toISOString() });
    return this.publish(moved);
  }

  private async markPublished(entry: JournalEntry, how: string): Promise<JournalEntry> {
    // Not fsynced on its own: if it is lost, recovery finds the staging copy gone and decides
    // "published" again from the server. The "archived" record that follows is durable.
    this.journal.note({ t: "published", id: entry.id, target: entry.target, at: new Date().toISOString() });
    crashPoint("after-published-record");
    if (this.log.isDebugEnabled()) this.log.debug("published", { event: "published", file: entry.name, target: entry.target, how });
    return { ...entry, state: "published" };
  }

  /**
   * Decides an in-doubt rename from what is on the server now:
   *   staging gone                      -> the rename happened (the ERP may have taken the file)
   *   staging there, target absent      -> it did not: rename again
   *   staging there, target ours        -> link made, unlink not: remove staging, delivered
   *   staging there, target not ours    -> it did not, and the name is taken: conflict name
   */
  async settle(entry: JournalEntry): Promise<JournalEntry> {
    const session: SftpSession = await this.link.session();
    if (!(await session.exists(this.stagingPath(entry)))) {
      return this.markPublished(entry, "staging copy gone: the earlier rename took effect");
    }
    return this.publish(entry);
  }

  /**
   * Moves the delivered local file to the archive. The file is first renamed to a private claim
   * name in the outbox (ignored by the scan), so what is checked is what is archived: if the web
   * shop replaced the file after it was read, the replacement is a new order and goes back under
   * its name. `identity` is what the inspection saw; without it (recovery) the hash decides.
   */
  async archive(entry: JournalEntry, identity: FileIdentity | undefined): Promise<ArchiveOutcome> {
    const path = join(this.config.outbox, entry.name);
    const claim = join(this.config.outbox, `.plutus-claim-${entry.id}`);
    try {
      // With the identity read this pass, the claim name (a fresh journal id) cannot exist yet;
      // only recovery can find one an earlier pass made.
      const claimedEarlier = identity === undefined && lstatSync(claim, { throwIfNoEntry: false }) !== undefined;
      if (!claimedEarlier) {
        try {
          renameSync(path, claim);
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
          this.journal.note({ t: "archived", id: entry.id, archivedAs: null, at: new Date().toISOString() });
          return { archived: true, path: null };
        }
      }
      const unchanged =
        identity && !claimedEarlier
          ? sameIdentity(lstatSync(claim), identity)
          : (await hashLocalFile(claim, this.config.maxFileBytes)) === entry.sha256;
      if (!unchanged) {
        const putBack = await moveWithoutOverwrite(claim, this.config.outbox, entry.name);
        this.log.warn("the outbox file was replaced after it was read; the new content is a new order", {
          event: "replaced",
          file: entry.name,
          deliveredSha256: entry.sha256,
          newVersionAt: putBack,
        });
        this.journal.note({ t: "archived", id: entry.id, archivedAs: null, at: new Date().toISOString() });
        return { archived: true, path: null };
      }
      const dest = await archiveFile(claim, entry.name, this.config.archive, new Date());
      crashPoint("after-archive");
      // Not fsynced on its own: the archive folder already is, and a lost "archived" only makes
      // recovery look for the file again and find it gone.
      this.journal.note({ t: "archived", id: entry.id, archivedAs: dest, at: new Date().toISOString() });
      return { archived: true, path: dest };
    } catch (error) {
      this.log.error("delivered but could not be archived; it stays in the outbox and will not be sent again", {
        event: "archive-failed",
        file: entry.name,
        error: errorMessage(error),
      });
      return { archived: false, error: errorMessage(error) };
    }
  }

  /** Removes this agent's staging uploads that never reached the commit point. */
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
      if (removed > 0) this.log.info("removed uploads that never reached the commit point", { event: "orphans-removed", count: removed });
    }
    if (refused.length > 0) {
      throw new TransferError(`${refused.length} abandoned upload(s) in ${this.config.remote.staging} could not be removed (first: ${refused[0]}): ${errorMessage(firstError)}`);
    }
    return removed;
  }
}
