import { closeSync, ftruncateSync, openSync, readFileSync, readdirSync, utimesSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { LocalSide, lastJsonLine, logEvents, makeLocalSide, runAgent, runMeasured, sampleOrder, STAGING_SENTINEL } from "../support/agent";
import { EVIL_TEXT, HostileErp, HostileMode, hashOf, startHostileErp } from "../support/hostileErp";
import type { ErpServer } from "../support/sshd";
import { generateKey } from "../support/sshd";
import { printable } from "../../agent/src/errors";

// The ERP is untrusted: every SFTP reply may come from a compromised server. These tests run the
// bundled agent against servers built on ssh2's server API that misbehave on purpose.

/** Raw control characters a terminal or syslog would act on. */
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/;
// eslint-disable-next-line no-control-regex
const CONTROL_OR_NEWLINE = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/;

let servers: HostileErp[] = [];
let locals: LocalSide[] = [];
afterEach(async () => {
  for (const server of servers) await server.stop();
  for (const local of locals) local.destroy();
  servers = [];
  locals = [];
});

async function against(mode: HostileMode, overrides: Parameters<typeof makeLocalSide>[1] = {}, ident?: string): Promise<{ erp: HostileErp; local: LocalSide }> {
  const erp = await startHostileErp(mode, { ident });
  servers.push(erp);
  const standIn = { host: erp.host, port: erp.port, username: "plutus-erp", clientKeyPath: "", hostKeySha256: erp.hostKeySha256 } as unknown as ErpServer;
  const local = makeLocalSide(standIn, overrides);
  locals.push(local);
  const keyPath = join(local.root, "id_ed25519");
  generateKey(keyPath);
  const config = JSON.parse(readFileSync(local.configPath, "utf8"));
  config.remote.privateKeyPath = keyPath;
  writeFileSync(local.configPath, JSON.stringify(config, null, 2));
  return { erp, local };
}

const orders = (local: LocalSide, count: number, extraBytes = 0) => {
  const sums = new Map<string, string>();
  for (let i = 0; i < count; i++) {
    const content = sampleOrder(i, extraBytes);
    local.writeOrder(`order-${i}.json`, content);
    sums.set(`order-${i}.json`, hashOf(Buffer.from(content)));
  }
  return sums;
};

/** Nothing lost: every order is either still in the outbox, or on the server and archived. */
function expectNothingLost(local: LocalSide, erp: HostileErp, sums: Map<string, string>): { delivered: number; waiting: number } {
  const outbox = new Set(readdirSync(local.outbox));
  const archived = new Set<string>();
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (entry.isDirectory()) walk(join(dir, entry.name));
      else archived.add(hashOf(readFileSync(join(dir, entry.name))));
    }
  };
  walk(local.archive);
  let delivered = 0;
  let waiting = 0;
  for (const [name, sum] of sums) {
    const onServer = erp.files.get(`/Inbox/${name}`);
    if (outbox.has(name)) waiting++;
    else {
      expect({ name, archived: archived.has(sum), onServer: onServer && hashOf(onServer) }).toEqual({ name, archived: true, onServer: sum });
      delivered++;
    }
  }
  return { delivered, waiting };
}

const MiB = 1024 * 1024;
/** What an idle agent pass takes (about 60–80 MB here) plus room; the unbounded code reached gigabytes. */
const PEAK_RSS_BOUND_KIB = 250 * 1024;

describe("a hostile ERP cannot exhaust the agent's memory or stall it", () => {
  it("an endless staging listing is refused at the cap: bounded memory, the pass fails and nothing is lost", async () => {
    const { erp, local } = await against("endless-listing", { passDeadlineSeconds: 30, operationTimeoutSeconds: 20 });
    const sums = orders(local, 3);
    const result = await runMeasured(["run", "--config", local.configPath, "--json"]);
    process.stdout.write(`endless listing: exit ${result.code}, ${result.ms} ms, peak RSS ${Math.round(result.peakRssKiB / 1024)} MiB, ${erp.requests} requests\n`);
    expect(result.code).toBe(1);
    expect(result.peakRssKiB).toBeLessThan(PEAK_RSS_BOUND_KIB);
    const sweep = logEvents(local.logDir).filter((e) => e.event === "orphan-sweep-failed");
    expect(sweep.map((e) => String(e.error).replace(/after \d+ names \(\d+ bytes\)/, "after N names (B bytes)"))).toEqual([
      "the listing of /Staging was refused after N names (B bytes): more than the 50000 names or 16777216 bytes a staging folder may hold",
    ]);
    expect(expectNothingLost(local, erp, sums).waiting + expectNothingLost(local, erp, sums).delivered).toBe(3);
    const lastRun = JSON.parse(readFileSync(join(local.stateDir, "last-run.json"), "utf8"));
    expect(lastRun).toMatchObject({ exitCode: 1, consecutiveFailedRuns: 1 });
  }, 90_000);

  it("a listing dripped one name a second ends with the pass at its deadline, which counts as failed", async () => {
    const { erp, local } = await against("drip-listing", { passDeadlineSeconds: 8, operationTimeoutSeconds: 5 });
    const sums = orders(local, 2);
    const result = await runMeasured(["run", "--config", local.configPath, "--json"]);
    process.stdout.write(`dripped listing: exit ${result.code}, ${result.ms} ms, peak RSS ${Math.round(result.peakRssKiB / 1024)} MiB\n`);
    expect(result.code).toBe(1);
    const lastRun = JSON.parse(readFileSync(join(local.stateDir, "last-run.json"), "utf8"));
    // From the pass's start, which its deadline counts from (node's start-up, slow on a loaded machine, is not part of it).
    expect(result.endedAt - Date.parse(lastRun.startedAt)).toBeLessThan((8 + 3) * 1000);
    expect(logEvents(local.logDir).filter((e) => e.event === "deadline")).toHaveLength(1);
    expect(expectNothingLost(local, erp, sums)).toEqual({ delivered: 0, waiting: 2 });
    expect(lastRun).toMatchObject({ exitCode: 1, consecutiveFailedRuns: 1 });
  }, 60_000);

  it("one-byte READ replies are refused after a few: bounded memory, the order waits in doubt", async () => {
    const { erp, local } = await against("dribble-reads", { passDeadlineSeconds: 40, operationTimeoutSeconds: 10, maxFileBytes: 2 * MiB });
    const sums = orders(local, 1, 1.5 * MiB);
    // The name is taken in the inbox by other content of the same size: the agent reads it to compare.
    const size = readFileSync(join(local.outbox, "order-0.json")).length;
    erp.files.set("/Inbox/order-0.json", Buffer.alloc(size, "y"));
    const result = await runMeasured(["run", "--config", local.configPath, "--json"]);
    process.stdout.write(`dribbled reads: exit ${result.code}, ${result.ms} ms, peak RSS ${Math.round(result.peakRssKiB / 1024)} MiB, ${erp.requests} requests\n`);
    expect(result.code).toBe(1);
    expect(result.peakRssKiB).toBeLessThan(PEAK_RSS_BOUND_KIB);
    const failed = logEvents(local.logDir).filter((e) => e.event === "failed");
    expect(failed.map((e) => e.error)).toEqual([
      `reading a ${size}-byte remote file was refused: ${Math.ceil(size / (30 * 1024)) + 16} reads returned only ${Math.ceil(size / (30 * 1024)) + 16} bytes (the server answers in pieces too short)`,
    ]);
    expect(expectNothingLost(local, erp, sums)).toEqual({ delivered: 0, waiting: 1 });
  }, 90_000);

  it("announced read/write limits of 1 byte are refused at connect: no request per byte, bounded memory, nothing lost", async () => {
    const { erp, local } = await against("tiny-limits:1", { passDeadlineSeconds: 40, operationTimeoutSeconds: 10, maxFileBytes: 2 * MiB });
    const sums = orders(local, 1, 512 * 1024);
    const result = await runMeasured(["run", "--config", local.configPath, "--json"]);
    process.stdout.write(`1-byte limits: exit ${result.code}, ${result.ms} ms, peak RSS ${Math.round(result.peakRssKiB / 1024)} MiB, ${erp.requests} requests\n`);
    expect(result.code).toBe(1);
    expect(result.peakRssKiB).toBeLessThan(PEAK_RSS_BOUND_KIB);
    const refusal = `plutus-erp@127.0.0.1:${erp.port} announced a max-write-length of 1 bytes (limits@openssh.com), less than the 4096 any server takes; refused`;
    expect(logEvents(local.logDir).filter((e) => e.event === "failed").map((e) => e.error)).toEqual([refusal]);
    expect(erp.requests).toBeLessThan(10);
    expect(expectNothingLost(local, erp, sums)).toEqual({ delivered: 0, waiting: 1 });
  }, 90_000);

  it("announced limits of 4 KiB are taken: a 512 KiB order goes in 4 KiB requests, never more than 64 outstanding", async () => {
    const { erp, local } = await against("tiny-limits:4096", { passDeadlineSeconds: 60, maxFileBytes: 2 * MiB });
    const sums = orders(local, 1, 512 * 1024);
    const result = await runMeasured(["run", "--config", local.configPath, "--json"]);
    expect({ code: result.code, stderr: result.stderr }).toEqual({ code: 0, stderr: "" });
    expect(expectNothingLost(local, erp, sums)).toEqual({ delivered: 1, waiting: 0 });
    expect(erp.maxOutstanding).toBeLessThanOrEqual(64);
    expect(erp.maxOutstanding).toBeGreaterThanOrEqual(32);
  }, 90_000);

  it("an ERP inbox listing of endless long names is refused at 16 MiB: bounded memory, the pass is not failed by it", async () => {
    const { erp, local } = await against("long-inbox-names", { passDeadlineSeconds: 60, operationTimeoutSeconds: 20 });
    const sums = orders(local, 1);
    const result = await runMeasured(["run", "--config", local.configPath, "--json"]);
    process.stdout.write(`long inbox names: exit ${result.code}, ${result.ms} ms, peak RSS ${Math.round(result.peakRssKiB / 1024)} MiB, ${erp.requests} requests\n`);
    expect({ code: result.code, stderr: result.stderr }).toEqual({ code: 0, stderr: "" });
    expect(result.peakRssKiB).toBeLessThan(PEAK_RSS_BOUND_KIB);
    const unobserved = logEvents(local.logDir).filter((e) => e.event === "erp-inbox-unobserved" || e.event === "erp-inbox-truncated");
    expect(unobserved.map((e) => [e.event, String(e.error).replace(/after \d+ names \(\d+ bytes\)/, "after N names (B bytes)")])).toEqual([
      ["erp-inbox-unobserved", "the listing of /Inbox was refused after N names (B bytes): more than the 16777216 bytes a listing may take"],
    ]);
    expect(expectNothingLost(local, erp, sums)).toEqual({ delivered: 1, waiting: 0 });
  }, 90_000);

  it("garbage replies drop the connection; the pass ends by its deadline, fails, and loses nothing", async () => {
    const { erp, local } = await against("garbage-replies", { passDeadlineSeconds: 15, operationTimeoutSeconds: 3, retries: 2, retryBaseDelayMs: 100 });
    const sums = orders(local, 4);
    const result = await runMeasured(["run", "--config", local.configPath, "--json"]);
    process.stdout.write(`garbage replies: exit ${result.code}, ${result.ms} ms, peak RSS ${Math.round(result.peakRssKiB / 1024)} MiB\n`);
    expect(result.code).toBe(1);
    // From the pass's start, which its deadline counts from (node's start-up is not part of it).
    expect(result.endedAt - Date.parse(JSON.parse(readFileSync(join(local.stateDir, "last-run.json"), "utf8")).startedAt)).toBeLessThan((15 + 5) * 1000);
    expect(result.stderr).not.toMatch(/unexpected error/);
    expect(result.peakRssKiB).toBeLessThan(PEAK_RSS_BOUND_KIB);
    expect(expectNothingLost(local, erp, sums)).toEqual({ delivered: 0, waiting: 4 });
  }, 60_000);
});

describe("a scan through large junk files keeps uploads in flight alive", () => {
  /** A 4 MiB file that is not JSON, sparse: it costs no disk, but a full read and parse. */
  function junk(path: string): void {
    const fd = openSync(path, "w");
    writeSync(fd, '{"a":[');
    ftruncateSync(fd, 4 * MiB);
    closeSync(fd);
    const old = new Date(Date.now() - 60_000);
    utimesSync(path, old, old);
  }

  it("300 junk files of 4 MiB after an order whose replies come slowly: no reply left unread for the progress deadline", async () => {
    // Junk is read and parsed synchronously; the first 100 junk files are moved as found (each
    // move waits for I/O), the rest only later. Node lists a folder sorted by name, so the order
    // is looked at after 80 junk files: its requests are outstanding (every reply comes 100 ms
    // late) while the scan reads and parses 280 junk files, seconds of work. Unless the scan lets
    // the replies in, the 1 s progress deadline drops a healthy connection.
    const { erp, local } = await against("slow-replies:100", { concurrency: 2, operationTimeoutSeconds: 1, passDeadlineSeconds: 120, maxFileBytes: 8 * MiB });
    for (let i = 0; i < 80; i++) junk(join(local.outbox, `a-junk-${String(i).padStart(3, "0")}.json`));
    local.writeOrder("b-order.json", sampleOrder(0));
    for (let i = 0; i < 300; i++) junk(join(local.outbox, `c-junk-${String(i).padStart(3, "0")}.json`));
    const run = await runAgent(["run", "--config", local.configPath, "--json"]);
    expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: "" });
    process.stdout.write(`junk scan: ${JSON.stringify(lastJsonLine(run.stdout))}\n`);
    expect(lastJsonLine(run.stdout)).toMatchObject({ found: 381, delivered: 1, failed: 0, quarantined: 380 });
    const events = logEvents(local.logDir);
    expect(events.filter((e) => e.event === "retry" || e.event === "failed")).toEqual([]);
    expect(events.filter((e) => e.event === "connected")).toHaveLength(1);
    expect(erp.files.get("/Inbox/b-order.json")?.toString()).toBe(sampleOrder(0));
  }, 60_000);
});

describe("the staging sentinel is only replaced when it was read and is damaged", () => {
  it("a READ of the sentinel refused: the pass fails, the sentinel stays, and an earlier commit is still proven next pass", async () => {
    const { erp, local } = await against("honest");
    local.writeOrder("order-0.json", sampleOrder(0));
    expect((await runAgent(["run", "--config", local.configPath], { PLUTUS_CRASH_AT: "after-rename:1" })).signal).toBe("SIGKILL");
    const sentinelPath = [...erp.files.keys()].find((p) => STAGING_SENTINEL.test(p.slice("/Staging/".length)))!;
    const sentinel = erp.files.get(sentinelPath)!.toString();
    local.writeOrder("order-1.json", sampleOrder(1));

    erp.mode = "sentinel-read-failure";
    const refused = await runAgent(["run", "--config", local.configPath, "--json"]);
    expect(refused.code).toBe(1);
    expect(lastJsonLine(refused.stdout)).toMatchObject({ delivered: 0, recovered: 0, inDoubt: 0, failed: 2 });
    const events = logEvents(local.logDir);
    expect(events.filter((e) => e.event === "recovery-failed").map((e) => [e.file, e.error])).toEqual([["order-0.json", `read: Failure`]]);
    expect(events.filter((e) => e.event === "failed").map((e) => [e.file, e.error])).toEqual([["order-1.json", `read: Failure`]]);
    expect(events.filter((e) => e.event === "sentinel-created")).toEqual([expect.objectContaining({ replacedDamaged: false })]);
    expect(erp.files.get(sentinelPath)!.toString()).toBe(sentinel);

    erp.mode = "honest";
    const next = await runAgent(["run", "--config", local.configPath, "--json"]);
    expect(next.code).toBe(0);
    expect(lastJsonLine(next.stdout)).toMatchObject({ delivered: 1, recovered: 1, inDoubt: 0, failed: 0 });
    expect(logEvents(local.logDir).filter((e) => e.event === "presumed-delivered").map((e) => e.file)).toEqual(["order-0.json"]);
    expect([...erp.files.keys()].filter((p) => p.startsWith("/Inbox/")).sort()).toEqual(["/Inbox/order-0.json", "/Inbox/order-1.json"]);
  }, 60_000);
});

describe("text a server sends reaches terminals, logs and status only as printable text", () => {
  it("a DISCONNECT before key exchange with escapes and a forged log line", async () => {
    const { erp, local } = await against("disconnect-text", { connectTimeoutSeconds: 5 });
    local.writeOrder("order-0.json", sampleOrder(0));
    const where = `plutus-erp@127.0.0.1:${erp.port}`;
    const shown = `cannot connect to ${where}: ${printable(EVIL_TEXT)}`;
    expect(shown).not.toMatch(CONTROL_OR_NEWLINE);

    const run = await runAgent(["run", "--config", local.configPath]);
    expect(run.code).toBe(3);
    expect(run.stderr).toBe(`plutus-sync: ${shown}\n`);
    const lastRun = readFileSync(join(local.stateDir, "last-run.json"), "utf8");
    expect(JSON.parse(lastRun).error).toBe(shown);
    expect(lastRun).not.toMatch(CONTROL);

    const status = await runAgent(["status", "--config", local.configPath]);
    expect(status.code).toBe(0);
    expect(status.stdout).toContain(`(${shown})`);
    expect(status.stdout).not.toMatch(CONTROL);

    const check = await runAgent(["check", "--config", local.configPath]);
    expect(check.code).toBe(3);
    expect(check.stderr).toBe(`plutus-sync: ${shown}\n`);
  }, 60_000);

  it("an SFTP status message with escapes is logged printable", async () => {
    const { local } = await against("status-text");
    local.writeOrder("order-0.json", sampleOrder(0));
    const run = await runAgent(["run", "--config", local.configPath]);
    expect(run.code).toBe(1);
    expect(run.stderr).not.toMatch(CONTROL);
    const failed = logEvents(local.logDir).filter((e) => e.event === "failed");
    expect(failed).toHaveLength(1);
    expect(String(failed[0].error)).toMatch(/^open \/Staging\/plutus-[0-9a-f]+-[0-9a-f-]+\.part: cannot open /);
    expect(String(failed[0].error).endsWith(printable(`cannot open ${EVIL_TEXT}`))).toBe(true);
    for (const file of readdirSync(local.logDir)) expect(readFileSync(join(local.logDir, file), "utf8")).not.toMatch(/[\u0080-\u009f\u202a-\u202e]/);
  }, 60_000);
});

describe("a server that holds few handles and does not say so (Win32-OpenSSH 8.1 has no limits@openssh.com)", () => {
  it("opens refused for lack of handles are retried within the pass: every order delivered in one pass", async () => {
    const { erp, local } = await against("handles:20", { concurrency: 64, passDeadlineSeconds: 60 });
    const sums = orders(local, 80, 2_000);
    const run = await runAgent(["run", "--config", local.configPath, "--json"]);
    process.stdout.write(`20 handles: exit ${run.code}, ${erp.opensRefused} opens refused, at most ${erp.maxHandlesOpen} open\n`);
    expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: "" });
    expect(lastJsonLine(run.stdout)).toMatchObject({ found: 80, delivered: 80, failed: 0 });
    expect(erp.opensRefused).toBeGreaterThan(0);
    expect(erp.maxHandlesOpen).toBe(20);
    expect(expectNothingLost(local, erp, sums)).toEqual({ delivered: 80, waiting: 0 });
    expect([...erp.files.keys()].filter((p) => p.startsWith("/Staging/") && !STAGING_SENTINEL.test(p.slice("/Staging/".length)))).toEqual([]);
  }, 90_000);
});

describe("check names the server software", () => {
  it("warns when the server is not OpenSSH or Win32-OpenSSH", async () => {
    const { local } = await against("honest", {}, "mod_sftp/1.3.8");
    const check = await runAgent(["check", "--config", local.configPath]);
    expect(check.code).toBe(0);
    expect(check.stdout).toContain(
      "WARNING server software mod_sftp/1.3.8 is not OpenSSH or Win32-OpenSSH: exactly-once delivery is only guaranteed where RENAME never replaces a file (see README, \"Supported ERP servers\")\n",
    );
    expect(check.stdout.endsWith("OK\n")).toBe(true);
  }, 60_000);
});
