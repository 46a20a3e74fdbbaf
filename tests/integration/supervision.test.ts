import { execFile, execFileSync, spawn, ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync, symlinkSync, existsSync, readdirSync, rmSync, utimesSync, chmodSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { connect } from "node:net";
import { promisify } from "node:util";
import { parseAgentConfig } from "@plutus/shared";
import { startErpServer, freePort, ErpServer } from "../support/sshd";
import { makeLocalSide, runAgent, sampleOrder, logEvents, LocalSide } from "../support/agent";
import { SftpSession, sftpTarget } from "../../agent/src/sftpSession";
import { observeErpInbox } from "../../agent/src/erpInbox";

/** Metrics scraped by a real node_exporter, logs received by a real rsyslogd, alert commands run for real. */
const run = promisify(execFile);
const REPO = resolve(__dirname, "../..");
const NODE_EXPORTER = "/usr/bin/prometheus-node-exporter";
const RSYSLOGD = "/usr/sbin/rsyslogd";

let erp: ErpServer;
let local: LocalSide;
const children: ChildProcess[] = [];
const scratch: string[] = [];

beforeAll(async () => {
  for (const tool of [NODE_EXPORTER, RSYSLOGD, "/usr/bin/promtool", "/usr/bin/logger"]) {
    if (!existsSync(tool)) throw new Error(`${tool} is missing: apt-get install --no-install-recommends prometheus prometheus-node-exporter rsyslog bsdutils`);
  }
  erp = await startErpServer();
});
afterAll(async () => {
  await erp?.destroy();
});
beforeEach(() => {
  for (const dir of [erp.inboxDir, erp.stagingDir]) for (const f of readdirSync(dir)) rmSync(join(dir, f), { force: true });
  local = makeLocalSide(erp);
});
afterEach(async () => {
  for (const child of children.splice(0)) {
    if (child.exitCode === null && child.signalCode === null) {
      await new Promise<void>((done) => {
        child.once("exit", () => done());
        child.kill("SIGTERM");
      });
    }
  }
  for (const dir of scratch.splice(0)) rmSync(dir, { recursive: true, force: true });
  local.destroy();
});

/** True once something accepts TCP connections on 127.0.0.1:port. */
function acceptsTcp(port: number): Promise<true | undefined> {
  return new Promise((resolveProbe) => {
    const socket = connect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolveProbe(true);
    });
    socket.once("error", () => resolveProbe(undefined));
  });
}

function writeConfig(extra: Record<string, unknown>): void {
  writeFileSync(local.configPath, JSON.stringify({ ...local.config, retries: 0, retryBaseDelayMs: 0, connectTimeoutSeconds: 5, ...extra }));
}

function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), `plutus-h7-${prefix}-`));
  scratch.push(dir);
  return dir;
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** `name value` samples of one exposition text, labels included in the name. */
function samples(text: string): Map<string, number> {
  const map = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const at = line.lastIndexOf(" ");
    map.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return map;
}

describe("Prometheus metrics", () => {
  it("node_exporter's textfile collector serves the agent's series after real passes, over HTTP", async () => {
    const textfileDir = tempDir("textfile");
    writeConfig({ metrics: { textfileDir } });
    // The guide's ACL step lets the agent's account write the collector's folder.
    chmodSync(textfileDir, 0o755);
    execFileSync("setfacl", ["-m", "u:nobody:rwx", textfileDir]);
    execFileSync("runuser", ["-u", "nobody", "--", "touch", join(textfileDir, "probe")]);
    rmSync(join(textfileDir, "probe"));
    const port = await freePort();
    // The flags the operations guide puts in /etc/default/prometheus-node-exporter.
    const exporter = spawn(NODE_EXPORTER, [`--web.listen-address=127.0.0.1:${port}`, "--collector.disable-defaults", "--collector.textfile", `--collector.textfile.directory=${textfileDir}`], { stdio: "ignore" });
    children.push(exporter);
    const scrape = async () => (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    await waitFor("node_exporter to listen", () => scrape().catch(() => undefined));

    local.writeOrder("order-1.json", sampleOrder(1));
    local.writeOrder("order-2.json", sampleOrder(2));
    mkdirSync(join(local.root, "elsewhere"));
    symlinkSync(join(local.root, "elsewhere"), join(local.outbox, "link.json"));
    const before = Date.now() / 1000;
    expect((await runAgent(["run", "--config", local.configPath])).code).toBe(0);
    const written = readFileSync(join(textfileDir, "plutus_sync.prom"), "utf8");
    // No timestamps: every sample is exactly "name value"; nothing left under a temporary name.
    for (const line of written.trim().split("\n").filter((l) => !l.startsWith("#"))) expect(line).toMatch(/^plutus_sync_[a-z_]+(\{[^}]*\})? -?[0-9.e+]+$/);
    expect(readdirSync(textfileDir)).toEqual(["plutus_sync.prom"]);

    let scraped = samples(await scrape());
    expect(scraped.get('node_textfile_scrape_error')).toBe(0);
    expect(scraped.get(`node_textfile_mtime_seconds{file="${join(textfileDir, "plutus_sync.prom")}"}`) ?? scraped.get('node_textfile_mtime_seconds{file="plutus_sync.prom"}')).toBeGreaterThan(before - 2);
    expect(Object.fromEntries([...scraped].filter(([k]) => k.startsWith("plutus_sync_") && !/timestamp|duration/.test(k)))).toEqual({
      plutus_sync_health_state: 1, // WARNING: a file was quarantined
      plutus_sync_last_run_exit_code: 0,
      plutus_sync_delivered_total: 2,
      plutus_sync_failed_total: 0,
      plutus_sync_quarantined_total: 1,
      plutus_sync_recovered_total: 0,
      plutus_sync_passes_total: 1,
      plutus_sync_outbox_waiting: 0,
      plutus_sync_outbox_oldest_age_seconds: 0,
      plutus_sync_erp_inbox_waiting: 2,
      plutus_sync_erp_inbox_oldest_age_seconds: expect.any(Number),
      plutus_sync_in_doubt: 0,
      plutus_sync_quarantine_files: 1,
      plutus_sync_quarantine_unacknowledged: 1,
      plutus_sync_consecutive_failed_runs: 0,
    });
    const lastSuccess = scraped.get("plutus_sync_last_success_timestamp_seconds")!;
    expect(lastSuccess).toBeGreaterThan(before);
    expect(scraped.get("plutus_sync_last_run_timestamp_seconds")).toBe(lastSuccess);
    expect(scraped.get("plutus_sync_pass_duration_seconds")).toBeGreaterThan(0);
    expect(scraped.get("plutus_sync_erp_inbox_oldest_age_seconds")).toBeLessThan(60);

    // The ERP goes down: a failed pass; the counters carry on from the file the last process left.
    await erp.stop();
    local.writeOrder("order-3.json", sampleOrder(3), 700);
    expect((await runAgent(["run", "--config", local.configPath])).code).toBe(3);
    await erp.restart();
    scraped = samples(await scrape());
    expect(scraped.get("plutus_sync_last_run_exit_code")).toBe(3);
    expect(scraped.get("plutus_sync_consecutive_failed_runs")).toBe(1);
    expect(scraped.get("plutus_sync_failed_total")).toBe(1);
    expect(scraped.get("plutus_sync_delivered_total")).toBe(2);
    expect(scraped.get("plutus_sync_passes_total")).toBe(2);
    expect(scraped.get("plutus_sync_outbox_waiting")).toBe(1);
    expect(scraped.get("plutus_sync_outbox_oldest_age_seconds")).toBeGreaterThanOrEqual(700);
    expect(scraped.get("plutus_sync_last_success_timestamp_seconds")).toBe(lastSuccess);
    expect(scraped.get("plutus_sync_last_run_timestamp_seconds")).toBeGreaterThan(lastSuccess);
  });

  it("the shipped alert rules pass promtool check rules and their unit tests; a broken threshold fails them", async () => {
    const dir = join(REPO, "ops/prometheus");
    const check = await run("promtool", ["check", "rules", "plutus-sync.rules.yml"], { cwd: dir });
    expect(check.stdout).toBe("Checking plutus-sync.rules.yml\n  SUCCESS: 9 rules found\n\n");
    const tested = await run("promtool", ["test", "rules", "plutus-sync.rules.test.yml"], { cwd: dir });
    expect(tested.stdout).toContain("SUCCESS");
    // The unit tests can fail: the same tests against a rule file with the ERP threshold at 60 min.
    const copy = tempDir("rules");
    writeFileSync(join(copy, "plutus-sync.rules.yml"), readFileSync(join(dir, "plutus-sync.rules.yml"), "utf8").replace("plutus_sync_erp_inbox_oldest_age_seconds > 30 * 60", "plutus_sync_erp_inbox_oldest_age_seconds > 60 * 60"));
    writeFileSync(join(copy, "plutus-sync.rules.test.yml"), readFileSync(join(dir, "plutus-sync.rules.test.yml")));
    const broken = await run("promtool", ["test", "rules", "plutus-sync.rules.test.yml"], { cwd: copy }).then(
      () => undefined,
      (error: { code: number; stdout: string; stderr: string }) => error,
    );
    expect(broken?.code).toBe(1);
    expect(broken!.stdout + broken!.stderr).toMatch(/FAILED:\n\s+alertname: PlutusSyncErpNotImporting, time: 40m, \n\s+exp:\[\n\s+0:\n\s+Labels:\{alertname="PlutusSyncErpNotImporting"[^\n]*\n[^\n]*\n\s+\], \n\s+got:\[\]/);
  });

  it("serveMetrics (watch mode's metrics.listen) answers GET /metrics, 404 elsewhere, 500 when the state cannot be read", async () => {
    const { serveMetrics, renderMetrics, LatencyHistogram } = await import("../../agent/src/metrics");
    const latency = new LatencyHistogram();
    for (const seconds of [0.2, 1.5, 1.5, 45, 9999]) latency.observe(seconds);
    let fail = false;
    const render = async () => {
      if (fail) throw new Error("journal.jsonl: EACCES");
      return renderMetrics({ state: "OK", exitCode: 0, line: "", problems: [] }, latency);
    };
    const port = await freePort();
    const server = await serveMetrics(`127.0.0.1:${port}`, render);
    try {
      const response = await fetch(`http://127.0.0.1:${port}/metrics`);
      expect(response.status).toBe(200);
      expect(response.headers.get("content-type")).toBe("text/plain; version=0.0.4; charset=utf-8");
      const body = await response.text();
      expect(body).toContain("# TYPE plutus_sync_delivery_latency_seconds histogram\n");
      const scraped = samples(body);
      expect(scraped.get("plutus_sync_health_state")).toBe(0);
      expect(scraped.get('plutus_sync_delivery_latency_seconds_bucket{le="0.5"}')).toBe(1);
      expect(scraped.get('plutus_sync_delivery_latency_seconds_bucket{le="2"}')).toBe(3);
      expect(scraped.get('plutus_sync_delivery_latency_seconds_bucket{le="60"}')).toBe(4);
      expect(scraped.get('plutus_sync_delivery_latency_seconds_bucket{le="600"}')).toBe(4);
      expect(scraped.get('plutus_sync_delivery_latency_seconds_bucket{le="+Inf"}')).toBe(5);
      expect(scraped.get("plutus_sync_delivery_latency_seconds_count")).toBe(5);
      expect(scraped.get("plutus_sync_delivery_latency_seconds_sum")).toBeCloseTo(10047.2, 5);
      expect((await fetch(`http://127.0.0.1:${port}/`)).status).toBe(404);
      fail = true;
      const broken = await fetch(`http://127.0.0.1:${port}/metrics`);
      expect(broken.status).toBe(500);
      expect(await broken.text()).toBe("cannot read the agent's state: journal.jsonl: EACCES\n");
    } finally {
      await new Promise((done) => server.close(done));
    }
  });
});

describe("the ERP inbox seen from the agent", () => {
  it("one listing over the session counts files and finds the oldest; a listing longer than the cap is cut, not read to the end", async () => {
    for (let i = 0; i < 12; i++) {
      const path = join(erp.inboxDir, `order-${i}.json`);
      writeFileSync(path, "{}");
      const when = new Date(Date.UTC(2026, 0, 1, 12, i));
      utimesSync(path, when, when);
    }
    mkdirSync(join(erp.inboxDir, "Processed"));
    const config = parseAgentConfig(local.config);
    const session = await SftpSession.connect(sftpTarget(config, readFileSync(erp.clientKeyPath)));
    try {
      const all = await session.listEntries("/Inbox", 100);
      expect(all.complete).toBe(true);
      expect(all.entries.filter((e) => e.isFile)).toHaveLength(12);
      expect(all.entries.find((e) => e.name === "Processed")).toMatchObject({ isFile: false });
      expect(all.entries.find((e) => e.name === "order-3.json")).toMatchObject({ isFile: true, mtimeSeconds: Date.UTC(2026, 0, 1, 12, 3) / 1000 });
      const cut = await session.listEntries("/Inbox", 5);
      expect(cut).toMatchObject({ complete: false });
      expect(cut.entries).toHaveLength(5);
      const now = new Date(Date.UTC(2026, 0, 1, 13, 0));
      expect(await observeErpInbox(session, "/Inbox", now)).toEqual({ observedAt: now.toISOString(), waiting: 12, oldestModifiedAt: "2026-01-01T12:00:00.000Z", complete: true });
    } finally {
      session.close();
      rmSync(join(erp.inboxDir, "Processed"), { recursive: true });
    }
  });
});

describe("alertCommand", () => {
  it("a command that hangs is killed at the timeout, logged, and delivery is unaffected; the alert is not repeated", async () => {
    writeConfig({ alertCommand: ["/bin/sh", "-c", "sleep 60"], alertTimeoutSeconds: 1 });
    mkdirSync(join(local.root, "elsewhere"));
    symlinkSync(join(local.root, "elsewhere"), join(local.outbox, "link.json"));
    local.writeOrder("order-1.json", sampleOrder(1));
    const started = Date.now();
    const result = await runAgent(["run", "--config", local.configPath]);
    expect(result.code).toBe(0);
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(readdirSync(erp.inboxDir)).toEqual(["order-1.json"]);
    local.writeOrder("order-2.json", sampleOrder(2));
    expect((await runAgent(["run", "--config", local.configPath])).code).toBe(0);
    const failures = logEvents(local.logDir).filter((e) => e.event === "alert-failed");
    expect(failures).toEqual([expect.objectContaining({ level: "error", command: "/bin/sh", error: "/bin/sh did not finish within 1 s and was killed" })]);
  });

  it("a command that fails is logged with what it said; one that cannot start too", async () => {
    writeConfig({ alertCommand: ["/bin/sh", "-c", "echo 'no mailer configured' >&2; exit 7"] });
    mkdirSync(join(local.root, "elsewhere"));
    symlinkSync(join(local.root, "elsewhere"), join(local.outbox, "link.json"));
    expect((await runAgent(["run", "--config", local.configPath])).code).toBe(0);
    expect(logEvents(local.logDir).filter((e) => e.event === "alert-failed")).toEqual([expect.objectContaining({ error: "/bin/sh exited with 7: no mailer configured" })]);
    writeConfig({ alertCommand: [join(local.root, "no-such-program")] });
    symlinkSync(join(local.root, "elsewhere"), join(local.outbox, "link-2.json"));
    expect((await runAgent(["run", "--config", local.configPath])).code).toBe(0);
    expect(logEvents(local.logDir).filter((e) => e.event === "alert-failed")[1]).toMatchObject({ error: `cannot run ${join(local.root, "no-such-program")}: spawn ${join(local.root, "no-such-program")} ENOENT` });
  });

  it("the operations guide's mail and webhook examples deliver the event", async () => {
    // Mail: the shipped script, with a sendmail that records what it was given.
    const bin = tempDir("mail");
    const mailbox = join(bin, "mailbox");
    writeFileSync(join(bin, "sendmail"), `#!/bin/sh\n{ echo "ARGS: $*"; cat; } > '${mailbox}'\n`);
    chmodSync(join(bin, "sendmail"), 0o755);
    const received: string[] = [];
    const { createServer } = await import("node:http");
    const hook = createServer((request, response) => {
      let body = "";
      request.on("data", (d) => (body += d));
      request.on("end", () => {
        received.push(`${request.method} ${request.url} ${request.headers["content-type"]} ${body}`);
        response.end("ok");
      });
    });
    const hookPort = await freePort();
    await new Promise<void>((done) => hook.listen(hookPort, "127.0.0.1", done));
    try {
      writeConfig({ alertCommand: ["/usr/bin/env", `PLUTUS_SENDMAIL=${join(bin, "sendmail")}`, join(REPO, "ops/alerts/mail-alert.sh"), "it-alerts@example.com"] });
      symlinkSync(tempDir("target"), join(local.outbox, "link.json"));
      expect((await runAgent(["run", "--config", local.configPath])).code).toBe(0);
      const mail = readFileSync(mailbox, "utf8");
      expect(mail).toMatch(/^ARGS: -t\nTo: it-alerts@example.com\nSubject: plutus-sync WARNING on \S+\nContent-Type: text\/plain; charset=utf-8\n\nPLUTUS-SYNC WARNING - 1 file\(s\) quarantined since last acknowledged \(plutus-sync ack-quarantine\) \| .*\n\nWhy: health OK -> WARNING; 1 more file\(s\) quarantined\n\n- WARNING: 1 file\(s\) quarantined since last acknowledged \(plutus-sync ack-quarantine\)\n$/);

      writeConfig({ alertCommand: [join(REPO, "ops/alerts/webhook-alert.sh"), `http://127.0.0.1:${hookPort}/hooks/plutus`] });
      expect((await runAgent(["ack-quarantine", "--config", local.configPath])).code).toBe(0);
      expect((await runAgent(["run", "--config", local.configPath])).code).toBe(0);
      expect(received).toHaveLength(1);
      const [head, ...json] = received[0].split(" application/json ");
      expect(head).toBe("POST /hooks/plutus");
      expect(JSON.parse(json.join(" application/json "))).toMatchObject({ event: "plutus-sync-health", previousState: "WARNING", state: "OK", reasons: ["health WARNING -> OK"] });
      expect(logEvents(local.logDir).filter((e) => e.event === "alert-failed")).toEqual([]);
    } finally {
      await new Promise((done) => hook.close(done));
    }
  });
});

describe("central logs", () => {
  it("log.syslog sends every line to a real rsyslogd (tag plutus-sync, JSON, severity by level), which forwards them with the guide's rule", async () => {
    const dir = tempDir("rsyslog");
    const tcpPort = await freePort();
    // The central server: a second rsyslogd receiving TCP on loopback.
    writeFileSync(join(dir, "central.conf"), [
      `global(workDirectory="${dir}")`,
      'module(load="imtcp")',
      `input(type="imtcp" address="127.0.0.1" port="${tcpPort}")`,
      'template(name="line" type="string" string="%programname%|%syslogseverity-text%|%msg:2:$%\\n")',
      `*.* action(type="omfile" file="${dir}/central.log" template="line")`,
      "",
    ].join("\n"));
    // The web server's rsyslogd: a private socket instead of /dev/log, and the guide's forwarding rule.
    const socket = join(dir, "log.sock");
    mkdirSync(join(dir, "rsyslog.d"));
    const forward = readFileSync(join(REPO, "ops/rsyslog/60-plutus-sync-forward.conf"), "utf8");
    expect(readFileSync(join(REPO, "docs/operations.md"), "utf8")).toContain(forward.trim());
    writeFileSync(join(dir, "rsyslog.d/60-plutus-sync-forward.conf"), forward.replace('target="logs.example.com" port="514"', `target="127.0.0.1" port="${tcpPort}"`));
    writeFileSync(join(dir, "local.conf"), [
      `global(workDirectory="${dir}")`,
      'module(load="imuxsock" SysSock.Use="off")',
      `input(type="imuxsock" Socket="${socket}" RateLimit.Interval="0")`,
      'template(name="line" type="string" string="%programname%|%syslogseverity-text%|%msg:2:$%\\n")',
      `*.* action(type="omfile" file="${dir}/local.log" template="line")`,
      `include(file="${dir}/rsyslog.d/*.conf")`,
      "",
    ].join("\n"));
    for (const name of ["central", "local"]) {
      execFileSync(RSYSLOGD, ["-N1", "-f", join(dir, `${name}.conf`)], { stdio: "pipe" });
      children.push(spawn(RSYSLOGD, ["-n", "-f", join(dir, `${name}.conf`), "-i", join(dir, `${name}.pid`)], { stdio: "ignore" }));
    }
    await waitFor("rsyslogd's socket", () => (existsSync(socket) ? true : undefined));
    // The central one listens before the first line is forwarded: a refused forward is retried only
    // after rsyslog's resume interval (30 s).
    await waitFor("the central rsyslogd to listen", () => acceptsTcp(tcpPort));

    writeConfig({ log: { syslog: true, syslogSocket: socket } });
    local.writeOrder("order-1.json", sampleOrder(1));
    mkdirSync(join(local.root, "elsewhere"));
    symlinkSync(join(local.root, "elsewhere"), join(local.outbox, "link.json"));
    const result = await runAgent(["run", "--config", local.configPath]);
    expect(result).toMatchObject({ code: 0, stderr: "" });
    const files = logEvents(local.logDir);
    const expected = files.map((e) => `plutus-sync|${{ error: "err", warn: "warning", info: "info", debug: "debug" }[String(e.level)]}|${JSON.stringify(e)}`);
    expect(expected.length).toBeGreaterThanOrEqual(4);
    for (const name of ["local", "central"]) {
      const lines = await waitFor(`${name}.log to hold every line`, () => {
        const text = existsSync(join(dir, `${name}.log`)) ? readFileSync(join(dir, `${name}.log`), "utf8") : "";
        // Complete lines only: rsyslogd may be writing the last one.
        const got = text.slice(0, text.lastIndexOf("\n") + 1).split("\n").filter((l) => l.startsWith("plutus-sync|"));
        return got.length >= expected.length ? got : undefined;
      });
      // The same JSON as the daily file, line for line; the quarantine is a warning, the pass info.
      expect(lines).toEqual(expected);
    }
    expect(expected.some((l) => l.startsWith("plutus-sync|warning|") && l.includes('"event":"quarantined"'))).toBe(true);
    expect(expected.some((l) => l.startsWith("plutus-sync|info|") && l.includes('"event":"pass"'))).toBe(true);
  });

  it("a syslog socket that is not there is said once on stderr and the pass goes on", async () => {
    const missing = join(local.root, "no-syslog.sock");
    writeConfig({ log: { syslog: true, syslogSocket: missing } });
    local.writeOrder("order-1.json", sampleOrder(1));
    const result = await runAgent(["run", "--config", local.configPath]);
    expect(result.code).toBe(0);
    expect(result.stderr).toMatch(new RegExp(`^plutus-sync: cannot log to syslog: .*${missing.replace(/[.]/g, "\\.")}.*\n$`));
    expect(readdirSync(erp.inboxDir)).toEqual(["order-1.json"]);
  });
});

describe("Nagios through NRPE", () => {
  const account = "h7-plutus-mon";
  afterAll(() => {
    execFileSync("userdel", [account], { stdio: "ignore" });
  });

  it("the shipped sudoers file is valid and the NRPE command line gives the health line as the agent's account", async () => {
    await run("visudo", ["-cf", join(REPO, "ops/nagios/sudoers-plutus-sync-health")]);
    const sudoers = readFileSync(join(REPO, "ops/nagios/sudoers-plutus-sync-health"), "utf8");
    const nrpe = /^command\[check_plutus_sync\]=(.*)$/m.exec(readFileSync(join(REPO, "ops/nagios/nrpe-plutus-sync.cfg"), "utf8"))![1];
    // sudo allows exactly the command NRPE runs.
    expect(sudoers).toContain(`nagios ALL=(plutus) NOPASSWD: ${nrpe.replace("/usr/bin/sudo -n -u plutus ", "")}\n`);
    execFileSync("useradd", ["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", account]);
    local.writeOrder("order-1.json", sampleOrder(1));
    expect((await runAgent(["run", "--config", local.configPath])).code).toBe(0);
    execFileSync("chown", ["-R", `${account}:`, local.root]);
    chmodSync(local.root, 0o755);
    // The same words, with this test's account, node, bundle and configuration.
    const argv = nrpe
      .replace("-u plutus ", `-u ${account} `)
      .replace("/usr/bin/node ", `${process.execPath} `)
      .replace("/opt/plutus-sync/plutus-sync.cjs", resolve(REPO, "agent/dist/plutus-sync.cjs"))
      .replace("/etc/plutus/agent.json", local.configPath)
      .split(" ");
    const result = await run(argv[0], argv.slice(1));
    expect(result.stdout).toMatch(/^PLUTUS-SYNC OK - last success \d+ s ago, 0 waiting in the outbox, 1 in the ERP inbox \| waiting=0;;;0 /);
    expect(result.stderr).toBe("");
    // As another account the state folder is closed: UNKNOWN with the reason, exit 3.
    chmodSync(local.stateDir, 0o700);
    const denied = await run("/usr/bin/sudo", ["-n", "-u", "nobody", ...argv.slice(5)]).then(() => undefined, (error: { code: number; stdout: string }) => error);
    expect(denied?.code).toBe(3);
    expect(denied?.stdout).toMatch(/^PLUTUS-SYNC UNKNOWN - the status \(last-run.json, journal or outbox\) in \S+ cannot be read: EACCES/);
  });
});

describe("command line habits", () => {
  it("help, -h and --help print the usage with the version; version, -V and --version the version", async () => {
    const help = await runAgent(["help"]);
    expect(help).toMatchObject({ code: 0, stderr: "" });
    expect(help.stdout).toMatch(/^plutus-sync 0\.1\.0: delivers order files/);
    for (const command of ["run", "status", "check", "health", "ack-quarantine", "help", "version"]) expect(help.stdout).toMatch(new RegExp(`\\n  ${command} `));
    for (const args of [["-h"], ["--help"], ["status", "--help"]]) expect(await runAgent(args)).toEqual(help);
    for (const args of [["version"], ["-V"], ["--version"]]) expect(await runAgent(args)).toMatchObject({ code: 0, stdout: "plutus-sync 0.1.0\n", stderr: "" });
    expect(await runAgent(["version", "--json"])).toMatchObject({ code: 0, stdout: '{"name":"plutus-sync","version":"0.1.0"}\n' });
    const unknown = await runAgent(["stats", "--config", "/x"]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/^plutus-sync: unknown command "stats"\nplutus-sync 0\.1\.0/);
  });

  it("every command that prints accepts --json", async () => {
    local.writeOrder("order-1.json", sampleOrder(1));
    const ran = await runAgent(["run", "--config", local.configPath, "--json"]);
    expect(JSON.parse(ran.stdout.trim().split("\n").pop()!)).toMatchObject({ delivered: 1 });
    expect(JSON.parse((await runAgent(["status", "--config", local.configPath, "--json"])).stdout)).toMatchObject({ inDoubt: 0, quarantined: 0 });
    expect(JSON.parse((await runAgent(["health", "--config", local.configPath, "--json"])).stdout)).toMatchObject({ state: "OK", exitCode: 0 });
    expect(JSON.parse((await runAgent(["ack-quarantine", "--config", local.configPath, "--json"])).stdout)).toEqual({ acknowledged: 0, newlyAcknowledged: 0 });
    const check = await runAgent(["check", "--config", local.configPath, "--json"]);
    expect(check.code).toBe(0);
    const checked = JSON.parse(check.stdout) as { ok: boolean; checks: string[] };
    expect(checked.ok).toBe(true);
    expect(checked.checks.length).toBeGreaterThan(2);
    expect(check.stdout.split("\n")).toHaveLength(2);
  });
});
