import { createServer as createTcpServer, Server as TcpServer, Socket } from "node:net";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createHash, randomBytes } from "node:crypto";
import { Server, utils, type Connection, type SFTPWrapper } from "ssh2";
import { sha256Fingerprint } from "./sshd";

const { STATUS_CODE, OPEN_MODE } = utils.sftp;

/**
 * What the server does wrong. Every mode but "disconnect-text" is a working SFTP server (files in
 * memory, folders /Inbox and /Staging) that misbehaves in one way:
 *   endless-listing   READDIR of /Staging never ends: 400 long names per reply, forever
 *   drip-listing      READDIR of /Staging never ends either, one name a second
 *   dribble-reads     every READ outside /Staging is answered with one byte (uploads verify)
 *   garbage-replies   after the upload's OPEN, every reply is random bytes on the channel
 *   status-text       OPEN in /Staging fails with a message full of terminal escapes and newlines
 *   handles:N         at most N handles open at once; one more OPEN gets FAILURE (like EMFILE),
 *                     and limits@openssh.com is not offered (like Win32-OpenSSH 8.1)
 *   tiny-limits:N     offers limits@openssh.com and announces a max-read-length and
 *                     max-write-length of N bytes (one request per N bytes of every file)
 *   long-inbox-names  the listing of /Inbox never ends: five names of 20,000 characters a reply, forever
 *   slow-replies:MS   every reply is sent MS milliseconds late (in order): a slow link
 *   sentinel-read-failure  every READ of a file named *.sentinel gets FAILURE
 *   honest            none of that (e.g. to see what `check` says about a non-OpenSSH server)
 *   disconnect-text   not SSH at all: a version line, then a DISCONNECT before key exchange whose
 *                     text holds escapes and a forged log line
 */
export type HostileMode = "endless-listing" | "drip-listing" | "dribble-reads" | "garbage-replies" | "status-text" | `handles:${number}` | `tiny-limits:${number}` | "long-inbox-names" | "sentinel-read-failure" | `slow-replies:${number}` | "honest" | "disconnect-text";

/** Text a hostile server puts in its messages: an OSC title change, a forged log line, a screen clear. */
export const EVIL_TEXT = "\x1b]0;owned\x07\r\nDec  1 12:00:00 erp plutus-sync[1]: plutus-sync: 9/9 delivered\x1b[2J\x9b31m\u202e";
/** tiny-limits: how long no request may come before the replies held back are sent. */
const HOLD_QUIET_MS = 250;

export interface HostileErp {
  readonly host: string;
  readonly port: number;
  readonly hostKeySha256: string;
  /** Files the server holds, by path. */
  readonly files: Map<string, Buffer>;
  /** SFTP requests answered (or not) so far. */
  requests: number;
  /** What the server does wrong from now on (any mode but "disconnect-text", which is not SSH). */
  mode: HostileMode;
  /** Most handles open at once, and OPENs refused for lack of one. */
  maxHandlesOpen: number;
  opensRefused: number;
  /** tiny-limits modes: most requests the client had sent without a reply at once. */
  maxOutstanding: number;
  stop(): Promise<void>;
}

/** A hostile ERP on 127.0.0.1, built on ssh2's server API. Any public key is accepted. */
/** An upload's staging file (not the agent's staging sentinel, which it reads and writes first). */
function isUpload(filename: string): boolean {
  return filename.startsWith("/Staging/") && filename.endsWith(".part");
}

export async function startHostileErp(mode: HostileMode, options: { ident?: string } = {}): Promise<HostileErp> {
  const keyDir = mkdtempSync(join(tmpdir(), "plutus-hostile-"));
  const keyPath = join(keyDir, "host_ed25519");
  execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", keyPath]);
  const hostKeySha256 = sha256Fingerprint(`${keyPath}.pub`);
  const files = new Map<string, Buffer>();
  const sockets = new Set<Socket>();
  const clients = new Set<Connection>();
  const state: ServerState = { mode, requests: 0, maxHandlesOpen: 0, opensRefused: 0, maxOutstanding: 0 };

  let server: TcpServer | Server;
  if (mode === "disconnect-text") {
    server = createTcpServer((socket) => {
      sockets.add(socket);
      socket.on("close", () => sockets.delete(socket));
      socket.on("error", () => undefined);
      socket.write("SSH-2.0-OpenSSH_9.9\r\n");
      socket.write(disconnectPacket(2, EVIL_TEXT));
      setTimeout(() => socket.destroy(), 500);
    });
  } else {
    server = new Server({ hostKeys: [readFileSync(keyPath)], ident: options.ident ?? "OpenSSH_9.9" }, (client: Connection) => {
      clients.add(client);
      client.on("close", () => clients.delete(client));
      client.on("error", () => undefined);
      client.on("authentication", (ctx) => (ctx.method === "publickey" ? ctx.accept() : ctx.reject(["publickey"])));
      client.on("ready", () => {
        client.on("session", (accept) => {
          const session = accept();
          session.on("sftp", (acceptSftp) => {
            const sftp = acceptSftp();
            if (state.mode.startsWith("tiny-limits:")) announceLimits(sftp, Number(state.mode.slice("tiny-limits:".length)));
            serveSftp(sftp, files, state);
          });
        });
      });
    });
  }
  const port = await new Promise<number>((resolve, reject) => {
    (server as TcpServer).once("error", reject);
    (server as TcpServer).listen(0, "127.0.0.1", () => {
      const address = (server as TcpServer).address();
      if (typeof address === "object" && address) resolve(address.port);
      else reject(new Error("no port"));
    });
  });
  return {
    host: "127.0.0.1",
    port,
    hostKeySha256,
    files,
    get requests() {
      return state.requests;
    },
    get mode() {
      return state.mode;
    },
    set mode(next: HostileMode) {
      state.mode = next;
    },
    get maxHandlesOpen() {
      return state.maxHandlesOpen;
    },
    get opensRefused() {
      return state.opensRefused;
    },
    get maxOutstanding() {
      return state.maxOutstanding;
    },
    stop: async () => {
      for (const socket of sockets) socket.destroy();
      for (const client of clients) client.end();
      await new Promise<void>((resolve) => (server as TcpServer).close(() => resolve()));
      rmSync(keyDir, { recursive: true, force: true });
    },
  } as HostileErp;
}

/**
 * Makes ssh2's SFTP server offer limits@openssh.com (it never does on its own): its bare VERSION
 * reply is swapped for one naming the extension, and the client's limits request is answered
 * with `readWriteLength` as max-read-length and max-write-length.
 */
function announceLimits(sftp: SFTPWrapper, readWriteLength: number): void {
  const raw = sftp as unknown as { _protocol: { channelData(id: number, data: Buffer): void }; outgoing: { id: number } };
  const protocol = raw._protocol;
  const channelData = protocol.channelData.bind(protocol);
  const SSH_FXP_VERSION = 2;
  const SSH_FXP_EXTENDED_REPLY = 201;
  const sftpString = (text: string) => {
    const bytes = Buffer.from(text);
    const out = Buffer.alloc(4 + bytes.length);
    out.writeUInt32BE(bytes.length);
    bytes.copy(out, 4);
    return out;
  };
  const packet = (body: Buffer) => {
    const length = Buffer.alloc(4);
    length.writeUInt32BE(body.length);
    return Buffer.concat([length, body]);
  };
  protocol.channelData = (id: number, data: Buffer) => {
    if (data.length === 9 && data[4] === SSH_FXP_VERSION) {
      protocol.channelData = channelData;
      const version = Buffer.from([SSH_FXP_VERSION, 0, 0, 0, 3]);
      return channelData(id, packet(Buffer.concat([version, sftpString("limits@openssh.com"), sftpString("1")])));
    }
    channelData(id, data);
  };
  sftp.on("EXTENDED", (reqid: number, name: string) => {
    if (name !== "limits@openssh.com") return sftp.status(reqid, STATUS_CODE.OP_UNSUPPORTED);
    const body = Buffer.alloc(1 + 4 + 4 * 8);
    body[0] = SSH_FXP_EXTENDED_REPLY;
    body.writeUInt32BE(reqid, 1);
    body.writeBigUInt64BE(256n * 1024n, 5);
    body.writeBigUInt64BE(BigInt(readWriteLength), 13);
    body.writeBigUInt64BE(BigInt(readWriteLength), 21);
    body.writeBigUInt64BE(64n, 29);
    channelData(raw.outgoing.id, packet(body));
  });
}

/** An unencrypted SSH_MSG_DISCONNECT packet (RFC 4253 §6, §11.1), as sent before key exchange. */
function disconnectPacket(reason: number, description: string): Buffer {
  const text = Buffer.from(description, "utf8");
  const payload = Buffer.alloc(1 + 4 + 4 + text.length + 4);
  payload[0] = 1;
  payload.writeUInt32BE(reason, 1);
  payload.writeUInt32BE(text.length, 5);
  text.copy(payload, 9);
  payload.writeUInt32BE(0, 9 + text.length);
  let padding = 8 - ((4 + 1 + payload.length) % 8);
  if (padding < 4) padding += 8;
  const packet = Buffer.alloc(4 + 1 + payload.length + padding);
  packet.writeUInt32BE(1 + payload.length + padding, 0);
  packet[4] = padding;
  payload.copy(packet, 5);
  return packet;
}

interface ServerState {
  mode: HostileMode;
  requests: number;
  maxHandlesOpen: number;
  opensRefused: number;
  maxOutstanding: number;
}

interface OpenFile {
  path: string;
  dir: boolean;
  listed?: boolean;
}

function serveSftp(sftp: SFTPWrapper, files: Map<string, Buffer>, state: ServerState): void {
  const handleLimit = () => (state.mode.startsWith("handles:") ? Number(state.mode.slice("handles:".length)) : Infinity);
  const handles = new Map<string, OpenFile>();
  let nextHandle = 0;
  let garbage = false;
  const folders = new Set(["/", "/Inbox", "/Staging"]);
  const attrsOf = (size: number, dir: boolean) => ({ mode: (dir ? 0o040755 : 0o100640), uid: 0, gid: 0, size, atime: 0, mtime: 0 });
  const newHandle = (file: OpenFile): Buffer | undefined => {
    if (handles.size >= handleLimit()) {
      state.opensRefused++;
      return undefined;
    }
    const handle = Buffer.alloc(4);
    handle.writeUInt32BE(nextHandle++);
    handles.set(handle.toString("hex"), file);
    state.maxHandlesOpen = Math.max(state.maxHandlesOpen, handles.size);
    return handle;
  };
  // tiny-limits: replies are held until no request came for HOLD_QUIET_MS, so the most held at
  // once is how many requests the client sends before it waits for a reply. Long enough that a
  // client paused mid-burst by a loaded machine (its sends go on when it runs again) is not taken
  // for one that waits.
  const held: (() => void)[] = [];
  let release: NodeJS.Timeout | undefined;
  const holdReply = (reply: () => void) => {
    held.push(reply);
    state.maxOutstanding = Math.max(state.maxOutstanding, held.length);
    clearTimeout(release);
    release = setTimeout(() => {
      for (const next of held.splice(0)) next();
    }, HOLD_QUIET_MS);
  };
  // Garbage: whatever was asked, the channel gets random bytes that do not parse as SFTP.
  const answer = (reply: () => void) => {
    state.requests++;
    if (state.mode.startsWith("tiny-limits:") && !garbage) return holdReply(reply);
    if (state.mode.startsWith("slow-replies:")) {
      setTimeout(reply, Number(state.mode.slice("slow-replies:".length)));
      return;
    }
    if (garbage) {
      (sftp as unknown as { push?: unknown; _protocol?: { channelData(id: number, data: Buffer): void }; outgoing?: { id: number } })._protocol?.channelData(
        (sftp as unknown as { outgoing: { id: number } }).outgoing.id,
        Buffer.concat([Buffer.from([0x7f, 0xff, 0xff, 0xf0]), randomBytes(64)]),
      );
      return;
    }
    reply();
  };
  sftp.on("OPEN", (reqid, filename, flags) =>
    answer(() => {
      if (state.mode === "status-text" && isUpload(filename)) return sftp.status(reqid, STATUS_CODE.FAILURE, `cannot open ${EVIL_TEXT}`);
      const exists = files.has(filename);
      if (flags & OPEN_MODE.EXCL && exists) return sftp.status(reqid, STATUS_CODE.FAILURE, "exists");
      if (!(flags & OPEN_MODE.CREAT) && !exists) return sftp.status(reqid, STATUS_CODE.NO_SUCH_FILE, "No such file");
      const folder = filename.slice(0, filename.lastIndexOf("/")) || "/";
      if (!folders.has(folder)) return sftp.status(reqid, STATUS_CODE.NO_SUCH_FILE, "No such file");
      const handle = newHandle({ path: filename, dir: false });
      if (!handle) return sftp.status(reqid, STATUS_CODE.FAILURE, "Failure");
      if (!exists) files.set(filename, Buffer.alloc(0));
      sftp.handle(reqid, handle);
      if (state.mode === "garbage-replies" && isUpload(filename)) garbage = true;
    }),
  );
  sftp.on("WRITE", (reqid, handle, offset, data) =>
    answer(() => {
      const file = handles.get(handle.toString("hex"));
      if (!file || file.dir) return sftp.status(reqid, STATUS_CODE.FAILURE, "bad handle");
      const old = files.get(file.path) ?? Buffer.alloc(0);
      const grown = Buffer.alloc(Math.max(old.length, offset + data.length));
      old.copy(grown);
      data.copy(grown, offset);
      files.set(file.path, grown);
      sftp.status(reqid, STATUS_CODE.OK);
    }),
  );
  sftp.on("READ", (reqid, handle, offset, length) =>
    answer(() => {
      const file = handles.get(handle.toString("hex"));
      const content = file && files.get(file.path);
      if (!content) return sftp.status(reqid, STATUS_CODE.FAILURE, "bad handle");
      if (state.mode === "sentinel-read-failure" && file.path.endsWith(".sentinel")) return sftp.status(reqid, STATUS_CODE.FAILURE, "Failure");
      if (offset >= content.length) return sftp.status(reqid, STATUS_CODE.EOF);
      const dribble = state.mode === "dribble-reads" && !file.path.startsWith("/Staging/");
      sftp.data(reqid, content.subarray(offset, offset + (dribble ? 1 : length)));
    }),
  );
  sftp.on("FSTAT", (reqid, handle) =>
    answer(() => {
      const file = handles.get(handle.toString("hex"));
      if (!file) return sftp.status(reqid, STATUS_CODE.FAILURE, "bad handle");
      sftp.attrs(reqid, attrsOf(files.get(file.path)?.length ?? 0, file.dir));
    }),
  );
  const stat = (reqid: number, path: string) =>
    answer(() => {
      if (folders.has(path)) return sftp.attrs(reqid, attrsOf(0, true));
      const content = files.get(path);
      if (!content) return sftp.status(reqid, STATUS_CODE.NO_SUCH_FILE, "No such file");
      sftp.attrs(reqid, attrsOf(content.length, false));
    });
  sftp.on("STAT", stat);
  sftp.on("LSTAT", stat);
  sftp.on("CLOSE", (reqid, handle) =>
    answer(() => {
      handles.delete(handle.toString("hex"));
      sftp.status(reqid, STATUS_CODE.OK);
    }),
  );
  sftp.on("OPENDIR", (reqid, path) =>
    answer(() => {
      if (!folders.has(path)) return sftp.status(reqid, STATUS_CODE.NO_SUCH_FILE, "No such file");
      const handle = newHandle({ path, dir: true });
      if (!handle) return sftp.status(reqid, STATUS_CODE.FAILURE, "Failure");
      sftp.handle(reqid, handle);
    }),
  );
  let endless = 0;
  sftp.on("READDIR", (reqid, handle) =>
    answer(() => {
      const dir = handles.get(handle.toString("hex"));
      if (!dir || !dir.dir) return sftp.status(reqid, STATUS_CODE.FAILURE, "bad handle");
      if (state.mode === "drip-listing" && dir.path === "/Staging") {
        const filename = `drip-${endless++}`;
        setTimeout(() => sftp.name(reqid, [{ filename, longname: filename, attrs: attrsOf(0, false) }]), 1_000);
        return;
      }
      if (state.mode === "endless-listing" && dir.path === "/Staging") {
        const names = Array.from({ length: 400 }, () => {
          const filename = `x-${endless++}-${"n".repeat(200)}`;
          return { filename, longname: `-rw-r----- 1 erp erp 0 Jan 1 00:00 ${filename}`, attrs: attrsOf(0, false) };
        });
        return sftp.name(reqid, names);
      }
      if (state.mode === "long-inbox-names" && dir.path === "/Inbox") {
        const names = Array.from({ length: 5 }, () => {
          const filename = `i-${endless++}-${"n".repeat(20_000)}`;
          return { filename, longname: `-rw-r----- 1 erp erp 0 Jan 1 00:00 ${filename}`, attrs: attrsOf(0, false) };
        });
        return sftp.name(reqid, names);
      }
      if (dir.listed) return sftp.status(reqid, STATUS_CODE.EOF);
      dir.listed = true;
      const prefix = dir.path === "/" ? "/" : `${dir.path}/`;
      const names = [...files.keys()]
        .filter((p) => p.startsWith(prefix) && !p.slice(prefix.length).includes("/"))
        .map((p) => {
          const filename = p.slice(prefix.length);
          return { filename, longname: filename, attrs: attrsOf(files.get(p)!.length, false) };
        });
      if (names.length === 0) return sftp.status(reqid, STATUS_CODE.EOF);
      sftp.name(reqid, names);
    }),
  );
  sftp.on("RENAME", (reqid, from, to) =>
    answer(() => {
      const content = files.get(from);
      if (!content) return sftp.status(reqid, STATUS_CODE.NO_SUCH_FILE, "No such file");
      if (files.has(to)) return sftp.status(reqid, STATUS_CODE.FAILURE, "Failure");
      files.set(to, content);
      files.delete(from);
      sftp.status(reqid, STATUS_CODE.OK);
    }),
  );
  sftp.on("REMOVE", (reqid, path) =>
    answer(() => {
      if (!files.delete(path)) return sftp.status(reqid, STATUS_CODE.NO_SUCH_FILE, "No such file");
      sftp.status(reqid, STATUS_CODE.OK);
    }),
  );
  sftp.on("REALPATH", (reqid, path) => answer(() => sftp.name(reqid, [{ filename: path, longname: path, attrs: attrsOf(0, true) }])));
  sftp.on("error", () => undefined);
}

/** SHA-256 (hex) of a buffer. */
export const hashOf = (data: Buffer) => createHash("sha256").update(data).digest("hex");
