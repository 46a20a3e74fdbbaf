import { join } from "node:path";
import type { WatcherHeartbeat, WatcherStatus } from "@plutus/shared";
import { writeFileAtomic } from "./durableFs";
import { errorCode } from "./errors";
import { processStartTime } from "./lock";
import { isJsonObject, readStateJson } from "./stateFiles";

/** The watcher rewrites its heartbeat this often, idle or not (status calls it stale after 2 misses and more). */
export const HEARTBEAT_INTERVAL_MS = 10_000;
/** A heartbeat older than this means the watcher is hung or gone (it promises one every 30 s). */
export const HEARTBEAT_STALE_MS = 60_000;

const HEARTBEAT_FILE = "watcher.json";

export async function writeHeartbeat(stateDir: string, heartbeat: WatcherHeartbeat): Promise<void> {
  await writeFileAtomic(join(stateDir, HEARTBEAT_FILE), JSON.stringify(heartbeat) + "\n", 0o640);
}

/** The heartbeat file: null when no watcher ever ran with this state folder; damaged when torn or of another shape. */
export async function readHeartbeat(stateDir: string): Promise<WatcherHeartbeat | null> {
  return readStateJson<WatcherHeartbeat>(stateDir, HEARTBEAT_FILE, (value) => {
    if (!isJsonObject(value)) return "not a watcher heartbeat";
    if (!Number.isSafeInteger(value.pid) || (value.pid as number) <= 0) return "pid is not a process id";
    for (const field of ["startedAt", "heartbeatAt"] as const) {
      if (typeof value[field] !== "string" || Number.isNaN(Date.parse(value[field] as string))) return `${field} is not a time`;
    }
    return undefined;
  });
}

/** The watcher as its heartbeat shows it; undefined when no watcher ever ran with this state folder. */
export async function readWatcherStatus(stateDir: string, now = Date.now()): Promise<WatcherStatus | undefined> {
  const heartbeat = await readHeartbeat(stateDir);
  if (!heartbeat) return undefined;
  if (heartbeat.stoppedAt) return { state: "stopped", heartbeat };
  const fresh = now - Date.parse(heartbeat.heartbeatAt) <= HEARTBEAT_STALE_MS;
  return { state: fresh && processAlive(heartbeat.pid, heartbeat.procStart) ? "running" : "stale", heartbeat };
}

/**
 * Whether the watcher with this pid rewrote its heartbeat within HEARTBEAT_STALE_MS, i.e. its event
 * loop runs. Anything else (no heartbeat, another pid's, a stale or unreadable one) is no sign of life.
 */
export async function watcherBeatsRecently(stateDir: string, pid: number, now = Date.now()): Promise<boolean> {
  const heartbeat = await readHeartbeat(stateDir).catch(() => null);
  return heartbeat !== null && heartbeat.pid === pid && !heartbeat.stoppedAt && now - Date.parse(heartbeat.heartbeatAt) <= HEARTBEAT_STALE_MS;
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
