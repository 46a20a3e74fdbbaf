import { promises as fs, constants, readFileSync } from "node:fs";
import { join } from "node:path";
import { hostname } from "node:os";
import { errorCode, errorMessage } from "./errors";

interface LockOwner {
  pid: number;
  host: string;
  startedAt: number;
  /** The owner's start time as the kernel counts it (/proc/<pid>/stat): tells a reused PID apart. */
  procStart?: string;
  /** A watcher's batch, or a pass (also every lock written before this field existed). */
  holder?: LockHolder;
}

export type LockHolder = "pass" | "watcher";

export interface PassLock {
  release(): Promise<void>;
}

/**
 * How the cron pass bounds a watcher hung inside a batch. The watcher's own guard is a timer,
 * which cannot fire while its event loop is blocked or the process is stopped; so a watcher's lock
 * held past its batch's hard limit by a process whose heartbeat has also stopped is ended from
 * outside (SIGKILL) and broken, as `timeout` in sync_plutus.sh bounds the cron pass itself.
 */
export interface HungWatcherPolicy {
  /** A watcher's lock older than this has outlived the batch's own bound (passDeadlineSeconds + 15 s). */
  lockOlderThanMs: number;
  /** True when the watcher with this pid rewrote its heartbeat recently: its event loop runs. */
  beatsRecently(pid: number): Promise<boolean>;
  /** Told what was done, before the lock is broken (or why it was not). */
  report(outcome: HungWatcherOutcome): void;
}

export interface HungWatcherOutcome {
  pid: number;
  lockStartedAt: number;
  /** killed: gone, its lock is broken; survived: still there 3 s after SIGKILL; refused: kill(2) failed. */
  result: "killed" | "survived" | "refused";
  error?: string;
}

export interface LockOptions {
  holder?: LockHolder;
  /** Only for the cron pass: end a watcher hung inside a batch instead of waiting for it forever. */
  hungWatcher?: HungWatcherPolicy;
}

/**
 * One pass at a time per state folder. On this host, liveness decides: the lock is broken only
 * when its owner process is gone or its PID now belongs to another process (start time in
 * /proc/<pid>/stat). Its age does not matter here: a pass suspended past any age (SIGSTOP, a VM
 * saved and restored, a clock step) is still the owner, and a second pass beside it would compact
 * away its commit records. Age decides only when liveness cannot be known: an owner on another
 * host, a lock without a start time, or an unreadable lock file. The one live owner that is ended
 * is a watcher hung inside a batch, and only by a caller that passes `hungWatcher` (the cron pass).
 * Breaking is itself guarded by an exclusive file so two passes that both see a stale lock cannot
 * both take it.
 */
export async function acquirePassLock(stateDir: string, staleAfterMs: number, options: LockOptions = {}): Promise<PassLock | undefined> {
  const lockPath = join(stateDir, "pass.lock");
  const breakPath = join(stateDir, "pass.lock.break");
  const me: LockOwner = { pid: process.pid, host: hostname(), startedAt: Date.now(), procStart: processStartTime(process.pid), holder: options.holder ?? "pass" };
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      await fs.writeFile(lockPath, JSON.stringify(me), { flag: "wx", mode: 0o600 });
      return { release: () => releaseIfMine(lockPath, me) };
    } catch (error) {
      if (errorCode(error) !== "EEXIST") throw error;
    }
    const owner = await readOwner(lockPath);
    if (!owner) continue;
    const alive = !isStale(owner, staleAfterMs);
    if (alive && !(options.hungWatcher && (await isHungWatcher(owner, options.hungWatcher)))) return undefined;
    if (!(await takeBreakGuard(breakPath))) return undefined;
    try {
      // Re-read under the guard: remove only the very lock judged stale, never one taken since.
      const again = await readOwner(lockPath);
      if (!again || again.pid !== owner.pid || again.startedAt !== owner.startedAt || again.host !== owner.host) continue;
      if (alive) {
        if (!(await killHungWatcher(owner, options.hungWatcher!))) return undefined;
        // The kill took a while: still the very lock judged hung?
        const still = await readOwner(lockPath);
        if (!still || still.pid !== owner.pid || still.startedAt !== owner.startedAt || still.host !== owner.host) continue;
      }
      await fs.rm(lockPath, { force: true });
    } finally {
      await fs.rm(breakPath, { force: true });
    }
  }
  return undefined;
}

async function readOwner(lockPath: string): Promise<LockOwner | undefined> {
  try {
    const parsed = JSON.parse(await fs.readFile(lockPath, "utf8")) as Partial<LockOwner>;
    if (typeof parsed.pid === "number" && typeof parsed.startedAt === "number" && typeof parsed.host === "string") {
      return parsed as LockOwner;
    }
  } catch (error) {
    if (errorCode(error) === "ENOENT") return undefined;
  }
  // Unreadable or torn (killed while writing it): as good as dead, but only once it is a little old.
  const stat = await fs.stat(lockPath).catch(() => undefined);
  return stat ? { pid: -1, host: "", startedAt: stat.mtimeMs } : undefined;
}

function isStale(owner: LockOwner, staleAfterMs: number): boolean {
  const age = Date.now() - owner.startedAt;
  // Unreadable or torn: no owner to ask.
  if (owner.pid === -1) return age > 5_000;
  if (owner.host !== hostname()) return age > staleAfterMs;
  try {
    process.kill(owner.pid, 0);
  } catch (error) {
    if (errorCode(error) === "ESRCH") return true;
  }
  // Alive, but is it the owner? PIDs wrap around quickly (pid_max is often 32768): a pass killed
  // with -9 may hand its PID to an unrelated process, which must not hold the lock.
  const startedNow = processStartTime(owner.pid);
  if (owner.procStart !== undefined && startedNow !== undefined) return startedNow !== owner.procStart;
  return age > staleAfterMs;
}

/**
 * A live watcher's lock (liveness and start time already checked by isStale) that is older than
 * its batch could ever hold it, and no fresh heartbeat from that very process: its event loop is
 * not running (blocked, or the process stopped), so nothing inside it will ever release the lock.
 */
async function isHungWatcher(owner: LockOwner, policy: HungWatcherPolicy): Promise<boolean> {
  if (owner.holder !== "watcher" || owner.host !== hostname() || owner.procStart === undefined) return false;
  if (Date.now() - owner.startedAt <= policy.lockOlderThanMs) return false;
  return !(await policy.beatsRecently(owner.pid));
}

/** SIGKILL to the hung watcher, its start time checked again right before (no reused PID is hit); true once it is gone. */
async function killHungWatcher(owner: LockOwner, policy: HungWatcherPolicy): Promise<boolean> {
  const outcome = (result: HungWatcherOutcome["result"], error?: string) => policy.report({ pid: owner.pid, lockStartedAt: owner.startedAt, result, ...(error ? { error } : {}) });
  if (!sameProcess(owner)) return true;
  try {
    process.kill(owner.pid, "SIGKILL");
  } catch (error) {
    if (errorCode(error) !== "ESRCH") {
      outcome("refused", errorMessage(error));
      return false;
    }
  }
  // SIGKILL lands when the process next leaves the kernel: a call stuck in the kernel (a hung
  // mount) finishes first, and may still write. Its lock is broken only once it is gone.
  for (const deadline = Date.now() + KILL_WAIT_MS; sameProcess(owner); ) {
    if (Date.now() > deadline) {
      outcome("survived");
      return false;
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  outcome("killed");
  return true;
}

/** Well inside BREAK_GUARD_STALE_MS: no other pass takes the break guard from under this one. */
const KILL_WAIT_MS = 3_000;

/** The lock's owner still runs: same PID, same start time, not a zombie (an unreaped child of its parent). */
function sameProcess(owner: LockOwner): boolean {
  const fields = processStatFields(owner.pid);
  return fields !== undefined && fields[19] === owner.procStart && fields[0] !== "Z" && fields[0] !== "X";
}

/** Field 22 of /proc/<pid>/stat (start time since boot), or undefined where there is no /proc. */
function processStartTime(pid: number): string | undefined {
  return processStatFields(pid)?.[19];
}

/** The fields of /proc/<pid>/stat after the command name, from field 3 (state) on. */
function processStatFields(pid: number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name (field 2) is in parentheses and may itself contain spaces and ")".
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  } catch {
    return undefined;
  }
}

/** The guard is held for a few system calls; one this old was left by a pass killed meanwhile. */
const BREAK_GUARD_STALE_MS = 5_000;

async function takeBreakGuard(breakPath: string): Promise<boolean> {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      await fs.writeFile(breakPath, String(process.pid), { flag: "wx", mode: 0o600 });
      return true;
    } catch (error) {
      if (errorCode(error) !== "EEXIST") throw error;
    }
    const stat = await fs.stat(breakPath).catch(() => undefined);
    if (!stat || Date.now() - stat.mtimeMs <= BREAK_GUARD_STALE_MS) return false;
    await fs.rm(breakPath, { force: true });
  }
  return false;
}

async function releaseIfMine(lockPath: string, me: LockOwner): Promise<void> {
  const owner = await readOwner(lockPath);
  if (owner && owner.pid === me.pid && owner.startedAt === me.startedAt) await fs.rm(lockPath, { force: true });
}

/**
 * When the pass lock was left by a pass that is gone (killed at its hard limit or by its watchdog,
 * the OOM killer, a power cut): the time that pass took it. A pass releases its lock only just
 * before it records its end in last-run.json, so such a lock is a pass that never recorded one.
 */
export async function abandonedLockStartedAt(stateDir: string, staleAfterMs: number): Promise<number | undefined> {
  const lockPath = join(stateDir, "pass.lock");
  // A reader that may not read the lock (another account) cannot tell a live pass from a dead one.
  if (!(await fs.access(lockPath, constants.R_OK).then(() => true, () => false))) return undefined;
  const owner = await readOwner(lockPath);
  return owner && isStale(owner, staleAfterMs) ? owner.startedAt : undefined;
}

/** The heartbeat of the watcher tells a reused PID apart with the same start time. */
export { processStartTime };
