import { createHash } from "node:crypto";
import { Socket } from "node:net";
import { Client, FileEntryWithStats, SFTPWrapper, Stats, utils } from "ssh2";
import type { AgentConfig } from "@plutus/shared";
import { ConnectError, HostKeyMismatchError, OutcomeUnknownError, errorCode, errorMessage } from "./errors";
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

const { OPEN_MODE } = utils.sftp;

/**
 * The most data one READ or WRITE carries: within what any server accepts in a packet (ssh2
 * assumes 34,000 bytes unless the server is OpenSSH), so ssh2 never splits a request and waits
 * between the pieces.
 */
const CHUNK_BYTES = 30 * 1024;
const CREATE_EXCLUSIVE_READ_WRITE = OPEN_MODE.CREAT | OPEN_MODE.EXCL | OPEN_MODE.READ | OPEN_MODE.WRITE;

export function openSshFingerprint(keyBlob: Buffer): string {
  return "SHA256:" + createHash("sha256").update(keyBlob).digest("base64").replace(/=+$/, "");
}

/**
 * One SSH connection with one SFTP channel. Requests are pipelined by ssh2 on the channel; every
 * request has its own deadline, and a request that misses it tears the whole connection down
 * (ssh2 would otherwise wait forever for a reply that never comes) and fails with
 * OutcomeUnknownError.
 */
export class SftpSession {
  private closedError: Error | undefined;

  private corked = false;

  private constructor(
    private readonly client: Client,
    private readonly socket: Socket,
    private readonly sftp: SFTPWrapper,
    private readonly operationTimeoutMs: number,
    /** Requests issued together share SSH packets (false: ssh2's internals were not as expected). */
    readonly requestsCoalesced: boolean,
  ) {
    client.on("close", () => {
      this.closedError ??= new OutcomeUnknownError("the SSH connection closed");
    });
    client.on("error", (error) => {
      this.closedError ??= new OutcomeUnknownError(`the SSH connection failed: ${errorMessage(error)}`, { cause: error });
    });
  }

  get isOpen(): boolean {
    return this.closedError === undefined;
  }

  static async connect(target: SftpTarget): Promise<SftpSession> {
    const client = new Client();
    const socket = new Socket();
    // Many small pipelined requests: Nagle's algorithm would hold each one back ~40 ms.
    socket.setNoDelay(true);
    let presented: string | undefined;
    const where = `${target.username}@${target.host}:${target.port}`;
    const ready = new Promise<void>((resolve, reject) => {
      let settled = false;
      const fail = (error: ConnectError) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        client.destroy();
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
          fail(new ConnectError(`authentication as ${where} failed: the server did not accept the private key (only public-key authentication is attempted)`, { cause: error }));
        } else {
          fail(new ConnectError(`cannot connect to ${where}: ${errorMessage(error)}`, { cause: error }));
        }
      });
      client.on("close", () => fail(new ConnectError(`cannot connect to ${where}: the server closed the connection during the handshake`)));
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
    await ready;
    const sftp = await new Promise<SFTPWrapper>((resolve, reject) => {
      const timer = setTimeout(() => {
        client.destroy();
        reject(new ConnectError(`${where} opened no SFTP channel within ${target.operationTimeoutMs} ms`));
      }, target.operationTimeoutMs);
      client.sftp((error, channel) => {
        clearTimeout(timer);
        if (error) {
          client.destroy();
          reject(new ConnectError(`${where} refused the SFTP subsystem: ${errorMessage(error)}`, { cause: error }));
        } else resolve(channel);
      });
    });
    return new SftpSession(client, socket, sftp, target.operationTimeoutMs, coalesceSftpRequests(client, sftp, socket));
  }

  close(): void {
    this.closedError ??= new OutcomeUnknownError("the SSH connection was closed by the agent");
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
      let settled = false;
      const timer = setTimeout(() => {
        if (settled) return;
        settled = true;
        const error = new OutcomeUnknownError(`${what}: no reply within ${this.operationTimeoutMs} ms; connection dropped`);
        this.closedError ??= error;
        this.client.destroy();
        reject(error);
      }, this.operationTimeoutMs);
      try {
        start((error, value) => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          if (error) reject(this.describe(what, error));
          else resolve(value as T);
        });
      } catch (error) {
        settled = true;
        clearTimeout(timer);
        reject(this.describe(what, error as Error));
      }
    });
  }

  /** A status reply is a definite answer; anything else (no reply, channel gone) is not. */
  private describe(what: string, error: Error): Error {
    const code = errorCode(error);
    if (typeof code === "number") {
      return Object.assign(new Error(`${what}: ${error.message}`, { cause: error }), { code });
    }
    this.closedError ??= new OutcomeUnknownError(`connection lost: ${errorMessage(error)}`);
    return new OutcomeUnknownError(`${what}: ${errorMessage(error)}`, { cause: error });
  }

  /**
   * CHUNK_BYTES, or less when the server announced smaller limits (limits@openssh.com, kept by
   * ssh2): a request ssh2 split would send its second half only after the first half's reply,
   * i.e. after the CLOSE that writeReadBackClose sends with it.
   */
  private get chunkBytes(): number {
    const limits = this.sftp as unknown as { _maxWriteLen?: unknown; _maxReadLen?: unknown };
    let chunk = CHUNK_BYTES;
    for (const limit of [limits._maxWriteLen, limits._maxReadLen]) {
      if (typeof limit === "number" && limit > 0) chunk = Math.min(chunk, limit);
    }
    return chunk;
  }

  /** "r": read; "wx+": create exclusively (fail if it exists), read and write. */
  open(path: string, flags: "r" | "wx+"): Promise<Buffer> {
    const mode = flags === "r" ? utils.sftp.OPEN_MODE.READ : CREATE_EXCLUSIVE_READ_WRITE;
    return this.call(`open ${path}`, (done) => this.sftp.open(path, mode, { mode: 0o640 }, done));
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
    return this.call("read", (done) =>
      this.sftp.read(handle, buffer, 0, length, position, (error, bytesRead) => done(error, buffer.subarray(0, bytesRead))),
    );
  }

  closeHandle(handle: Buffer): Promise<void> {
    return this.call("close", (done) => this.sftp.close(handle, (error) => done(error)));
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

  readdir(path: string): Promise<string[]> {
    return this.call(`list ${path}`, (done) =>
      this.sftp.readdir(path, (error, list) => done(error, list?.map((entry) => entry.filename))),
    );
  }

  /** Reads a whole remote file through an open handle: its size from fstat, then its bytes. */
  async readAll(handle: Buffer, maxBytes: number): Promise<Buffer> {
    const { size } = await this.fstat(handle);
    if (size > maxBytes) throw new Error(`remote file is ${size} bytes, more than the ${maxBytes} expected`);
    const chunks: Buffer[] = [];
    let position = 0;
    while (position < size) {
      const chunk = await this.read(handle, Math.min(size - position, 256 * 1024), position).catch((error) => {
        // ssh2 reports end of file as a status error with code SFTP_EOF (1).
        if (errorCode(error) === 1) return Buffer.alloc(0);
        throw error;
      });
      if (chunk.length === 0) break;
      chunks.push(chunk);
      position += chunk.length;
    }
    return Buffer.concat(chunks);
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
    const writes: Promise<void>[] = [];
    for (let position = 0; position < content.length; position += chunk) {
      writes.push(this.writeAt(handle, content.subarray(position, position + chunk), position));
    }
    const reads: Promise<Buffer>[] = [];
    const asked: number[] = [];
    for (let position = 0; position <= content.length; position += chunk) {
      asked.push(Math.min(chunk, content.length + 1 - position));
      reads.push(this.read(handle, asked[asked.length - 1], position));
    }
    const closed = this.closeHandle(handle);
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
   * when the cap cut the listing short.
   */
  async listEntries(path: string, maxEntries: number): Promise<{ entries: RemoteEntry[]; complete: boolean }> {
    const handle = await this.call<Buffer>(`list ${path}`, (done) => this.sftp.opendir(path, done));
    const entries: RemoteEntry[] = [];
    let emptyReplies = 0;
    try {
      while (entries.length < maxEntries) {
        const batch = await this.call<FileEntryWithStats[] | false>(`list ${path}`, (done) =>
          this.sftp.readdir(handle, (error, list) => (error && errorCode(error) === 1 ? done(undefined, false) : done(error, list ?? false))),
        );
        if (batch === false) return { entries, complete: true };
        const before = entries.length;
        for (const entry of batch.slice(0, maxEntries - entries.length)) {
          if (entry.filename === "." || entry.filename === "..") continue;
          const mtime = entry.attrs?.mtime;
          const type = typeof entry.attrs?.mode === "number" ? entry.attrs.mode & 0o170000 : 0;
          entries.push({
            name: entry.filename,
            // No file type at all (mode 0): a server that sends no attributes; count the entry as a file.
            isFile: type === 0o100000 || type === 0,
            // 0 is what servers send when they do not say.
            mtimeSeconds: typeof mtime === "number" && Number.isFinite(mtime) && mtime > 0 ? mtime : undefined,
          });
        }
        if (entries.length === before && ++emptyReplies > 64) throw new Error(`list ${path}: the server sent ${emptyReplies} replies without a new name and no end`);
      }
      return { entries, complete: false };
    } finally {
      await this.closeHandle(handle).catch(() => undefined);
    }
  }
}

/** A remote folder entry as `listEntries` reports it. */
export interface RemoteEntry {
  name: string;
  isFile: boolean;
  /** Last modification, seconds since the epoch, when the server said. */
  mtimeSeconds: number | undefined;
}
