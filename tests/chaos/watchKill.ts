import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Rig, WatcherProcess, countEvents, newRow, sleep } from "./harness";
import { FAULT_TUNING, expectExit, withRig, type Scenario } from "./scenarios";

/** The pid in the pass lock, when one is held. */
function lockHolder(rig: Rig): number | undefined {
  try {
    return (JSON.parse(readFileSync(join(rig.stateDir, "pass.lock"), "utf8")) as { pid: number }).pid;
  } catch {
    return undefined;
  }
}

async function killNow(watcher: WatcherProcess): Promise<void> {
  watcher.child.kill("SIGKILL");
  await watcher.exited;
}

/**
 * Watch mode's crash row (issue 11): `plutus-sync watch` processes are killed with SIGKILL at
 * random instants while the web shop streams orders in (renamed in, some written in place in two
 * parts, now and then a burst) and cron passes run beside them as the safety net. Half the kills
 * wait until the watcher holds the pass lock, so they land inside a delivery batch. At the end a
 * last watcher drains the outbox and stops on SIGTERM, and the usual invariants are checked.
 */
export const watchKill: Scenario = {
  name: "watch: kill -9 of the watcher, cron passes beside it",
  async run(scale, rng) {
    const row = newRow(this.name);
    const config = { ...FAULT_TUNING, passDeadlineSeconds: 30, concurrency: 16, watch: { rescanSeconds: 2, settleMs: 100 } };
    return withRig(row, { config }, async (rig) => {
      const total = scale.long ? 3000 : 400;
      const minKills = scale.long ? 40 : 5;
      const minCronPasses = scale.long ? 30 : 4;
      let produced = 0;
      let inPlace = 0;
      let bursts = 0;
      const producing = (async () => {
        while (produced < total) {
          if (rng.chance(0.03)) {
            bursts++;
            for (let i = rng.int(20, 60); i > 0 && produced < total; i--, produced++) rig.produce(rng.int(0, 4000));
          } else if (rng.chance(0.2)) {
            inPlace++;
            produced++;
            await rig.produceInPlace(rng.int(0, 4000), rng.int(0, 40));
          } else {
            produced++;
            rig.produce(rng.chance(0.02) ? rng.int(50_000, 200_000) : rng.int(0, 4000));
          }
          await sleep(rng.int(0, 40));
        }
      })();

      const watcherPids = new Set<number>();
      let current: WatcherProcess | undefined;
      let killsInBatch = 0;
      let killing = true;
      let cronPasses = 0;
      const cronExits = new Map<string, number>();
      const cron = (async () => {
        while (killing) {
          const record = await rig.bookedPass(row);
          cronExits.set(String(record.code ?? record.signal), (cronExits.get(String(record.code ?? record.signal)) ?? 0) + 1);
          expectExit(row, record, [0, 1], `cron pass ${row.passes}`);
          cronPasses++;
          await sleep(rng.int(500, 1500));
        }
      })();
      try {
        while (produced < total || row.faults < minKills || cronPasses < minCronPasses) {
          current = await rig.watcher();
          watcherPids.add(current.pid);
          if (rng.chance(0.5)) {
            // Inside a batch: once this watcher holds the pass lock (or after 2 s without one).
            const until = Date.now() + 2_000;
            while (lockHolder(rig) !== current.pid && Date.now() < until) await sleep(2);
            await sleep(rng.int(0, 30));
          } else {
            await sleep(rng.int(0, 1500));
          }
          if (lockHolder(rig) === current.pid) killsInBatch++;
          await killNow(current);
          current = undefined;
          row.faults++;
        }
        await producing;
      } finally {
        killing = false;
        await producing.catch(() => undefined);
        await cron;
        if (current) await killNow(current);
      }

      // A last watcher delivers what is left, then stops cleanly on SIGTERM within 10 s.
      const last = await rig.watcher();
      watcherPids.add(last.pid);
      const until = Date.now() + 60_000;
      while ((rig.outboxOrders().length > 0 || rig.fake.consumed.length < total) && Date.now() < until) await sleep(50);
      const stopAt = Date.now();
      last.child.kill("SIGTERM");
      const stopped = await Promise.race([last.exited, sleep(15_000).then(() => undefined)]);
      if (!stopped) {
        row.problems.push("the last watcher did not stop within 15 s of SIGTERM");
        await killNow(last);
      } else {
        if (stopped.code !== 0) row.problems.push(`the last watcher exited ${stopped.code ?? stopped.signal} on SIGTERM: ${last.stderr().trim().slice(0, 300)}`);
        if (Date.now() - stopAt > 10_000) row.problems.push(`the last watcher took ${Date.now() - stopAt} ms to stop (limit 10 s)`);
      }
      if (last.stderr().includes("unexpected error")) row.problems.push(`the last watcher reported an unexpected error: ${last.stderr().trim().slice(0, 300)}`);

      await rig.finalCleanPass(row);
      await rig.account(row);
      const events = rig.logEvents();
      // Who delivered each order: its "delivered" line's process. A kill after that line and before
      // the journal's next fsync leaves the order to recovery, which logs it again (not sent again).
      const deliveredBy = new Map<string, number>();
      for (const e of events) if (e.event === "delivered" && !deliveredBy.has(String(e.file))) deliveredBy.set(String(e.file), Number(e.pid));
      const byWatchers = [...deliveredBy.values()].filter((pid) => watcherPids.has(pid)).length;
      const counts = countEvents(events);
      row.notes.push(
        `${total} orders (${inPlace} written in place, ${bursts} bursts), ${watcherPids.size} watcher processes, ${row.faults} kill -9 (${killsInBatch} while the watcher held the pass lock); ` +
          `cron passes ${[...cronExits].map(([k, v]) => `exit ${k}×${v}`).join(" ")}; delivered by watchers ${byWatchers}, by cron passes ${deliveredBy.size - byWatchers}; ` +
          `settled by recovery after a kill: recovered ${counts.get("recovered") ?? 0}, presumed-delivered ${counts.get("presumed-delivered") ?? 0}; lock found held ${counts.get("locked") ?? 0}×`,
      );
      if (row.faults < minKills) row.problems.push(`only ${row.faults} kills, expected at least ${minKills}`);
      if (byWatchers === 0) row.problems.push("no order was delivered by a watcher: the row did not exercise watch mode");
    });
  },
};
