import { chownSync, copyFileSync, existsSync, mkdirSync, rmSync, statSync } from "node:fs";
import { execFileSync, spawnSync } from "node:child_process";
import { join } from "node:path";
import { Journal } from "../../agent/src/journal";
import { Rig, newRow, sleep, agentBundle, afterStagingEvents } from "./harness";
import { FAULT_TUNING, Scenario, expectExit, topUp, withRig } from "./scenarios";

// Failure modes of the ERP's Win32-OpenSSH server, modelled on Linux (issue 10).

/** The staging folder replaced by an empty one, as a restore or a provisioning script would do. */
function replaceStagingFolder(rig: Rig): void {
  const { uid, gid } = statSync(rig.erp.stagingDir);
  rmSync(rig.erp.stagingDir, { recursive: true, force: true });
  mkdirSync(rig.erp.stagingDir, { mode: 0o755 });
  chownSync(rig.erp.stagingDir, uid, gid);
}

function resolveAs(rig: Rig, name: string, decision: "--delivered" | "--resend"): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [agentBundle().path, "resolve", "--config", rig.configPath, name, decision], {
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin" },
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/**
 * Issue 10, item 1. A pass is killed past its commit record, then the ERP's staging folder is
 * replaced by an empty one. No entry may be written off as delivered: each stays in doubt (exit 1)
 * until the operator, having asked the ERP (here: what the fake ERP consumed, by SHA-256), runs
 * `resolve --delivered` or `--resend`, as the operations guide says.
 */
export const stagingReplacedAfterCrash: Scenario = {
  name: "ERP: staging folder replaced after a crash",
  async run(scale, rng) {
    const row = newRow(this.name);
    return withRig(row, { config: { ...FAULT_TUNING, concurrency: 4 } }, async (rig) => {
      const rounds = scale.long ? 40 : 4;
      let inDoubt = 0;
      let delivered = 0;
      let resend = 0;
      for (let i = 0; i < rounds; i++) {
        topUp(rig, rng, 12, 4000);
        const step = rng.pick(["after-commit-record", "after-rename", "after-published-record"]);
        const crashed = await rig.bookedPass(row, { crashAt: `${step}:${rng.int(1, 6)}` });
        if (!crashed.killed) {
          expectExit(row, crashed, [0, 1], `round ${i + 1}: pass without its crash`);
          continue;
        }
        const committing = (await Journal.peek(rig.stateDir)).filter((e) => e.state === "committing");
        replaceStagingFolder(rig);
        row.faults++;
        const after = await rig.bookedPass(row);
        if (committing.length > 0) {
          expectExit(row, after, [1], `round ${i + 1}: pass after the staging folder was replaced`);
          if (after.summary?.inDoubt !== committing.length) row.problems.push(`round ${i + 1}: expected ${committing.length} in doubt, summary ${JSON.stringify(after.summary)}`);
          if ((after.summary?.recovered ?? 0) !== 0) row.problems.push(`round ${i + 1}: in-doubt entries were written off as recovered`);
        }
        await rig.fake.drain();
        for (const entry of committing) {
          inDoubt++;
          const arrived = rig.fake.consumed.some((c) => c.sha256 === entry.sha256);
          const result = resolveAs(rig, entry.name, arrived ? "--delivered" : "--resend");
          if (arrived) delivered++;
          else resend++;
          if (result.status !== 0) row.problems.push(`resolve ${entry.name}: exit ${result.status}: ${result.stderr.trim()}`);
        }
      }
      await rig.finalCleanPass(row);
      await rig.account(row);
      const events = rig.logEvents();
      const count = (event: string) => events.filter((e) => e.event === event).length;
      if (inDoubt === 0) row.problems.push("no crash left an entry in doubt");
      row.notes.push(`${inDoubt} entries in doubt after the folder was replaced (${count("in-doubt")} in-doubt log lines), resolved ${delivered} --delivered and ${resend} --resend; presumed-delivered ${count("presumed-delivered")}, recovered ${count("recovered")}`);
    });
  },
};

function appendOnly(on: boolean, dirs: string[]): void {
  const present = dirs.filter((d) => existsSync(d));
  if (present.length > 0) execFileSync("chattr", [on ? "+a" : "-a", ...present]);
}

/**
 * Issue 10, item 2. The ERP (or antivirus) holds new inbox files open without FILE_SHARE_DELETE:
 * Win32-OpenSSH links the file into the inbox, cannot unlink the staging name, and either takes
 * the inbox link back (FAILURE; `chattr +a` on Staging) or leaves both names (`+a` on both). An
 * ext4 volume holds the ERP root so the flags work. The hold ends at a random instant, during
 * the pass or after it; the fake ERP's import takes files only between passes. Some passes are
 * killed right after `published` was recorded and then suffer a power cut: the journal is put
 * back to its last fsync (the agent's durable-copy test hook), which loses everything after it.
 *
 * Not modelled, because no agent can tell it apart from "never renamed": the ERP taking the file
 * while the agent has not yet recorded that the refused rename left our bytes in the inbox (the
 * milliseconds before it looks, or a kill in between). One file at a time, so a kill right after
 * one file's `published` record never lands inside another file's window. That is the residual
 * risk architecture.md 5.3 states, and why the ERP must open inbox files with FILE_SHARE_DELETE
 * or move them out before reading.
 */
export const erpHoldsInboxFilesOpen: Scenario = {
  name: "ERP: holding new inbox files open",
  async run(scale, rng) {
    const row = newRow(this.name);
    return withRig(row, { erp: { ext4Bytes: 128 * 1024 * 1024 }, config: { ...FAULT_TUNING, concurrency: 1, retryBaseDelayMs: 50 } }, async (rig) => {
      const passes = scale.long ? 80 : 8;
      const durable = join(rig.root, "durable-copies");
      mkdirSync(durable);
      let powerCuts = 0;
      for (let i = 0; i < passes; i++) {
        topUp(rig, rng, 8, 4000);
        const both = rng.chance(0.5);
        const held = both ? [rig.erp.stagingDir, rig.erp.inboxDir] : [rig.erp.stagingDir];
        rig.fake.paused = true;
        await sleep(100); // a take in progress finishes before its unlink would be refused
        appendOnly(true, held);
        row.faults++;
        // Timed from the pass's first upload, not from its spawn: on a loaded machine Node.js
        // start-up and the login alone can outlast a hold timed from the spawn.
        const holdMs = rng.int(0, 2000);
        let release: NodeJS.Timeout | undefined;
        let passOver = false;
        const uploading = afterStagingEvents(rig.erp.stagingDir, 1);
        void uploading.reached.then(() => {
          if (!passOver) release = setTimeout(() => appendOnly(false, held), holdMs);
        });
        const cut = both && rng.chance(0.4);
        rmSync(join(durable, "journal.jsonl"), { force: true });
        const record = await rig.bookedPass(row, cut ? { crashAt: `after-published-record:${rng.int(1, 3)}`, env: { PLUTUS_DURABLE_COPY_DIR: durable } } : {});
        passOver = true;
        uploading.release();
        clearTimeout(release);
        appendOnly(false, held);
        if (record.killed) {
          if (existsSync(join(durable, "journal.jsonl"))) {
            copyFileSync(join(durable, "journal.jsonl"), join(rig.stateDir, "journal.jsonl"));
            powerCuts++;
          }
        } else expectExit(row, record, [0, 1], `pass ${i + 1}`);
        rig.fake.paused = false;
        await rig.fake.drain();
      }
      await rig.finalCleanPass(row);
      await rig.account(row);
      const events = rig.logEvents();
      const count = (event: string) => events.filter((e) => e.event === event).length;
      if (count("rename-refused") === 0 && count("staging-link-left") === 0) row.problems.push("no rename was ever refused: the fault did not bite");
      row.notes.push(`rename-refused ${count("rename-refused")}, staging links left ${count("staging-link-left")}, power cuts (journal put back to its last fsync) ${powerCuts}, in doubt ${count("in-doubt")}, recovered ${count("recovered")}, presumed-delivered ${count("presumed-delivered")}`);
    });
  },
};
