import { promises as fs, constants, Stats, closeSync, fstatSync, lstatSync, openSync, readSync } from "node:fs";
import { createHash } from "node:crypto";
import { join } from "node:path";
import * as nodeBuffer from "node:buffer";
import { windowsNameProblem } from "./windowsName";
import { describeKind } from "./durableFs";
import { errorCode, errorMessage } from "./errors";
import { describeJsonSyntaxError } from "./jsonSyntax";

/** Enough to tell "the file that was read" from a replacement under the same name. */
export interface FileIdentity {
  dev: number;
  ino: number;
  size: number;
  mtimeMs: number;
}

export function sameIdentity(stat: Stats, identity: FileIdentity): boolean {
  return stat.isFile() && stat.dev === identity.dev && stat.ino === identity.ino && stat.size === identity.size && stat.mtimeMs === identity.mtimeMs;
}

/**
 * SHA-256 of a local file that may have been replaced by anything: never follows a link, never
 * blocks on a fifo, never reads more than `maxBytes`. Undefined when it is not such a file.
 */
export async function hashLocalFile(path: string, maxBytes: number): Promise<string | undefined> {
  const handle = await fs.open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK).catch(() => undefined);
  if (!handle) return undefined;
  try {
    const stat = await handle.stat();
    if (!stat.isFile() || stat.size > maxBytes) return undefined;
    return createHash("sha256").update(await handle.readFile()).digest("hex");
  } finally {
    await handle.close();
  }
}

/** An outbox entry's name: a string, or the raw bytes of a name that is not valid UTF-8. */
export type OutboxName = string | Buffer;

export function outboxPath(outbox: string, entry: OutboxName): string | Buffer {
  return typeof entry === "string" ? join(outbox, entry) : Buffer.concat([Buffer.from(outbox + "/"), entry]);
}

/** Lets timers (the pass deadline) and I/O callbacks run between chunks of a long loop. */
export const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Entries handled between two yields to the event loop in loops over a whole folder listing. */
export const ENTRIES_PER_YIELD = 2048;

/**
 * The order-file names in the outbox, names that are valid UTF-8 first. Names are read as strings
 * (far less memory than one Buffer each with 50,000 files); only when a name did not decode are
 * the raw bytes read again, so a name that is not UTF-8 can still be moved to quarantine. Linear
 * in the number of entries, and it yields to the event loop between chunks so that the pass
 * deadline can fire whatever the outbox holds.
 */
export async function listOrderNames(outbox: string): Promise<OutboxName[]> {
  const decoded = await fs.readdir(outbox);
  const names: OutboxName[] = [];
  let someDidNotDecode = false;
  for (let i = 0; i < decoded.length; i++) {
    if (i % ENTRIES_PER_YIELD === ENTRIES_PER_YIELD - 1) await yieldToEventLoop();
    const name = decoded[i];
    if (!isOrderFileName(name)) continue;
    // U+FFFD stands for bytes that were not UTF-8, or is really in the name: the bytes tell.
    if (name.includes("\uFFFD")) someDidNotDecode = true;
    else names.push(name);
  }
  if (!someDidNotDecode) return names;
  const raw = await fs.readdir(outbox, { encoding: "buffer" });
  const notUtf8: Buffer[] = [];
  for (let i = 0; i < raw.length; i++) {
    if (i % ENTRIES_PER_YIELD === ENTRIES_PER_YIELD - 1) await yieldToEventLoop();
    const bytes = raw[i];
    if (!bytes.some((b) => b >= 0x80)) continue; // ASCII: listed above if it is an order name
    const name = bytes.toString("utf8");
    if (!name.includes("\uFFFD") || !isOrderFileName(name)) continue;
    if (isUtf8(bytes)) names.push(name);
    else notUtf8.push(bytes);
  }
  return names.concat(notUtf8);
}

/** `buffer.isUtf8` (Node 18.14+, 19.4+) checks without building a string; older 18.x decode. */
const isUtf8: (bytes: Buffer) => boolean =
  typeof nodeBuffer.isUtf8 === "function"
    ? nodeBuffer.isUtf8
    : (bytes) => {
        try {
          utf8.decode(bytes);
          return true;
        } catch {
          return false;
        }
      };

/** What the outbox scan makes of one directory entry. */
export type Inspection =
  | { kind: "ready"; name: string; content: Buffer; sha256: string; identity: FileIdentity }
  | { kind: "deferred"; name: string; reason: string }
  | { kind: "quarantine"; name: string; path: string | Buffer; reason: string };

export interface InspectRules {
  minAgeMs: number;
  maxFileBytes: number;
  now: () => number;
}

/** How far in the future a modification time may be before it is treated as a wrong clock. */
const CLOCK_SKEW_MS = 60_000;

/** Order files are `*.json` (any letter case, as Windows sees it); everything else is left alone. */
export function isOrderFileName(name: string): boolean {
  return /\.json$/i.test(name) && name.length > ".json".length;
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Decides whether one outbox entry can be delivered now. Symlinks are never followed, fifos are
 * never opened for a blocking read, and a file that changes while it is read is deferred.
 */
export async function inspect(outbox: string, entry: OutboxName, rules: InspectRules): Promise<Inspection> {
  if (typeof entry !== "string") {
    return { kind: "quarantine", name: entry.toString("latin1"), path: outboxPath(outbox, entry), reason: "file name is not valid UTF-8" };
  }
  const name = entry;
  const quarantine = (reason: string): Inspection => ({ kind: "quarantine", name, path: join(outbox, name), reason });

  let before: Stats;
  try {
    before = lstatSync(join(outbox, name));
  } catch (error) {
    return { kind: "deferred", name, reason: `vanished before it could be read (${errorCode(error)})` };
  }
  if (before.isSymbolicLink()) return quarantine("symbolic link (links are never followed)");
  if (!before.isFile()) return quarantine(`not a regular file (${describeKind(before)})`);
  if (before.nlink > 1) return quarantine(hardLinkReason(before.nlink));
  const nameProblem = windowsNameProblem(name);
  if (nameProblem) return quarantine(`${nameProblem}; the ERP cannot store this name`);
  const now = rules.now();
  if (before.mtimeMs > now + CLOCK_SKEW_MS) {
    // A modification time in the future (a clock off, a copy tool keeping foreign times) would
    // hold the file back until that time. ctime cannot be set by anyone but the kernel's clock:
    // take the file once it has not changed for max(minAgeSeconds, one minute) by ctime.
    const quietMs = now - before.ctimeMs;
    const neededMs = Math.max(rules.minAgeMs, CLOCK_SKEW_MS);
    if (quietMs < neededMs) {
      return { kind: "deferred", name, reason: `modification time is in the future (${new Date(before.mtimeMs).toISOString()}); taken once unchanged for ${neededMs / 1000} s` };
    }
  } else {
    const ageMs = now - before.mtimeMs;
    if (ageMs < rules.minAgeMs) {
      return { kind: "deferred", name, reason: `modified ${Math.max(0, Math.round(ageMs / 1000))} s ago, waiting until it is ${rules.minAgeMs / 1000} s old` };
    }
  }
  if (before.size > rules.maxFileBytes) {
    return quarantine(`file is ${before.size} bytes, larger than maxFileBytes (${rules.maxFileBytes})`);
  }

  // Synchronous on purpose: small files from the page cache cost microseconds this way, while
  // each fs.promises call costs a thread-pool round trip (~15 per file, the pass's main cost).
  let fd: number;
  try {
    fd = openSync(join(outbox, name), constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (error) {
    const code = errorCode(error);
    if (code === "ELOOP") return quarantine("symbolic link (links are never followed)");
    if (code === "ENOENT") return { kind: "deferred", name, reason: "vanished before it could be read" };
    return quarantine(`cannot be read: ${errorMessage(error)}`);
  }
  let content: Buffer;
  let after: Stats;
  try {
    const opened = fstatSync(fd);
    if (!opened.isFile()) return quarantine(`not a regular file (${describeKind(opened)})`);
    if (opened.nlink > 1) return quarantine(hardLinkReason(opened.nlink));
    if (opened.ino !== before.ino || opened.size !== before.size || opened.mtimeMs !== before.mtimeMs) {
      return { kind: "deferred", name, reason: "changed while it was being checked" };
    }
    // Not zero-filled: every byte is overwritten below, or the file is deferred as changed.
    content = Buffer.allocUnsafe(opened.size);
    let offset = 0;
    while (offset < content.length) {
      const bytesRead = readSync(fd, content, offset, content.length - offset, offset);
      if (bytesRead === 0) break;
      offset += bytesRead;
    }
    after = fstatSync(fd);
    if (offset !== content.length || after.size !== before.size || after.mtimeMs !== before.mtimeMs) {
      return { kind: "deferred", name, reason: "changed while it was being read" };
    }
  } catch (error) {
    return quarantine(`cannot be read: ${errorMessage(error)}`);
  } finally {
    closeSync(fd);
  }

  const contentProblem = jsonProblem(content);
  if (contentProblem) return quarantine(contentProblem);
  return {
    kind: "ready",
    name,
    content,
    sha256: createHash("sha256").update(content).digest("hex"),
    identity: { dev: after.dev, ino: after.ino, size: after.size, mtimeMs: after.mtimeMs },
  };
}

/**
 * The web shop writes an order and renames it into the outbox: one link. A second link is another
 * name for the same file, possibly outside the outbox (with fs.protected_hardlinks=0 the web
 * shop's account can link a file it does not own, such as the agent's own configuration).
 */
function hardLinkReason(nlink: number): string {
  return `file has ${nlink} hard links (another name for it may be outside the outbox); an order file has exactly one`;
}

/** Why the bytes are not a JSON order document, or undefined. A UTF-8 BOM is tolerated. */
export function jsonProblem(content: Buffer): string | undefined {
  if (content.length === 0) return "empty file";
  if (!isUtf8(content)) return "content is not valid UTF-8";
  // maxFileBytes allows files longer than the longest string V8 can hold (~512 MiB).
  if (content.length > nodeBuffer.constants.MAX_STRING_LENGTH) {
    return `too large to check as JSON (${content.length} bytes; at most ${nodeBuffer.constants.MAX_STRING_LENGTH} can be read as text)`;
  }
  const text = content.toString("utf8").replace(/^\uFEFF/, "");
  if (text.trim() === "") return "file holds only white space";
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    // Not the parser's message: on Node 20 it quotes the content, which would reach the logs.
    return `invalid JSON: ${describeJsonSyntaxError(text)}`;
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return "an order must be a JSON object";
  }
  return undefined;
}
