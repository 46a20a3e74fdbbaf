import { mkdtempSync, readFileSync, rmSync, appendFileSync, statSync, writeFileSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Journal } from "../../agent/src/journal";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "plutus-journal-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const commit = (id: string, name: string, target = name) =>
  ({ t: "commit", id, name, sha256: "ab".repeat(32), size: 10, staging: `plutus-x-${id}.part`, target, at: "2026-01-01T00:00:00.000Z" }) as const;

describe("Journal", () => {
  it("folds records into unfinished entries and survives a reopen", async () => {
    const journal = await Journal.open(dir);
    await Promise.all([journal.record(commit("1", "a.json")), journal.record(commit("2", "b.json")), journal.record(commit("3", "c.json"))]);
    await journal.record({ t: "published", id: "2", target: "b.json", at: "x" });
    await journal.record({ t: "published", id: "3", target: "c.json", at: "x" });
    await journal.record({ t: "archived", id: "3", archivedAs: "/arch/c.json", at: "x" });
    await journal.close();
    const reopened = await Journal.open(dir);
    expect(reopened.entries().map((e) => [e.id, e.state, e.target])).toEqual([
      ["1", "committing", "a.json"],
      ["2", "published", "b.json"],
    ]);
    expect(reopened.entryFor("b.json")?.id).toBe("2");
    expect(reopened.entryFor("c.json")).toBeUndefined();
    await reopened.close();
    expect((statSync(join(dir, "journal.jsonl")).mode & 0o777).toString(8)).toBe("600");
  });

  it("keeps the remote folders and sentinel of a commit through compaction; an abandoned entry is closed", async () => {
    const journal = await Journal.open(dir);
    const folders = { stagingDir: "/C:/Plutus/Staging", inboxDir: "/C:/Plutus/Inbox", sentinel: "0f".repeat(16) };
    await journal.record({ ...commit("1", "a.json"), ...folders });
    await journal.record({ ...commit("2", "b.json"), ...folders });
    await journal.record({ t: "abandoned", id: "2", reason: "operator", at: "x" });
    await journal.compact();
    await journal.close();
    const lines = readFileSync(join(dir, "journal.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
    expect(lines).toEqual([{ ...commit("1", "a.json"), ...folders, at: expect.any(String) }]);
    const reopened = await Journal.open(dir);
    expect(reopened.entries()).toEqual([{ id: "1", state: "committing", name: "a.json", sha256: "ab".repeat(32), size: 10, staging: "plutus-x-1.part", target: "a.json", ...folders }]);
    expect(reopened.entry("1")?.sentinel).toBe(folders.sentinel);
    await reopened.close();
  });

  it("a later commit record for the same id moves the target (conflict name)", async () => {
    const journal = await Journal.open(dir);
    await journal.record(commit("1", "a.json"));
    await journal.record(commit("1", "a.json", "a.abababab.json"));
    expect(journal.entries().map((e) => e.target)).toEqual(["a.abababab.json"]);
    await journal.close();
  });

  it("cuts off a torn final line left by a crash mid-write, so the next record is not glued onto it", async () => {
    const journal = await Journal.open(dir);
    await journal.record(commit("1", "a.json"));
    await journal.close();
    appendFileSync(join(dir, "journal.jsonl"), '{"t":"published","id":"1","tar');
    const reopened = await Journal.open(dir);
    expect(reopened.skippedLines).toBe(1);
    expect(reopened.entries().map((e) => e.state)).toEqual(["committing"]);
    await reopened.record(commit("2", "b.json"));
    await reopened.close();
    expect((await Journal.peek(dir)).map((e) => [e.id, e.state])).toEqual([
      ["1", "committing"],
      ["2", "committing"],
    ]);
    expect(readFileSync(join(dir, "journal.jsonl"), "utf8").split("\n")).toHaveLength(3);
  });

  it("refuses a journal damaged before its last line: exactly-once cannot be promised from it", async () => {
    const journal = await Journal.open(dir);
    await journal.record(commit("1", "a.json"));
    await journal.close();
    appendFileSync(join(dir, "journal.jsonl"), 'garbage\n{"t":"archived","id":"1","archivedAs":null,"at":"x"}\n');
    await expect(Journal.open(dir)).rejects.toThrow(`journal ${join(dir, "journal.jsonl")} is damaged at line 2`);
    await expect(Journal.peek(dir)).rejects.toThrow(`journal ${join(dir, "journal.jsonl")} is damaged at line 2`);
  });

  it.each([
    ["overwritten by spaces", " ".repeat(40)],
    ["that is empty", ""],
    ["of JSON that is no record", "{}"],
    ["holding a commit record without its hash", JSON.stringify({ t: "commit", id: "2", name: "b.json", size: 10, staging: "s", target: "b.json" })],
  ])("a line %s is damage, not nothing: a lost commit record must not go unnoticed", async (_what, line) => {
    const journal = await Journal.open(dir);
    await journal.record(commit("1", "a.json"));
    await journal.close();
    appendFileSync(join(dir, "journal.jsonl"), `${line}\n{"t":"archived","id":"1","archivedAs":null,"at":"x"}\n`);
    await expect(Journal.open(dir)).rejects.toThrow(`journal ${join(dir, "journal.jsonl")} is damaged at line 2`);
  });

  it("a record that does not fit on a full disk is rejected and cut back: the journal stays readable", async () => {
    const mount = mkdtempSync(join(tmpdir(), "plutus-journal-full-"));
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=64k", "tmpfs", mount]);
    try {
      const journal = await Journal.open(mount);
      await journal.record(commit("1", "a.json"));
      writeFileSync(join(mount, "filler"), Buffer.alloc(0));
      try {
        for (let i = 0; i < 64; i++) appendFileSync(join(mount, "filler"), Buffer.alloc(1024));
      } catch {
        // the disk is full now
      }
      const huge = { ...commit("2", "b.json"), name: "b".repeat(20_000) + ".json" };
      await expect(journal.record(huge)).rejects.toThrow(/ENOSPC/);
      rmSync(join(mount, "filler"));
      await journal.record(commit("3", "c.json"));
      await journal.close();
      expect((await Journal.peek(mount)).map((e) => e.id)).toEqual(["1", "3"]);
    } finally {
      execFileSync("umount", [mount]);
      rmSync(mount, { recursive: true, force: true });
    }
  });

  it("compaction keeps exactly the unfinished entries", async () => {
    const journal = await Journal.open(dir);
    for (let i = 0; i < 50; i++) {
      await journal.record(commit(String(i), `${i}.json`));
      await journal.record({ t: "published", id: String(i), target: `${i}.json`, at: "x" });
      if (i !== 7) await journal.record({ t: "archived", id: String(i), archivedAs: null, at: "x" });
    }
    await journal.compact();
    await journal.record(commit("99", "99.json"));
    await journal.close();
    const lines = readFileSync(join(dir, "journal.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
    expect(lines.map((l) => [l.t, l.id])).toEqual([
      ["commit", "7"],
      ["published", "7"],
      ["commit", "99"],
    ]);
    expect((await Journal.peek(dir)).map((e) => [e.id, e.state])).toEqual([
      ["7", "published"],
      ["99", "committing"],
    ]);
  });
});
