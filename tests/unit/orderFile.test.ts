import { mkdtempSync, rmSync, writeFileSync, utimesSync, symlinkSync, statSync, linkSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { constants as bufferConstants } from "node:buffer";
import { inspect, jsonProblem, listOrderNames } from "../../agent/src/orderFile";

let outbox: string;
beforeEach(() => {
  outbox = mkdtempSync(join(tmpdir(), "plutus-inspect-"));
});
afterEach(() => rmSync(outbox, { recursive: true, force: true }));

const rules = (nowOffsetMs = 0) => ({ minAgeMs: 10_000, maxFileBytes: 1024, now: () => Date.now() + nowOffsetMs });

function write(name: string, content: string, mtime: Date): void {
  writeFileSync(join(outbox, name), content);
  utimesSync(join(outbox, name), mtime, mtime);
}

describe("inspect", () => {
  it("takes a stable valid order with its bytes, hash and identity", async () => {
    write("o.json", '{"a":1}', new Date(Date.now() - 60_000));
    const result = await inspect(outbox, "o.json", rules());
    const stat = statSync(join(outbox, "o.json"));
    expect(result).toEqual({
      kind: "ready",
      name: "o.json",
      content: Buffer.from('{"a":1}'),
      sha256: "015abd7f5cc57a2dd94b7590f04ad8084273905ee33ec5cebeae62276a97f862",
      identity: { dev: stat.dev, ino: stat.ino, size: 7, mtimeMs: stat.mtimeMs },
    });
  });

  it("defers a file younger than minAgeSeconds", async () => {
    write("young.json", "{}", new Date(Date.now() - 3_000));
    expect(await inspect(outbox, "young.json", rules())).toEqual({ kind: "deferred", name: "young.json", reason: "modified 3 s ago, waiting until it is 10 s old" });
  });

  it("a modification time in the future waits a minute of quiet by ctime, not until that time", async () => {
    // Whole seconds: utimes/stat round trips through floating-point seconds.
    const future = new Date(Math.floor(Date.now() / 1000) * 1000 + 86_400_000);
    write("future.json", "{}", future);
    expect(await inspect(outbox, "future.json", rules())).toEqual({
      kind: "deferred",
      name: "future.json",
      reason: `modification time is in the future (${future.toISOString()}); taken once unchanged for 60 s`,
    });
    // A minute later (by the clock the agent reads) it is taken.
    expect((await inspect(outbox, "future.json", rules(61_000))).kind).toBe("ready");
  });

  it("quarantines what must not be read: too large, symlink, fifo, Windows name", async () => {
    write("big.json", "x".repeat(2000), new Date(0));
    symlinkSync("/etc/hostname", join(outbox, "link.json"));
    execFileSync("mkfifo", [join(outbox, "fifo.json")]);
    write("CON.json", "{}", new Date(0));
    const reasons = [];
    for (const name of ["big.json", "link.json", "fifo.json", "CON.json"]) {
      const r = await inspect(outbox, name, rules());
      reasons.push(r.kind === "quarantine" ? r.reason : r.kind);
    }
    expect(reasons).toEqual([
      "file is 2000 bytes, larger than maxFileBytes (1024)",
      "symbolic link (links are never followed)",
      "not a regular file (fifo)",
      "file name uses the reserved Windows device name CON; the ERP cannot store this name",
    ]);
  });
});

describe("listOrderNames", () => {
  it("lists *.json names as strings and a name that is not UTF-8 as its bytes", async () => {
    write("a.json", "{}", new Date(0));
    write("notes.txt", "", new Date(0));
    const latin1 = Buffer.from([0x4d, 0xfc, 0x6c, 0x6c, 0x65, 0x72, 0x2e, 0x6a, 0x73, 0x6f, 0x6e]);
    writeFileSync(Buffer.concat([Buffer.from(outbox + "/"), latin1]), "{}");
    writeFileSync(join(outbox, "real-\uFFFD.json"), "{}");
    const names = await listOrderNames(outbox);
    expect(names.filter((n) => typeof n === "string").sort()).toEqual(["a.json", "real-\uFFFD.json"]);
    expect(names.filter((n) => typeof n !== "string")).toEqual([latin1]);
  });

  it("with thousands of names that are not UTF-8, lists each exactly once, every valid name before them", async () => {
    const prefix = Buffer.from(outbox + "/");
    const junk = Array.from({ length: 5_000 }, (_, i) => Buffer.concat([Buffer.from(`j${i}-`), Buffer.from([0xc3, 0x28]), Buffer.from(".json")]));
    for (const name of junk) writeFileSync(Buffer.concat([prefix, name]), "");
    write("order-1.json", "{}", new Date(0));
    write("real-\uFFFD.json", "{}", new Date(0));
    write("skip.txt", "", new Date(0));
    const names = await listOrderNames(outbox);
    expect(names.length).toBe(5_002);
    expect(names.slice(0, 2).sort()).toEqual(["order-1.json", "real-\uFFFD.json"]);
    const listedJunk = names.slice(2) as Buffer[];
    expect(listedJunk.every((n) => Buffer.isBuffer(n))).toBe(true);
    expect(listedJunk.map((n) => n.toString("hex")).sort()).toEqual(junk.map((n) => n.toString("hex")).sort());
  });
});

describe("inspect: hard links", () => {
  it("quarantines a file with a second name (hard link), wherever the other name is", async () => {
    const elsewhere = mkdtempSync(join(tmpdir(), "plutus-elsewhere-"));
    try {
      write("order.json", '{"a":1}', new Date(0));
      linkSync(join(outbox, "order.json"), join(elsewhere, "config.json"));
      expect(await inspect(outbox, "order.json", rules())).toEqual({
        kind: "quarantine",
        name: "order.json",
        path: join(outbox, "order.json"),
        reason: "file has 2 hard links (another name for it may be outside the outbox); an order file has exactly one",
      });
    } finally {
      rmSync(elsewhere, { recursive: true, force: true });
    }
  });
});

describe("jsonProblem", () => {
  it("says exactly what is wrong with content that is not a JSON order", () => {
    expect(jsonProblem(Buffer.alloc(0))).toBe("empty file");
    expect(jsonProblem(Buffer.from([0x7b, 0xff, 0x7d]))).toBe("content is not valid UTF-8");
    expect(jsonProblem(Buffer.from(" \n\t"))).toBe("file holds only white space");
    expect(jsonProblem(Buffer.from("[1]"))).toBe("an order must be a JSON object");
    expect(jsonProblem(Buffer.from("{ nope"))).toBe("invalid JSON: expected a double-quoted property name at line 1, column 3");
    expect(jsonProblem(Buffer.from("\uFEFF{\"a\":1}"))).toBeUndefined();
    expect(jsonProblem(Buffer.from('{"name":"Leuchte – Messing"}'))).toBeUndefined();
  });

  it("locates a JSON syntax error by line and column and never quotes the content", () => {
    const cases: [string, string][] = [
      ['{\n  "cardPin": "h6-pin-7731",\n  "v": x\n}', "unexpected character at line 3, column 8"],
      ['{ "orderId": "100235", "customer": "truncated upload", ', "unexpected end of input at line 1, column 56"],
      ['{"pin":"7731"', "unexpected end of input at line 1, column 14"],
      ['{"pin" "7731"}', 'expected ":" after a property name at line 1, column 8'],
      ['{"pin":"7731",}', "expected a double-quoted property name at line 1, column 15"],
      ['{"pin":"77\u0001"}', "control character inside a string at line 1, column 11"],
      ['{"pin":"7731\\q"}', "invalid escape in a string at line 1, column 13"],
      ['{"pin":07731}', "invalid number at line 1, column 9"],
      ['{"pin":7731}}', "unexpected character after the end of the JSON value at line 1, column 13"],
      ['\uFEFF{"pin":"7731"]', 'expected "," or "}" at line 1, column 14'],
      ["[".repeat(100_000), "unexpected end of input at line 1, column 100001"],
    ];
    for (const [text, where] of cases) {
      const problem = jsonProblem(Buffer.from(text));
      expect(problem).toBe(`invalid JSON: ${where}`);
      expect(problem).not.toContain("7731");
    }
  });

  it("refuses content longer than the longest string V8 can hold, instead of throwing", () => {
    const tooLong = Buffer.alloc(bufferConstants.MAX_STRING_LENGTH + 1, 0x20);
    expect(jsonProblem(tooLong)).toBe(
      `too large to check as JSON (${tooLong.length} bytes; at most ${bufferConstants.MAX_STRING_LENGTH} can be read as text)`,
    );
  });
});
