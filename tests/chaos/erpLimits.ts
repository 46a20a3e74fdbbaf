import { spawn, execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Rig, Row, newRow, sleep, agentBundle, PassRecord } from "./harness";
import type { Scenario } from "./scenarios";

// Scenarios for the ways the ERP's real server (Win32-OpenSSH) and its host differ from a fast
// Linux sshd next door: a slow uplink, a small handle table, a pass suspended past the lock age.

const MiB = 1024 * 1024;

async function inRig(row: Row, options: Parameters<typeof Rig.start>[0], body: (rig: Rig) => Promise<void>): Promise<Row> {
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

function expectCode(row: Row, record: PassRecord, codes: number[], what: string): void {
  if (record.code === null || !codes.includes(record.code)) {
    row.problems.push(`${what}: exit ${record.code ?? record.signal}, expected ${codes.join(" or ")}; stderr: ${record.stderr.trim().slice(0, 300)}`);
  }
}

/**
 * 16 files of 1 MiB through a 1 MB/s link with a 5 s operation timeout: every file is delivered
 * in one pass (a request waiting behind others is not a dead connection). Then a black hole
 * in the middle of a pass: the dead link is still detected within the timeout.
 */
export const slowLink: Scenario = {
  name: "net: large files on a slow link (1 MB/s)",
  async run(scale) {
    const row = newRow(this.name);
    const files = scale.long ? 48 : 16;
    const timeoutMs = 5_000;
    const config = { passDeadlineSeconds: scale.long ? 150 : 60, operationTimeoutSeconds: timeoutMs / 1000, connectTimeoutSeconds: 5, maxFileBytes: 2 * MiB, retries: 2, retryBaseDelayMs: 200 };
    return inRig(row, { proxy: true, config }, async (rig) => {
      const proxy = rig.proxy!;
      proxy.bytesPerSecond = 1_000_000;
      for (let i = 0; i < files; i++) rig.produce(MiB - 400);
      row.faults++;
      const slow = await rig.bookedPass(row);
      expectCode(row, slow, [0], "pass over the slow link");
      if (slow.summary?.delivered !== files) row.problems.push(`expected ${files}/${files} delivered over the slow link in one pass, got ${JSON.stringify(slow.summary)}`);
      else row.notes.push(`${files} × 1 MiB over 1 MB/s with a ${timeoutMs / 1000} s timeout: ${files}/${files} delivered in one pass of ${(slow.ms / 1000).toFixed(1)} s`);

      // A dead link in the middle of a pass: halfway through the 4 MiB it carries, however long a
      // loaded machine takes to start the pass and open the session.
      for (let i = 0; i < 4; i++) rig.produce(MiB - 400);
      let holeAt = 0;
      const forwardedBefore = proxy.bytesForwarded;
      const hole = setInterval(() => {
        if (proxy.bytesForwarded - forwardedBefore < 2 * MiB) return;
        clearInterval(hole);
        holeAt = Date.now();
        proxy.blackhole(true);
      }, 20);
      const dead = await rig.bookedPass(row);
      clearInterval(hole);
      row.faults++;
      expectCode(row, dead, [1], "pass whose link died");
      const detected = rig
        .logEvents()
        .filter((e) => /no reply within 5000 ms/.test(String(e.error)))
        .map((e) => Date.parse(String(e.timestamp)))
        .filter((t) => t >= holeAt)
        .sort((a, b) => a - b)[0];
      if (!holeAt || detected === undefined) row.problems.push("the black hole was never detected as a missing reply");
      else if (detected - holeAt > timeoutMs + 3_000) row.problems.push(`the dead link was detected ${detected - holeAt} ms after it died (timeout ${timeoutMs} ms)`);
      else row.notes.push(`dead link detected ${detected - holeAt} ms after the black hole began (timeout ${timeoutMs} ms)`);
      proxy.bytesPerSecond = 0;
      await rig.finalCleanPass(row);
      await rig.account(row);
    });
  },
};

/**
 * sshd's sftp under `nofile` 40: it announces 35 handles (limits@openssh.com) and has about 37.
 * With 64 files in flight every open stays within what the server holds, and every order is
 * delivered in one pass.
 */
export const fewHandles: Scenario = {
  name: "ERP: server with few handles",
  async run(scale) {
    const row = newRow(this.name);
    const orders = scale.long ? 400 : 120;
    return inRig(row, { config: { concurrency: 64, passDeadlineSeconds: 60, operationTimeoutSeconds: 10 } }, async (rig) => {
      const sshdPid = readFileSync(join(rig.erp.root, "sshd.pid"), "utf8").trim();
      // Sessions are forked from the listener and inherit its limit.
      execFileSync("prlimit", ["--pid", sshdPid, "--nofile=40:40"]);
      row.faults++;
      for (let i = 0; i < orders; i++) rig.produce(i % 10 === 0 ? 40_000 : 2_000);
      const pass = await rig.bookedPass(row);
      expectCode(row, pass, [0], "pass against the server with few handles");
      if (pass.summary?.delivered !== orders) row.problems.push(`expected ${orders}/${orders} delivered in one pass, got ${JSON.stringify(pass.summary)}`);
      const connected = rig.logEvents().find((e) => e.event === "connected");
      row.notes.push(`server announced handles; agent kept at most ${String(connected?.maxOpenHandles)} open; ${pass.summary?.delivered}/${orders} delivered in one pass`);
      await rig.finalCleanPass(row);
      await rig.account(row);
    });
  },
};

/**
 * A pass stopped (SIGSTOP, as a Hyper-V "Save" or a clock step would) in the middle of its
 * deliveries for longer than the lock's stale age. The next pass must leave it alone ("locked",
 * exit 0); after SIGCONT the stopped pass finishes or gives up, and nothing is lost or sent twice.
 */
export const suspendedPass: Scenario = {
  name: "local: pass suspended past the lock age",
  // It waits past the 65 s stale age, exactly as passLock.test.ts does against a real pass.
  alsoShownBy: "tests/integration/passLock.test.ts",
  async run() {
    const row = newRow(this.name);
    const deadlineSeconds = 5;
    const staleMs = (deadlineSeconds + 60) * 1000;
    return inRig(row, { config: { passDeadlineSeconds: deadlineSeconds, concurrency: 4, operationTimeoutSeconds: 2 } }, async (rig) => {
      for (let i = 0; i < 40; i++) rig.produce(20_000);
      const first = spawn(process.execPath, [agentBundle().path, "run", "--config", rig.configPath], { stdio: "ignore", ...(rig.uid !== 0 ? { uid: rig.uid, gid: rig.gid } : {}) });
      const firstExit = new Promise<number | null>((resolve) => first.on("close", (code) => resolve(code)));
      row.passes++;
      try {
        // Stop it once it has delivered a few orders: in the middle of its work.
        for (;;) {
          if (rig.fake.consumed.length >= 3 || rig.outboxOrders().length <= 37) break;
          if (first.exitCode !== null) throw new Error("the first pass ended before it could be stopped");
          await sleep(2);
        }
        first.kill("SIGSTOP");
        row.faults++;
        const owner = readFileSync(join(rig.stateDir, "pass.lock"), "utf8");
        await sleep(staleMs + 2_000);
        const second = await rig.bookedPass(row);
        expectCode(row, second, [0], "pass while the first is stopped");
        if (!second.summary?.skippedLocked) row.problems.push(`the second pass ran beside the stopped one: ${JSON.stringify(second.summary)}`);
        else row.notes.push(`stopped ${((staleMs + 2_000) / 1000).toFixed(0)} s (stale age ${staleMs / 1000} s): the next pass said "locked" and did nothing`);
        if (readFileSync(join(rig.stateDir, "pass.lock"), "utf8") !== owner) row.problems.push("the stopped pass's lock was replaced");
      } finally {
        first.kill("SIGCONT");
      }
      const code = await firstExit;
      row.notes.push(`the resumed pass exited ${code}`);
      await rig.finalCleanPass(row);
      await rig.account(row);
    });
  },
};
