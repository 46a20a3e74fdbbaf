import { mkdirSync, rmSync, readFileSync, writeFileSync, symlinkSync, utimesSync, existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { startErpServer, ErpServer } from "../support/sshd";
import { makeLocalSide, runAgent, sampleOrder, logEvents, LocalSide } from "../support/agent";

/**
 * `plutus-sync health` in each state, produced by real passes against a real sshd; alertCommand
 * fired once per change of state.
 */
let erp: ErpServer;
let local: LocalSide;
let alertsFile: string;

beforeAll(async () => {
  erp = await startErpServer();
});
afterAll(async () => {
  await erp?.destroy();
});
beforeEach(() => {
  for (const dir of [erp.inboxDir, erp.stagingDir]) for (const f of readdirSync(dir)) require("node:fs").rmSync(join(dir, f), { force: true });
  local = makeLocalSide(erp);
  alertsFile = join(local.root, "alerts.jsonl");
  // The alert command gets the path as an argument: data, never shell text.
  writeConfig({ alertCommand: ["/bin/sh", "-c", 'cat >> "$1"', "alert", alertsFile] });
});
afterEach(() => local.destroy());

function writeConfig(extra: Record<string, unknown>): void {
  writeFileSync(local.configPath, JSON.stringify({ ...local.config, retries: 0, retryBaseDelayMs: 0, connectTimeoutSeconds: 5, ...extra }));
}

async function health(): Promise<{ code: number | null; line: string; json: Record<string, unknown> }> {
  const plain = await runAgent(["health", "--config", local.configPath]);
  const json = await runAgent(["health", "--config", local.configPath, "--json"]);
  expect(plain.stderr).toBe("");
  expect(json.code).toBe(plain.code);
  expect(plain.stdout.split("\n")).toHaveLength(2); // one line and its newline
  return { code: plain.code, line: plain.stdout.trimEnd(), json: JSON.parse(json.stdout) as Record<string, unknown> };
}

function alerts(): { previousState: string; state: string; reasons: string[]; line: string }[] {
  if (!existsSync(alertsFile)) return [];
  return readFileSync(alertsFile, "utf8").trim().split("\n").map((l) => JSON.parse(l));
}

const PERF = /^waiting=\d+;;;0 oldest_waiting_s=(U|\d+s);600;1800;0 in_doubt=\d+;0;;0 quarantined_unacked=\d+;0;;0 erp_inbox_waiting=(U|\d+);;;0 erp_inbox_oldest_s=(U|\d+s);1800;;0 last_success_age_s=(U|\d+s);;900;0 failed_runs=\d+;2;3;0$/;

it("UNKNOWN before the first pass and on damaged state, with the reason", async () => {
  let h = await health();
  expect(h.code).toBe(3);
  expect(h.line).toBe(`PLUTUS-SYNC UNKNOWN - state folder ${local.stateDir} cannot be read (ENOENT: no such file or directory, stat '${local.stateDir}'); has the agent ever run?`);
  expect(h.json).toMatchObject({ state: "UNKNOWN", exitCode: 3 });

  local.writeOrder("order-1.json", sampleOrder(1));
  expect((await runAgent(["run", "--config", local.configPath])).code).toBe(0);
  writeFileSync(join(local.stateDir, "last-run.json"), "{ torn");
  h = await health();
  expect(h.code).toBe(3);
  expect(h.line).toBe(
    `PLUTUS-SYNC UNKNOWN - the status (last-run.json, journal or outbox) in ${local.stateDir} cannot be read: ${local.stateDir}/last-run.json is damaged: invalid JSON: expected a double-quoted property name at line 1, column 3`,
  );
  // status says the same, as a state error (exit 2), not as an unexpected failure.
  const status = await runAgent(["status", "--config", local.configPath]);
  expect(status).toMatchObject({ code: 2, stdout: "", stderr: `plutus-sync: ${local.stateDir}/last-run.json is damaged: invalid JSON: expected a double-quoted property name at line 1, column 3\n` });

  // A torn watcher heartbeat is named the same way.
  rmSync(join(local.stateDir, "last-run.json"));
  expect((await runAgent(["run", "--config", local.configPath])).code).toBe(0);
  writeFileSync(join(local.stateDir, "watcher.json"), '{"pid": 4242');
  expect(await runAgent(["status", "--config", local.configPath])).toMatchObject({ code: 2, stdout: "", stderr: `plutus-sync: ${local.stateDir}/watcher.json is damaged: invalid JSON: unexpected end of input at line 1, column 13\n` });
  rmSync(join(local.stateDir, "watcher.json"));

  writeFileSync(local.configPath, "{}");
  h = await health();
  expect(h.code).toBe(3);
  expect(h.line).toMatch(/^PLUTUS-SYNC UNKNOWN - invalid configuration in \S+agent.json: +- outbox: is required/);
});

it("OK, then the ERP down for three runs: OK, WARNING, CRITICAL; back up: OK; one alert per change", async () => {
  local.writeOrder("order-1.json", sampleOrder(1));
  expect((await runAgent(["run", "--config", local.configPath])).code).toBe(0);
  let h = await health();
  expect(h.code).toBe(0);
  expect(h.line).toMatch(/^PLUTUS-SYNC OK - last success \d+ s ago, 0 waiting in the outbox, 1 in the ERP inbox \| /);
  expect(h.line.split(" | ")[1]).toMatch(PERF);
  expect(h.line).toContain(" erp_inbox_waiting=1;;;0 ");
  expect(h.json).toMatchObject({ state: "OK", exitCode: 0, facts: { waiting: 0, inDoubt: 0, erpInboxWaiting: 1, consecutiveFailedRuns: 0, counters: { passes: 1, delivered: 1 } } });
  expect(alerts()).toEqual([]);

  await erp.stop();
  local.writeOrder("order-2.json", sampleOrder(2));
  const down = `cannot connect to plutus-erp@127.0.0.1:${erp.port}: connect ECONNREFUSED 127.0.0.1:${erp.port}`;
  const expected = [
    { code: 0, state: "OK" },
    { code: 1, state: "WARNING", text: `2 consecutive failed runs (last exit 3: ${down})` },
    { code: 2, state: "CRITICAL", text: `3 consecutive failed runs (last exit 3: ${down})` },
    { code: 2, state: "CRITICAL", text: `4 consecutive failed runs (last exit 3: ${down})` },
  ];
  for (const want of expected) {
    expect((await runAgent(["run", "--config", local.configPath])).code).toBe(3);
    h = await health();
    expect(h.code).toBe(want.code);
    if (want.text) expect(h.line).toMatch(new RegExp(`^PLUTUS-SYNC ${want.state} - ${escape(want.text)} \\| `));
    else expect(h.line).toMatch(/^PLUTUS-SYNC OK - /);
  }
  expect(h.line.split(" | ")[1]).toMatch(PERF);
  expect(h.line).toContain(" failed_runs=4;2;3;0");

  await erp.restart();
  expect((await runAgent(["run", "--config", local.configPath])).code).toBe(0);
  h = await health();
  expect(h.code).toBe(0);
  expect(h.line).toMatch(/^PLUTUS-SYNC OK - last success \d+ s ago, 0 waiting in the outbox, 2 in the ERP inbox \| /);
  expect((await runAgent(["run", "--config", local.configPath])).code).toBe(0);

  // Fired once per change: not for the first OK, not again for the fourth failed run or the second OK.
  expect(alerts().map((a) => [a.previousState, a.state, a.reasons])).toEqual([
    ["OK", "WARNING", ["health OK -> WARNING"]],
    ["WARNING", "CRITICAL", ["health WARNING -> CRITICAL"]],
    ["CRITICAL", "OK", ["health CRITICAL -> OK"]],
  ]);
  expect(alerts()[1].line).toMatch(/^PLUTUS-SYNC CRITICAL - 3 consecutive failed runs/);
  expect(logEvents(local.logDir).filter((e) => e.event === "alert-sent")).toHaveLength(3);
});

it("an order in doubt: WARNING and one alert saying so; settled once the ERP is back: OK", async () => {
  local.writeOrder("order-1.json", sampleOrder(1));
  expect((await runAgent(["run", "--config", local.configPath])).code).toBe(0);
  local.writeOrder("order-2.json", sampleOrder(2));
  // Killed between the commit record and the rename: the journal holds a delivery in doubt.
  const crashed = await runAgent(["run", "--config", local.configPath], { PLUTUS_CRASH_AT: "after-commit-record" });
  expect(crashed.signal).toBe("SIGKILL");
  let h = await health();
  expect(h.code).toBe(1);
  expect(h.line).toMatch(/^PLUTUS-SYNC WARNING - 1 order\(s\) in doubt \(see plutus-sync status\) \| /);
  expect(h.line).toContain(" in_doubt=1;0;;0 ");
  // The ERP is down for the next pass: the order stays in doubt, and the alert says so once.
  await erp.stop();
  expect((await runAgent(["run", "--config", local.configPath])).code).toBe(3);
  expect((await runAgent(["run", "--config", local.configPath])).code).toBe(3);
  await erp.restart();
  expect((await runAgent(["run", "--config", local.configPath])).code).toBe(0);
  h = await health();
  expect(h.code).toBe(0);
  expect(alerts().map((a) => [a.previousState, a.state, a.reasons])).toEqual([
    ["OK", "WARNING", ["health OK -> WARNING", "1 more order(s) in doubt"]],
    // The killed pass was a failed run too: with the two that could not connect, three in a row.
    ["WARNING", "CRITICAL", ["health WARNING -> CRITICAL"]],
    ["CRITICAL", "OK", ["health CRITICAL -> OK"]],
  ]);
  expect(readdirSync(erp.inboxDir).sort()).toEqual(["order-1.json", "order-2.json"]);
});

it("an old file in the ERP inbox: WARNING 'the ERP has stopped taking orders'", async () => {
  const stale = join(erp.inboxDir, "order-0.json");
  writeFileSync(stale, sampleOrder(0));
  const twoHoursAgo = new Date(Date.now() - 2 * 3600_000);
  utimesSync(stale, twoHoursAgo, twoHoursAgo);
  expect((await runAgent(["run", "--config", local.configPath])).code).toBe(0);
  const h = await health();
  const checkedBy = Date.now();
  expect(h.code).toBe(1);
  expect(h.line).toMatch(/^PLUTUS-SYNC WARNING - the ERP inbox has held a file for 120 min \(1 waiting\): the ERP has stopped taking orders \| /);
  expect(h.line).toMatch(/ erp_inbox_oldest_s=\d+s;1800;;0 /);
  // Two hours and the seconds the pass and the health check took, however long that was on this machine.
  const oldestSeconds = Number(/ erp_inbox_oldest_s=(\d+)s;/.exec(h.line)![1]);
  expect(oldestSeconds).toBeGreaterThanOrEqual(2 * 3600);
  // SFTP carries whole seconds: the mtime the agent sees is the file's, truncated.
  const mtimeOverSftp = Math.floor(twoHoursAgo.getTime() / 1000) * 1000;
  expect(oldestSeconds).toBeLessThanOrEqual(Math.ceil((checkedBy - mtimeOverSftp) / 1000));
  expect(h.json).toMatchObject({ facts: { erpInboxWaiting: 1 } });
  expect(alerts().map((a) => a.state)).toEqual(["WARNING"]);
});

it("an order waiting too long and no success since: CRITICAL with every problem in the line", async () => {
  local.writeOrder("order-1.json", sampleOrder(1));
  expect((await runAgent(["run", "--config", local.configPath])).code).toBe(0);
  // cron stopped 20 minutes ago: the last pass's records are that old, and an order has waited since.
  const twentyAgo = new Date(Date.now() - 20 * 60_000).toISOString();
  const counters = JSON.parse(readFileSync(join(local.stateDir, "counters.json"), "utf8"));
  writeFileSync(join(local.stateDir, "counters.json"), JSON.stringify({ ...counters, lastSuccessAt: twentyAgo }));
  const lastRun = JSON.parse(readFileSync(join(local.stateDir, "last-run.json"), "utf8"));
  writeFileSync(join(local.stateDir, "last-run.json"), JSON.stringify({ ...lastRun, finishedAt: twentyAgo }));
  local.writeOrder("order-2.json", sampleOrder(2), 12 * 60);
  const h = await health();
  expect(h.code).toBe(2);
  expect(h.line).toMatch(
    new RegExp(`^PLUTUS-SYNC CRITICAL - no successful pass for 20 min \\(last at ${escape(twentyAgo)}\\): is cron running\\?; oldest of 1 order\\(s\\) in the outbox has waited 12 min \\| `),
  );
  expect(h.json).toMatchObject({ state: "CRITICAL", problems: [{ state: "CRITICAL" }, { state: "WARNING" }] });
});

it("a quarantined file: WARNING until ack-quarantine; a second one warns again", async () => {
  mkdirSync(join(local.root, "elsewhere"));
  symlinkSync(join(local.root, "elsewhere"), join(local.outbox, "link.json"));
  expect((await runAgent(["run", "--config", local.configPath])).code).toBe(0);
  let h = await health();
  expect(h.code).toBe(1);
  expect(h.line).toMatch(/^PLUTUS-SYNC WARNING - 1 file\(s\) quarantined since last acknowledged \(plutus-sync ack-quarantine\) \| /);
  const ack = await runAgent(["ack-quarantine", "--config", local.configPath]);
  expect(ack).toMatchObject({ code: 0, stdout: "acknowledged 1 quarantined file(s), 1 of them new\n", stderr: "" });
  h = await health();
  expect(h.code).toBe(0);
  expect((await runAgent(["ack-quarantine", "--config", local.configPath, "--json"])).stdout).toBe('{"acknowledged":1,"newlyAcknowledged":0}\n');
  symlinkSync(join(local.root, "elsewhere"), join(local.outbox, "link-2.json"));
  expect((await runAgent(["run", "--config", local.configPath])).code).toBe(0);
  h = await health();
  expect(h.code).toBe(1);
  expect(h.line).toContain(" quarantined_unacked=1;0;;0 ");
  // A new quarantined file is news even though the state stays WARNING.
  expect(alerts().map((a) => [a.previousState, a.state, a.reasons])).toEqual([
    ["OK", "WARNING", ["health OK -> WARNING", "1 more file(s) quarantined"]],
    ["WARNING", "WARNING", ["1 more file(s) quarantined"]],
  ]);
});

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
