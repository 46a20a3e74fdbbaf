import { SftpSession, SftpTarget } from "./sftpSession";
import { AuthenticationError, HostKeyMismatchError, OutcomeUnknownError, errorMessage } from "./errors";
import type { Logger } from "./logger";

/** What a connection attempt sees while sshd restarts: worth a quick retry, unlike a timeout. */
const RESTARTING_SERVER = /ECONNREFUSED|ECONNRESET|EPIPE|closed the connection|Connection lost before handshake|SFTP session termination|refused the SFTP subsystem/;

/**
 * The pass's one connection, opened on first use and re-opened after a drop. Concurrent callers
 * share one connection attempt. Host key and authentication failures are final for the pass.
 */
export class RemoteLink {
  private current: SftpSession | undefined;
  private connecting: Promise<SftpSession> | undefined;
  private finalError: Error | undefined;
  /** Aborted by shutdown(): a connect in progress must not keep the pass (and its lock) waiting. */
  private readonly ending = new AbortController();
  connects = 0;

  constructor(
    private readonly target: SftpTarget,
    private readonly log: Logger,
    private readonly retries = 3,
    private readonly retryBaseDelayMs = 500,
  ) {}

  /** A connection is open now (the watcher's idle check). */
  get isConnected(): boolean {
    return this.current?.isOpen === true;
  }

  async session(): Promise<SftpSession> {
    if (this.finalError) throw this.finalError;
    if (this.current?.isOpen) return this.current;
    this.connecting ??= this.connect().finally(() => (this.connecting = undefined));
    return this.connecting;
  }

  private async connect(): Promise<SftpSession> {
    if (this.current) this.closeSession(this.current);
    for (let attempt = 0; ; attempt++) {
      if (this.finalError) throw this.finalError;
      const started = Date.now();
      let session: SftpSession;
      try {
        session = await SftpSession.connect(this.target, this.ending.signal);
      } catch (error) {
        if (this.finalError) throw this.finalError;
        if (error instanceof HostKeyMismatchError || error instanceof AuthenticationError) {
          this.finalError = error;
          throw error;
        }
        if (attempt >= this.retries || !RESTARTING_SERVER.test(errorMessage(error))) throw error;
        this.log.warn("connect failed; retrying", { event: "connect-retry", attempt: attempt + 1, error: errorMessage(error) });
        await new Promise((resolve) => setTimeout(resolve, this.retryBaseDelayMs * 2 ** attempt));
        continue;
      }
      if (this.finalError) {
        // The pass was shut down while this connection was being made: it must not outlive it.
        session.close();
        throw this.finalError;
      }
      this.current = session;
      this.connects++;
      this.log.info("connected", { event: "connected", host: this.target.host, port: this.target.port, user: this.target.username, ms: Date.now() - started, connection: this.connects, requestsCoalesced: session.requestsCoalesced, server: session.serverSoftware, maxOpenHandles: session.handleCap });
      return this.current;
    }
  }

  /** Ends remote work for the rest of the pass: requests in flight and a connect in progress fail, no reconnect follows. */
  shutdown(reason: string): void {
    this.finalError ??= new OutcomeUnknownError(reason);
    this.ending.abort(reason);
    if (this.current) this.closeSession(this.current);
    this.current = undefined;
  }

  /** Closes a connection, saying once whether its server held fewer handles than it was allowed. */
  private closeSession(session: SftpSession): void {
    session.close();
    if (session.handleShortages === 0) return;
    this.log.warn("the server refused opens for lack of handles: it holds fewer than it announced (or the 100 assumed); refused opens waited for a close and were retried", {
      event: "handles-short",
      refusedOpens: session.handleShortages,
      maxOpenHandles: session.handleCap,
    });
    session.handleShortages = 0;
  }
}
