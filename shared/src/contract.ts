/** Exit codes of `plutus-sync`; cron, install.sh and the Pulumi canary rely on them. */
export const ExitCode = {
  /** The pass completed with no failed delivery (also: nothing to do, or another pass holds the lock). */
  Ok: 0,
  /** At least one file could not be delivered (or archived) and waits for the next pass. */
  DeliveryFailed: 1,
  /** Configuration or usage error, including a private key readable by group or others. */
  ConfigError: 2,
  /** Cannot connect or authenticate, or the host key does not match: nothing delivered. */
  ConnectFailed: 3,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** What `plutus-sync run --json` prints as its last stdout line. */
export interface RunSummary {
  found: number;
  delivered: number;
  failed: number;
  quarantined: number;
  deferred: number;
  durationMs: number;
  /** Delivered files whose local archiving failed; they wait in the outbox, never re-sent. */
  archivePending: number;
  /** Earlier in-doubt deliveries settled by this pass's recovery. */
  recovered: number;
  /**
   * Deliveries whose outcome the agent cannot decide (their staging folder cannot be proven to be
   * the one the upload went to): kept in the outbox, never re-sent, until `plutus-sync resolve`.
   */
  inDoubt?: number;
  /** Renames the server refused while the target name was free (retried within the pass). */
  renameRefused?: number;
  /** Set when another pass held the lock and this one did nothing. */
  skippedLocked?: boolean;
}

/** Written to `<stateDir>/last-run.json` after every pass. */
export interface LastRunRecord {
  startedAt: string;
  finishedAt: string;
  exitCode: number;
  summary: RunSummary;
  error?: string;
  consecutiveFailedRuns: number;
}

/** What `plutus-sync status --json` prints. */
export interface StatusReport {
  lastRun: LastRunRecord | null;
  outbox: { waiting: number; oldestAgeSeconds: number | null };
  quarantined: number;
  inDoubt: number;
  /** Outbox names of the in-doubt entries. */
  inDoubtFiles?: string[];
  /**
   * Orders delivered to the ERP whose move into the local archive has not happened yet (it failed,
   * e.g. an archive folder the agent cannot write): they wait in the outbox, often as
   * `.plutus-claim-<id>`, and are never sent again.
   */
  awaitingArchive?: number;
  /** Outbox names of the orders awaiting archiving. */
  awaitingArchiveFiles?: string[];
  /** Those of them a run reported in doubt: they wait for `plutus-sync resolve`; the others the next run settles. */
  needResolveFiles?: string[];
  /** What a later pass found on the ERP about an order held in doubt (e.g. its upload is back in staging). */
  inDoubtEvidence?: { file: string; evidence: string }[];
  consecutiveFailedRuns: number;
  /** The `plutus-sync watch` process, from its heartbeat; absent when it never ran here. */
  watcher?: WatcherStatus;
}

/** `<stateDir>/watcher.json`: rewritten by `plutus-sync watch` at least every 30 s, also when idle. */
export interface WatcherHeartbeat {
  pid: number;
  /** The watcher's start time as the kernel counts it (/proc/<pid>/stat): tells a reused PID apart. */
  procStart?: string;
  startedAt: string;
  heartbeatAt: string;
  lastDeliveryAt: string | null;
  connection: "connecting" | "connected" | "disconnected";
  /** Orders delivered since the watcher started. */
  delivered: number;
  rssBytes: number;
  /** Set when the watcher ended on SIGTERM/SIGINT. */
  stoppedAt?: string;
}

/** running: heartbeat fresh and its process alive; stale: neither ended cleanly nor beating; stopped: ended cleanly. */
export interface WatcherStatus {
  state: "running" | "stale" | "stopped";
  heartbeat: WatcherHeartbeat;
}

/** Canary orders are ordinary orders whose name the ERP can recognise and ignore. */
export const CANARY_PREFIX = "plutus-canary-";
