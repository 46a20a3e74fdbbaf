import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync, symlinkSync, chownSync, statSync, utimesSync } from "node:fs";
import { execFileSync, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { useErpStandIn, runAgent, type AgentResult, lastJsonLine, sampleOrder, logEvents as logEventsIn, stagingFiles, stopWhile } from "../support/agent";

const ctx = useErpStandIn();

const sha = (data: Buffer | string) => createHash("sha256").update(data).digest("hex");

function putInInbox(name: string, content: string): void {
  const path = join(ctx.erp.inboxDir, name);
  writeFileSync(path, content);
  chownSync(path, statSync(ctx.erp.inboxDir).uid, statSync(ctx.erp.inboxDir).gid);
}

const logEvents = () => logEventsIn(ctx.local.logDir);

describe("never overwrite an order the ERP has not read", () => {
  it("same name, same content already in the inbox: counted delivered, not duplicated", async () => {
    ctx.local.writeOrder("order-7.json", sampleOrder(7));
    putInInbox("order-7.json", sampleOrder(7));
    const result = await runAgent(["run", "--config", ctx.local.configPath, "--json"]);
    expect(result.code).toBe(0);
    expect(lastJsonLine(result.stdout)).toMatchObject({ delivered: 1, failed: 0 });
    expect(readdirSync(ctx.erp.inboxDir)).toEqual(["order-7.json"]);
    expect(stagingFiles(ctx.erp.stagingDir)).toEqual([]);
  });

  it("same name, other content: delivered as <stem>.<sha8>.json with a warning", async () => {
    const mine = sampleOrder(8);
    ctx.local.writeOrder("order-8.json", mine);
    putInInbox("order-8.json", '{"someone":"else"}');
    const result = await runAgent(["run", "--config", ctx.local.configPath, "--json"]);
    expect(result.code).toBe(0);
    const alternative = `order-8.${sha(mine).slice(0, 8)}.json`;
    expect(readdirSync(ctx.erp.inboxDir).sort()).toEqual([alternative, "order-8.json"].sort());
    expect(readFileSync(join(ctx.erp.inboxDir, alternative), "utf8")).toBe(mine);
    expect(readFileSync(join(ctx.erp.inboxDir, "order-8.json"), "utf8")).toBe('{"someone":"else"}');
    const conflict = logEvents().find((e) => e.event === "conflict");
    expect(conflict).toMatchObject({ level: "warn", file: "order-8.json", deliveredAs: alternative, sha256: sha(mine) });
    expect(logEvents().find((e) => e.event === "delivered")).toMatchObject({ file: "order-8.json", deliveredAs: alternative });
  });
});

describe("stability and local hygiene", () => {
  it("defers a file younger than minAgeSeconds and takes it on a later pass", async () => {
    ctx.local.writeOrder("fresh.json", sampleOrder(1), 0);
    const first = await runAgent(["run", "--config", ctx.local.configPath, "--json"]);
    expect(first.code).toBe(0);
    expect(lastJsonLine(first.stdout)).toMatchObject({ found: 1, delivered: 0, deferred: 1 });
    expect(readdirSync(ctx.local.outbox)).toEqual(["fresh.json"]);
    const old = new Date(Date.now() - 60_000);
    utimesSync(join(ctx.local.outbox, "fresh.json"), old, old);
    const second = await runAgent(["run", "--config", ctx.local.configPath, "--json"]);
    expect(lastJsonLine(second.stdout)).toMatchObject({ found: 1, delivered: 1, deferred: 0 });
  });

  it("quarantines symlinks and fifos without following or opening them, with the reason beside each", async () => {
    const outside = join(ctx.local.root, "secret.json");
    writeFileSync(outside, '{"secret":true}');
    symlinkSync(outside, join(ctx.local.outbox, "link.json"));
    execFileSync("mkfifo", [join(ctx.local.outbox, "pipe.json")]);
    const result = await runAgent(["run", "--config", ctx.local.configPath, "--json"]);
    expect(result.code).toBe(0);
    expect(lastJsonLine(result.stdout)).toMatchObject({ found: 2, quarantined: 2, delivered: 0 });
    expect(readdirSync(ctx.erp.inboxDir)).toEqual([]);
    expect(readdirSync(ctx.local.quarantine).sort()).toEqual(["link.json", "link.json.reason", "pipe.json", "pipe.json.reason"]);
    expect(JSON.parse(readFileSync(join(ctx.local.quarantine, "link.json.reason"), "utf8")).reason).toBe("symbolic link (links are never followed)");
    expect(JSON.parse(readFileSync(join(ctx.local.quarantine, "pipe.json.reason"), "utf8")).reason).toBe("not a regular file (fifo)");
    expect(readFileSync(outside, "utf8")).toBe('{"secret":true}');
  });

  it("never overwrites an archived file: a second delivery of the same name on the same day is archived beside it", async () => {
    ctx.local.writeOrder("repeat.json", sampleOrder(1));
    await runAgent(["run", "--config", ctx.local.configPath]);
    rmSync(join(ctx.erp.inboxDir, "repeat.json"));
    ctx.local.writeOrder("repeat.json", sampleOrder(2));
    const result = await runAgent(["run", "--config", ctx.local.configPath, "--json"]);
    expect(lastJsonLine(result.stdout)).toMatchObject({ delivered: 1 });
    const [day] = readdirSync(ctx.local.archive);
    expect(readdirSync(join(ctx.local.archive, day)).sort()).toEqual(["repeat.1.json", "repeat.json"]);
    expect(readFileSync(join(ctx.local.archive, day, "repeat.1.json"), "utf8")).toBe(sampleOrder(2));
  });

  it("logs one JSON line per file event and a summary line, with ISO timestamps and no key material", async () => {
    ctx.local.writeOrder("a.json", sampleOrder(1));
    ctx.local.writeOrder("bad.json", "nope");
    await runAgent(["run", "--config", ctx.local.configPath]);
    const events = logEvents();
    // At the default level "info" one line per file; "taken" is a debug line.
    // The quarantined file turns the health to WARNING: that change is logged too.
    // The two files are handled concurrently: either line may come first.
    const logged = events.map((e) => e.event).filter((e) => e !== "connected" && e !== "sentinel-created");
    expect([...logged.slice(0, 2).sort(), ...logged.slice(2)]).toEqual(["delivered", "quarantined", "pass", "health-changed"]);
    for (const e of events) expect(e.timestamp).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect(events.find((e) => e.event === "delivered")).toMatchObject({ file: "a.json", size: sampleOrder(1).length, sha256: sha(sampleOrder(1)) });
    expect(events.find((e) => e.event === "pass")).toMatchObject({ found: 2, delivered: 1, quarantined: 1, exitCode: 0 });
    const raw = readdirSync(ctx.local.logDir).filter((f) => f.endsWith(".log")).map((f) => readFileSync(join(ctx.local.logDir, f), "utf8")).join("");
    const keyBody = readFileSync(ctx.erp.clientKeyPath, "utf8").split("\n")[1];
    expect(raw).not.toContain(keyBody);
    expect(raw).not.toContain("PRIVATE KEY");
  });
});

describe("log level debug", () => {
  it("adds a 'taken' and a 'published' line per delivered file", async () => {
    writeFileSync(ctx.local.configPath, JSON.stringify({ ...ctx.local.config, logLevel: "debug" }));
    ctx.local.writeOrder("a.json", sampleOrder(1));
    await runAgent(["run", "--config", ctx.local.configPath]);
    const events = logEvents();
    expect(events.map((e) => e.event).filter((e) => e !== "connected" && e !== "sentinel-created")).toEqual(["taken", "published", "delivered", "pass"]);
    expect(events.find((e) => e.event === "taken")).toMatchObject({ level: "debug", file: "a.json", size: sampleOrder(1).length, sha256: sha(sampleOrder(1)) });
    expect(events.find((e) => e.event === "published")).toMatchObject({ level: "debug", file: "a.json", target: "a.json", how: "renamed" });
  });
});

describe("one pass at a time", () => {
  it("a second pass started during the first does nothing and exits 0; every order arrives once", async () => {
    for (let i = 0; i < 300; i++) ctx.local.writeOrder(`o-${i}.json`, sampleOrder(i));
    // The first pass is frozen (SIGSTOP) at an instant it holds the lock, so the second one
    // starts inside it whatever the machine's load; a delay-based start raced on a busy CI.
    const lockPath = join(ctx.local.stateDir, "pass.lock");
    let first: ChildProcess | undefined;
    const a = runAgent(["run", "--config", ctx.local.configPath, "--json"], {}, undefined, (child) => (first = child));
    await stopWhile(first!, () => existsSync(lockPath), "the first pass holds its lock");
    let b: AgentResult;
    try {
      b = await runAgent(["run", "--config", ctx.local.configPath, "--json"]);
    } finally {
      first!.kill("SIGCONT");
    }
    const finished = await a;
    expect([finished.code, b.code]).toEqual([0, 0]);
    expect(lastJsonLine(b.stdout)).toMatchObject({ skippedLocked: true, found: 0, delivered: 0 });
    expect(b.stderr).toBe("plutus-sync: another pass holds the lock; nothing done\n");
    expect(lastJsonLine(finished.stdout).skippedLocked).toBeUndefined();
    expect(lastJsonLine(finished.stdout).delivered).toBe(300);
    expect(readdirSync(ctx.erp.inboxDir)).toHaveLength(300);
  });
});

describe("an ERP that takes files while the pass runs", () => {
  it("delivers each order exactly once although the inbox empties under the agent", async () => {
    for (let i = 0; i < 200; i++) ctx.local.writeOrder(`o-${i}.json`, sampleOrder(i));
    const seen = new Map<string, number>();
    let running = true;
    const consumer = (async () => {
      while (running) {
        for (const name of readdirSync(ctx.erp.inboxDir)) {
          seen.set(name, (seen.get(name) ?? 0) + 1);
          rmSync(join(ctx.erp.inboxDir, name), { force: true });
        }
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    const result = await runAgent(["run", "--config", ctx.local.configPath, "--json"]);
    const again = await runAgent(["run", "--config", ctx.local.configPath, "--json"]);
    running = false;
    await consumer;
    for (const name of readdirSync(ctx.erp.inboxDir)) seen.set(name, (seen.get(name) ?? 0) + 1);
    expect(lastJsonLine(result.stdout)).toMatchObject({ found: 200, delivered: 200, failed: 0 });
    expect(lastJsonLine(again.stdout)).toMatchObject({ found: 0, delivered: 0 });
    expect(seen.size).toBe(200);
    expect([...seen.values()].every((n) => n === 1)).toBe(true);
    expect([...seen.keys()].every((n) => /^o-\d+\.json$/.test(n))).toBe(true);
  });
});

describe("status", () => {
  it("reports the last run, waiting files and their age, quarantined and failed-run counts", async () => {
    ctx.local.writeOrder("ok.json", sampleOrder(1));
    ctx.local.writeOrder("bad.json", "x");
    await runAgent(["run", "--config", ctx.local.configPath]);
    ctx.local.writeOrder("later.json", sampleOrder(2), 120);
    const result = await runAgent(["status", "--config", ctx.local.configPath, "--json"]);
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout);
    expect(report).toMatchObject({
      outbox: { waiting: 1 },
      quarantined: 1,
      inDoubt: 0,
      consecutiveFailedRuns: 0,
      lastRun: { exitCode: 0, summary: { found: 2, delivered: 1, quarantined: 1 } },
    });
    expect(report.outbox.oldestAgeSeconds).toBeGreaterThanOrEqual(119);
    expect(report.outbox.oldestAgeSeconds).toBeLessThan(200);
    const human = await runAgent(["status", "--config", ctx.local.configPath]);
    expect(human.stdout).toMatch(/^last run: \S+ exit 0: 1\/2 delivered, 0 failed, 1 quarantined, 0 deferred\noutbox: 1 waiting, oldest 1\d\d s old\nquarantined: 1\nin doubt: 0\nconsecutive failed runs: 0\n$/);
  });

  it("counts consecutive failed runs", async () => {
    writeFileSync(ctx.local.configPath, JSON.stringify({ ...ctx.local.config, remote: { ...ctx.local.config.remote, staging: "/NoSuchFolder" } }));
    ctx.local.writeOrder("a.json", sampleOrder(1));
    for (const expected of [1, 2]) {
      const run = await runAgent(["run", "--config", ctx.local.configPath, "--json"]);
      expect(run.code).toBe(1);
      expect(lastJsonLine(run.stdout)).toMatchObject({ found: 1, failed: 1, delivered: 0 });
      const status = JSON.parse((await runAgent(["status", "--config", ctx.local.configPath, "--json"])).stdout);
      expect(status.consecutiveFailedRuns).toBe(expected);
    }
    const failure = logEvents().find((e) => e.event === "failed");
    expect(failure).toMatchObject({ level: "error", file: "a.json" });
    expect(String(failure!.error)).toMatch(/^open \/NoSuchFolder\/plutus-[0-9a-f]{12}\.sentinel: No such file$/);
    expect(readdirSync(ctx.local.outbox)).toEqual(["a.json"]);
  });
});
