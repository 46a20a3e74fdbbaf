import { promises as fs, lstatSync } from "node:fs";
import { join } from "node:path";
import { ExitCode, type AgentConfig, type RunSummary } from "@plutus/shared";
import { Journal, JournalEntry } from "./journal";
import { RemoteLink } from "./remoteLink";
import { sftpTarget } from "./sftpSession";
import { Courier } from "./courier";
import { inspect, isOrderFileName, Inspection, FileIdentity, listOrderNames, outboxPath, OutboxName, InspectRules, ENTRIES_PER_YIELD, yieldToEventLoop } from "./orderFile";
import { quarantineFile } from "./localMoves";
import { acquirePassLock, type LockHolder, type LockOptions } from "./lock";
import { watcherBeatsRecently } from "./heartbeat";
import { agentId, lockStaleAfterMs, readLastRun, recordAbandonedPass, writeLastRun } from "./stateFiles";
import { crashPoint } from "./crashHook";
import { observeAndRecordErpInbox } from "./erpInbox";
import { ByteBudget } from "./byteBudget";
import { keepOldGenerationNearLive } from "./heapPacing";
import { AuthenticationError, ConnectError, HostKeyMismatchError, HostileReplyError, InDoubtError, OutcomeUnknownError, StateError, errorMessage } from "./errors";
import type { Logger } from "./logger";

export interface PassResult {
  summary: RunSummary;
  exitCode: ExitCode;
  /** The reason no file could be sent, when the pass could not connect. */
  connectError?: ConnectError;
  /** The server's replies were refused as hostile: nothing more was sent to it. */
  remoteRefused?: boolean;
  /** Why the ERP side could not be shown to work, when a pass with nothing to send looked (exit 1). */
  remoteError?: string;
  /** Orders this pass reported in doubt, and why. */
  inDoubt?: { name: string; reason: string }[];
}

export interface Deadlines {
  /** No new file is started after this instant (the watcher moves it to "now" on SIGTERM). */
  stopStarting: number;
  /** In-flight requests are aborted at this instant. */
  abortAt: number;
}

/** The deadlines of a pass or batch that starts now. */
export function deadlinesFrom(config: AgentConfig, startedAt: number): Deadlines {
  const deadlineMs = config.passDeadlineSeconds * 1000;
  return {
    stopStarting: startedAt + Math.max(deadlineMs / 2, deadlineMs - config.operationTimeoutSeconds * 1000),
    abortAt: startedAt + deadlineMs,
  };
}

/** What one delivery batch looks at; a cron pass is the batch "every entry, minAgeSeconds, recover". */
export interface BatchRequest {
  /** Outbox names to look at; undefined: every entry in the outbox. */
  names?: readonly string[];
  /** Files changed more recently wait (the watcher's completeness rule has already decided: 0). */
  minAgeMs: number;
  /**
   * Settle what earlier passes left (in-doubt renames, pending archives, the staging sweep). Off
   * for the watcher's event batches: it recovers at start and on every rescan, and in-doubt
   * entries are not re-examined for every order that arrives.
   */
  recover: boolean;
  deadlines: Deadlines;
  /**
   * The caller tried to connect before taking the lock and could not (the watcher): nothing is
   * sent, local work (archive, quarantine) is done, each order is reported failed with this error.
   */
  connectError?: ConnectError;
  /** "watcher" for the watcher's batches; a pass (cron or by hand) ends a watcher hung inside one. */
  holder?: LockHolder;
}

/** File content held in memory at once across all files in flight (see ByteBudget). */
export const IN_FLIGHT_BYTES = 64 * 1024 * 1024;

/**
 * Entries quarantined as they are found; more wait until the outbox has been looked at. Each
 * move costs a few fsyncs, so a pass never spends long on junk before it reaches the orders.
 */
export const QUARANTINE_INLINE = 100;

/** The scan lets other work (replies to uploads in flight, timers) run at least this often. */
const SCAN_YIELD_MS = 50;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * One delivery pass: lock, recover what an earlier pass left in doubt, then take every stable
 * order file in the outbox through the courier with `concurrency` files in flight.
 */
export async function runPass(config: AgentConfig, privateKey: Buffer, log: Logger): Promise<PassResult> {
  keepOldGenerationNearLive();
  const startedAt = new Date();
  const deadlines = deadlinesFrom(config, startedAt.getTime());
  const link = new RemoteLink(sftpTarget(config, privateKey), log, config.retries, config.retryBaseDelayMs);
  let deadlineHit = false;
  const abortTimer = setTimeout(() => {
    deadlineHit = true;
    log.warn("pass deadline reached; aborting requests in flight", { event: "deadline", passDeadlineSeconds: config.passDeadlineSeconds });
    link.shutdown(`pass deadline of ${config.passDeadlineSeconds} s reached`);
  }, Math.max(0, deadlines.abortAt - Date.now()));
  abortTimer.unref();
  let result: PassResult;
  try {
    result = await deliverBatch(config, link, log, { minAgeMs: config.minAgeSeconds * 1000, recover: true, deadlines });
    if (result.summary.skippedLocked) log.info("another pass holds the lock; nothing done", { event: "locked" });
    // Work was still in flight at the deadline (a stalled or dribbling server): a failed run.
    if (deadlineHit && result.exitCode === ExitCode.Ok) result = { ...result, exitCode: ExitCode.DeliveryFailed };
    if (!result.summary.skippedLocked && !result.connectError && !result.remoteRefused && !deadlineHit && Date.now() < deadlines.stopStarting) {
      await observeAndRecordErpInbox(config, () => link.session(), log);
    }
  } finally {
    clearTimeout(abortTimer);
    link.shutdown("pass finished");
  }
  await recordRun(config, startedAt, result, log);
  return result;
}

/**
 * One batch under the pass lock, over a link the caller owns (and keeps, for the watcher): open
 * the journal, optionally recover, deliver the requested names, compact, release the lock.
 * Returns `skippedLocked` when another pass holds the lock.
 */
export async function deliverBatch(config: AgentConfig, link: RemoteLink, log: Logger, request: BatchRequest): Promise<PassResult> {
  const startedAt = Date.now();
  const summary: RunSummary = { found: 0, delivered: 0, failed: 0, quarantined: 0, deferred: 0, durationMs: 0, archivePending: 0, recovered: 0, inDoubt: 0, renameRefused: 0 };
  await prepareFolders(config);
  // A pass stopped before it could record its end left only its lock: count it as the failed run it was.
  await recordAbandonedPass(config.stateDir, config.passDeadlineSeconds).then(
    (killed) => killed && log.warn("the previous pass did not finish; recorded as a failed run", { event: "pass-abandoned", startedAt: killed.startedAt }),
    (error) => log.error("could not record the previous, unfinished pass", { event: "status-write-failed", error: errorMessage(error) }),
  );
  const lock = await acquirePassLock(config.stateDir, lockStaleAfterMs(config.passDeadlineSeconds), lockOptions(config, request, log)).catch((error) => {
    throw new StateError(`cannot take the pass lock in ${config.stateDir}: ${errorMessage(error)}; the agent's account must own it`, { cause: error });
  });
  if (!lock) {
    // Logged by the caller: the watcher says it once however often it tries again.
    return { summary: { ...summary, skippedLocked: true }, exitCode: ExitCode.Ok };
  }
  let journal: Journal | undefined;
  let result: PassResult;
  try {
    journal = await Journal.open(config.stateDir).catch((error) => {
      throw new StateError(`cannot use the journal in ${config.stateDir}: ${errorMessage(error)}; nothing was sent; run plutus-sync repair (see "Damaged journal" in the operations guide)`, { cause: error });
    });
    if (journal.skippedLines > 0) log.warn("the journal's last line was torn (killed mid-write) and was cut off", { event: "journal-torn", lines: journal.skippedLines });
    const courier = new Courier(config, journal, link, log, await agentId(config.stateDir));
    courier.stopStartingAt = request.deadlines.stopStarting;
    const worker = new PassWorker(config, journal, courier, link, log, summary, request);
    if (request.recover) await worker.recover();
    else await worker.leaveRecoveryForLater();
    await worker.deliverOutbox(request.names);
    await worker.verifyRemoteIfUnused();
    await worker.finish();
    result = worker.remoteRefused ? { ...worker.result(), remoteRefused: true } : worker.result();
  } finally {
    if (journal) {
      await journal.compact().catch((error) => log.error("could not compact the journal", { event: "journal-compact-failed", error: errorMessage(error) }));
      await journal.close().catch(() => undefined);
    }
    await lock.release().catch(() => undefined);
  }
  summary.durationMs = Date.now() - startedAt;
  return result;
}

/** A watcher's batch outlives its own bound (the watcher's hungTimer) by this long at most. */
export const WATCH_BATCH_HUNG_AFTER_S = 15;

function lockOptions(config: AgentConfig, request: BatchRequest, log: Logger): LockOptions {
  if (request.holder === "watcher") return { holder: "watcher" };
  return {
    holder: "pass",
    hungWatcher: {
      lockOlderThanMs: (config.passDeadlineSeconds + WATCH_BATCH_HUNG_AFTER_S) * 1000,
      beatsRecently: (pid) => watcherBeatsRecently(config.stateDir, pid),
      report: ({ pid, lockStartedAt, result, error }) => {
        const lockHeldSince = new Date(lockStartedAt).toISOString();
        if (result === "killed") {
          log.error("the watcher hung inside a batch (its lock outlived the batch deadline, no heartbeat): killed it and broke its lock; recovery settles what it had in flight", { event: "watch-hung-killed", pid, lockHeldSince });
        } else {
          log.error("the watcher hung inside a batch holds the lock and could not be ended; nothing done", { event: "watch-hung-kill-failed", pid, lockHeldSince, result, ...(error ? { error } : {}) });
        }
      },
    },
  };
}

async function prepareFolders(config: AgentConfig): Promise<void> {
  const outbox = await fs.stat(config.outbox).catch((error) => {
    throw new StateError(`outbox ${config.outbox} cannot be used: ${errorMessage(error)}`, { cause: error });
  });
  if (!outbox.isDirectory()) throw new StateError(`outbox ${config.outbox} is not a folder`);
  for (const [dir, what] of [
    [config.stateDir, "state"],
    [config.archive, "archive"],
    [config.quarantine, "quarantine"],
  ] as const) {
    await fs.mkdir(dir, { recursive: true, mode: 0o750 }).catch((error) => {
      throw new StateError(`cannot create the ${what} folder ${dir}: ${errorMessage(error)}`, { cause: error });
    });
  }
  await fs.access(config.stateDir, fs.constants.W_OK).catch((error) => {
    throw new StateError(`state folder ${config.stateDir} is not writable: ${errorMessage(error)}; nothing was sent`, { cause: error });
  });
}

async function recordRun(config: AgentConfig, startedAt: Date, result: PassResult, log: Logger): Promise<void> {
  if (result.summary.skippedLocked) return;
  try {
    const previous = await readLastRun(config.stateDir).catch(() => null);
    const failedRun = result.exitCode !== ExitCode.Ok;
    await writeLastRun(config.stateDir, {
      startedAt: startedAt.toISOString(),
      finishedAt: new Date().toISOString(),
      exitCode: result.exitCode,
      summary: result.summary,
      ...(result.connectError ? { error: result.connectError.message } : result.remoteError ? { error: result.remoteError } : {}),
      consecutiveFailedRuns: failedRun ? (previous?.consecutiveFailedRuns ?? 0) + 1 : 0,
    });
  } catch (error) {
    log.error("could not write last-run.json", { event: "status-write-failed", error: errorMessage(error) });
  }
}

class PassWorker {
  private connectError: ConnectError | undefined;
  private remoteError: string | undefined;
  private hostileReply: HostileReplyError | undefined;
  /** Uploads that failed before their commit point; each may have left a staging copy. */
  private uploadsAbandoned = 0;
  private readonly stagingMarker: StagingSweepMarker;
  private readonly budget = new ByteBudget(IN_FLIGHT_BYTES);
  /** Names the journal still owns; the scan leaves them to recovery. */
  private readonly owned = new Set<string>();
  private quarantinedInline = 0;
  private readonly inDoubt: { name: string; reason: string }[] = [];
  /** Entries to quarantine once every outbox name has been looked at. */
  private readonly heldBack: OutboxName[] = [];
  private readonly deadlines: Deadlines;

  constructor(
    private readonly config: AgentConfig,
    private readonly journal: Journal,
    private readonly courier: Courier,
    private readonly link: RemoteLink,
    private readonly log: Logger,
    private readonly summary: RunSummary,
    private readonly request: BatchRequest,
  ) {
    this.stagingMarker = new StagingSweepMarker(config.stateDir);
    this.deadlines = request.deadlines;
    this.connectError = request.connectError;
  }

  /** Names the journal owns stay untouched; a sweep owed from earlier stays owed. */
  async leaveRecoveryForLater(): Promise<void> {
    for (const entry of this.journal.entries()) this.owned.add(entry.name);
    await this.stagingMarker.load();
  }

  async finish(): Promise<void> {
    await this.stagingMarker.settle(this.uploadsAbandoned);
  }

  /** Settles what an earlier pass left: archive published files, decide in-doubt renames, sweep orphans. */
  async recover(): Promise<void> {
    const pending = this.journal.entries();
    for (const entry of pending) {
      this.owned.add(entry.name);
      crashPoint("during-recovery");
      if (entry.state === "committing") {
        if (this.connectError || Date.now() >= this.deadlines.stopStarting) {
          // Not settled is not delivered: the run must not look clean (a connect error already makes it exit 3).
          if (!this.connectError) this.summary.failed++;
          this.log.warn("in-doubt delivery left for the next pass", { event: "recovery-skipped", file: entry.name, reason: this.connectError?.message ?? "pass deadline near" });
          continue;
        }
        // Settling may read the inbox file back (at most its size): charged like a delivery.
        const held = await this.budget.take(Math.min(entry.size, this.config.maxFileBytes) * 2);
        try {
          const { entry: settled, presumed } = await this.courier.settle(entry);
          // A presumption was logged as such ("presumed-delivered") by the courier.
          if (!presumed) this.log.info("in-doubt delivery settled", { event: "recovered", file: entry.name, target: settled.target });
          this.summary.recovered++;
          await this.finishDelivered(settled, undefined, undefined);
        } catch (error) {
          if (error instanceof InDoubtError) {
            this.reportInDoubt(entry, error);
            continue;
          }
          this.noteRemoteError(error);
          // A failed recovery is a failed run; one that could not connect at all exits 3 anyway.
          if (!this.connectError) this.summary.failed++;
          this.log.error("in-doubt delivery could not be settled; the file stays in the outbox and will not be re-sent until it is", {
            event: "recovery-failed",
            file: entry.name,
            error: errorMessage(error),
          });
        } finally {
          this.budget.give(held);
        }
      } else {
        const outcome = await this.courier.archive(entry, undefined);
        if (outcome.archived) this.owned.delete(entry.name);
        else this.summary.archivePending++;
      }
    }
    const sweepOwed = await this.stagingMarker.load();
    if (!this.connectError && (sweepOwed || pending.some((e) => e.state === "committing") || (await this.outboxHasOrders()))) {
      try {
        const removed = await this.courier.removeOrphanUploads();
        this.stagingMarker.swept(removed === 0 ? "clean" : "removed");
      } catch (error) {
        this.stagingMarker.swept("failed");
        this.noteRemoteError(error);
        this.log.warn("could not sweep the staging folder", { event: "orphan-sweep-failed", error: errorMessage(error) });
      }
    }
  }

  /** An order the agent cannot decide: kept (owned by the journal), never re-sent on a guess. */
  private reportInDoubt(entryOrName: JournalEntry | string, error: InDoubtError): void {
    const name = typeof entryOrName === "string" ? entryOrName : entryOrName.name;
    this.summary.inDoubt = (this.summary.inDoubt ?? 0) + 1;
    this.inDoubt.push({ name, reason: error.message });
    // What lets an operator's resolve decide it; flushed with the next durable record or at close.
    if (typeof entryOrName !== "string") this.journal.note({ t: "doubt", id: entryOrName.id, reason: error.message, at: new Date().toISOString() });
    this.owned.add(name);
    this.log.error("delivery in doubt; settle it with plutus-sync resolve", { event: "in-doubt", file: name, reason: error.message });
  }

  /**
   * Orders first, junk in bounded amounts: the first QUARANTINE_INLINE entries to quarantine are
   * moved as they are found; the rest wait until every name has been looked at (so a valid order
   * is reached whatever junk shares the outbox) and are then moved until the pass must stop
   * starting work; what is left waits for the next pass.
   */
  async deliverOutbox(requested?: readonly string[]): Promise<void> {
    const names: readonly OutboxName[] = requested ?? (await listOrderNames(this.config.outbox));
    crashPoint("after-scan");
    let next = 0;
    let sinceYield = 0;
    let yieldedAt = Date.now();
    const work = async () => {
      // Past this point nothing found could be started; the rest waits for the next pass.
      while (next < names.length && Date.now() < this.deadlines.stopStarting) {
        // Looking at an entry can be all synchronous calls (reading and parsing a junk file of
        // up to maxFileBytes): timers and the replies to uploads in flight must still be handled.
        if (++sinceYield >= ENTRIES_PER_YIELD || Date.now() - yieldedAt >= SCAN_YIELD_MS) {
          sinceYield = 0;
          await yieldToEventLoop();
          yieldedAt = Date.now();
          if (next >= names.length) break;
        }
        const raw = names[next++];
        if (typeof raw === "string" && this.owned.has(raw)) continue;
        this.summary.found++;
        await this.handle(raw);
      }
    };
    await Promise.all(Array.from({ length: this.config.concurrency }, work));
    const notLookedAt = names.slice(next).filter((raw) => typeof raw !== "string" || !this.owned.has(raw)).length;
    if (notLookedAt > 0) {
      this.summary.found += notLookedAt;
      this.summary.deferred += notLookedAt;
      this.log.warn("pass deadline near; entries not looked at wait for the next pass", { event: "scan-postponed", count: notLookedAt });
    }
    await this.quarantineHeldBack();
  }

  private async quarantineHeldBack(): Promise<void> {
    const waiting = this.heldBack;
    let moved = 0;
    // In parallel: the folder fsyncs of concurrent moves are shared (see fsyncDir). Each move
    // waits for file system I/O, so timers run between them.
    const work = async () => {
      while (moved < waiting.length && Date.now() < this.deadlines.stopStarting) {
        // Looked at again: since the first look the web shop may have put an order under the name.
        const raw = waiting[moved++];
        const size = lstatSync(outboxPath(this.config.outbox, raw), { throwIfNoEntry: false })?.size ?? 0;
        const held = await this.budget.take(Math.min(size, this.config.maxFileBytes));
        const inspection = await inspect(this.config.outbox, raw, this.inspectRules()).finally(() => this.budget.give(held));
        if (inspection.kind === "quarantine") await this.quarantine(inspection);
        else {
          this.summary.deferred++;
          this.log.info("deferred", { event: "deferred", file: inspection.name, reason: "changed since it was found; next pass" });
        }
      }
    };
    await Promise.all(Array.from({ length: this.config.concurrency }, work));
    const left = waiting.length - moved;
    if (left > 0) {
      this.summary.deferred += left;
      this.log.warn("more entries to quarantine than this pass had time for; the rest wait for the next pass", {
        event: "quarantine-postponed",
        count: left,
        quarantinedThisPass: this.summary.quarantined,
      });
    }
  }

  private async handle(raw: OutboxName): Promise<void> {
    // The content and its read-back copy are in memory together while the file is in flight.
    const size = lstatSync(outboxPath(this.config.outbox, raw), { throwIfNoEntry: false })?.size ?? 0;
    const held = await this.budget.take(Math.min(size, this.config.maxFileBytes) * 2);
    try {
      await this.inspectAndDeliver(raw);
    } finally {
      this.budget.give(held);
    }
  }

  private async inspectAndDeliver(raw: OutboxName): Promise<void> {
    const inspection = await inspect(this.config.outbox, raw, this.inspectRules());
    if (inspection.kind === "deferred") {
      this.summary.deferred++;
      this.log.info("deferred", { event: "deferred", file: inspection.name, reason: inspection.reason });
      return;
    }
    if (inspection.kind === "quarantine") {
      if (this.quarantinedInline < QUARANTINE_INLINE) {
        this.quarantinedInline++;
        await this.quarantine(inspection);
      } else this.heldBack.push(raw);
      return;
    }
    if (Date.now() >= this.deadlines.stopStarting) {
      this.summary.deferred++;
      this.log.info("deferred", { event: "deferred", file: inspection.name, reason: "pass deadline near; next pass" });
      return;
    }
    const refusal = this.connectError ?? this.hostileReply;
    if (refusal) {
      this.summary.failed++;
      this.log.error("failed", { event: "failed", file: inspection.name, error: refusal.message });
      return;
    }
    await this.deliver(inspection);
  }

  private inspectRules(): InspectRules {
    return { minAgeMs: this.request.minAgeMs, maxFileBytes: this.config.maxFileBytes, now: Date.now };
  }

  private async quarantine(inspection: Extract<Inspection, { kind: "quarantine" }>): Promise<void> {
    try {
      const movedTo = await quarantineFile(inspection.path, inspection.name, inspection.reason, this.config.quarantine);
      this.summary.quarantined++;
      this.log.warn("quarantined", { event: "quarantined", file: inspection.name, reason: inspection.reason, movedTo });
    } catch (error) {
      this.summary.failed++;
      this.log.error("should be quarantined but could not be moved; it stays in the outbox", {
        event: "quarantine-failed",
        file: inspection.name,
        reason: inspection.reason,
        error: errorMessage(error),
      });
    }
  }

  private async deliver(file: Extract<Inspection, { kind: "ready" }>): Promise<void> {
    const started = Date.now();
    // Guarded: winston formats a message before its transport drops it by level.
    if (this.log.isDebugEnabled()) this.log.debug("taken", { event: "taken", file: file.name, size: file.content.length, sha256: file.sha256 });
    let entry: JournalEntry | undefined;
    await this.stagingMarker.setOnce().catch((error) => this.log.warn("could not mark staging for a sweep", { event: "sweep-mark-failed", error: errorMessage(error) }));
    for (let attempt = 0; ; attempt++) {
      try {
        if (!entry) entry = await this.courier.uploadAndCommit(file.name, file.content, file.sha256);
        entry = entry.state === "committing" && attempt > 0 ? (await this.courier.settle(entry)).entry : await this.courier.publish(entry);
        await this.finishDelivered(entry, file.identity, started);
        return;
      } catch (error) {
        if (!entry) this.uploadsAbandoned++;
        // The journal knows the latest target (a conflict name recorded before a lost reply).
        else entry = this.journal.entry(entry.id) ?? entry;
        if (error instanceof InDoubtError) {
          this.reportInDoubt(entry ?? file.name, error);
          return;
        }
        this.noteRemoteError(error);
        const retry = this.mayRetry(error, attempt);
        this.log[retry ? "warn" : "error"](retry ? "attempt failed; retrying" : "failed", {
          event: retry ? "retry" : "failed",
          file: file.name,
          attempt: attempt + 1,
          error: errorMessage(error),
          inDoubt: entry?.state === "committing",
        });
        if (!retry) {
          this.summary.failed++;
          if (entry) this.owned.add(entry.name);
          return;
        }
        await sleep(Math.min(this.config.retryBaseDelayMs * 2 ** attempt, Math.max(0, this.deadlines.stopStarting - Date.now())));
      }
    }
  }

  /** The server's replies were refused as hostile: nothing more is sent to it this pass. */
  get remoteRefused(): boolean {
    return this.hostileReply !== undefined;
  }

  /** Only a lost connection or a missing reply is transient; a server's definite "no" is not. */
  private mayRetry(error: unknown, attempt: number): boolean {
    if (attempt >= this.config.retries || Date.now() >= this.deadlines.stopStarting) return false;
    if (this.connectError || this.hostileReply) return false;
    return error instanceof OutcomeUnknownError || (error instanceof ConnectError && !this.connectError);
  }

  private noteRemoteError(error: unknown): void {
    // Refused before it could exhaust memory or time, but a server that sends such replies is
    // broken or compromised: nothing more goes to it this pass, and the pass counts as failed.
    if (error instanceof HostileReplyError && !this.hostileReply) {
      this.hostileReply = error;
      this.link.shutdown(`the server's replies were refused (${error.message}); nothing more is sent to it this pass`);
    }
    if (error instanceof ConnectError && !(error instanceof OutcomeUnknownError)) {
      // One failed connect is final for this pass when it was the host key or the credentials.
      if (error instanceof HostKeyMismatchError || error instanceof AuthenticationError || this.link.connects === 0) this.connectError ??= error;
    }
  }

  private async finishDelivered(entry: JournalEntry, identity: FileIdentity | undefined, started: number | undefined): Promise<void> {
    const outcome = await this.courier.archive(entry, identity);
    if (started !== undefined) {
      this.summary.delivered++;
      this.log.info("delivered", {
        event: "delivered",
        file: entry.name,
        deliveredAs: entry.target,
        size: entry.size,
        sha256: entry.sha256,
        durationMs: Date.now() - started,
        archivedAs: outcome.archived ? outcome.path : null,
      });
    }
    if (outcome.archived) this.owned.delete(entry.name);
    else {
      this.summary.archivePending++;
      this.owned.add(entry.name);
    }
  }

  /**
   * A pass that had no reason to connect still proves the ERP side once (connection, host key,
   * staging sentinel, inbox): otherwise an outage or a changed host key would stay invisible
   * (exit 0) until an order waits.
   */
  async verifyRemoteIfUnused(): Promise<void> {
    if (this.link.connects > 0 || this.connectError || Date.now() >= this.deadlines.stopStarting) return;
    try {
      await this.courier.verifyRemote();
    } catch (error) {
      this.noteRemoteError(error);
      if (this.connectError) return;
      this.remoteError = errorMessage(error);
      this.log.error("the ERP side could not be checked", { event: "remote-check-failed", error: this.remoteError });
    }
  }

  private async outboxHasOrders(): Promise<boolean> {
    const names = await fs.readdir(this.config.outbox);
    return names.some(isOrderFileName);
  }

  result(): PassResult {
    const s = this.summary;
    s.renameRefused = this.courier.renameRefusals;
    if (this.connectError && s.delivered === 0 && s.recovered === 0) {
      return { summary: s, exitCode: ExitCode.ConnectFailed, connectError: this.connectError };
    }
    const failed = s.failed > 0 || s.archivePending > 0 || (s.inDoubt ?? 0) > 0 || this.hostileReply !== undefined || this.remoteError !== undefined;
    return {
      summary: s,
      exitCode: failed ? ExitCode.DeliveryFailed : ExitCode.Ok,
      ...(this.remoteError ? { remoteError: this.remoteError } : {}),
      ...(this.inDoubt.length > 0 ? { inDoubt: this.inDoubt } : {}),
    };
  }
}

/**
 * `stateDir/staging-sweep` says "staging may hold uploads of ours that never reached the commit
 * point". It is set before a pass uploads anything. At the end of a pass it is removed only if the
 * pass abandoned no upload and its sweep, when one ran, completed and found nothing; a marker that
 * was there at the start needs such a sweep. So a pass killed mid-upload, or a sweep cut short,
 * leaves it for the next pass, which sweeps even when the outbox is empty. A sweep that removed
 * something keeps it too: requests a dead connection left in the network can still create staging
 * files after that sweep.
 */
class StagingSweepMarker {
  private readonly path: string;
  private setting: Promise<void> | undefined;
  private owedAtStart = false;
  private sweep: "not run" | "clean" | "removed" | "failed" = "not run";

  constructor(stateDir: string) {
    this.path = join(stateDir, "staging-sweep");
  }

  /** Reads whether an earlier pass left a sweep owed; call once, before anything is uploaded. */
  async load(): Promise<boolean> {
    this.owedAtStart = await fs.access(this.path).then(
      () => true,
      () => false,
    );
    return this.owedAtStart;
  }

  swept(outcome: "clean" | "removed" | "failed"): void {
    this.sweep = outcome;
  }

  setOnce(): Promise<void> {
    this.setting ??= fs.writeFile(this.path, `${new Date().toISOString()}\n`, { mode: 0o600 });
    return this.setting;
  }

  async settle(uploadsAbandoned: number): Promise<void> {
    const nothingLeft = this.sweep === "clean" || (this.sweep === "not run" && !this.owedAtStart);
    if (uploadsAbandoned > 0 || !nothingLeft) return;
    if (this.owedAtStart || this.setting) await fs.rm(this.path, { force: true });
  }
}
