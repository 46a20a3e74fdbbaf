import { createHash } from "node:crypto";
import { Socket } from "node:net";
import { Client, FileEntryWithStats, SFTPWrapper, Stats, utils } from "ssh2";
import type { AgentConfig } from "@plutus/shared";
import { AuthenticationError, ConnectError, HostKeyMismatchError, HostileReplyError, OutcomeUnknownError, errorCode, errorMessage, hasControlCharacters, printable } from "./errors";
import { coalesceSftpRequests } from "./channelCoalescer";

export interface SftpTarget {
  host: string;
  port: number;
  username: string;
  privateKey: Buffer;
  hostKeySha256: string;
  connectTimeoutMs: number;
  operationTimeoutMs: number;
}

/** The connection settings of a configuration. */
export function sftpTarget(config: AgentConfig, privateKey: Buffer): SftpTarget {
  return {
    host: config.remote.host,
    port: config.remote.port,
    username: config.remote.username,
    privateKey,
    hostKeySha256: config.remote.hostKeySha256,
    connectTimeoutMs: config.connectTimeoutSeconds * 1000,
    operationTimeoutMs: config.operationTimeoutSeconds * 1000,
  };
}

/** SFTP status codes (draft-ietf-secsh-filexfer-02) that ssh2 puts in `error.code`. */
export const SFTP_NO_SUCH_FILE = 2;
export const SFTP_PERMISSION_DENIED = 3;
export const SFTP_FAILURE = 4;
const SFTP_EOF = 1;

/**
 * Remote handles open at once, at most: Win32-OpenSSH's descriptor table holds 256 in all (its
 * own included), gesftpserver 128. Fewer when the server announces fewer (limits@openssh.com).
 */
export const MAX_OPEN_HANDLES = 100;
/** An OPEN refused while others are open is taken as "out of handles" this many times, then as final. */
const OPEN_RETRIES_FOR_HANDLES = 8;
/**
 * Below this many other handles open, a refused OPEN is the server's answer (disk full, a name
 * it cannot store), not a shortage: no server holds so few.
 */
const FEWEST_HANDLES_A_SERVER_HOLDS = 8;

/** A listing longer than this is not a staging folder but a server that never ends it. */
export const MAX_LISTING_ENTRIES = 50_000;
export const MAX_LISTING_BYTES = 16 * 1024 * 1024;
/** READDIR replies without a single entry before the listing is refused (a server stalling in place). */
const MAX_EMPTY_LISTING_REPLIES = 64;
/** Short READ replies tolerated per file beyond the reads its size needs. */
const SHORT_READS_ALLOWED = 16;

const { OPEN_MODE } = utils.sftp;

/**
 * The most data one READ or WRITE carries: within what any server accepts in a packet (ssh2
 * assumes 34,000 bytes unless the server is OpenSSH), so ssh2 never splits a request and waits
 * between the pieces.
 */
const CHUNK_BYTES = 30 * 1024;
/**
 * The smallest max-read-length / max-write-length (limits@openssh.com) taken from a server: a
 * server announcing less would make every file cost one request per few bytes. OpenSSH announces
 * 255 KiB; SFTP drafts require servers to take 32 KiB.
 */
export const MIN_ANNOUNCED_LENGTH = 4 * 1024;
/** READs and WRITEs of one file outstanding at once, at most (about 2 MiB at CHUNK_BYTES). */
export const MAX_REQUESTS_IN_FLIGHT_PER_FILE = 64;
const CREATE_EXCLUSIVE_READ_WRITE = OPEN_MODE.CREAT | OPEN_MODE.EXCL | OPEN_MODE.READ | OPEN_MODE.WRITE;

export function openSshFingerprint(keyBlob: Buffer): string {
  return "SHA256:" + createHash("sha256").update(keyBlob).digest("base64").replace(/=+$/, "");
}

interface PendingRequest {
  what: string;
  fail: (error: Error) => void;
}

/**
 * One SSH connection with one SFTP channel. Requests are pipelined by ssh2 on the channel.
 *
 * A request has no deadline of its own: on a slow link a request can wait long behind the ones
 * sent before it, and that is not a fault. What counts is progress: while requests are
 * outstanding, some reply must arrive every `operationTimeoutMs`. When none does, the connection
 * is dead (or the server hung); it is torn down (ssh2 would otherwise wait forever for replies
 * that never come) and every outstanding request fails with OutcomeUnknownError.
 *
 * At most `handleCap` remote handles are open at once; further opens wait for a close.
 */
export class SftpSession {
  private closedError: Error | undefined;

  private corked = false;

  private readonly outstanding = new Set<PendingRequest>();
  private lastProgressAt = 0;
  private watchdog: NodeJS.Timeout | undefined;

  /** Handles open or being opened, and opens waiting for one to close. */
  private handlesHeld = 0;
  private readonly handleWaiters: (() => void)[] = [];
  /** Opens the server refused while others were open (it holds fewer handles than allowed). */
  handleShortages = 0;

  private constructor(
    private readonly client: Client,
    private readonly socket: Socket,
    private readonly sftp: SFTPWrapper,
    private readonly operationTimeoutMs: number,
    /** Requests issued together share SSH packets (false: ssh2's internals were not as expected). */
    readonly requestsCoalesced: boolean,
    /** The software part of the server's SSH version line (e.g. "OpenSSH_for_Windows_8.1"), made printable. */
    readonly serverSoftware: string,
    /** Remote handles this session keeps open at once, at most. */
    public handleCap: number,
  ) {
    client.on("close", () => {
      this.closedError ??= new OutcomeUnknownError("the SSH connection closed");
      this.failOutstanding(() => this.closedError!);
    });
    client.on("error", (error) => {
      this.closedError ??= new OutcomeUnknownError(`the SSH connection failed: ${printable(errorMessage(error))}`, { cause: error });
    });
  }

  get isOpen(): boolean {
    return this.closedError === undefined;
  }

  /** `signal` abandons the attempt (the pass or watcher is ending): it fails at once, the socket is destroyed. */
  static async connect(target: SftpTarget, signal?: AbortSignal): Promise<SftpSession> {
    const where = `${target.username}@${target.host}:${target.port}`;
    if (signal?.aborted) throw abandoned(where, signal);
    const client = new Client();
    const socket = new Socket();
    // Many small pipelined requests: Nagle's algorithm would hold each one back ~40 ms.
    socket.setNoDelay(true);
    const versionLine = readVersionLine(socket);
    let presented: string | undefined;
    let abandon = () => undefined as void;
    const ready = new Promise<void>((resolve, reject) => {
      let settled = false;
      const fail = (error: ConnectError) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        client.destroy();
        // ssh2's destroy() skips a socket it does not deem writable (its isWritable): ours is closed anyway.
        socket.destroy();
        reject(error);
      };
      const timer = setTimeout(
        () => fail(new ConnectError(`cannot connect to ${where}: no SSH session within ${target.connectTimeoutMs} ms`)),
        target.connectTimeoutMs,
      );
      client.once("ready", () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve();
      });
      // Permanent listeners: ssh2 may emit a second error after the first (e.g. "Connection lost
      // before handshake" after a timeout), and an unhandled 'error' event would kill the process.
      client.on("error", (error: Error & { level?: string }) => {
        if (presented !== undefined && presented !== target.hostKeySha256) {
          fail(new HostKeyMismatchError(target.hostKeySha256, presented, `${target.host}:${target.port}`));
        } else if (error.level === "client-authentication") {
          fail(new AuthenticationError(`authentication as ${where} failed: the server did not accept the private key (only public-key authentication is attempted)`, { cause: error }));
        } else {
          // The server's own words (a DISCONNECT reason, a protocol complaint): printable only.
          fail(new ConnectError(`cannot connect to ${where}: ${printable(errorMessage(error))}`, { cause: error }));
        }
      });
      client.on("close", () => fail(new ConnectError(`cannot connect to ${where}: the server closed the connection during the handshake`)));
      abandon = () => fail(abandoned(where, signal!));
      signal?.addEventListener("abort", abandon, { once: true });
    });
    socket.connect({ host: target.host, port: target.port });
    client.connect({
      sock: socket,
      host: target.host,
      port: target.port,
      username: target.username,
      privateKey: target.privateKey,
      // Public key only: no password, no keyboard-interactive, no agent, ever.
      authHandler: ["publickey"],
      tryKeyboard: false,
      hostVerifier: (keyBlob: Buffer) => {
        presented = openSshFingerprint(keyBlob);
        return presented === target.hostKeySha256;
      },
      // AES-CTR with encrypt-then-MAC keeps one cipher for the whole connection in ssh2's pure-JS
      // path; chacha20-poly1305 and GCM build a cipher per packet, which dominates with small files.
      algorithms: {
        cipher: ["aes128-ctr", "aes256-ctr", "aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "chacha20-poly1305@openssh.com"],
        hmac: ["hmac-sha2-256-etm@openssh.com", "hmac-sha2-512-etm@openssh.com", "hmac-sha2-256", "hmac-sha2-512"],
      },
      // Our own timer above is the one that counts; ssh2's must not race it.
      readyTimeout: target.connectTimeoutMs + 5_000,
      keepaliveInterval: 10_000,
      keepaliveCountMax: 3,
    });
    await ready.finally(() => signal?.removeEventListener("abort", abandon));
    const sftp = await new Promise<SFTPWrapper>((resolve, reject) => {
      const abandonChannel = () => {
        clearTimeout(timer);
        client.destroy();
        socket.destroy();
        reject(abandoned(where, signal!));
      };
      const timer = setTimeout(() => {
        signal?.removeEventListener("abort", abandonChannel);
        client.destroy();
        reject(new ConnectError(`${where} opened no SFTP channel within ${target.operationTimeoutMs} ms`));
      }, target.operationTimeoutMs);
      if (signal?.aborted) return abandonChannel();
      signal?.addEventListener("abort", abandonChannel, { once: true });
      client.sftp((error, channel) => {
        signal?.removeEventListener("abort", abandonChannel);
        clearTimeout(timer);
        if (error) {
          client.destroy();
          reject(new ConnectError(`${where} refused the SFTP subsystem: ${printable(errorMessage(error))}`, { cause: error }));
        } else resolve(channel);
      });
    });
    try {
      chunkBytesFor(sftp, where);
    } catch (error) {
      client.destroy();
      throw error;
    }
    // ssh2 sets maxOpenHandles from limits@openssh.com before the channel is handed over.
    const announced = (sftp as unknown as { maxOpenHandles?: unknown }).maxOpenHandles;
    const handleCap = typeof announced === "number" && announced > 0 ? Math.min(MAX_OPEN_HANDLES, announced) : MAX_OPEN_HANDLES;
    return new SftpSession(client, socket, sftp, target.operationTimeoutMs, coalesceSftpRequests(client, sftp, socket), serverSoftwareOf(versionLine()), handleCap);
  }

  close(): void {
    this.closedError ??= new OutcomeUnknownError("the SSH connection was closed by the agent");
    this.failOutstanding(() => this.closedError!);
    this.client.end();
    this.client.destroy();
  }

  /**
   * Without coalescing (ssh2's internals not as expected): requests issued in the same tick at
   * least leave in one write instead of one syscall each.
   */
  private batchWrites(): void {
    if (this.corked || this.requestsCoalesced) return;
    this.corked = true;
    this.socket.cork();
    process.nextTick(() => {
      this.corked = false;
      this.socket.uncork();
    });
  }

  private call<T>(what: string, start: (done: (error: Error | null | undefined, value?: T) => void) => void): Promise<T> {
    if (this.closedError) return Promise.reject(this.closedError);
    this.batchWrites();
    return new Promise<T>((resolve, reject) => {
      const pending: PendingRequest = { what, fail: reject };
      // Idle time before this request is nobody's fault: the progress clock starts now.
      if (this.outstanding.size === 0) this.lastProgressAt = Date.now();
      this.outstanding.add(pending);
      this.armWatchdog();
      const done = (error: Error | null | undefined, value?: T) => {
        if (!this.outstanding.delete(pending)) return;
        this.lastProgressAt = Date.now();
        if (error) reject(this.describe(what, error));
        else resolve(value as T);
      };
      try {
        start(done);
      } catch (error) {
        done(error as Error);
      }
    });
  }

  private armWatchdog(): void {
    if (this.watchdog) return;
    this.watchdog = setTimeout(() => {
      this.watchdog = undefined;
      if (this.outstanding.size === 0) return;
      const silentMs = Date.now() - this.lastProgressAt;
      if (silentMs < this.operationTimeoutMs) {
        this.armWatchdog();
        return;
      }
      const outstanding = this.outstanding.size;
      this.closedError ??= new OutcomeUnknownError(`no reply within ${this.operationTimeoutMs} ms with ${outstanding} request(s) outstanding; connection dropped`);
      this.failOutstanding((what) => new OutcomeUnknownError(`${what}: no reply within ${this.operationTimeoutMs} ms (nothing came back on the connection for that long); connection dropped`));
      this.client.destroy();
    }, Math.max(0, this.lastProgressAt + this.operationTimeoutMs - Date.now()));
  }

  private failOutstanding(errorFor: (what: string) => Error): void {
    const failing = [...this.outstanding];
    this.outstanding.clear();
    if (this.watchdog) clearTimeout(this.watchdog);
    this.watchdog = undefined;
    for (const pending of failing) pending.fail(errorFor(pending.what));
    // Opens waiting for a handle find the session closed and fail too.
    if (this.closedError) for (const wake of this.handleWaiters.splice(0)) wake();
  }

  /** A status reply is a definite answer; anything else (no reply, channel gone) is not. */
  private describe(what: string, error: Error): Error {
    const code = errorCode(error);
    const said = printable(errorMessage(error));
    if (typeof code === "number") {
      return Object.assign(new Error(`${what}: ${said}`, { cause: error }), { code });
    }
    this.closedError ??= new OutcomeUnknownError(`connection lost: ${said}`);
    return new OutcomeUnknownError(`${what}: ${said}`, { cause: error });
  }

  private get chunkBytes(): number {
    return chunkBytesFor(this.sftp, "the server");
  }

  private async takeHandleSlot(): Promise<void> {
    while (this.handlesHeld >= this.handleCap) {
      if (this.closedError) throw this.closedError;
      await new Promise<void>((resolve) => this.handleWaiters.push(resolve));
    }
    this.handlesHeld++;
  }

  private giveHandleSlot(): void {
    this.handlesHeld--;
    this.handleWaiters.shift()?.();
  }

  /**
   * Opens a remote handle within the cap. A FAILURE while many other handles are open is taken as the
   * server running out of them (it holds fewer than the cap or what it announced): the cap drops
   * to what is open now and the open waits for a close, then tries again. An exclusive create the
   * server made before it ran out of handles is removed first (it is this upload's own name).
   */
  private async openCounted(path: string, mode: number, create: boolean): Promise<Buffer> {
    for (let attempt = 0; ; attempt++) {
      await this.takeHandleSlot();
      try {
        return await this.call<Buffer>(`open ${path}`, (done) => this.sftp.open(path, mode, { mode: 0o640 }, done));
      } catch (error) {
        this.giveHandleSlot();
        const othersOpen = this.handlesHeld;
        if (errorCode(error) !== SFTP_FAILURE || othersOpen < FEWEST_HANDLES_A_SERVER_HOLDS || attempt >= OPEN_RETRIES_FOR_HANDLES) throw error;
        this.handleShortages++;
        this.handleCap = Math.min(this.handleCap, othersOpen);
        if (create) await this.unlink(path).catch(() => undefined);
      }
    }
  }

  /** "r": read; "wx+": create exclusively (fail if it exists), read and write. */
  open(path: string, flags: "r" | "wx+"): Promise<Buffer> {
    return flags === "r" ? this.openCounted(path, OPEN_MODE.READ, false) : this.openCounted(path, CREATE_EXCLUSIVE_READ_WRITE, true);
  }

  write(handle: Buffer, data: Buffer): Promise<void> {
    return this.writeAt(handle, data, 0);
  }

  private writeAt(handle: Buffer, data: Buffer, position: number): Promise<void> {
    return this.call("write", (done) => this.sftp.write(handle, data, 0, data.length, position, (error) => done(error)));
  }

  fstat(handle: Buffer): Promise<Stats> {
    return this.call("fstat", (done) => this.sftp.fstat(handle, done));
  }

  read(handle: Buffer, length: number, position: number): Promise<Buffer> {
    // Not zero-filled: only the bytesRead the server sent are ever looked at.
    const buffer = Buffer.allocUnsafe(length);
    return this.readInto(handle, buffer, 0, length, position).then((bytesRead) => buffer.subarray(0, bytesRead));
  }

  /** Reads into `buffer` at `offset`; resolves with the bytes the server sent (0 at end of file). */
  private readInto(handle: Buffer, buffer: Buffer, offset: number, length: number, position: number): Promise<number> {
    return this.call<number>("read", (done) =>
      this.sftp.read(handle, buffer, offset, length, position, (error, bytesRead) => {
        // ssh2 reports end of file as a status error with code SFTP_EOF.
        if (error && errorCode(error) === SFTP_EOF) done(undefined, 0);
        else done(error, bytesRead);
      }),
    );
  }

  closeHandle(handle: Buffer): Promise<void> {
    // The slot is free once the close is sent: a close that fails leaves no handle we could use.
    return this.call<void>("close", (done) => this.sftp.close(handle, (error) => done(error))).finally(() => this.giveHandleSlot());
  }

  stat(path: string): Promise<Stats> {
    return this.call(`stat ${path}`, (done) => this.sftp.stat(path, done));
  }

  /** Plain SFTP RENAME: never replaces an existing target (OpenSSH links then unlinks). */
  rename(from: string, to: string): Promise<void> {
    return this.call(`rename ${from} -> ${to}`, (done) => this.sftp.rename(from, to, (error) => done(error)));
  }

  unlink(path: string): Promise<void> {
    return this.call(`remove ${path}`, (done) => this.sftp.unlink(path, (error) => done(error)));
  }

  /** Opens a remote folder for listing, inside the open-handle cap (closeHandle gives the slot back). */
  private async openDir(path: string): Promise<Buffer> {
    await this.takeHandleSlot();
    try {
      return await this.call<Buffer>(`list ${path}`, (done) => this.sftp.opendir(path, done));
    } catch (error) {
      this.giveHandleSlot();
      throw error;
    }
  }

  /**
   * The names in a remote folder (those without control characters), read one READDIR at a time so
   * that a server which never ends the listing is caught: more than MAX_LISTING_ENTRIES names, MAX_LISTING_BYTES of listing text, or
   * many replies without a name is refused with HostileReplyError.
   */
  async readdir(path: string): Promise<string[]> {
    const handle = await this.openDir(path);
    const names: string[] = [];
    let bytes = 0;
    let emptyReplies = 0;
    try {
      for (;;) {
        const entries = await this.call<{ filename: string; longname: string }[] | undefined>(`list ${path}`, (done) =>
          this.sftp.readdir(handle, (error, list) => {
            if (error && errorCode(error) === SFTP_EOF) done(undefined, undefined);
            else done(error, list);
          }),
        );
        if (entries === undefined) return names;
        if (entries.length === 0 && ++emptyReplies > MAX_EMPTY_LISTING_REPLIES) {
          throw new HostileReplyError(`the listing of ${path} was refused: the server sent ${emptyReplies} replies without a name and no end`);
        }
        for (const entry of entries) {
          bytes += Buffer.byteLength(entry.filename) + Buffer.byteLength(entry.longname ?? "");
          // No name of ours holds a control character (nor can any name on NTFS): such a name is
          // left out, so it never reaches an error message or a log line.
          if (!hasControlCharacters(entry.filename)) names.push(entry.filename);
        }
        if (names.length > MAX_LISTING_ENTRIES || bytes > MAX_LISTING_BYTES) {
          throw new HostileReplyError(
            `the listing of ${path} was refused after ${names.length} names (${bytes} bytes): more than the ${MAX_LISTING_ENTRIES} names or ${MAX_LISTING_BYTES} bytes a staging folder may hold`,
          );
        }
      }
    } finally {
      await this.closeHandle(handle).catch(() => undefined);
    }
  }

  /**
   * Reads a whole remote file through an open handle: its size from fstat, then its bytes into one
   * buffer of that size. A server answering with pieces much shorter than asked (a byte at a time)
   * is refused with HostileReplyError.
   */
  async readAll(handle: Buffer, maxBytes: number): Promise<Buffer> {
    const { size } = await this.fstat(handle);
    if (size > maxBytes) throw new Error(`remote file is ${size} bytes, more than the ${maxBytes} expected`);
    const chunk = this.chunkBytes;
    const buffer = Buffer.allocUnsafe(size);
    const readsAllowed = Math.ceil(size / chunk) + SHORT_READS_ALLOWED;
    let position = 0;
    for (let reads = 1; position < size; reads++) {
      if (reads > readsAllowed) {
        throw new HostileReplyError(`reading a ${size}-byte remote file was refused: ${reads - 1} reads returned only ${position} bytes (the server answers in pieces too short)`);
      }
      const bytesRead = await this.readInto(handle, buffer, position, Math.min(size - position, chunk), position);
      if (bytesRead === 0) break;
      position += bytesRead;
    }
    return buffer.subarray(0, position);
  }

  /**
   * Writes `content` into a file just created through `handle`, reads it back and closes the
   * handle, sending every request at once: one round trip instead of three or more.
   *
   * The reads see the writes because the server handles a channel's requests in the order they
   * arrive (OpenSSH's sftp-server, which Win32-OpenSSH ships too, takes them one at a time). A
   * server that did otherwise would make the read-back differ, and the upload would fail
   * verification; it could never pass unverified. `content.length + 1` bytes are asked for, so a
   * longer file shows, and only the gapless prefix of the replies is returned, so a short reply
   * in the middle shows as a size mismatch.
   */
  async writeReadBackClose(handle: Buffer, content: Buffer): Promise<Buffer> {
    const chunk = this.chunkBytes;
    // Sent in this order, never more than MAX_REQUESTS_IN_FLIGHT_PER_FILE outstanding: a large
    // file costs a few more round trips, not a request object per chunk all at once.
    const send = inOrderWithin(MAX_REQUESTS_IN_FLIGHT_PER_FILE);
    const writes: Promise<void>[] = [];
    for (let position = 0; position < content.length; position += chunk) {
      const at = position;
      writes.push(send(() => this.writeAt(handle, content.subarray(at, at + chunk), at)));
    }
    const reads: Promise<Buffer>[] = [];
    const asked: number[] = [];
    for (let position = 0; position <= content.length; position += chunk) {
      const at = position;
      const length = Math.min(chunk, content.length + 1 - at);
      asked.push(length);
      reads.push(send(() => this.read(handle, length, at)));
    }
    const closed = send(() => this.closeHandle(handle));
    const outcomes = await Promise.allSettled<unknown>([...writes, ...reads, closed]);
    const failed = outcomes.find((o): o is PromiseRejectedResult => o.status === "rejected");
    if (failed) throw failed.reason;
    const chunks: Buffer[] = [];
    for (let i = 0; i < reads.length; i++) {
      const chunk = (outcomes[writes.length + i] as PromiseFulfilledResult<Buffer>).value;
      chunks.push(chunk);
      if (chunk.length < asked[i]) break;
    }
    return chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
  }

  /** The SHA-256 (hex) and size of a remote file, or undefined when it does not exist. */
  async hashRemote(path: string, maxBytes: number): Promise<{ sha256: string; size: number } | undefined> {
    let handle: Buffer;
    try {
      handle = await this.open(path, "r");
    } catch (error) {
      if (errorCode(error) === SFTP_NO_SUCH_FILE) return undefined;
      throw error;
    }
    try {
      const content = await this.readAll(handle, maxBytes);
      return { sha256: createHash("sha256").update(content).digest("hex"), size: content.length };
    } finally {
      await this.closeHandle(handle).catch(() => undefined);
    }
  }

  /** True, false, or throws when the answer is not a definite "no such file". */
  async exists(path: string): Promise<boolean> {
    try {
      await this.stat(path);
      return true;
    } catch (error) {
      if (errorCode(error) === SFTP_NO_SUCH_FILE) return false;
      throw error;
    }
  }

  /**
   * One folder's entries with their attributes, read one READDIR reply at a time and never more
   * than `maxEntries` of them: the server is not trusted to end its listing. `complete` is false
   * when the cap cut the listing short; more than MAX_LISTING_BYTES of listing text is refused
   * with HostileReplyError.
   */
  async listEntries(path: string, maxEntries: number): Promise<{ entries: RemoteEntry[]; complete: boolean }> {
    const handle = await this.openDir(path);
    const entries: RemoteEntry[] = [];
    let bytes = 0;
    let emptyReplies = 0;
    try {
      while (entries.length < maxEntries) {
        const batch = await this.call<FileEntryWithStats[] | false>(`list ${path}`, (done) =>
          this.sftp.readdir(handle, (error, list) => (error && errorCode(error) === 1 ? done(undefined, false) : done(error, list ?? false))),
        );
        if (batch === false) return { entries, complete: true };
        const before = entries.length;
        for (const entry of batch.slice(0, maxEntries - entries.length)) {
          bytes += Buffer.byteLength(entry.filename) + Buffer.byteLength(entry.longname ?? "");
          if (entry.filename === "." || entry.filename === "..") continue;
          // Counted (it is a file waiting), but its name is never kept as the server sent it.
          const name = hasControlCharacters(entry.filename) ? printable(entry.filename, 200) : entry.filename;
          const mtime = entry.attrs?.mtime;
          const type = typeof entry.attrs?.mode === "number" ? entry.attrs.mode & 0o170000 : 0;
          entries.push({
            name,
            // No file type at all (mode 0): a server that sends no attributes; count the entry as a file.
            isFile: type === 0o100000 || type === 0,
            // 0 is what servers send when they do not say.
            mtimeSeconds: typeof mtime === "number" && Number.isFinite(mtime) && mtime > 0 ? mtime : undefined,
          });
        }
        if (entries.length === before && ++emptyReplies > MAX_EMPTY_LISTING_REPLIES) {
          throw new HostileReplyError(`the listing of ${path} was refused: the server sent ${emptyReplies} replies without a new name and no end`);
        }
        if (bytes > MAX_LISTING_BYTES) {
          throw new HostileReplyError(`the listing of ${path} was refused after ${entries.length} names (${bytes} bytes): more than the ${MAX_LISTING_BYTES} bytes a listing may take`);
        }
      }
      return { entries, complete: false };
    } finally {
      await this.closeHandle(handle).catch(() => undefined);
    }
  }
}

/**
 * CHUNK_BYTES, or less when the server announced smaller limits (limits@openssh.com, kept by
 * ssh2): a request ssh2 split would send its second half only after the first half's reply,
 * i.e. after the CLOSE that writeReadBackClose sends with it. Limits below MIN_ANNOUNCED_LENGTH
 * are refused with HostileReplyError.
 */
export function chunkBytesFor(sftp: unknown, where: string): number {
  const limits = sftp as { _maxWriteLen?: unknown; _maxReadLen?: unknown };
  let chunk = CHUNK_BYTES;
  for (const [what, limit] of [
    ["max-write-length", limits._maxWriteLen],
    ["max-read-length", limits._maxReadLen],
  ] as const) {
    if (typeof limit !== "number" || !(limit > 0)) continue;
    if (limit < MIN_ANNOUNCED_LENGTH) {
      throw new HostileReplyError(`${where} announced a ${what} of ${limit} bytes (limits@openssh.com), less than the ${MIN_ANNOUNCED_LENGTH} any server takes; refused`);
    }
    chunk = Math.min(chunk, limit);
  }
  return chunk;
}

/**
 * Starts the tasks given to it in the order given, with at most `limit` of them unsettled at
 * once; each call returns its task's outcome.
 */
export function inOrderWithin(limit: number): <T>(task: () => Promise<T>) => Promise<T> {
  let running = 0;
  const waiting: (() => void)[] = [];
  return <T>(task: () => Promise<T>) =>
    new Promise<T>((resolve, reject) => {
      const start = () => {
        running++;
        let outcome: Promise<T>;
        try {
          outcome = task();
        } catch (error) {
          outcome = Promise.reject(error);
        }
        outcome
          .then(resolve, reject)
          .finally(() => {
            running--;
            waiting.shift()?.();
          });
      };
      if (running < limit) start();
      else waiting.push(start);
    });
}

/** A remote folder entry as `listEntries` reports it. */
export interface RemoteEntry {
  name: string;
  isFile: boolean;
  /** Last modification, seconds since the epoch, when the server said. */
  mtimeSeconds: number | undefined;
}

/** The first line starting "SSH-" the server sends (its version line), as soon as it is there. */
function readVersionLine(socket: Socket): () => string | undefined {
  let seen = "";
  let line: string | undefined;
  const onData = (data: Buffer) => {
    seen += data.toString("latin1");
    const match = /^SSH-[^\r\n]*(?=\r?\n)/m.exec(seen);
    if (match) line = match[0];
    // Enough for the lines RFC 4253 allows before it; the rest is the binary protocol.
    if (line !== undefined || seen.length > 8192) socket.off("data", onData);
  };
  socket.on("data", onData);
  return () => line;
}

/** "SSH-2.0-OpenSSH_for_Windows_8.1 comment" -> "OpenSSH_for_Windows_8.1", printable. */
function serverSoftwareOf(versionLine: string | undefined): string {
  const software = versionLine?.split(" ")[0].split("-").slice(2).join("-");
  return software ? printable(software, 100) : "unknown";
}

function abandoned(where: string, signal: AbortSignal): ConnectError {
  return new ConnectError(`connecting to ${where} was abandoned: ${errorMessage(signal.reason)}`);
}
