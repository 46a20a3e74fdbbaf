import { execFileSync, spawn } from "node:child_process";
import { mkdirSync, readFileSync, readdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { BUNDLE, makeLocalSide, runAgent, sampleOrder, stopWhile, LocalSide } from "../support/agent";
import { startErpServer, ErpServer } from "../support/sshd";

// A pass suspended past the lock's stale age (SIGSTOP here; a Hyper-V "Save" or a clock step in
// production) still owns the lock: a second pass must not run beside it, or each compaction of
// the journal would drop the other's commit records.

let erp: ErpServer;
let local: LocalSide;
beforeAll(async () => {
  erp = await startErpServer();
});
afterAll(async () => {
  await erp?.destroy();
});
afterEach(() => local?.destroy());

/** passDeadlineSeconds 5 (the smallest allowed): the lock is "stale" by age after 65 s. */
const STALE_AGE_MS = (5 + 60) * 1000;
/**
 * The first pass stays stopped this long (past its 5 s deadline); the second pass's clock is stepped
 * forward by the rest of the stale age and 2 s more (tests/support/clockStep.cjs): the lock it finds is
 * older than the stale age by the clock it judges with, as after a suspension of that length.
 */
const STOPPED_MS = 7_000;
const CLOCK_STEP = { NODE_OPTIONS: `--require "${resolve(__dirname, "../support/clockStep.cjs")}"`, PLUTUS_TEST_CLOCK_STEP_MS: String(STALE_AGE_MS + 2_000 - STOPPED_MS) };

it("a pass stopped past the stale age keeps its lock; the next pass exits 0 'locked'; after SIGCONT nothing is lost or sent twice", async () => {
  local = makeLocalSide(erp, { passDeadlineSeconds: 5 });
  mkdirSync(local.stateDir);
  local.writeOrder("order-a.json", sampleOrder(1));
  local.writeOrder("order-b.json", sampleOrder(2));

  // Stop the first pass the instant its lock file names it.
  const first = spawn(process.execPath, [BUNDLE, "run", "--config", local.configPath], { stdio: ["ignore", "ignore", "ignore"] });
  const firstExit = new Promise<number | null>((resolve) => first.on("close", (code) => resolve(code)));
  try {
    const lockOwner = () => {
      try {
        return JSON.parse(readFileSync(join(local.stateDir, "pass.lock"), "utf8")) as Record<string, unknown>;
      } catch {
        return undefined;
      }
    };
    await stopWhile(first, () => lockOwner() !== undefined, "its lock file names it");
    const owner = lockOwner()!;
    expect(owner.pid).toBe(first.pid);
    await new Promise((resolve) => setTimeout(resolve, STOPPED_MS));
    const second = await runAgent(["run", "--config", local.configPath, "--json"], CLOCK_STEP);
    expect(second.code).toBe(0);
    expect(second.stderr).toBe("plutus-sync: another pass holds the lock; nothing done\n");
    expect(JSON.parse(readFileSync(join(local.stateDir, "pass.lock"), "utf8"))).toEqual(owner);
    // The operations guide's procedure: the lock names the pid, its state shows it stopped, resume it.
    const pid = String(JSON.parse(readFileSync(join(local.stateDir, "pass.lock"), "utf8")).pid);
    expect(execFileSync("bash", ["-c", 'grep State "/proc/$1/status"', "_", pid]).toString()).toBe("State:\tT (stopped)\n");
    execFileSync("bash", ["-c", 'kill -CONT "$1"', "_", pid]);
  } finally {
    first.kill("SIGCONT");
  }
  // Resumed far past its deadline, the first pass aborts what it was doing, then ends.
  expect([0, 1]).toContain(await firstExit);

  const third = await runAgent(["run", "--config", local.configPath]);
  expect({ code: third.code, stderr: third.stderr }).toEqual({ code: 0, stderr: "" });
  const inbox = readdirSync(erp.inboxDir).sort();
  expect(inbox).toEqual(["order-a.json", "order-b.json"]);
  expect(readFileSync(join(erp.inboxDir, "order-a.json"), "utf8")).toBe(sampleOrder(1));
  expect(readFileSync(join(erp.inboxDir, "order-b.json"), "utf8")).toBe(sampleOrder(2));
}, 180_000);
