/** What one delivery batch reports back to the queue. */
export interface BatchOutcome {
  /** Another pass held the lock: nothing was done, the same work is tried again shortly. */
  locked: boolean;
  /** Names to try again after a back-off (their batch had failures and they are still there). */
  retry: readonly string[];
  /**
   * Names not tried (no connection): they wait in the queue, without a batch, until the names may
   * be delivered again (`mayDeliverNames`, then `wake()`); a rescan still runs meanwhile.
   */
  held?: readonly string[];
}

/** One unit of queued work: names the watcher judged complete, and/or a full rescan pass. */
export interface Batch {
  names: string[];
  rescan: boolean;
}

export interface BatchQueueOptions {
  /** Wait before trying again while another pass holds the lock. */
  lockedRetryMs: number;
  /** First back-off after a batch with failures; doubles up to `maxBackoffMs`. */
  firstBackoffMs: number;
  maxBackoffMs: number;
  /** False while names cannot be delivered (no connection): they wait, only rescans run. */
  mayDeliverNames?: () => boolean;
}

/**
 * Collects names and runs delivery batches one at a time: what arrives while a batch runs goes
 * into the next one. A name queued twice is delivered once per batch (a Set), and a name the
 * batch finds gone or already delivered costs nothing, so duplicate events are harmless.
 */
export class BatchQueue {
  private pending = new Set<string>();
  private rescanWanted = false;
  private running: Promise<void> | undefined;
  private stopped = false;
  private backoffMs = 0;
  private readonly timers = new Set<NodeJS.Timeout>();

  constructor(
    private readonly deliver: (batch: Batch) => Promise<BatchOutcome>,
    private readonly options: BatchQueueOptions,
  ) {}

  add(name: string): void {
    if (this.stopped) return;
    this.pending.add(name);
    this.kick();
  }

  requestRescan(): void {
    if (this.stopped) return;
    this.rescanWanted = true;
    this.kick();
  }

  /** Names may be delivered again (the connection is back): run what waits. */
  wake(): void {
    if (!this.stopped && this.pending.size > 0) this.kick();
  }

  get waiting(): number {
    return this.pending.size;
  }

  /** Resolves when nothing is queued or running (tests, and a clean stop). */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  /** No batch starts after this; resolves when the one running (if any) has ended. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    await this.idle();
  }

  private kick(): void {
    // Names arriving in the same tick (a burst of events) go into one batch.
    this.running ??= new Promise<void>((resolve) => setImmediate(resolve)).then(() => this.drain()).finally(() => (this.running = undefined));
  }

  private later(ms: number, then: () => void): void {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      then();
    }, ms);
    this.timers.add(timer);
  }

  private async drain(): Promise<void> {
    while (!this.stopped) {
      const namesNow = this.pending.size > 0 && (this.options.mayDeliverNames?.() ?? true);
      if (!namesNow && !this.rescanWanted) return;
      const batch: Batch = { names: namesNow ? [...this.pending] : [], rescan: this.rescanWanted };
      if (namesNow) this.pending = new Set();
      this.rescanWanted = false;
      const outcome = await this.deliver(batch);
      if (outcome.held && outcome.held.length > 0) {
        for (const name of outcome.held) this.pending.add(name);
        if (outcome.locked && batch.rescan) this.later(this.options.lockedRetryMs, () => this.requestRescan());
        // Looked at again shortly: by then the connection state says whether they may go.
        this.later(this.options.firstBackoffMs, () => this.wake());
        return;
      }
      if (outcome.locked) {
        this.later(this.options.lockedRetryMs, () => {
          for (const name of batch.names) this.add(name);
          if (batch.rescan) this.requestRescan();
        });
        continue;
      }
      if (outcome.retry.length === 0) {
        this.backoffMs = 0;
        continue;
      }
      this.backoffMs = this.backoffMs === 0 ? this.options.firstBackoffMs : Math.min(this.backoffMs * 2, this.options.maxBackoffMs);
      const retry = outcome.retry;
      this.later(this.backoffMs, () => {
        for (const name of retry) this.add(name);
      });
    }
  }
}
