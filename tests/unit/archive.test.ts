import { mkdtempSync, rmSync, writeFileSync, readFileSync, readdirSync, statSync, symlinkSync, mkdirSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseAgentConfig } from "@plutus/shared";
import { Courier } from "../../agent/src/courier";
import { Journal, JournalEntry } from "../../agent/src/journal";
import { RemoteLink } from "../../agent/src/remoteLink";
import { createSilentLogger } from "../../agent/src/logger";
import { dayFolder } from "../../agent/src/localMoves";

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
