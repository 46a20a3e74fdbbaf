import { promises as fs } from "node:fs";
import { join } from "node:path";
import type { WatcherHeartbeat, WatcherStatus } from "@plutus/shared";
import { writeFileAtomic } from "./durableFs";
import { errorCode } from "./errors";
import { processStartTime } from "./lock";

/** The watcher rewrites its heartbeat this often, idle or not (status calls it stale after 2 misses and more). */
export const HEARTBEAT_INTERVAL_MS = 10_000;
/** A heartbeat older than this means the watcher is hung or gone (it promises one every 30 s). */
export const HEARTBEAT_STALE_MS = 60_000;

const heartbeatPath = (stateDir: string) => join(stateDir, "watcher.json");

export async function writeHeartbeat(stateDir: string, heartbeat: WatcherHeartbeat): Promise<void> {
  await writeFileAtomic(heartbeatPath(stateDir), JSON.stringify(heartbeat) + "\n", 0o640);
}

/** The watcher as its heartbeat shows it; undefined when no watcher ever ran with this state folder. */
export async function readWatcherStatus(stateDir: string, now = Date.now()): Promise<WatcherStatus | undefined> {
  let heartbeat: WatcherHeartbeat;
  try {
    heartbeat = JSON.parse(await fs.readFile(heartbeatPath(stateDir), "utf8")) as WatcherHeartbeat;
  } catch (error) {
    if (errorCode(error) === "ENOENT") return undefined;
    throw error;
  }
  if (heartbeat.stoppedAt) return { state: "stopped", heartbeat };
  const fresh = now - Date.parse(heartbeat.heartbeatAt) <= HEARTBEAT_STALE_MS;
  return { state: fresh && processAlive(heartbeat.pid, heartbeat.procStart) ? "running" : "stale", heartbeat };
}

/**
 * Whether the watcher with this pid rewrote its heartbeat within HEARTBEAT_STALE_MS, i.e. its event
 * loop runs. Anything else (no heartbeat, another pid's, a stale or unreadable one) is no sign of life.
 */
export async function watcherBeatsRecently(stateDir: string, pid: number, now = Date.now()): Promise<boolean> {
  try {
    const heartbeat = JSON.parse(await fs.readFile(heartbeatPath(stateDir), "utf8")) as WatcherHeartbeat;
    return heartbeat.pid === pid && !heartbeat.stoppedAt && now - Date.parse(heartbeat.heartbeatAt) <= HEARTBEAT_STALE_MS;
  } catch {
    return false;
  }
}

function processAlive(pid: number, procStart: string | undefined): boolean {
  try {
    process.kill(pid, 0);
    // A PID reused by another process since (the watcher was killed) is not the watcher.
    const startedNow = procStart === undefined ? undefined : processStartTime(pid);
    return startedNow === undefined || startedNow === procStart;
  } catch (error) {
    // EPERM: alive, but run by another account (status may be run by an operator).
    return errorCode(error) === "EPERM";
  }
}

export function describeWatcher(status: WatcherStatus | undefined): string {
  if (!status) return "watcher: not used";
  const hb = status.heartbeat;
  const last = `last delivery ${hb.lastDeliveryAt ?? "none yet"}`;
  if (status.state === "running") return `watcher: running (pid ${hb.pid}, since ${hb.startedAt}, ${last}, connection ${hb.connection})`;
  if (status.state === "stopped") return `watcher: stopped at ${hb.stoppedAt} (pid ${hb.pid}, ${last})`;
  return `watcher: stale (pid ${hb.pid}, last heartbeat ${hb.heartbeatAt}, ${last}); the cron pass still delivers; see systemctl status plutus-sync-watch`;
}
