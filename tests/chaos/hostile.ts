import { execFileSync } from "node:child_process";
import { existsSync, lchownSync, linkSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, utimesSync, writeFileSync, chmodSync, appendFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DEADLINE_MARGIN_MS, Rig, Row, agentBundle, newRow, passClockMs, sha256, sleep } from "./harness";
import { STAGING_SENTINEL, localFolders, runMeasured, type MeasuredResult } from "../support/agent";
import { HostileMode, startHostileErp } from "../support/hostileErp";
import type { Scenario } from "./scenarios";

type Outcome = "delivered" | "quarantined" | "deferred" | "ignored";

interface Case {
  /** What the case is about, for messages. */
  what: string;
  /** The outbox entry name (bytes, for names that are not UTF-8). */
  name: string | Buffer;
  /** Before which pass the entry is created (1, 2 or 3). */
  phase?: 1 | 2 | 3;
  /** Writes the entry; default: `content` as a regular file, 60 s old. */
  make?: (ctx: Ctx, path: Buffer) => void;
  content?: string | Buffer;
  /** Outcome of the pass right after it appears. */
  expect: Outcome;
  /** Outcome after the final clean pass, when different. */
  final?: Outcome;
  /** For quarantine: the reason recorded beside the file. */
  reason?: RegExp;
  /** For quarantine: kept in the outbox as `<name>.set-aside`, only its note in quarantine (folders). */
  setAside?: true;
  /** For delivery: the name it must arrive under in the inbox, when not its own. */
  deliveredAs?: (content: Buffer) => string;
}

interface Ctx {
  rig: Rig;
  outside: string;
}

const order = (id: string, extra = "") => JSON.stringify({ orderId: `PL-H-${id}`, lines: [{ sku: "LAMP-ARC-01", qty: 1 }], note: extra });
const OLD = new Date(Date.now() - 3_600_000);

/** A valid order that must simply be delivered under its own name. */
const plain = (what: string, name: string | Buffer): Case => ({ what, name, content: order(what), expect: "delivered" });
const bad = (what: string, name: string | Buffer, reason: RegExp, content: string | Buffer = order(what)): Case => ({ what, name, content, expect: "quarantined", reason });

const CASES: Case[] = [
  bad("invalid JSON", "bad-json.json", /^invalid JSON: /, "{ not json"),
  bad("empty file", "empty.json", /^empty file$/, ""),
  bad("white space only", "blank.json", /^file holds only white space$/, " \n\t "),
  { what: "UTF-8 BOM before valid JSON", name: "bom.json", content: "\uFEFF" + order("bom"), expect: "delivered" },
  bad("BOM before invalid JSON", "bom-bad.json", /^invalid JSON: /, "\uFEFF{,}"),
  bad("JSON array", "array.json", /^an order must be a JSON object$/, "[1,2,3]"),
  bad("JSON null", "null-literal.json", /^an order must be a JSON object$/, "null"),
  bad("Latin-1 content", "latin1.json", /^content is not valid UTF-8$/, Buffer.from('{"name":"M\xfcller"}', "latin1")),
  bad("huge file (2 MiB > maxFileBytes)", "huge.json", /^file is 2097\d{3} bytes, larger than maxFileBytes \(1048576\)$/, order("huge", "h".repeat(2 * 1024 * 1024))),
  { what: "large file under the limit (900 KB)", name: "large.json", content: order("large", "l".repeat(900_000)), expect: "delivered" },
  plain("spaces in the name", "order with spaces.json"),
  plain("accents (NFC)", "bestellung-müller-ß.json"),
  plain("accents (NFD)", "cafe\u0301-bestellung.json"),
  plain("emoji", "🛒-order.json"),
  plain("leading dash", "-rf.json"),
  plain("double leading dash", "--help.json"),
  bad("reserved name CON", "CON.json", /reserved Windows device name CON; the ERP cannot store this name$/),
  bad("reserved name nul (lower case)", "nul.json", /reserved Windows device name NUL/),
  bad("reserved name COM1 with more dots", "com1.backup.json", /reserved Windows device name COM1/),
  bad("reserved name LPT9", "LPT9.json", /reserved Windows device name LPT9/),
  bad("reserved name AUX before a space", "AUX .json", /reserved Windows device name AUX/),
  plain("CONSOLE is not reserved", "CONSOLE.json"),
  bad("colon", "a:b.json", /contains ":", which Windows does not allow/),
  bad("question mark", "why?.json", /contains "\?"/),
  bad("asterisk", "star*.json", /contains "\*"/),
  bad("pipe", "pi|pe.json", /contains "\|"/),
  bad("angle brackets", "<tag>.json", /contains "<"/),
  bad("double quote", 'say"hi".json', /contains "\\""/),
  bad("backslash", "back\\slash.json", /contains "\\\\"/),
  bad("tab in the name", "tab\there.json", /control character/),
  bad("line break in the name", "line\nbreak.json", /control character/),
  bad("leading space", " lead.json", /starts with a space/),
  bad("name of 201 characters", "o".repeat(196) + ".json", /201 characters long; at most 200/),
  plain("name of exactly 200 characters", "p".repeat(195) + ".json"),
  bad("name not UTF-8 (Latin-1 bytes)", Buffer.from([0x4d, 0xfc, 0x6c, 0x6c, 0x65, 0x72, 0x2e, 0x6a, 0x73, 0x6f, 0x6e]), /^file name is not valid UTF-8$/),
  bad("name with a lone surrogate (CESU-8 bytes)", Buffer.concat([Buffer.from([0xed, 0xa0, 0x80]), Buffer.from("-x.json")]), /^file name is not valid UTF-8$/),
  plain("upper-case extension", "UPPER.JSON"),
  plain("hidden name (dot first)", ".hidden.json"),
  {
    what: "symlink to an order outside the outbox",
    name: "link-outside.json",
    make: (ctx, path) => symlinkSync(join(ctx.outside, "outside-order.json"), path),
    expect: "quarantined",
    reason: /^symbolic link \(links are never followed\)$/,
  },
  { what: "symlink to a folder outside", name: "link-dir.json", make: (ctx, path) => symlinkSync(ctx.outside, path), expect: "quarantined", reason: /^symbolic link/ },
  { what: "dangling symlink", name: "dangling.json", make: (_ctx, path) => symlinkSync("/nonexistent/order.json", path), expect: "quarantined", reason: /^symbolic link/ },
  plain("target of an inside symlink", "target-inside.json"),
  { what: "symlink to an order inside the outbox", name: "alias.json", make: (_ctx, path) => symlinkSync("target-inside.json", path), expect: "quarantined", reason: /^symbolic link/ },
  { what: "fifo", name: "pipe.json", make: (_ctx, path) => execFileSync("mkfifo", [path.toString()]), expect: "quarantined", reason: /^not a regular file \(fifo\)$/ },
  { what: "folder named *.json", name: "folder.json", make: (_ctx, path) => mkdirSync(path), expect: "quarantined", setAside: true, reason: /^not a regular file \(directory\)$/ },
  {
    what: "hard link to a file outside the outbox",
    name: "hard-linked.json",
    make: (ctx, path) => {
      const elsewhere = join(ctx.rig.root, "linked-config.json");
      writeFileSync(elsewhere, order("hard-linked"));
      utimesSync(elsewhere, OLD, OLD);
      linkSync(elsewhere, path);
    },
    expect: "quarantined",
    reason: /^file has 2 hard links \(another name for it may be outside the outbox\); an order file has exactly one$/,
  },
  {
    what: "unreadable file (root's, mode 000)",
    name: "secret.json",
    make: (_ctx, path) => {
      writeFileSync(path, order("secret"));
      chmodSync(path, 0o000);
      utimesSync(path, OLD, OLD);
    },
    expect: "quarantined",
    reason: /^cannot be read: EACCES/,
  },
  { what: "still being written", name: "growing.json", make: () => undefined, expect: "deferred", final: "delivered" },
  {
    what: "mtime in the future",
    name: "future.json",
    make: (_ctx, path) => {
      writeFileSync(path, order("future"));
      const later = new Date(Date.now() + 86_400_000);
      utimesSync(path, later, later);
    },
    expect: "deferred",
  },
  {
    what: "mtime in 1970",
    name: "ancient.json",
    make: (_ctx, path) => {
      writeFileSync(path, order("ancient"));
      utimesSync(path, new Date(0), new Date(0));
    },
    expect: "delivered",
  },
  { what: "not an order (notes.txt)", name: "notes.txt", content: "hello", expect: "ignored" },
  { what: "bare .json", name: ".json", content: order("bare"), expect: "ignored" },
  { what: "web app temporary (order.json.tmp)", name: "order.json.tmp", content: order("tmp"), expect: "ignored" },
  { what: "again.json, first content", name: "again.json", content: order("again-1"), expect: "delivered" },
  // Pass 2, the ERP stopped reading: these stay in the inbox.
  { what: "again.json, other content after the ERP took the first", name: "again.json", phase: 2, content: order("again-2"), expect: "delivered" },
  { what: "held.json, first content", name: "held.json", phase: 2, content: order("held-1"), expect: "delivered" },
  { what: "A.json", name: "A.json", phase: 2, content: order("upper-A"), expect: "delivered" },
  { what: "same-content.json", name: "same-content.json", phase: 2, content: order("same"), expect: "delivered" },
  // Pass 3, the ERP still stopped.
  {
    what: "held.json, other content while the first is unread",
    name: "held.json",
    phase: 3,
    content: order("held-2"),
    expect: "delivered",
    deliveredAs: (content) => `held.${sha256(content).slice(0, 8)}.json`,
  },
  { what: "a.json while A.json is unread (case-sensitive ERP here)", name: "a.json", phase: 3, content: order("lower-a"), expect: "delivered" },
  { what: "same name, same content again", name: "same-content.json", phase: 3, content: order("same"), expect: "delivered" },
];

/** Reads the quarantine note for an entry. */
function quarantineReason(rig: Rig, name: string): string | undefined {
  const note = join(rig.quarantine, `${name}.reason`);
  if (!existsSync(note)) return undefined;
  return (JSON.parse(readFileSync(note, "utf8")) as { reason: string }).reason;
}

/** Exists as a directory entry (a dangling symlink counts). */
function present(path: string | Buffer): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

function displayName(name: string | Buffer): string {
  if (typeof name === "string") return name;
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(name);
  } catch {
    return name.toString("latin1");
  }
}

export const hostileInputs: Scenario = {
  name: "hostile inputs",
  async run() {
    const row: Row = newRow(`hostile inputs (${CASES.length} cases)`);
    const rig = await Rig.start({
      asUser: true,
      config: { minAgeSeconds: 2, maxFileBytes: 1024 * 1024, passDeadlineSeconds: 30, operationTimeoutSeconds: 5 },
      fakeErp: { isFinalName: (n) => !/\.part$|\.probe$|^plutus-[0-9a-f]{12}-/i.test(n) },
    });
    const ctx: Ctx = { rig, outside: join(rig.root, "outside") };
    const contents = new Map<Case, Buffer>();
    try {
      mkdirSync(ctx.outside);
      const outsideOrder = order("outside-secret");
      writeFileSync(join(ctx.outside, "outside-order.json"), outsideOrder);
      const create = (c: Case) => {
        const path = Buffer.concat([Buffer.from(rig.outbox + "/"), typeof c.name === "string" ? Buffer.from(c.name) : c.name]);
        if (c.make) c.make(ctx, path);
        else {
          writeFileSync(path, c.content ?? "");
          utimesSync(path, OLD, OLD);
        }
        // The web shop's account owns what it writes; the unreadable file stays root's.
        if (c.what !== "unreadable file (root's, mode 000)") lchownSync(path, rig.uid, rig.gid);
        if (c.content !== undefined) contents.set(c, Buffer.from(c.content));
        else if (lstatSync(path).isFile()) {
          try {
            contents.set(c, readFileSync(path));
          } catch {
            /* unreadable */
          }
        }
        // Content-addressed accounting in the rig (lost / duplicated / partial).
        const bytes = contents.get(c);
        if (bytes && c.expect !== "ignored") rig.produced.set(sha256(bytes), { name: displayName(c.name), sha256: sha256(bytes) });
      };

      // Pass 1: everything at once, with one file still being written during the pass.
      const growing = join(rig.outbox, "growing.json");
      writeFileSync(growing, '{"orderId":"PL-H-growing","lines":[');
      lchownSync(growing, rig.uid, rig.gid);
      for (const c of CASES.filter((c) => (c.phase ?? 1) === 1)) create(c);
      let writing = true;
      const writer = (async () => {
        while (writing) {
          appendFileSync(growing, '{"sku":"X","qty":1},');
          await sleep(100);
        }
        appendFileSync(growing, '{"sku":"END","qty":1}]}');
      })();
      const expectSummary = (phase: number, record: { summary: Record<string, number> | undefined; code: number | null; stderr: string }, stillDeferred = 0) => {
        const cases = CASES.filter((c) => (c.phase ?? 1) === phase);
        const want = {
          found: cases.filter((c) => c.expect !== "ignored").length + stillDeferred,
          delivered: cases.filter((c) => c.expect === "delivered").length,
          quarantined: cases.filter((c) => c.expect === "quarantined").length,
          deferred: cases.filter((c) => c.expect === "deferred").length + stillDeferred,
          failed: 0,
        };
        const got = record.summary ?? {};
        const diff = Object.entries(want).filter(([k, v]) => got[k] !== v);
        if (record.code !== 0 || diff.length > 0) {
          row.problems.push(`pass ${phase}: exit ${record.code}, expected ${JSON.stringify(want)}, got ${JSON.stringify(got)} ${record.stderr.trim().slice(0, 200)}`);
        }
      };
      expectSummary(1, await rig.bookedPass(row));
      await rig.fake.drain();

      // Pass 2 and 3 with the ERP not reading its inbox; growing.json and future.json still wait.
      rig.fake.paused = true;
      for (const phase of [2, 3] as const) {
        for (const c of CASES.filter((c) => c.phase === phase)) create(c);
        expectSummary(phase, await rig.bookedPass(row), 2);
      }
      writing = false;
      await writer;
      const growingCase = CASES.find((c) => c.name === "growing.json")!;
      const grown = readFileSync(growing);
      contents.set(growingCase, grown);
      for (const [h, p] of rig.produced) if (p.name === "growing.json") rig.produced.delete(h);
      rig.produced.set(sha256(grown), { name: "growing.json", sha256: sha256(grown) });
      rig.fake.paused = false;
      await rig.fake.drain();
      await sleep(2_200); // growing.json must become old enough
      const mayRemain = (name: string) => name === "future.json";
      await rig.finalCleanPass(row, mayRemain);
      await rig.account(row, mayRemain);

      // Each case exactly where the rules put it.
      const consumed = rig.fake.consumed;
      let delivered = 0;
      let quarantined = 0;
      let lost = 0;
      for (const c of CASES) {
        const outcome = c.final ?? c.expect;
        const shown = displayName(c.name);
        const bytes = contents.get(c);
        const inOutbox = present(Buffer.concat([Buffer.from(rig.outbox + "/"), typeof c.name === "string" ? Buffer.from(c.name) : c.name]));
        const problem = (text: string) => row.problems.push(`${c.what} (${JSON.stringify(shown)}): ${text}`);
        if (outcome === "delivered") {
          const as = c.deliveredAs && bytes ? c.deliveredAs(bytes) : shown;
          if (consumed.some((e) => e.name === as && bytes && e.sha256 === sha256(bytes))) delivered++;
          else problem(`expected delivered as ${as}; ERP saw ${consumed.filter((e) => e.name.startsWith(shown.slice(0, 4))).map((e) => e.name).join(", ") || "nothing"}`);
        } else if (outcome === "quarantined") {
          const qname = typeof c.name === "string" ? c.name.replace(/[\0/]/g, "_") : shown;
          const reason = quarantineReason(rig, c.setAside ? `${qname}.set-aside` : qname);
          if (c.setAside && !present(join(rig.outbox, `${qname}.set-aside`))) {
            problem(`expected set aside in the outbox as ${qname}.set-aside${inOutbox ? ", still under its name" : ""}`);
            if (!inOutbox) lost++;
          } else if (!c.setAside && !present(join(rig.quarantine, qname))) {
            problem(`expected quarantined, not in quarantine${inOutbox ? " (still in the outbox)" : ""}`);
            if (!inOutbox) lost++;
          } else if (reason === undefined || !c.reason?.test(reason)) problem(`quarantined with reason ${JSON.stringify(reason)}, expected ${c.reason}`);
          else quarantined++;
        } else {
          if (!inOutbox) {
            problem(`expected ${outcome} (left in the outbox) but it is gone`);
            lost++;
          }
          if (bytes && consumed.some((e) => e.sha256 === sha256(bytes))) problem(`expected ${outcome}, but the ERP received it`);
        }
      }
      // Nothing outside the outbox was followed, read or moved.
      if (readFileSync(join(ctx.outside, "outside-order.json"), "utf8") !== outsideOrder) row.problems.push("the file outside the outbox changed");
      if (consumed.some((e) => e.sha256 === sha256(outsideOrder))) row.problems.push("the order outside the outbox was delivered through a symlink");
      if (readdirSync(ctx.outside).length !== 1) row.problems.push("the folder outside the outbox changed");
      row.produced = CASES.length;
      row.delivered = delivered;
      row.quarantined = quarantined;
      row.lost += lost;
      row.faults = CASES.length;
      const deferred = CASES.filter((c) => c.expect === "deferred").length;
      const ignored = CASES.filter((c) => c.expect === "ignored").length;
      row.notes.push(`${delivered} delivered, ${quarantined} quarantined, ${deferred} deferred first (1 stays: mtime in the future), ${ignored} ignored; same content re-sent counted once`);
    } catch (error) {
      row.problems.push(`scenario error: ${error instanceof Error ? error.stack : String(error)}`);
    } finally {
      await rig.destroy();
    }
    return row;
  },
};

/** Peak resident memory a pass may reach against a hostile ERP (an idle pass takes 60–80 MiB). */
const HOSTILE_PEAK_RSS_KIB = 250 * 1024;

/** One agent pass as its own process (the suite's bundle snapshot), its peak resident memory sampled until it exits. */
function measuredPass(configPath: string, hardLimitMs: number): Promise<MeasuredResult> {
  return runMeasured(["run", "--config", configPath, "--json"], { bundle: agentBundle().path, hardLimitMs });
}

/**
 * A compromised ERP (every SFTP reply is its own): an endless staging listing, one-byte READ
 * replies, garbage instead of replies. Each pass against it must end by its deadline with bounded
 * memory and count as failed (exit 1); when the server behaves again every order arrives once.
 * The ERP here is an SFTP server built on ssh2's server API holding its files in memory; its
 * inbox is the record of what was delivered.
 */
export const hostileErp: Scenario = {
  name: "ERP: hostile server (endless listing, dribbled reads, garbage replies)",
  async run(scale) {
    const row = newRow(this.name);
    const erp = await startHostileErp("honest");
    const root = mkdtempSync(join(tmpdir(), "plutus-chaos-hostile-"));
    const deadlineSeconds = 20;
    try {
      const dirs = localFolders(root);
      for (const dir of Object.values(dirs)) mkdirSync(dir, { mode: 0o750 });
      const keyPath = join(root, "id_ed25519");
      execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", keyPath]);
      const configPath = join(root, "agent.json");
      const remote = { host: erp.host, port: erp.port, username: "plutus-erp", privateKeyPath: keyPath, hostKeySha256: erp.hostKeySha256, inbox: "/Inbox", staging: "/Staging" };
      writeFileSync(configPath, JSON.stringify({ ...dirs, minAgeSeconds: 1, passDeadlineSeconds: deadlineSeconds, operationTimeoutSeconds: 10, connectTimeoutSeconds: 5, retries: 2, retryBaseDelayMs: 200, maxFileBytes: 2 * 1024 * 1024, remote }));
      const produced = new Map<string, string>();
      const produce = (n: number, extra: number) => {
        const content = order(`hostile-${n}`, "z".repeat(extra));
        const path = join(dirs.outbox, `hostile-${n}.json`);
        writeFileSync(path, content);
        utimesSync(path, OLD, OLD);
        produced.set(sha256(content), `hostile-${n}.json`);
      };
      // An order whose name is taken in the inbox by other content of its size: the agent reads
      // that file to compare, which is where dribbled replies bite.
      const squatters = new Set<Buffer>();
      let next = 0;
      const produceSquatted = () => {
        const n = next++;
        produce(n, 1_500_000);
        const squatter = Buffer.alloc(readFileSync(join(dirs.outbox, `hostile-${n}.json`)).length, "q");
        squatters.add(squatter);
        erp.files.set(`/Inbox/hostile-${n}.json`, squatter);
      };
      const rounds = scale.long ? 5 : 1;
      const modes: HostileMode[] = ["endless-listing", "dribble-reads", "garbage-replies"];
      const seen: string[] = [];
      let peakKiB = 0;
      for (let round = 0; round < rounds; round++) {
        for (const mode of modes) {
          // Fresh work for every pass, so each one reaches the server's misbehaviour.
          if (mode === "dribble-reads") produceSquatted();
          for (let i = 0; i < 4; i++) produce(next++, (next % 7) * 700);
          erp.mode = mode;
          const spawnedAt = Date.now();
          const pass = await measuredPass(configPath, (deadlineSeconds + 30) * 1000);
          const passMs = passClockMs(dirs.stateDir, spawnedAt, Date.now());
          row.passes++;
          row.faults++;
          row.longestPassMs = Math.max(row.longestPassMs, passMs);
          peakKiB = Math.max(peakKiB, pass.peakRssKiB);
          if (pass.code !== 1) row.problems.push(`${mode}: exit ${pass.code}, expected 1 (a failed run); ${pass.stderr.trim().slice(0, 200)}`);
          if (passMs > deadlineSeconds * 1000 + DEADLINE_MARGIN_MS) row.problems.push(`${mode}: the pass took ${passMs} ms from its start, past its ${deadlineSeconds} s deadline + ${DEADLINE_MARGIN_MS} ms`);
          if (pass.peakRssKiB > HOSTILE_PEAK_RSS_KIB) row.problems.push(`${mode}: peak RSS ${Math.round(pass.peakRssKiB / 1024)} MiB, more than ${HOSTILE_PEAK_RSS_KIB / 1024} MiB`);
          if (pass.stderr.includes("unexpected error")) row.problems.push(`${mode}: ${pass.stderr.trim().slice(0, 300)}`);
          const lastRun = JSON.parse(readFileSync(join(dirs.stateDir, "last-run.json"), "utf8")) as { consecutiveFailedRuns: number };
          if (lastRun.consecutiveFailedRuns < 1) row.problems.push(`${mode}: the failed run was not counted in last-run.json`);
          seen.push(`${mode} exit ${pass.code} in ${(pass.ms / 1000).toFixed(1)} s, peak RSS ${Math.round(pass.peakRssKiB / 1024)} MiB`);
        }
      }
      row.notes.push(seen.slice(0, modes.length).join("; "));
      row.notes.push(`highest peak RSS over ${row.passes} hostile passes: ${Math.round(peakKiB / 1024)} MiB (bound ${HOSTILE_PEAK_RSS_KIB / 1024} MiB)`);

      // The server behaves again: everything arrives, once.
      erp.mode = "honest";
      let clean: Awaited<ReturnType<typeof measuredPass>> | undefined;
      for (let i = 0; i < 4; i++) {
        clean = await measuredPass(configPath, (deadlineSeconds + 30) * 1000);
        row.passes++;
        if (clean.code === 0 && readdirSync(dirs.outbox).filter((n) => n.endsWith(".json")).length === 0) break;
      }
      if (clean?.code !== 0) row.problems.push(`final pass against the honest server exited ${clean?.code}: ${clean?.stderr.trim().slice(0, 300)}`);
      const arrived = new Map<string, string[]>();
      for (const [path, content] of erp.files) {
        if (!path.startsWith("/Inbox/")) continue;
        if (squatters.has(content)) continue;
        const name = path.slice("/Inbox/".length);
        if (!/\.json$/.test(name)) row.partial++;
        const h = sha256(content);
        if (!produced.has(h)) {
          row.partial++;
          row.problems.push(`the inbox holds ${name}, whose content was never produced`);
        }
        arrived.set(h, [...(arrived.get(h) ?? []), name]);
      }
      row.produced = produced.size;
      row.delivered = [...produced.keys()].filter((h) => arrived.has(h)).length;
      row.duplicated = [...arrived.values()].reduce((sum, names) => sum + names.length - 1, 0);
      row.lost = produced.size - row.delivered;
      for (const [h, name] of produced) if (!arrived.has(h)) row.problems.push(`${name} never arrived`);
      if (row.duplicated > 0) row.problems.push(`${row.duplicated} order(s) arrived twice`);
      const staging = [...erp.files.keys()].filter((p) => p.startsWith("/Staging/") && !STAGING_SENTINEL.test(p.slice("/Staging/".length)));
      if (staging.length > 0) row.problems.push(`staging not empty: ${staging.slice(0, 3).join(", ")}`);
    } catch (error) {
      row.problems.push(`scenario error: ${error instanceof Error ? error.stack : String(error)}`);
    } finally {
      await erp.stop();
      rmSync(root, { recursive: true, force: true });
    }
    return row;
  },
};
