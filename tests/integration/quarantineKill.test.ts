import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { useErpStandIn, runAgent, lastJsonLine, sampleOrder } from "../support/agent";
import { useTmpfsVolume } from "../support/tmpfsVolume";

// The brief: an order ends up "quarantined with its reason — never gone, never silently written
// off". A kill between the two steps of a quarantine (write the reason, move the entry) must
// never leave a quarantined entry without its reason, whichever kind of entry and volume.

const ctx = useErpStandIn();

const INVALID = '{"orderId": "PL-000077", "lines": [';
const INVALID_REASON = "invalid JSON: unexpected end of input at line 1, column 36";

function configure(overrides: Record<string, unknown>): void {
  writeFileSync(ctx.local.configPath, JSON.stringify({ ...ctx.local.config, ...overrides }, null, 2));
}

async function run(env: NodeJS.ProcessEnv = {}) {
  return runAgent(["run", "--config", ctx.local.configPath, "--json"], env);
}

async function statusJson(): Promise<Record<string, any>> {
  const status = await runAgent(["status", "--config", ctx.local.configPath, "--json"]);
  expect({ code: status.code, stderr: status.stderr }).toEqual({ code: 0, stderr: "" });
  return JSON.parse(status.stdout);
}

async function healthFacts(): Promise<Record<string, any>> {
  const health = await runAgent(["health", "--config", ctx.local.configPath, "--json"]);
  expect(health.stderr).toBe("");
  return JSON.parse(health.stdout).facts;
}

/**
 * The invariant after any kill: every entry in the quarantine folder (a file, not a reason or a
 * temporary file) has its reason, and every entry set aside in the outbox has its note.
 */
function expectNothingQuarantinedWithoutReason(quarantine: string): void {
  const names = readdirSync(quarantine);
  for (const name of names.filter((n) => !n.endsWith(".reason") && !n.endsWith(".tmp"))) {
    expect({ name, reason: names.includes(`${name}.reason`) }).toEqual({ name, reason: true });
  }
  const notes = names.filter((n) => n.endsWith(".set-aside.reason")).map((n) => JSON.parse(readFileSync(join(quarantine, n), "utf8")).keptInOutboxAs);
  for (const name of readdirSync(ctx.local.outbox).filter((n) => n.endsWith(".set-aside"))) {
    expect({ name, noted: notes.includes(join(ctx.local.outbox, name)) }).toEqual({ name, noted: true });
  }
}

function note(quarantine: string, name: string): Record<string, unknown> {
  return JSON.parse(readFileSync(join(quarantine, name), "utf8"));
}

describe("a kill between a quarantine's reason and its move", () => {
  it("an invalid order: the reason is durable first; the kill leaves the order in the outbox, the next pass quarantines it with that reason", async () => {
    const textfileDir = join(ctx.local.root, "textfile");
    mkdirSync(textfileDir);
    configure({ metrics: { textfileDir } });
    ctx.local.writeOrder("order-77.json", INVALID);
    ctx.local.writeOrder("order-1.json", sampleOrder(1));

    const killed = await run({ PLUTUS_CRASH_AT: "after-quarantine-reason:1" });
    expect(killed.signal).toBe("SIGKILL");
    expectNothingQuarantinedWithoutReason(ctx.local.quarantine);
    // The order is where it was; only its reason is ahead of it. Nothing counts it as quarantined.
    expect(readFileSync(join(ctx.local.outbox, "order-77.json"), "utf8")).toBe(INVALID);
    expect(readdirSync(ctx.local.quarantine)).toEqual(["order-77.json.reason"]);
    // (The valid order may already be delivered: orders go before junk.)
    const waiting = readdirSync(ctx.local.outbox).filter((n) => n.endsWith(".json")).length;
    expect(waiting).toBeGreaterThanOrEqual(1);
    expect(await statusJson()).toMatchObject({ quarantined: 0, outbox: { waiting } });
    // health (and the metrics, which render its facts) agree.
    expect(await healthFacts()).toMatchObject({ quarantined: 0, quarantinedUnacknowledged: 0 });
    const ack = await runAgent(["ack-quarantine", "--config", ctx.local.configPath]);
    expect(ack.stdout).toBe("acknowledged 0 quarantined file(s), 0 of them new\n");

    const next = await run();
    expect(next.stderr).toBe("");
    expect(next.code).toBe(0);
    // The valid order may have been published before the kill (orders go first): delivered once either way.
    expect(lastJsonLine(next.stdout)).toMatchObject({ quarantined: 1, failed: 0 });
    expect(readdirSync(ctx.local.quarantine)).toEqual(["order-77.json", "order-77.json.reason"]);
    expect(readFileSync(join(ctx.local.quarantine, "order-77.json"), "utf8")).toBe(INVALID);
    expect(note(ctx.local.quarantine, "order-77.json.reason")).toEqual({ file: "order-77.json", originalName: "order-77.json", reason: INVALID_REASON, quarantinedAt: expect.any(String) });
    expect(readdirSync(ctx.local.outbox)).toEqual([]);
    expect(readdirSync(ctx.erp.inboxDir)).toEqual(["order-1.json"]);
    expect(await statusJson()).toMatchObject({ quarantined: 1, outbox: { waiting: 0 } });
    expect(await healthFacts()).toMatchObject({ quarantined: 1, quarantinedUnacknowledged: 1 });
    const metrics = readFileSync(join(textfileDir, "plutus_sync.prom"), "utf8");
    expect(metrics).toMatch(/^plutus_sync_quarantine_files 1$/m);
    expect(metrics).toMatch(/^plutus_sync_quarantine_unacknowledged 1$/m);
  });

  it("a folder: its note is written first; the kill leaves it under its name, the next pass sets it aside with that very note", async () => {
    const folder = join(ctx.local.outbox, "folder.json");
    mkdirSync(folder);
    const old = new Date(Date.now() - 60_000);
    utimesSync(folder, old, old);

    expect((await run({ PLUTUS_CRASH_AT: "after-quarantine-reason:1" })).signal).toBe("SIGKILL");
    expectNothingQuarantinedWithoutReason(ctx.local.quarantine);
    expect(readdirSync(ctx.local.outbox)).toEqual(["folder.json"]);
    expect(readdirSync(ctx.local.quarantine)).toEqual(["folder.json.set-aside.reason"]);
    expect(note(ctx.local.quarantine, "folder.json.set-aside.reason")).toMatchObject({ file: null, keptInOutboxAs: `${folder}.set-aside`, originalName: "folder.json" });
    // The note speaks of a name that is not there yet: nothing is counted as quarantined.
    expect(await statusJson()).toMatchObject({ quarantined: 0 });

    const next = await run();
    expect(next.code).toBe(0);
    expect(lastJsonLine(next.stdout)).toMatchObject({ quarantined: 1 });
    expect(readdirSync(ctx.local.outbox)).toEqual(["folder.json.set-aside"]);
    // The note left by the kill was taken over, not joined by a second one.
    expect(readdirSync(ctx.local.quarantine)).toEqual(["folder.json.set-aside.reason"]);
    expect(note(ctx.local.quarantine, "folder.json.set-aside.reason")).toEqual({
      file: null,
      keptInOutboxAs: `${folder}.set-aside`,
      originalName: "folder.json",
      reason: "not a regular file (directory)",
      quarantinedAt: expect.any(String),
    });
    expect(await statusJson()).toMatchObject({ quarantined: 1 });
    // A folder set aside warns until acknowledged, as a quarantined file does.
    expect(await healthFacts()).toMatchObject({ quarantined: 1, quarantinedUnacknowledged: 1 });
    expect((await runAgent(["ack-quarantine", "--config", ctx.local.configPath])).stdout).toBe("acknowledged 1 quarantined file(s), 1 of them new\n");
    expect(await healthFacts()).toMatchObject({ quarantined: 1, quarantinedUnacknowledged: 0 });
  });

  describe("with the quarantine folder on another volume", () => {
    const volume = useTmpfsVolume("s3-qvol", "32m");

    it("an invalid order is copied only after its reason is durable; the kill leaves the order in the outbox", async () => {
      const quarantine = join(volume(), "quarantine-file");
      configure({ quarantine });
      ctx.local.writeOrder("order-77.json", INVALID);

      expect((await run({ PLUTUS_CRASH_AT: "after-quarantine-reason:1" })).signal).toBe("SIGKILL");
      expectNothingQuarantinedWithoutReason(quarantine);
      expect(readdirSync(ctx.local.outbox)).toEqual(["order-77.json"]);
      expect(readdirSync(quarantine)).toEqual(["order-77.json.reason"]);
      expect(await statusJson()).toMatchObject({ quarantined: 0, outbox: { waiting: 1 } });

      expect((await run()).code).toBe(0);
      expect(readdirSync(ctx.local.outbox)).toEqual([]);
      expect(readdirSync(quarantine)).toEqual(["order-77.json", "order-77.json.reason"]);
      expect(readFileSync(join(quarantine, "order-77.json"), "utf8")).toBe(INVALID);
      expect(note(quarantine, "order-77.json.reason")).toMatchObject({ file: "order-77.json", reason: INVALID_REASON });
      expect(await statusJson()).toMatchObject({ quarantined: 1 });
    });

    it("a 3 MiB invalid order killed mid-copy: no partial file under its name; the next pass quarantines it whole, once", async () => {
      const quarantine = join(volume(), "quarantine-big");
      configure({ quarantine });
      const big = '{"orderId": "PL-000088", "note": "' + "x".repeat(3 * 1024 * 1024);
      ctx.local.writeOrder("order-88.json", big);

      // Killed after the second of three 1 MiB chunks of the copy.
      expect((await run({ PLUTUS_CRASH_AT: "during-copy:2" })).signal).toBe("SIGKILL");
      expectNothingQuarantinedWithoutReason(quarantine);
      expect(readdirSync(ctx.local.outbox)).toEqual(["order-88.json"]);
      expect(readdirSync(quarantine)).toEqual(["order-88.json.copy.tmp", "order-88.json.reason"]);
      expect(lstatSync(join(quarantine, "order-88.json.copy.tmp")).size).toBe(2 * 1024 * 1024);
      expect(await statusJson()).toMatchObject({ quarantined: 0, outbox: { waiting: 1 } });

      expect((await run()).code).toBe(0);
      expect(readdirSync(ctx.local.outbox)).toEqual([]);
      expect(readdirSync(quarantine)).toEqual(["order-88.json", "order-88.json.reason"]);
      expect(readFileSync(join(quarantine, "order-88.json"), "utf8")).toBe(big);
      expect(note(quarantine, "order-88.json.reason")).toMatchObject({ file: "order-88.json", reason: expect.stringMatching(/^invalid JSON: /) });
      expect(await statusJson()).toMatchObject({ quarantined: 1 });
    });

    it("a symlink (set aside, it cannot be copied): the reason a killed pass wrote for a move is replaced by the set-aside note", async () => {
      const quarantine = join(volume(), "quarantine-link");
      configure({ quarantine });
      symlinkSync("/etc/passwd", join(ctx.local.outbox, "evil.json"));

      expect((await run({ PLUTUS_CRASH_AT: "after-quarantine-reason:1" })).signal).toBe("SIGKILL");
      expectNothingQuarantinedWithoutReason(quarantine);
      expect(lstatSync(join(ctx.local.outbox, "evil.json")).isSymbolicLink()).toBe(true);
      expect(await statusJson()).toMatchObject({ quarantined: 0 });

      // The second kill lands between the set-aside note and the rename.
      expect((await run({ PLUTUS_CRASH_AT: "after-quarantine-reason:2" })).signal).toBe("SIGKILL");
      expectNothingQuarantinedWithoutReason(quarantine);
      expect(readdirSync(ctx.local.outbox)).toEqual(["evil.json"]);
      expect(await statusJson()).toMatchObject({ quarantined: 0 });

      expect((await run()).code).toBe(0);
      expect(readdirSync(ctx.local.outbox)).toEqual(["evil.json.set-aside"]);
      expect(lstatSync(join(ctx.local.outbox, "evil.json.set-aside")).isSymbolicLink()).toBe(true);
      expect(readdirSync(quarantine)).toEqual(["evil.json.set-aside.reason"]);
      expect(note(quarantine, "evil.json.set-aside.reason")).toMatchObject({
        file: null,
        keptInOutboxAs: join(ctx.local.outbox, "evil.json.set-aside"),
        originalName: "evil.json",
        reason: "symbolic link (links are never followed)",
        notMovedBecause: "cannot move a symbolic link across volumes",
      });
      expect(existsSync("/etc/passwd")).toBe(true);
      expect(await statusJson()).toMatchObject({ quarantined: 1 });
    });
  });
});
