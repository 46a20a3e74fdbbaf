import { existsSync, promises as fs } from "node:fs";
import type { Server } from "node:http";
import { basename, resolve as resolvePath } from "node:path";
import { watch as watchFolder, type FSWatcher } from "chokidar";
import { ExitCode, type AgentConfig } from "@plutus/shared";
import { deliverBatch, deadlinesFrom, WATCH_BATCH_HUNG_AFTER_S, type Deadlines, type PassResult } from "./pass";
import { BatchQueue, type Batch, type BatchOutcome } from "./batchQueue";
import { CompletenessRule, lookAt, stampOf } from "./completeness";
import { StartScanFilter } from "./startScanFilter";
import { WarmLink } from "./warmLink";
import { WatchErrorLog } from "./watchErrors";
import { processStartTime } from "./lock";
import { HEARTBEAT_INTERVAL_MS, writeHeartbeat } from "./heartbeat";
import { isOrderFileName, yieldToEventLoop, ENTRIES_PER_YIELD } from "./orderFile";
import { ignoreWatchEvents } from "./crashHook";
import { LatencyHistogram, renderMetrics, serveMetrics } from "./metrics";
import { assessHealth } from "./health";
import { keepOldGenerationNearLive } from "./heapPacing";
import { observeAndRecordErpInbox } from "./erpInbox";
import { ConnectError, StateError, errorMessage } from "./errors";
import type { Logger } from "./logger";

/** SIGTERM to exit must stay under 10 s: in-flight work gets this long, then is aborted (in doubt at worst). */
const GRACE_MS = 5_000;
const ABORTED_SETTLE_MS = 2_000;
/** How often the watcher lists the ERP inbox (health and metrics: is the ERP taking orders?). */
export const ERP_INBOX_OBSERVE_MS = 60_000;
/**
 * An event batch of at least this many names runs with chokidar closed, as every rescan does: each
 * file the batch moves out is a folder event, and chokidar answers every folder event by reading
 * and lstat-ing the whole outbox, throttled to one read a second but not to one at a time (43
 * reads at once over a 60,000-file outbox, measured): a big batch would spend its time on them.
 */
export const QUIET_BATCH_NAMES = 1_000;

export interface WatchHooks {
  /** A batch outlived its deadline by 15 s (the event loop was blocked, or a bug): the process must end. */
  onHung(message: string): void;
}

/**
 * `plutus-sync watch`: delivers each order as soon as it is complete, through the same batches as
 * the cron pass (deliverBatch: lock, journal, courier), over one connection kept open. Files are
 * found by chokidar events and by a rescan at start and every `watch.rescanSeconds`, which is a
 * full pass (recovery, minAgeSeconds, quarantine) and also feeds young files to the completeness
 * rule. Ends on SIGTERM or SIGINT.
 */
export class Watcher {
  private readonly rule: CompletenessRule;
  private startScan: StartScanFilter | undefined;
  /** Ends a wait for chokidar's `ready` (stop() during a scan). */
  private cancelOpen: (() => void) | undefined;
  private readonly rechecks = new Map<string, NodeJS.Timeout>();
  private readonly link: WarmLink;
  private readonly queue: BatchQueue;
  private readonly startedAt = new Date().toISOString();
  private readonly procStart = processStartTime(process.pid);
  private fsWatcher: FSWatcher | undefined;
  private metricsServer: Server | undefined;
  /** Delivery latencies for /metrics: from the moment a file was judged complete to its delivery. */
  private readonly latency = new LatencyHistogram();
  private readonly takenAt = new Map<string, number>();
  private timers: NodeJS.Timeout[] = [];
  private batchDeadlines: Deadlines | undefined;
  private stopping = false;
  private delivered = 0;
  private lastDeliveryAt: string | null = null;
  private heartbeatFailing = false;
  private lastBeatAt = 0;
  private beatTimer: NodeJS.Timeout | undefined;
  private beating: Promise<void> = Promise.resolve();
  private observingInbox = false;
  private waitingForLock = false;
  private readonly watchErrors: WatchErrorLog;
  private inboxObserved = false;

  constructor(
    private readonly config: AgentConfig,
    privateKey: Buffer,
    private readonly log: Logger,
    private readonly hooks: WatchHooks,
  ) {
    this.rule = new CompletenessRule(config.watch.settleMs);
    this.watchErrors = new WatchErrorLog(log);
    this.link = new WarmLink(config, privateKey, log, () => {
      void this.beat();
      if (this.link.connectionState === "connected") this.queue.wake();
    });
    this.queue = new BatchQueue((batch) => this.deliver(batch), {
      lockedRetryMs: 500,
      firstBackoffMs: 500,
      maxBackoffMs: config.watch.rescanSeconds * 1000,
      // During an ERP outage orders wait for the connection (one state change logged), not for
      // retry batches that would each report every one of them failed; the rescan still runs.
      mayDeliverNames: () => this.link.connectionState !== "disconnected",
    });
  }

  /**
   * Starts watching. Resolves false, having started nothing more, when `cancel` fires first (a
   * SIGTERM during start-up): chokidar's initial scan stats every outbox entry and may take
   * longer than systemd waits for a stop. stop() cleans up either way.
   */
  async start(cancel?: AbortSignal): Promise<boolean> {
    const outbox = await fs.stat(this.config.outbox).catch((error) => {
      throw new StateError(`outbox ${this.config.outbox} cannot be used: ${errorMessage(error)}`, { cause: error });
    });
    if (!outbox.isDirectory()) throw new StateError(`outbox ${this.config.outbox} is not a folder`);
    await fs.mkdir(this.config.stateDir, { recursive: true, mode: 0o750 });
    await this.beat();
    this.link.start();
    if (cancel?.aborted || !(await this.openWatcher(cancel))) return false;
    const listen = this.config.metrics.listen;
    if (listen) {
      this.metricsServer = await serveMetrics(listen, async () => renderMetrics(await assessHealth(this.config), this.latency)).catch((error) => {
        throw new StateError(`cannot serve metrics on ${listen}: ${errorMessage(error)}`, { cause: error });
      });
    }
    // Only now: an order written between the listing and the watch start is seen by one of them.
    this.queue.requestRescan();
    this.timers.push(
      setInterval(() => {
        this.watchErrors.report();
        this.queue.requestRescan();
      }, this.config.watch.rescanSeconds * 1000),
    );
    this.timers.push(setInterval(() => void this.beat(), HEARTBEAT_INTERVAL_MS));
    this.timers.push(setInterval(() => void this.observeErpInbox(), ERP_INBOX_OBSERVE_MS));
    this.log.info("watch started", { event: "watch-started", outbox: this.config.outbox, settleMs: this.config.watch.settleMs, rescanSeconds: this.config.watch.rescanSeconds });
    return true;
  }

  /**
   * Starts chokidar on the outbox; true once its initial scan is done, false when stopped or
   * cancelled first. What that scan finds is not watched until it changes (startScanFilter.ts):
   * the caller hands it to a listing taken after this resolves (the rescan, feedYoungFiles).
   */
  private async openWatcher(cancel?: AbortSignal): Promise<boolean> {
    if (this.stopping) return false;
    const outbox = resolvePath(this.config.outbox);
    const filter = new StartScanFilter(outbox);
    const watcher = watchFolder(outbox, { depth: 0, ignoreInitial: true, ignored: filter.ignored, atomic: false, ignorePermissionErrors: true, persistent: true });
    this.fsWatcher = watcher;
    this.startScan = filter;
    const onEvent = (path: string) => this.onEvent(basename(path));
    watcher.on("add", onEvent).on("change", onEvent);
    watcher.on("error", (error) => this.watchErrors.note(error));
    const ready = await new Promise<boolean>((resolve) => {
      this.cancelOpen = () => resolve(false);
      watcher.once("ready", () => {
        filter.scanDone();
        resolve(true);
      });
      cancel?.addEventListener("abort", () => resolve(false), { once: true });
    });
    this.cancelOpen = undefined;
    return ready && !this.stopping;
  }

  private async closeWatcher(): Promise<void> {
    const watcher = this.fsWatcher;
    this.fsWatcher = undefined;
    this.startScan = undefined;
    this.cancelOpen?.();
    await watcher?.close().catch(() => undefined);
  }

  /**
   * Stops taking files, gives the batch in flight GRACE_MS to finish (no new file is started),
   * then aborts its requests: an order whose rename got no answer stays in doubt in the journal
   * for the next pass's recovery.
   */
  async stop(signal: string): Promise<{ delivered: number }> {
    this.stopping = true;
    this.log.info("watch stopping", { event: "watch-stopping", signal });
    for (const timer of this.timers) clearInterval(timer);
    clearTimeout(this.beatTimer);
    for (const timer of this.rechecks.values()) clearTimeout(timer);
    this.rechecks.clear();
    await this.closeWatcher();
    this.watchErrors.report();
    this.metricsServer?.close();
    if (this.batchDeadlines) this.batchDeadlines.stopStarting = Date.now();
    const finished = this.queue.stop();
    if (!(await within(finished, GRACE_MS))) {
      this.log.warn("watch: batch still running at stop; aborting its requests", { event: "watch-abort" });
      this.link.abort("the watcher is stopping");
      await within(finished, ABORTED_SETTLE_MS);
    }
    this.link.close();
    await this.beat(new Date().toISOString());
    this.log.info("watch stopped", { event: "watch-stopped", delivered: this.delivered });
    return { delivered: this.delivered };
  }

  private onEvent(name: string): void {
    if (this.stopping || ignoreWatchEvents) return;
    // A name that is not UTF-8 arrives with U+FFFD: the rescan (a full pass) quarantines it.
    if (!isOrderFileName(name) || name.includes("\uFFFD") || name.includes("/")) return;
    this.judge(name);
  }

  private judge(name: string): void {
    clearTimeout(this.rechecks.get(name));
    this.rechecks.delete(name);
    if (this.stopping) return;
    let verdict;
    try {
      verdict = this.rule.judge(name, stampOf(this.config.outbox, name), Date.now(), () => lookAt(this.config.outbox, name, this.config.maxFileBytes));
    } catch (error) {
      // Unreadable now (permissions being fixed, I/O error): the rescan's full pass decides.
      this.log.debug("watch: cannot look at a file", { event: "watch-look-failed", file: name, error: errorMessage(error) });
      this.rule.forget(name);
      return;
    }
    if (verdict.take) {
      if (!this.takenAt.has(name)) this.takenAt.set(name, Date.now());
      this.queue.add(name);
    }
    else if (verdict.recheckAt !== undefined) {
      const timer = setTimeout(() => this.judge(name), Math.max(0, verdict.recheckAt - Date.now()));
      this.rechecks.set(name, timer);
    }
  }

  /**
   * A rescan or a big batch runs with chokidar closed (QUIET_BATCH_NAMES); afterwards chokidar
   * starts again and what the outbox holds then is judged, so nothing that arrived meanwhile waits
   * for the next rescan. While another pass holds the lock chokidar stays closed: nothing can be
   * delivered meanwhile, and the retry in 0.5 s would close it again.
   */
  private async deliver(batch: Batch): Promise<BatchOutcome> {
    const outcome = await this.deliverNow(batch, batch.rescan || batch.names.length >= QUIET_BATCH_NAMES);
    if (this.fsWatcher === undefined && !outcome.locked && !this.stopping && (await this.openWatcher())) await this.feedYoungFiles();
    return outcome;
  }

  private async deliverNow(batch: Batch, quiet: boolean): Promise<BatchOutcome> {
    if (this.stopping) return { locked: false, retry: [] };
    const names = batch.names.filter((name) => existsSync(`${this.config.outbox}/${name}`));
    const link = this.link.current();
    // Connected before the lock is taken: a batch never holds it across a network wait (a cron
    // pass meanwhile runs, and reports the ERP unreachable itself).
    const connectError = await link.session().then(
      () => undefined,
      (error: unknown) => (error instanceof ConnectError ? error : new ConnectError(errorMessage(error), { cause: error })),
    );
    if (this.stopping) return { locked: false, retry: [] };
    if (connectError) {
      this.link.noteTrouble();
      if (!batch.rescan) return { locked: false, retry: [], held: names };
    } else this.link.noteConnected();
    if (quiet) await this.closeWatcher();
    const deadlines = deadlinesFrom(this.config, Date.now());
    this.batchDeadlines = deadlines;
    const abortTimer = setTimeout(() => {
      this.log.warn("batch deadline reached; aborting requests in flight", { event: "deadline", passDeadlineSeconds: this.config.passDeadlineSeconds });
      this.link.abort(`batch deadline of ${this.config.passDeadlineSeconds} s reached`);
    }, deadlines.abortAt - Date.now());
    // A loop too blocked for this timer is ended from outside: the cron pass kills a watcher whose lock is this old and whose heartbeat stopped.
    const hungTimer = setTimeout(() => this.hooks.onHung(`a watch batch exceeded its deadline of ${this.config.passDeadlineSeconds} s`), deadlines.abortAt + WATCH_BATCH_HUNG_AFTER_S * 1000 - Date.now());
    const results: PassResult[] = [];
    try {
      if (batch.rescan) {
        const full = await deliverBatch(this.config, link, this.log, { minAgeMs: this.config.minAgeSeconds * 1000, recover: true, deadlines, connectError, holder: "watcher" });
        if (this.noteLocked(full)) return { locked: true, retry: [], ...(connectError ? { held: names } : {}) };
        results.push(full);
      }
      if (names.length > 0 && !this.stopping && !connectError) {
        const events = await deliverBatch(this.config, link, this.log, { names, minAgeMs: 0, recover: false, deadlines, holder: "watcher" });
        if (this.noteLocked(events)) return { locked: true, retry: [] };
        results.push(events);
      }
    } catch (error) {
      this.log.error("watch: batch failed; its files wait for a retry", { event: "watch-batch-failed", error: errorMessage(error), files: names.length });
      return { locked: false, retry: names };
    } finally {
      clearTimeout(abortTimer);
      clearTimeout(hungTimer);
      this.batchDeadlines = undefined;
    }
    const delivered = results.reduce((sum, r) => sum + r.summary.delivered + r.summary.recovered, 0);
    if (delivered > 0) {
      this.delivered += delivered;
      this.lastDeliveryAt = new Date().toISOString();
      this.beatSoon();
    }
    // Held names keep their time: their latency is observed when they are delivered.
    for (const name of connectError ? [] : batch.names) {
      const at = this.takenAt.get(name);
      this.takenAt.delete(name);
      if (at !== undefined && !existsSync(`${this.config.outbox}/${name}`)) this.latency.observe((Date.now() - at) / 1000);
    }
    // The first look at the ERP inbox comes with the first batch, not a minute later.
    if (!this.inboxObserved) void this.observeErpInbox();
    if (connectError) return { locked: false, retry: [], held: names };
    const troubled = results.some((r) => r.summary.failed > 0 || r.connectError !== undefined);
    if (!troubled) return { locked: false, retry: [] };
    this.link.noteTrouble();
    return { locked: false, retry: names.filter((name) => existsSync(`${this.config.outbox}/${name}`)) };
  }

  /** True when another pass held the lock; said once per stretch of waiting, not per try (every 0.5 s). */
  private noteLocked(result: PassResult): boolean {
    const locked = result.summary.skippedLocked === true;
    if (locked && !this.waitingForLock) this.log.info("watch: another pass holds the lock; waiting for it", { event: "locked" });
    this.waitingForLock = locked;
    return locked;
  }

  /** One bounded listing of the ERP inbox over the warm connection, when it is up; never two at once. */
  private async observeErpInbox(): Promise<void> {
    const link = this.link.current();
    if (this.observingInbox || this.stopping || !link.isConnected) return;
    this.observingInbox = true;
    try {
      if (await observeAndRecordErpInbox(this.config, () => link.session(), this.log)) this.inboxObserved = true;
    } finally {
      this.observingInbox = false;
    }
  }

  /**
   * After chokidar started again (every rescan's full pass, a big batch): what the outbox holds goes
   * through the completeness rule (what the pass left as too young for minAgeSeconds, what arrived
   * while chokidar was closed).
   */
  private async feedYoungFiles(): Promise<void> {
    const listing = await fs.readdir(this.config.outbox).catch(() => undefined);
    if (!listing) return;
    this.startScan?.retainOnly(new Set(listing));
    const names = listing.filter((name) => isOrderFileName(name) && !name.includes("\uFFFD"));
    // A file seen after the listing was taken has a recheck pending, which settles it either way.
    this.rule.retainOnly(new Set([...names, ...this.rechecks.keys()]));
    for (let i = 0; i < names.length && !this.stopping; i++) {
      if (i % ENTRIES_PER_YIELD === ENTRIES_PER_YIELD - 1) await yieldToEventLoop();
      this.judge(names[i]);
    }
  }

  /** A heartbeat within a second (status shows the last delivery), at most one a second. */
  private beatSoon(): void {
    if (this.beatTimer || this.stopping) return;
    this.beatTimer = setTimeout(() => {
      this.beatTimer = undefined;
      if (!this.stopping) void this.beat();
    }, Math.max(0, this.lastBeatAt + 1_000 - Date.now()));
  }

  /**
   * Heartbeats are written one after another, and none but the stop's own once the stop began: a
   * beat still in flight (a connection state change) landing after the stop's would drop its
   * stoppedAt, and status would show a stopped watcher as running or stale.
   */
  private beat(stoppedAt?: string): Promise<void> {
    if (this.stopping && stoppedAt === undefined) return this.beating;
    this.beating = this.beating.then(() => this.writeBeat(stoppedAt));
    return this.beating;
  }

  private async writeBeat(stoppedAt: string | undefined): Promise<void> {
    this.lastBeatAt = Date.now();
    try {
      await writeHeartbeat(this.config.stateDir, {
        pid: process.pid,
        ...(this.procStart !== undefined ? { procStart: this.procStart } : {}),
        startedAt: this.startedAt,
        heartbeatAt: new Date().toISOString(),
        lastDeliveryAt: this.lastDeliveryAt,
        connection: this.link.connectionState,
        delivered: this.delivered,
        rssBytes: process.memoryUsage().rss,
        ...(stoppedAt ? { stoppedAt } : {}),
      });
      this.heartbeatFailing = false;
    } catch (error) {
      if (!this.heartbeatFailing) this.log.error("watch: cannot write the heartbeat", { event: "heartbeat-failed", error: errorMessage(error) });
      this.heartbeatFailing = true;
    }
  }
}

async function within(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    return await Promise.race([promise.then(() => true as const), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Runs the watcher until SIGTERM or SIGINT; returns the exit code (0 after a clean stop). */
export async function runWatch(config: AgentConfig, privateKey: Buffer, log: Logger, hooks: WatchHooks): Promise<ExitCode> {
  // Its rescans are passes: the same reason as for runPass (heapPacing.ts) holds for them.
  keepOldGenerationNearLive();
  const watcher = new Watcher(config, privateKey, log, hooks);
  // Before start(): a stop asked for during start-up is honoured within the same 10 s.
  const cancelStart = new AbortController();
  const signalled = new Promise<NodeJS.Signals>((resolve) => {
    const on = (signal: NodeJS.Signals) => {
      cancelStart.abort();
      resolve(signal);
    };
    process.once("SIGTERM", on);
    process.once("SIGINT", on);
  });
  if (await watcher.start(cancelStart.signal)) process.stdout.write(`plutus-sync: watching ${config.outbox}\n`);
  const signal = await signalled;
  const { delivered } = await watcher.stop(signal);
  process.stdout.write(`plutus-sync: watch stopped on ${signal}; ${delivered} delivered\n`);
  return ExitCode.Ok;
}
