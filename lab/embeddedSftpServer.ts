import { promises as fs, constants } from "node:fs";
import { join, normalize } from "node:path";
import { timingSafeEqual } from "node:crypto";
import { Server, utils, SFTPWrapper } from "ssh2";

const { STATUS_CODE, OPEN_MODE } = utils.sftp;

export interface EmbeddedServerOptions {
  /** Folder served as the SFTP root, like ChrootDirectory: "/Inbox" is `<root>/Inbox`. */
  root: string;
  hostKey: string;
  username: string;
  /** OpenSSH public key line the single account accepts. */
  authorizedKey: string;
}

export interface EmbeddedServer {
  port: number;
  close(): Promise<void>;
}

/**
 * A minimal SFTP-only server on ssh2's server API, for machines without OpenSSH's sshd. It serves
 * one account, public key only, jailed in `root`, and renames like OpenSSH: never over an
 * existing file (link, then unlink).
 */
export async function startEmbeddedSftpServer(options: EmbeddedServerOptions): Promise<EmbeddedServer> {
  const allowed = utils.parseKey(options.authorizedKey);
  if (allowed instanceof Error) throw allowed;
  const allowedBlob = allowed.getPublicSSH();
  const server = new Server({ hostKeys: [options.hostKey] }, (client) => {
    client.on("authentication", (ctx) => {
      if (ctx.method !== "publickey" || ctx.username !== options.username) return ctx.reject(["publickey"]);
      const offered = ctx.key.data;
      if (offered.length !== allowedBlob.length || !timingSafeEqual(offered, allowedBlob)) return ctx.reject(["publickey"]);
      if (!ctx.signature) return ctx.accept();
      if (allowed.verify(ctx.blob!, ctx.signature, ctx.hashAlgo) === true) return ctx.accept();
      return ctx.reject(["publickey"]);
    });
    client.on("ready", () => {
      client.on("session", (accept) => {
        const session = accept();
        session.on("sftp", (acceptSftp) => serveSftp(acceptSftp(), options.root));
        session.on("exec", (_accept, reject) => reject());
        session.on("shell", (_accept, reject) => reject());
      });
    });
    client.on("error", () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  const address = server.address();
  if (typeof address !== "object" || address === null) throw new Error("embedded SFTP server has no address");
  return {
    port: address.port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

function serveSftp(sftp: SFTPWrapper, root: string): void {
  const handles = new Map<number, { fd?: fs.FileHandle; dir?: string[] }>();
  let nextHandle = 1;
  const local = (path: string) => join(root, normalize("/" + path));
  const handleOf = (buffer: Buffer) => handles.get(buffer.readUInt32BE(0));
  const newHandle = (value: { fd?: fs.FileHandle; dir?: string[] }) => {
    const id = nextHandle++;
    handles.set(id, value);
    const buffer = Buffer.alloc(4);
    buffer.writeUInt32BE(id);
    return buffer;
  };
  const fail = (reqid: number, error: unknown) => {
    const code = (error as NodeJS.ErrnoException).code;
    sftp.status(reqid, code === "ENOENT" ? STATUS_CODE.NO_SUCH_FILE : code === "EACCES" ? STATUS_CODE.PERMISSION_DENIED : STATUS_CODE.FAILURE);
  };
  const attrs = (stat: import("node:fs").Stats) => ({
    mode: stat.mode,
    uid: stat.uid,
    gid: stat.gid,
    size: stat.size,
    atime: Math.floor(stat.atimeMs / 1000),
    mtime: Math.floor(stat.mtimeMs / 1000),
  });

  // One request at a time, in arrival order, as OpenSSH's sftp-server does: a READ sent after a
  // WRITE on the same handle sees its bytes (the agent pipelines write, read-back and close).
  let previous: Promise<unknown> = Promise.resolve();
  const inOrder = <A extends unknown[]>(handler: (...args: A) => unknown) => (...args: A) => {
    previous = previous.then(() => handler(...args)).catch(() => undefined);
  };

  sftp.on("OPEN", inOrder((reqid, filename, flags) => {
    let mode = 0;
    if (flags & OPEN_MODE.READ && flags & OPEN_MODE.WRITE) mode = constants.O_RDWR;
    else if (flags & OPEN_MODE.WRITE) mode = constants.O_WRONLY;
    if (flags & OPEN_MODE.CREAT) mode |= constants.O_CREAT;
    if (flags & OPEN_MODE.EXCL) mode |= constants.O_EXCL;
    if (flags & OPEN_MODE.TRUNC) mode |= constants.O_TRUNC;
    return fs.open(local(filename), mode, 0o640).then(
      (fd) => sftp.handle(reqid, newHandle({ fd })),
      (error) => fail(reqid, error),
    );
  }));
  sftp.on("WRITE", inOrder((reqid, handle, offset, data) => {
    const fd = handleOf(handle)?.fd;
    if (!fd) return sftp.status(reqid, STATUS_CODE.FAILURE);
    return fd.write(data, 0, data.length, offset).then(
      () => sftp.status(reqid, STATUS_CODE.OK),
      (error) => fail(reqid, error),
    );
  }));
  sftp.on("READ", inOrder((reqid, handle, offset, length) => {
    const fd = handleOf(handle)?.fd;
    if (!fd) return sftp.status(reqid, STATUS_CODE.FAILURE);
    const buffer = Buffer.alloc(length);
    return fd.read(buffer, 0, length, offset).then(
      ({ bytesRead }) => (bytesRead === 0 ? sftp.status(reqid, STATUS_CODE.EOF) : sftp.data(reqid, buffer.subarray(0, bytesRead))),
      (error) => fail(reqid, error),
    );
  }));
  sftp.on("FSTAT", inOrder((reqid, handle) => {
    const fd = handleOf(handle)?.fd;
    if (!fd) return sftp.status(reqid, STATUS_CODE.FAILURE);
    return fd.stat().then(
      (stat) => sftp.attrs(reqid, attrs(stat)),
      (error) => fail(reqid, error),
    );
  }));
  const statPath = (reqid: number, path: string) =>
    fs.stat(local(path)).then(
      (stat) => sftp.attrs(reqid, attrs(stat)),
      (error) => fail(reqid, error),
    );
  sftp.on("STAT", inOrder(statPath));
  sftp.on("LSTAT", inOrder(statPath));
  sftp.on("CLOSE", inOrder((reqid, handle) => {
    const id = handle.readUInt32BE(0);
    const entry = handles.get(id);
    handles.delete(id);
    if (!entry) return sftp.status(reqid, STATUS_CODE.FAILURE);
    return (entry.fd ? entry.fd.close() : Promise.resolve()).then(
      () => sftp.status(reqid, STATUS_CODE.OK),
      (error) => fail(reqid, error),
    );
  }));
  sftp.on("RENAME", inOrder((reqid, from, to) => {
    // Like OpenSSH's sftp-server: link then unlink, so an existing target is never replaced.
    return fs.link(local(from), local(to))
      .then(() => fs.unlink(local(from)))
      .then(
        () => sftp.status(reqid, STATUS_CODE.OK),
        () => sftp.status(reqid, STATUS_CODE.FAILURE),
      );
  }));
  sftp.on("REMOVE", inOrder((reqid, path) => {
    return fs.unlink(local(path)).then(
      () => sftp.status(reqid, STATUS_CODE.OK),
      (error) => fail(reqid, error),
    );
  }));
  sftp.on("OPENDIR", inOrder((reqid, path) => {
    return fs.readdir(local(path)).then(
      (names) => sftp.handle(reqid, newHandle({ dir: names })),
      (error) => fail(reqid, error),
    );
  }));
  sftp.on("READDIR", inOrder((reqid, handle) => {
    const entry = handleOf(handle);
    if (!entry?.dir) return sftp.status(reqid, STATUS_CODE.FAILURE);
    if (entry.dir.length === 0) return sftp.status(reqid, STATUS_CODE.EOF);
    const batch = entry.dir.splice(0, 100);
    sftp.name(reqid, batch.map((filename) => ({ filename, longname: filename, attrs: { mode: 0, uid: 0, gid: 0, size: 0, atime: 0, mtime: 0 } })));
  }));
  sftp.on("REALPATH", inOrder((reqid, path) => {
    const resolved = normalize("/" + path);
    sftp.name(reqid, [{ filename: resolved, longname: resolved, attrs: { mode: 0, uid: 0, gid: 0, size: 0, atime: 0, mtime: 0 } }]);
  }));
}
