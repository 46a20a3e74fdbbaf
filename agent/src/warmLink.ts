import type { AgentConfig } from "@plutus/shared";
import { RemoteLink } from "./remoteLink";
import { sftpTarget } from "./sftpSession";
import { AuthenticationError, HostKeyMismatchError, errorMessage } from "./errors";
import type { Logger } from "./logger";

export type ConnectionState = "connecting" | "connected" | "disconnected";

/** How often an idle watcher looks whether its connection is still open. */
const CHECK_INTERVAL_MS = 1_000;

/**
 * The watcher's one SFTP connection, kept open between batches. A dropped connection is opened
 * again with back-off (from `firstBackoffMs`, doubling to `maxBackoffMs`); each change of state is
 * logged once, not each attempt. A batch aborted at its deadline or on SIGTERM shuts its
 * RemoteLink down for good; the next batch gets a fresh one.
 */
export class WarmLink {
  private link: RemoteLink;
  private linkAborted = false;
  private state: ConnectionState = "connecting";
  private lastError: string | undefined;
  private backoffMs = 0;
  private timer: NodeJS.Timeout | undefined;
  private attempt: Promise<void> | undefined;
  private closed = false;

  constructor(
    private readonly config: AgentConfig,
    private readonly privateKey: Buffer,
    private readonly log: Logger,
    /** Called after each change of state (the watcher's heartbeat shows it). */
    private readonly onChange: () => void,
    private readonly firstBackoffMs = 250,
    private readonly maxBackoffMs = 30_000,
  ) {
    this.link = this.newLink();
  }

  get connectionState(): ConnectionState {
    return this.state;
  }

  /** The link batches deliver over (a new one after an abort). */
  current(): RemoteLink {
    if (this.linkAborted) {
      this.link = this.newLink();
      this.linkAborted = false;
    }
    return this.link;
  }

  /** Connects now and keeps the connection open until close(). */
  start(): void {
    this.schedule(0);
  }

  /** Fails the requests in flight on the current link (batch deadline, SIGTERM). */
  abort(reason: string): void {
    this.link.shutdown(reason);
    this.linkAborted = true;
  }

  /** A batch saw the connection fail: check at once rather than at the next interval. */
  noteTrouble(): void {
    if (!this.closed && !this.attempt) this.schedule(0);
  }

  /** A batch connected while this link counted as down (it tried between back-off attempts): say so now. */
  noteConnected(): void {
    if (!this.closed && !this.attempt && this.state !== "connected") this.schedule(0);
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    this.link.shutdown("the watcher is stopping");
  }

  private newLink(): RemoteLink {
    // No retries inside the link: the watcher's back-off decides when to try again.
    return new RemoteLink(sftpTarget(this.config, this.privateKey), this.log, 0, this.config.retryBaseDelayMs);
  }

  private schedule(ms: number): void {
    clearTimeout(this.timer);
    if (this.closed) return;
    this.timer = setTimeout(() => void this.check(), ms);
    this.timer.unref();
  }

  private async check(): Promise<void> {
    if (this.closed || this.attempt) return;
    if (this.current().isConnected) {
      this.enter("connected");
      this.schedule(CHECK_INTERVAL_MS);
      return;
    }
    this.attempt = this.current()
      .session()
      .then(
        () => {
          this.backoffMs = 0;
          this.enter("connected");
          this.schedule(CHECK_INTERVAL_MS);
        },
        (error) => {
          this.lastError = errorMessage(error);
          // A host key or authentication failure is final for a RemoteLink; an operator may fix
          // it meanwhile, so the next attempt starts from a fresh link. Any other failure keeps
          // the link: a batch may still hold it and reconnect it, and a link replaced then would
          // keep that second connection open for good.
          if (error instanceof HostKeyMismatchError || error instanceof AuthenticationError) this.linkAborted = true;
          this.enter("disconnected");
          this.backoffMs = this.backoffMs === 0 ? this.firstBackoffMs : Math.min(this.backoffMs * 2, this.maxBackoffMs);
          this.schedule(this.backoffMs);
        },
      )
      .finally(() => (this.attempt = undefined));
  }

  private enter(state: ConnectionState): void {
    if (state === this.state) return;
    const was = this.state;
    this.state = state;
    this.onChange();
    if (state === "disconnected") {
      this.log.warn("watch: no connection to the ERP; retrying with back-off", { event: "watch-disconnected", was, error: this.lastError, maxBackoffMs: this.maxBackoffMs });
    } else if (state === "connected" && was === "disconnected") {
      this.log.info("watch: connection to the ERP restored", { event: "watch-connected" });
    }
  }
}
