import { execFileSync, spawn } from "node:child_process";
import { createServer, type Server, type Socket } from "node:net";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BUNDLE, localFolders, logEvents, runAgent, sampleOrder, stopWhile } from "../support/agent";

// A pass that never gets to write last-run.json (its watchdog's process.exit, the hard-limit kill of
// sync_plutus.sh, the OOM killer) must still count as a failed run for status and health.

const DEADLINE_S = 5;
/** The agent's watchdog fires at passDeadlineSeconds + 15 s. */
const WATCHDOG_MS = (DEADLINE_S + 15) * 1000;

let root: string;
let silent: Server;
const sockets = new Set<Socket>();

/** An "ERP" that accepts connections and never says a word: the pass waits on it. */
function listenSilently(): Promise<number> {
  silent = createServer((socket) => {
    sockets.add(socket);
    socket.on("error", () => undefined);
    socket.on("close", () => sockets.delete(socket));
  });
  return new Promise((resolve) => silent.listen(0, "127.0.0.1", () => resolve((silent.address() as { port: number }).port)));
}

function closeSilent(): Promise<void> {
  for (const socket of sockets) socket.destroy();
  return new Promise((resolve) => silent.close(() => resolve()));
}

function writeConfig(port: number): string {
  const dirs = localFolders(root);
  mkdirSync(dirs.outbox, { recursive: true });
  const keyPath = join(root, "id_ed25519");
  if (!existsSync(keyPath)) execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", keyPath]);
  const configPath = join(root, "agent.json");
  writeFileSync(
    configPath,
    JSON.stringify({
      ...dirs,
      minAgeSeconds: 2,
      passDeadlineSeconds: DEADLINE_S,
      retries: 0,
      remote: { host: "127.0.0.1", port, username: "plutus-sync", privateKeyPath: keyPath, hostKeySha256: `SHA256:${"A".repeat(43)}`, inbox: "/Inbox", staging: "/Staging" },
    }),
  );
  return configPath;
}

async function statusJson(configPath: string): Promise<Record<string, any>> {
  const status = await runAgent(["status", "--config", configPath, "--json"]);
  expect({ code: status.code, stderr: status.stderr }).toEqual({ code: 0, stderr: "" });
  return JSON.parse(status.stdout);
}

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), "plutus-killed-"));
});
afterEach(async () => {
  if (silent?.listening) await closeSilent();
  rmSync(root, { recursive: true, force: true });
});

it("a pass ended by its watchdog is a failed run in status and health, and the next failure counts on from it", async () => {
  const port = await listenSilently();
  const configPath = writeConfig(port);
  const order = join(root, "outbox", "order-1.json");
  writeFileSync(order, sampleOrder(1));
  utimesSync(order, new Date(Date.now() - 60_000), new Date(Date.now() - 60_000));

  // Stopped (as a saved VM or a debugger would) while it waits for the ERP, resumed after the
  // watchdog's time: the watchdog is the first timer to end the process.
  const pass = spawn(process.execPath, [BUNDLE, "run", "--config", configPath], { stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  pass.stderr.on("data", (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => pass.on("close", (code) => resolve(code)));
  const lockPath = join(root, "state", "pass.lock");
  const holdsLock = () => {
    try {
      return readFileSync(lockPath, "utf8") !== "";
    } catch {
      return false;
    }
  };
  await stopWhile(pass, holdsLock, "it holds its lock").catch((error: Error) => {
    throw new Error(`${error.message} (${stderr})`);
  });
  try {
    await new Promise((resolve) => setTimeout(resolve, WATCHDOG_MS + 2_000));
  } finally {
    pass.kill("SIGCONT");
  }
  expect(await exited).toBe(1);
  expect(stderr).toBe(`plutus-sync: pass exceeded its deadline of ${DEADLINE_S} s; exiting\n`);
  const lockedAt = new Date(JSON.parse(readFileSync(lockPath, "utf8")).startedAt).toISOString();
  expect(existsSync(join(root, "state", "last-run.json"))).toBe(false);

  const status = await statusJson(configPath);
  expect(status.lastRun).toEqual({
    startedAt: lockedAt,
    finishedAt: lockedAt,
    exitCode: 1,
    summary: { found: 0, delivered: 0, failed: 0, quarantined: 0, deferred: 0, durationMs: 0, archivePending: 0, recovered: 0 },
    error: `the pass started at ${lockedAt} did not finish: it was stopped (hard limit, watchdog, kill or crash) before it could record its result; see syslog (plutus-sync) and the run log`,
    consecutiveFailedRuns: 1,
  });
  expect(status.consecutiveFailedRuns).toBe(1);
  const text = await runAgent(["status", "--config", configPath]);
  expect(text.stdout.split("\n").slice(0, 1)).toEqual([
    `last run: ${lockedAt} exit 1: 0/0 delivered, 0 failed, 0 quarantined, 0 deferred (the pass started at ${lockedAt} did not finish: it was stopped (hard limit, watchdog, kill or crash) before it could record its result; see syslog (plutus-sync) and the run log)`,
  ]);
  const health = await runAgent(["health", "--config", configPath, "--json"]);
  expect(health.code).toBe(2);
  expect(JSON.parse(health.stdout).facts).toMatchObject({ lastRunAt: lockedAt, lastRunExitCode: 1, consecutiveFailedRuns: 1 });

  // The next pass finds the ERP gone (exit 3): the second failure in a row, and the killed pass is
  // now on record in last-run.json's history through its count.
  await closeSilent();
  const next = await runAgent(["run", "--config", configPath, "--json"]);
  expect(next.code).toBe(3);
  const after = await statusJson(configPath);
  expect(after.lastRun).toMatchObject({ exitCode: 3, consecutiveFailedRuns: 2 });
  expect(after.lastRun.startedAt > lockedAt).toBe(true);
  expect(existsSync(lockPath)).toBe(false);
  expect(logEvents(join(root, "log")).filter((e) => e.event === "pass-abandoned")).toEqual([
    expect.objectContaining({ level: "warn", message: "the previous pass did not finish; recorded as a failed run", startedAt: lockedAt }),
  ]);
  const healthAfter = await runAgent(["health", "--config", configPath]);
  expect(healthAfter.stdout).toMatch(/^PLUTUS-SYNC CRITICAL - no pass has succeeded yet; 2 consecutive failed runs \(last exit 3: /);
  // The order was never sent and still waits.
  expect(existsSync(order)).toBe(true);
}, 90_000);
