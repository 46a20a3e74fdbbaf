import { chownSync, mkdirSync, readFileSync, rmSync, rmdirSync, writeFileSync, chmodSync, existsSync } from "node:fs";
import { join } from "node:path";
import { CRASH_STEPS } from "../../agent/src/crashHook";
import { ERP_USER, uidOf, startErpServer } from "../support/sshd";
import { Rig, Row, Rng, newRow, sleep, countEvents, descendants, PassRecord, afterStagingEvents, DEADLINE_MARGIN_MS } from "./harness";
import { hostileErp, hostileInputs } from "./hostile";
import { fewHandles, slowLink, suspendedPass } from "./erpLimits";
import { stagingFiles } from "../support/agent";
import { erpHoldsInboxFilesOpen, stagingReplacedAfterCrash } from "./windowsServer";
import { watchKill } from "./watchKill";

export interface Scale {
  long: boolean;
}

export interface Scenario {
  name: string;
  run(scale: Scale, rng: Rng): Promise<Row>;
  /**
   * The jest suite that shows the same thing, when this row only repeats it at a cost `npm test`
   * should not pay twice; `npm run chaos` still runs the row.
   */
  alsoShownBy?: string;
}

/** Short deadlines in fault scenarios, so a black hole or a dead server bounds a pass quickly. */
export const FAULT_TUNING = {
  passDeadlineSeconds: 10,
  operationTimeoutSeconds: 2,
  connectTimeoutSeconds: 3,
  retries: 3,
  retryBaseDelayMs: 200,
} as const;

export async function withRig(row: Row, options: Parameters<typeof Rig.start>[0], body: (rig: Rig) => Promise<void>): Promise<Row> {
  const rig = await Rig.start(options);
  try {
    await body(rig);
  } catch (error) {
    row.problems.push(`scenario error: ${error instanceof Error ? error.stack : String(error)}`);
  } finally {
    if ((row.problems.length > 0 || process.env.CHAOS_EVIDENCE_ALL) && process.env.CHAOS_EVIDENCE) rig.keepEvidence(join(process.env.CHAOS_EVIDENCE, row.scenario.replace(/[^A-Za-z0-9]+/g, "-")));
    await rig.destroy();
  }
  return row;
}

function expectDeadline(row: Row, deadlineSeconds: number): void {
  const limit = deadlineSeconds * 1000 + DEADLINE_MARGIN_MS;
  if (row.longestPassMs > limit) row.problems.push(`longest pass ${row.longestPassMs} ms from its start exceeds passDeadlineSeconds (${deadlineSeconds} s) + ${DEADLINE_MARGIN_MS} ms`);
}

export function expectExit(row: Row, record: PassRecord, codes: number[], what: string): void {
  if (record.code === null || !codes.includes(record.code)) {
    row.problems.push(`${what}: exit ${record.code ?? record.signal}, expected ${codes.join(" or ")}; stderr: ${record.stderr.trim().slice(0, 300)}`);
  }
}

export function topUp(rig: Rig, rng: Rng, target: number, maxExtra: number): void {
  const have = rig.outboxOrders().length;
  for (let i = have; i < target; i++) rig.produce(rng.chance(0.05) ? rng.int(50_000, 200_000) : rng.int(0, maxExtra));
}

/** Counts how many deliveries ended in doubt (reply lost) and were settled afterwards. */
function inDoubtEvidence(rig: Rig): string {
  const events = rig.logEvents();
  const inDoubtRetries = events.filter((e) => e.event === "retry" && e.inDoubt === true).length;
  const inDoubtFailed = events.filter((e) => e.event === "failed" && e.inDoubt === true).length;
  const counts = countEvents(events);
  const renameTookEffect = events.filter((e) => e.event === "presumed-delivered").length;
  const sameInInbox = events.filter((e) => e.event === "published" && /same SHA-256/.test(String(e.how))).length;
  return `renames settled as done after a lost reply ${renameTookEffect}, found already in the inbox ${sameInInbox}, in-doubt retries ${inDoubtRetries}, in-doubt failures ${inDoubtFailed}, recovered ${counts.get("recovered") ?? 0}, orphans swept ${events.filter((e) => e.event === "orphans-removed").reduce((s, e) => s + Number(e.count), 0)}`;
}

const killLoop: Scenario = {
  name: "kill -9 at random instants",
  async run(scale, rng) {
    const row = newRow(this.name);
    return withRig(row, { config: { ...FAULT_TUNING, passDeadlineSeconds: 30, concurrency: 8 } }, async (rig) => {
      const passes = scale.long ? 1000 : 100;
      let typicalMs = 700;
      let producing = true;
      // The web shop keeps writing while the agent drains and dies.
      const producer = (async () => {
        while (producing) {
          if (rig.outboxOrders().length < 40) rig.produce(rng.chance(0.03) ? rng.int(50_000, 300_000) : rng.int(0, 6000));
          await sleep(rng.int(5, 40));
        }
      })();
      const exits = new Map<string, number>();
      let hookKills = 0;
      for (let i = 0; i < passes; i++) {
        const roll = rng.next();
        const options = roll < 0.7 ? { killAfterMs: rng.int(0, Math.round(typicalMs * 1.2)) } : roll < 0.9 ? { crashAt: `${rng.pick(CRASH_STEPS)}:${rng.int(1, 6)}` } : {};
        const record = await rig.bookedPass(row, options);
        const key = record.killed ? "SIGKILL" : String(record.code);
        exits.set(key, (exits.get(key) ?? 0) + 1);
        if (record.killed) {
          row.faults++;
          if ("crashAt" in options) hookKills++;
        } else {
          if (!("crashAt" in options)) typicalMs = Math.round(0.8 * typicalMs + 0.2 * record.ms);
          expectExit(row, record, [0, 1], `pass ${i + 1}`);
        }
      }
      producing = false;
      await producer;
      await rig.finalCleanPass(row);
      await rig.account(row);
      row.notes.push(`exits ${[...exits].map(([k, v]) => `${k}×${v}`).join(" ")}; ${hookKills} kills at named steps (crash hook), ${row.faults - hookKills} at random instants; ${inDoubtEvidence(rig)}`);
    });
  },
};

type Trigger = (() => void) | undefined;
type Injector = (rig: Rig, rng: Rng, pass: number, setTrigger: (t: Trigger) => void) => { arm(): void; disarm(): void };

/** A network fault per pass through the proxy; `setTrigger` runs a callback when the fake ERP takes a file. */
function networkScenario(name: string, passesShort: number, passesLong: number, inject: Injector): Scenario {
  return {
    name,
    async run(scale, rng) {
      const row = newRow(name);
      let trigger: Trigger;
      return withRig(row, { proxy: true, config: { ...FAULT_TUNING, logLevel: "debug" }, fakeErp: { onAppear: () => trigger?.() } }, async (rig) => {
        const proxy = rig.proxy!;
        const passes = scale.long ? passesLong : passesShort;
        const before = proxy.faults;
        for (let i = 0; i < passes; i++) {
          topUp(rig, rng, 30, 8000);
          const fault = inject(rig, rng, i, (t) => (trigger = t));
          fault.arm();
          const record = await rig.bookedPass(row);
          fault.disarm();
          expectExit(row, record, [0, 1, 3], `pass ${i + 1}`);
        }
        row.faults = proxy.faults - before;
        await rig.finalCleanPass(row);
        await rig.account(row);
        expectDeadline(row, FAULT_TUNING.passDeadlineSeconds);
        if (row.faults === 0) row.problems.push("no fault was injected");
        row.notes.push(`${proxy.connections} connections through the proxy; ${inDoubtEvidence(rig)}`);
      });
    },
  };
}

const netCut = networkScenario("net: cut after N bytes", 6, 100, (rig, rng) => ({
  arm() {
    rig.proxy!.planFor = () => (rng.chance(0.85) ? { afterBytes: rng.int(0, 300_000), style: rng.chance(0.5) ? "close" : "reset" } : undefined);
  },
  disarm() {
    rig.proxy!.planFor = undefined;
  },
}));

const netReset = networkScenario("net: reset mid-pass", 8, 100, (rig, rng) => {
  let timer: NodeJS.Timeout | undefined;
  let midTransfer: ReturnType<typeof afterStagingEvents> | undefined;
  return {
    arm() {
      if (rng.chance(0.3)) {
        // Early: timed from the first connection of the pass, so handshake and listing are hit too.
        let first = true;
        rig.proxy!.planFor = () => {
          if (first) timer = setTimeout(() => rig.proxy!.resetAll(), rng.int(0, 150));
          first = false;
          return undefined;
        };
      } else {
        // A timer can miss a pass that lasts 100 ms; staging events say uploads are under way.
        const trigger = afterStagingEvents(rig.erp.stagingDir, rng.int(1, 50));
        midTransfer = trigger;
        void trigger.reached.then(() => trigger === midTransfer && rig.proxy!.resetAll());
      }
    },
    disarm() {
      clearTimeout(timer);
      const trigger = midTransfer;
      midTransfer = undefined;
      trigger?.release();
      rig.proxy!.planFor = undefined;
    },
  };
});

const netBlackhole = networkScenario("net: black hole", 3, 12, (rig, rng, pass) => {
  let off: NodeJS.Timeout | undefined;
  let midTransfer: ReturnType<typeof afterStagingEvents> | undefined;
  return {
    arm() {
      const trigger = afterStagingEvents(rig.erp.stagingDir, rng.int(1, 40));
      midTransfer = trigger;
      void trigger.reached.then(() => {
        if (trigger !== midTransfer) return;
        rig.proxy!.blackhole(true);
        // The first black hole never lifts during the pass: the deadline must end it.
        if (pass > 0) off = setTimeout(() => rig.proxy!.blackhole(false), rng.int(1000, 6000));
      });
    },
    disarm() {
      const trigger = midTransfer;
      midTransfer = undefined;
      trigger?.release();
      clearTimeout(off);
      rig.proxy!.blackhole(false);
    },
  };
});

/**
 * The reply to a RENAME is dropped after the server carried it out: server-to-client bytes are
 * held back 80 ms, and the moment the fake ERP sees the renamed file appear in the inbox the
 * proxy closes every connection, discarding the held reply. Exact for "rename done, reply lost";
 * "request lost before the server" is covered statistically by the byte-offset cuts.
 */
const netRenameDrop = networkScenario("net: drop reply to RENAME", 4, 60, (rig, rng, _pass, setTrigger) => {
    return {
      arm() {
        rig.proxy!.delayDownMs = 80;
        let skip = rng.int(0, 6);
        setTrigger(() => {
          if (skip-- > 0) return;
          rig.proxy!.cutAll();
          setTrigger(undefined);
        });
      },
      disarm() {
        setTrigger(undefined);
        rig.proxy!.delayDownMs = 0;
      },
    };
  });

function erpFolderScenario(name: string, breakIt: (rig: Rig) => void, repair: (rig: Rig) => void, logPattern: RegExp, leavesCommitted: boolean): Scenario {
  return {
    name,
    async run(_scale, rng) {
      const row = newRow(name);
      return withRig(row, { config: { ...FAULT_TUNING } }, async (rig) => {
        topUp(rig, rng, 10, 3000);
        breakIt(rig);
        row.faults++;
        const record = await rig.bookedPass(row);
        expectExit(row, record, [1], "pass against the broken ERP folder");
        if (record.summary?.failed !== 10 || record.summary?.delivered !== 0) row.problems.push(`expected 10 failed, 0 delivered; got ${JSON.stringify(record.summary)}`);
        if (rig.fake.consumed.length > 0) row.problems.push(`the ERP consumed ${rig.fake.consumed.length} file(s) while its folder was broken`);
        const failed = rig.logEvents().filter((e) => e.event === "failed");
        if (failed.length !== 10 || !failed.every((e) => logPattern.test(String(e.error)))) {
          row.problems.push(`expected 10 "failed" log lines matching ${logPattern}; got ${failed.length}: ${String(failed[0]?.error)}`);
        } else row.notes.push(`log: ${String(failed[0].error).slice(0, 110)}`);
        const staged = leavesCommitted ? stagingFiles(rig.erp.stagingDir).length : 10;
        if (staged !== 10) row.problems.push(`expected the 10 verified uploads to wait in staging, found ${staged}`);
        repair(rig);
        await rig.finalCleanPass(row);
        await rig.account(row);
        if (leavesCommitted && !rig.logEvents().some((e) => e.event === "recovered")) row.problems.push("the uploads left in staging were not settled by recovery");
      });
    },
  };
}

const erpUid = () => uidOf(ERP_USER);
const erpStagingMissing = erpFolderScenario(
  "ERP: staging missing",
  (rig) => rmdirSync(rig.erp.stagingDir),
  (rig) => {
    mkdirSync(rig.erp.stagingDir, { mode: 0o755 });
    chownSync(rig.erp.stagingDir, erpUid(), erpUid());
  },
  /No such file/,
  false,
);
const erpInboxMissing = erpFolderScenario(
  "ERP: inbox missing",
  (rig) => rmdirSync(rig.erp.inboxDir),
  (rig) => {
    mkdirSync(rig.erp.inboxDir, { mode: 0o755 });
    chownSync(rig.erp.inboxDir, erpUid(), erpUid());
  },
  /rename .* failed: .*No such file/,
  true,
);
const erpStagingDenied = erpFolderScenario(
  "ERP: staging permission denied",
  (rig) => chownSync(rig.erp.stagingDir, 0, 0),
  (rig) => chownSync(rig.erp.stagingDir, erpUid(), erpUid()),
  /Permission denied/,
  false,
);
const erpInboxDenied = erpFolderScenario(
  "ERP: inbox permission denied",
  (rig) => chownSync(rig.erp.inboxDir, 0, 0),
  (rig) => chownSync(rig.erp.inboxDir, erpUid(), erpUid()),
  /rename .* failed: .*Permission denied/,
  true,
);

/** sshd restarted the way a service manager does it: sessions killed, listener down, back up. */
const erpRestart: Scenario = {
  name: "ERP: sshd restarted mid-pass",
  async run(scale, rng) {
    const row = newRow(this.name);
    return withRig(row, { proxy: true, config: { ...FAULT_TUNING, retries: 4, retryBaseDelayMs: 300 } }, async (rig) => {
      const passes = scale.long ? 20 : 3;
      let sessionsKilled = 0;
      let landedMidPass = 0;
      for (let i = 0; i < passes; i++) {
        topUp(rig, rng, 60, 16_000);
        // A timer after connecting can miss a pass that takes 100 ms; the staging folder's own
        // events say when uploads are under way, so the restart lands after a random number of them.
        const transfersBeforeRestart = rng.int(1, 60);
        const midTransfer = afterStagingEvents(rig.erp.stagingDir, transfersBeforeRestart);
        let passOver = false;
        const restart = (async () => {
          await midTransfer.reached;
          if (!passOver) landedMidPass++;
          const master = Number(readFileSync(join(rig.erp.root, "sshd.pid"), "utf8").trim());
          for (const pid of descendants(master)) {
            try {
              process.kill(pid, "SIGKILL");
              sessionsKilled++;
            } catch {
              /* already gone */
            }
          }
          await rig.erp.restart();
          row.faults++;
        })();
        const record = await rig.bookedPass(row);
        passOver = true;
        midTransfer.release();
        await restart;
        expectExit(row, record, [0, 1], `pass ${i + 1}`);
      }
      await rig.finalCleanPass(row);
      await rig.account(row);
      expectDeadline(row, FAULT_TUNING.passDeadlineSeconds);
      const counts = countEvents(rig.logEvents());
      row.notes.push(`${landedMidPass}/${passes} restarts during a pass, ${sessionsKilled} sshd session processes killed; connect retries ${counts.get("connect-retry") ?? 0}, retries ${counts.get("retry") ?? 0}; ${inDoubtEvidence(rig)}`);
      if (landedMidPass === 0) row.problems.push("no restart landed during a pass");
      if ((counts.get("retry") ?? 0) + (counts.get("connect-retry") ?? 0) + (counts.get("failed") ?? 0) === 0) row.problems.push("no restart landed during a transfer (no retry or failure logged)");
    });
  },
};

/** The ERP volume (Inbox and Staging on one tmpfs) is nearly full while orders arrive. */
const erpDiskFull: Scenario = {
  name: "ERP: remote disk full",
  async run(scale, rng) {
    const row = newRow(this.name);
    const volume = 1024 * 1024;
    return withRig(row, { erpVolumeBytes: volume, config: { ...FAULT_TUNING } }, async (rig) => {
      const ballast = join(rig.erp.jail, "ballast");
      writeFileSync(ballast, Buffer.alloc(volume - 64 * 1024));
      let failures = 0;
      const passes = scale.long ? 6 : 2;
      for (let i = 0; i < passes; i++) {
        topUp(rig, rng, 40, 12_000);
        const record = await rig.bookedPass(row);
        expectExit(row, record, [0, 1], `pass ${i + 1}`);
        failures += record.summary?.failed ?? 0;
      }
      row.faults = failures;
      const failed = rig.logEvents().filter((e) => e.event === "failed");
      if (failures === 0) row.problems.push("the full ERP volume never made a delivery fail");
      else row.notes.push(`${failures} deliveries failed on the full volume; log: ${String(failed[0]?.error).slice(0, 100)}`);
      rmSync(ballast);
      await rig.finalCleanPass(row);
      await rig.account(row);
    });
  },
};

/** The local archive lives on a full volume: delivered files cannot leave the outbox. */
const localArchiveFull: Scenario = {
  name: "local: archive volume full",
  async run(_scale, rng) {
    const row = newRow(this.name);
    return withRig(row, { config: { ...FAULT_TUNING } }, async (rig) => {
      rig.mountTmpfs(rig.archive, 64 * 1024);
      for (let i = 0; i < 30; i++) rig.produce(4000 + rng.int(0, 2000));
      row.faults++;
      const first = await rig.bookedPass(row);
      expectExit(row, first, [1], "pass with a full archive");
      if (!(first.summary && first.summary.archivePending > 0)) row.problems.push(`expected archivePending > 0, got ${JSON.stringify(first.summary)}`);
      const archiveFailed = rig.logEvents().filter((e) => e.event === "archive-failed");
      if (archiveFailed.length === 0) row.problems.push("no archive-failed log line");
      else row.notes.push(`log: ${String(archiveFailed[0].error).slice(0, 90)}`);
      await rig.fake.drain();
      const consumedAfterFirst = rig.fake.consumed.length;
      const second = await rig.bookedPass(row);
      expectExit(row, second, [1], "second pass, archive still full");
      await rig.fake.drain();
      if (rig.fake.consumed.length !== consumedAfterFirst) row.problems.push(`the second pass sent ${rig.fake.consumed.length - consumedAfterFirst} already delivered file(s) again`);
      rig.resizeTmpfs(rig.archive, 16 * 1024 * 1024);
      await rig.finalCleanPass(row);
      await rig.account(row);
    });
  },
};

/** The agent runs unprivileged; its state folder becomes root's while deliveries are in doubt. */
const localStateUnwritable: Scenario = {
  name: "local: state folder unwritable",
  async run(_scale, rng) {
    const row = newRow(this.name);
    return withRig(row, { asUser: true, config: { ...FAULT_TUNING } }, async (rig) => {
      for (let i = 0; i < 12; i++) rig.produce(rng.int(0, 3000));
      const crashed = await rig.bookedPass(row, { crashAt: "after-rename:4" });
      if (!crashed.killed) row.problems.push(`the crash hook did not kill the pass (exit ${crashed.code})`);
      await rig.fake.drain();
      const consumed = rig.fake.consumed.length;
      const accepted = () => (readFileSync(rig.erp.logPath, "utf8").match(/Accepted publickey/g) ?? []).length;
      const acceptedBefore = accepted();
      chownSync(rig.stateDir, 0, 0);
      chmodSync(rig.stateDir, 0o755);
      row.faults++;
      const refused = await rig.bookedPass(row);
      expectExit(row, refused, [2], "pass with an unwritable state folder");
      if (!/state folder .* is not writable: .*EACCES.*nothing was sent/.test(refused.stderr)) row.problems.push(`unclear error: ${refused.stderr.trim().slice(0, 200)}`);
      else row.notes.push(`stderr: ${refused.stderr.trim().replace(/^plutus-sync: /, "").slice(0, 120)}`);
      await rig.fake.drain();
      if (rig.fake.consumed.length !== consumed || accepted() !== acceptedBefore) row.problems.push("something was sent although the state folder was unwritable");
      chownSync(rig.stateDir, rig.uid, rig.gid);
      await rig.finalCleanPass(row);
      await rig.account(row);
    });
  },
};

/** The state folder's volume fills up mid-pass: journal appends fail, some of them half-way. */
const localStateFull: Scenario = {
  name: "local: state volume full",
  async run(scale, rng) {
    const row = newRow(this.name);
    return withRig(row, { config: { ...FAULT_TUNING } }, async (rig) => {
      const size = 512 * 1024;
      rig.mountTmpfs(rig.stateDir, size);
      const passes = scale.long ? 10 : 3;
      for (let i = 0; i < passes; i++) {
        topUp(rig, rng, 40, 2000);
        // Leave a few pages: lock, agent-id and the start of the journal fit, the rest does not.
        const ballast = join(rig.stateDir, "ballast");
        rmSync(ballast, { force: true });
        const free = rng.int(2, 6) * 4096 + rng.int(0, 4095);
        writeFileSync(ballast, Buffer.alloc(Math.max(0, size - free - usedBytes(rig.stateDir))));
        row.faults++;
        const record = await rig.bookedPass(row);
        expectExit(row, record, [0, 1, 2], `pass ${i + 1}`);
        rmSync(ballast, { force: true });
        await rig.fake.drain();
      }
      const events = countEvents(rig.logEvents());
      row.notes.push(`failed ${events.get("failed") ?? 0}, pass-failed ${events.get("pass-failed") ?? 0}, journal-torn ${events.get("journal-torn") ?? 0}`);
      await rig.finalCleanPass(row);
      await rig.account(row);
    });
  },
};

function usedBytes(dir: string): number {
  const out = require("node:child_process").execFileSync("df", ["-B1", "--output=used", dir]).toString().trim().split("\n");
  return Number(out[out.length - 1]);
}

/** Another host key on the same address: the proxy now leads to an impostor that would accept the key. */
const securityHostKey: Scenario = {
  name: "security: other host key",
  async run() {
    const row = newRow(this.name);
    return withRig(row, { proxy: true, config: { ...FAULT_TUNING } }, async (rig) => {
      const impostor = await startErpServer();
      try {
        // The impostor would let the agent in: only the host key check stands in the way.
        writeFileSync(join(impostor.root, "authorized_keys", ERP_USER), readFileSync(`${rig.erp.clientKeyPath}.pub`));
        for (let i = 0; i < 5; i++) rig.produce(100);
        rig.proxy!.setUpstream({ host: impostor.host, port: impostor.port });
        row.faults++;
        const record = await rig.bookedPass(row);
        expectExit(row, record, [3], "pass against the impostor");
        if (!/host key mismatch .*expected SHA256:.*presented SHA256:.*nothing was sent/.test(record.stderr)) row.problems.push(`unclear error: ${record.stderr.trim().slice(0, 200)}`);
        else row.notes.push(`stderr: ${record.stderr.trim().replace(/^plutus-sync: /, "").slice(0, 60)}…`);
        const log = readFileSync(impostor.logPath, "utf8");
        if (/Accepted|Failed publickey|Postponed publickey/.test(log)) row.problems.push("the agent authenticated (or tried) against a server with the wrong host key");
        if (readdirCount(impostor.inboxDir) + readdirCount(impostor.stagingDir) > 0) row.problems.push("files reached the impostor");
        if (rig.outboxOrders().length !== 5) row.problems.push("outbox changed although nothing was sent");
      } finally {
        await impostor.destroy();
      }
      rig.proxy!.setUpstream({ host: rig.erp.host, port: rig.erp.port });
      await rig.finalCleanPass(row);
      await rig.account(row);
    });
  },
};

const securityPasswordOnly: Scenario = {
  name: "security: password-only server",
  async run() {
    const row = newRow(this.name);
    const pwd = await startErpServer({ passwordOnly: true });
    try {
      return await withRig(row, { config: { ...FAULT_TUNING } }, async (rig) => {
        for (let i = 0; i < 5; i++) rig.produce(100);
        rig.writeConfig((c) => ({ ...c, remote: { ...c.remote, port: pwd.port, hostKeySha256: pwd.hostKeySha256 } }));
        row.faults++;
        const record = await rig.bookedPass(row);
        expectExit(row, record, [3], "pass against a password-only server");
        if (!/authentication as plutus-erp@.* failed: .*only public-key authentication is attempted/.test(record.stderr)) row.problems.push(`unclear error: ${record.stderr.trim().slice(0, 200)}`);
        // sshd logs the session's end after the agent has gone; everything it logs comes before that line.
        const closed = /Connection closed by authenticating user plutus-erp/;
        for (const until = Date.now() + 30_000; !closed.test(readFileSync(pwd.logPath, "utf8")) && Date.now() < until; ) await sleep(50);
        const log = readFileSync(pwd.logPath, "utf8");
        if (/password for|Accepted/i.test(log)) row.problems.push(`the server log shows a password attempt: ${log.match(/.*password for.*/i)?.[0]}`);
        if (!closed.test(log)) row.problems.push("the server log does not show the client giving up at authentication within 30 s");
        else row.notes.push("sshd VERBOSE log: no password attempt, client closed at authentication");
        if (readdirCount(pwd.inboxDir) + readdirCount(pwd.stagingDir) > 0) row.problems.push("files reached the password-only server");
        rig.writeConfig((c) => ({ ...c, remote: { ...c.remote, port: rig.erp.port, hostKeySha256: rig.erp.hostKeySha256 } }));
        await rig.finalCleanPass(row);
        await rig.account(row);
      });
    } finally {
      await pwd.destroy();
    }
  },
};

const securityKeyPermissions: Scenario = {
  name: "security: key readable by others",
  async run() {
    const row = newRow(this.name);
    return withRig(row, { proxy: true, config: { ...FAULT_TUNING } }, async (rig) => {
      for (let i = 0; i < 5; i++) rig.produce(100);
      const keyPath = rig.configObject.remote.privateKeyPath;
      chmodSync(keyPath, 0o644);
      row.faults++;
      const record = await rig.bookedPass(row);
      expectExit(row, record, [2], "pass with a 0644 key");
      if (!record.stderr.includes(`(mode 0644); run: chmod 600 ${keyPath}`)) row.problems.push(`unclear error: ${record.stderr.trim().slice(0, 200)}`);
      else row.notes.push(`stderr: …${record.stderr.trim().slice(-60)}`);
      if (rig.proxy!.connections !== 0) row.problems.push("the agent connected although its key is readable by others");
      chmodSync(keyPath, 0o600);
      await rig.finalCleanPass(row);
      await rig.account(row);
    });
  },
};

function readdirCount(dir: string): number {
  return existsSync(dir) ? require("node:fs").readdirSync(dir).length : 0;
}

export const SCENARIOS: Scenario[] = [
  killLoop,
  watchKill,
  netCut,
  netReset,
  netBlackhole,
  netRenameDrop,
  erpStagingMissing,
  erpInboxMissing,
  erpStagingDenied,
  erpInboxDenied,
  erpRestart,
  erpDiskFull,
  stagingReplacedAfterCrash,
  erpHoldsInboxFilesOpen,
  localArchiveFull,
  localStateUnwritable,
  localStateFull,
  hostileInputs,
  hostileErp,
  slowLink,
  fewHandles,
  suspendedPass,
  securityHostKey,
  securityPasswordOnly,
  securityKeyPermissions,
];
