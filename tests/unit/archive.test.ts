import { mkdtempSync, rmSync, writeFileSync, readFileSync, readdirSync, statSync, symlinkSync, mkdirSync, openSync, ftruncateSync, writeSync, closeSync, readSync, lstatSync, renameSync, constants } from "node:fs";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseAgentConfig } from "@plutus/shared";
import { Courier } from "../../agent/src/courier";
import { Journal, JournalEntry } from "../../agent/src/journal";
import { RemoteLink } from "../../agent/src/remoteLink";
import { createSilentLogger } from "../../agent/src/logger";
import { dayFolder, listQuarantined, quarantineFile } from "../../agent/src/localMoves";
import { moveWithoutOverwrite } from "../../agent/src/durableFs";
import { useTmpfsVolume } from "../support/tmpfsVolume";

let root: string;
let journal: Journal;
let courier: Courier;
let outbox: string;
let archive: string;

const sha = (s: string) => createHash("sha256").update(s).digest("hex");

beforeEach(async () => {
  root = mkdtempSync(join(tmpdir(), "plutus-archive-"));
  outbox = join(root, "outbox");
  archive = join(root, "archive");
  mkdirSync(outbox);
  mkdirSync(join(root, "state"));
  const config = parseAgentConfig({
    outbox,
    archive,
    quarantine: join(root, "quarantine"),
    stateDir: join(root, "state"),
    logDir: join(root, "log"),
    minAgeSeconds: 0,
    remote: { host: "127.0.0.1", username: "u", privateKeyPath: "/k", hostKeySha256: "SHA256:" + "A".repeat(43), inbox: "/Inbox", staging: "/Staging" },
  });
  journal = await Journal.open(join(root, "state"));
  const log = createSilentLogger();
  // The archive step is local: a RemoteLink that is never used must not be reached.
  const link = new Proxy({} as RemoteLink, { get: () => { throw new Error("archive must not touch the remote side"); } });
  courier = new Courier(config, journal, link, log, "0123456789ab");
});
afterEach(async () => {
  await journal.close();
  rmSync(root, { recursive: true, force: true });
});

async function published(name: string, content: string): Promise<JournalEntry> {
  const entry: JournalEntry = { id: `id-${name}`, state: "committing", name, sha256: sha(content), size: content.length, staging: "s.part", target: name };
  await journal.record({ t: "commit", ...entry, at: "x" });
  await journal.record({ t: "published", id: entry.id, target: name, at: "x" });
  return { ...entry, state: "published" };
}

function identityOf(path: string) {
  const s = statSync(path);
  return { dev: s.dev, ino: s.ino, size: s.size, mtimeMs: s.mtimeMs };
}

describe("archiving a delivered file", () => {
  it("archives the very file that was read", async () => {
    writeFileSync(join(outbox, "o.json"), "v1");
    const entry = await published("o.json", "v1");
    const outcome = await courier.archive(entry, identityOf(join(outbox, "o.json")));
    const dest = join(archive, dayFolder(new Date()), "o.json");
    expect(outcome).toEqual({ archived: true, path: dest });
    expect(readFileSync(dest, "utf8")).toBe("v1");
    expect(readdirSync(outbox)).toEqual([]);
    expect(journal.entries()).toEqual([]);
  });

  it("a file replaced after it was read is a new order: it stays in the outbox, never archived unsent", async () => {
    writeFileSync(join(outbox, "o.json"), "v1");
    const identity = identityOf(join(outbox, "o.json"));
    const entry = await published("o.json", "v1");
    writeFileSync(join(outbox, "o.json.new"), "v2");
    execFileSync("mv", [join(outbox, "o.json.new"), join(outbox, "o.json")]);
    const outcome = await courier.archive(entry, identity);
    expect(outcome).toEqual({ archived: true, path: null });
    expect(readdirSync(outbox)).toEqual(["o.json"]);
    expect(readFileSync(join(outbox, "o.json"), "utf8")).toBe("v2");
    expect(() => readdirSync(archive)).toThrow(/ENOENT/);
    expect(journal.entries()).toEqual([]);
  });

  it("recovery (no identity) archives by hash, and leaves a replacement, a symlink or a fifo in place", async () => {
    writeFileSync(join(outbox, "same.json"), "v1");
    writeFileSync(join(outbox, "other.json"), "v2");
    symlinkSync("/dev/zero", join(outbox, "link.json"));
    execFileSync("mkfifo", [join(outbox, "fifo.json")]);
    const outcomes = [];
    for (const name of ["same.json", "other.json", "link.json", "fifo.json"]) outcomes.push((await courier.archive(await published(name, "v1"), undefined)).archived);
    expect(outcomes).toEqual([true, true, true, true]);
    expect(readdirSync(join(archive, dayFolder(new Date())))).toEqual(["same.json"]);
    expect(readdirSync(outbox).sort()).toEqual(["fifo.json", "link.json", "other.json"]);
    expect(readFileSync(join(outbox, "other.json"), "utf8")).toBe("v2");
  });

  it("a claim left by a crash is finished by the next attempt", async () => {
    writeFileSync(join(outbox, ".plutus-claim-id-o.json"), "v1");
    const outcome = await courier.archive(await published("o.json", "v1"), undefined);
    expect(outcome.archived).toBe(true);
    expect(readdirSync(outbox)).toEqual([]);
    expect(readFileSync(join(archive, dayFolder(new Date()), "o.json"), "utf8")).toBe("v1");
  });

  it("a file already gone closes the entry", async () => {
    expect(await courier.archive(await published("gone.json", "v1"), undefined)).toEqual({ archived: true, path: null });
    expect(journal.entries()).toEqual([]);
  });
});

describe("what counts as quarantined", () => {
  it("files with or without their reason and live set-aside notes count; a reason without its file, a note whose entry is gone and temporary files do not", async () => {
    const quarantine = join(root, "quarantine");
    mkdirSync(quarantine);
    mkdirSync(join(outbox, "kept.json.set-aside"));
    const files: Record<string, string> = {
      "a.json": "{",
      "a.json.reason": "{}",
      // A file quarantined by an agent before reasons were written first, killed in between.
      "b.json": "{",
      // A reason whose move a kill cut off: the order is still in the outbox.
      "pending.json.reason": "{}",
      "kept.json.set-aside.reason": JSON.stringify({ file: null, keptInOutboxAs: join(outbox, "kept.json.set-aside") }),
      "gone.json.set-aside.reason": JSON.stringify({ file: null, keptInOutboxAs: join(outbox, "gone.json.set-aside") }),
      // A note that cannot be read is shown to the operator, never written off.
      "damaged.json.set-aside.1.reason": "{",
      // A name that is not UTF-8 cannot be looked up from its note: shown, never written off.
      "lossy.json.set-aside.reason": JSON.stringify({ file: null, keptInOutboxAs: join(outbox, "l\uFFFDssy.json.set-aside") }),
      ".0123abcd.tmp": "",
    };
    for (const [name, content] of Object.entries(files)) writeFileSync(join(quarantine, name), content);
    expect(await listQuarantined(quarantine)).toEqual(["a.json", "b.json", "damaged.json.set-aside.1.reason", "kept.json.set-aside.reason", "lossy.json.set-aside.reason"]);
    expect(await listQuarantined(join(root, "no-such-folder"))).toEqual([]);
  });

  it("a reason left without its file is taken over by the next quarantine of that name; a live note is not", async () => {
    const quarantine = join(root, "quarantine");
    mkdirSync(quarantine);
    writeFileSync(join(quarantine, "x.json.reason"), JSON.stringify({ file: "x.json", reason: "left by a kill" }));
    writeFileSync(join(outbox, "x.json"), "{");
    expect(await quarantineFile(join(outbox, "x.json"), "x.json", "invalid JSON", quarantine)).toBe(join(quarantine, "x.json"));
    expect(JSON.parse(readFileSync(join(quarantine, "x.json.reason"), "utf8"))).toMatchObject({ file: "x.json", reason: "invalid JSON" });

    // Two folders of one name set aside in turn: the first's note is live and stays.
    mkdirSync(join(outbox, "d.json"));
    expect(await quarantineFile(join(outbox, "d.json"), "d.json", "first", quarantine)).toBe(join(outbox, "d.json.set-aside"));
    mkdirSync(join(outbox, "d.json"));
    expect(await quarantineFile(join(outbox, "d.json"), "d.json", "second", quarantine)).toBe(join(outbox, "d.json.1.set-aside"));
    expect(JSON.parse(readFileSync(join(quarantine, "d.json.set-aside.reason"), "utf8"))).toMatchObject({ keptInOutboxAs: join(outbox, "d.json.set-aside"), reason: "first" });
    expect(JSON.parse(readFileSync(join(quarantine, "d.json.1.set-aside.reason"), "utf8"))).toMatchObject({ keptInOutboxAs: join(outbox, "d.json.1.set-aside"), reason: "second" });
    expect(await listQuarantined(quarantine)).toEqual(["d.json.1.set-aside.reason", "d.json.set-aside.reason", "x.json"]);
  });
});

describe("moving to another volume (quarantine or archive on a second file system)", () => {
  // A real second file system, small: a copy that did not keep holes could not fit.
  const volume = useTmpfsVolume("h6-xvol", "64m");
  afterEach(() => jest.restoreAllMocks());

  it("streams a 1 GiB sparse file in bounded memory, keeps its holes, and removes the source only after the copy", async () => {
    const source = join(outbox, "huge.json");
    const fd = openSync(source, "w");
    ftruncateSync(fd, 1024 ** 3);
    writeSync(fd, '{"head":1}', 0);
    writeSync(fd, "middle", 512 * 1024 ** 2);
    closeSync(fd);
    const quarantine = join(volume(), "quarantine");
    const rssBefore = process.resourceUsage().maxRSS;
    const dest = await quarantineFile(source, "huge.json", "file is 1073741824 bytes, larger than maxFileBytes (1048576)", quarantine);
    const grewKiB = process.resourceUsage().maxRSS - rssBefore;
    expect(dest).toBe(join(quarantine, "huge.json"));
    expect(grewKiB).toBeLessThan(64 * 1024);
    const copy = statSync(dest);
    expect(copy.size).toBe(1024 ** 3);
    expect(copy.blocks * 512).toBeLessThan(4 * 1024 ** 2);
    const head = Buffer.alloc(10);
    const middle = Buffer.alloc(6);
    const copyFd = openSync(dest, "r");
    readSync(copyFd, head, 0, 10, 0);
    readSync(copyFd, middle, 0, 6, 512 * 1024 ** 2);
    closeSync(copyFd);
    expect([head.toString(), middle.toString()]).toEqual(['{"head":1}', "middle"]);
    expect(readdirSync(outbox)).toEqual([]);
    expect(JSON.parse(readFileSync(`${dest}.reason`, "utf8"))).toMatchObject({ file: "huge.json", originalName: "huge.json" });
  }, 60_000);

  it("a symlink, fifo or socket to quarantine on another volume is set aside in the outbox, with its note in quarantine", async () => {
    const quarantine = join(volume(), "quarantine-special");
    symlinkSync("/etc/passwd", join(outbox, "evil.json"));
    execFileSync("mkfifo", [join(outbox, "pipe.json")]);
    const server = require("node:net").createServer();
    await new Promise<void>((resolve) => server.listen(join(outbox, "sock.json"), resolve));
    try {
      for (const [name, kind] of [
        ["evil.json", "symbolic link"],
        ["pipe.json", "fifo"],
        ["sock.json", "socket"],
      ]) {
        const keptAs = await quarantineFile(join(outbox, name), name, "not a regular file", quarantine);
        expect(keptAs).toBe(join(outbox, `${name}.set-aside`));
        expect(JSON.parse(readFileSync(join(quarantine, `${name}.set-aside.reason`), "utf8"))).toMatchObject({
          file: null,
          keptInOutboxAs: keptAs,
          originalName: name,
          reason: "not a regular file",
          notMovedBecause: `cannot move a ${kind} across volumes`,
        });
      }
      expect(readdirSync(outbox).sort()).toEqual(["evil.json.set-aside", "pipe.json.set-aside", "sock.json.set-aside"]);
      expect(lstatSync(join(outbox, "evil.json.set-aside")).isSymbolicLink()).toBe(true);
    } finally {
      server.close();
    }
  });

  /** Replaces `source` (by rename, as the web shop's account could) right after the mover first looks at it. */
  function swapAfterFirstLook(source: string, swapIn: string): void {
    const promises = jest.requireActual<typeof import("node:fs")>("node:fs").promises as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>;
    let swapped = false;
    for (const method of ["open", "lstat"]) {
      const original = promises[method];
      jest.spyOn(promises, method as never).mockImplementation((async (...args: unknown[]) => {
        const result = await original(...args);
        if (!swapped && String(args[0]) === source) {
          swapped = true;
          renameSync(swapIn, source);
        }
        return result;
      }) as never);
    }
  }

  it("a symlink swapped in under the name is not followed: the copy holds the file that was checked", async () => {
    const secret = join(root, "secret.json");
    writeFileSync(secret, '{"secret":true}');
    const source = join(outbox, ".plutus-claim-1");
    writeFileSync(source, '{"order":1}');
    symlinkSync(secret, join(outbox, "swap"));
    swapAfterFirstLook(source, join(outbox, "swap"));
    const dest = await moveWithoutOverwrite(source, join(volume(), "archive"), "o.json");
    expect(readFileSync(dest, "utf8")).toBe('{"order":1}');
    // What now holds the name is not the file that was copied: it stays.
    expect(lstatSync(source).isSymbolicLink()).toBe(true);
    expect(readFileSync(secret, "utf8")).toBe('{"secret":true}');
  });

  it("a fifo swapped in under the name is never opened for a blocking read", async () => {
    const source = join(outbox, ".plutus-claim-2");
    writeFileSync(source, '{"order":2}');
    execFileSync("mkfifo", [join(outbox, "swap")]);
    swapAfterFirstLook(source, join(outbox, "swap"));
    const move = moveWithoutOverwrite(source, join(volume(), "archive"), "p.json");
    // The old code blocked for good; a move that syncs to a busy disk may take seconds.
    const blocked = new Promise<"blocked">((resolve) => setTimeout(() => resolve("blocked"), 30_000).unref());
    try {
      const dest = await Promise.race([move, blocked]);
      expect(dest).toBe(join(volume(), "archive", "p.json"));
      expect(readFileSync(dest, "utf8")).toBe('{"order":2}');
      expect(lstatSync(source).isFIFO()).toBe(true);
    } finally {
      // Releases a reader stuck on the fifo (the old code), so the test run can end.
      try {
        closeSync(openSync(source, constants.O_WRONLY | constants.O_NONBLOCK));
      } catch {
        /* no reader waiting */
      }
      await move.catch(() => undefined);
    }
  });
});
