import { errorCode, errorMessage } from "./errors";
import type { Logger } from "./logger";

/**
 * chokidar watches every outbox file on its own, so past `fs.inotify.max_user_watches` each new
 * file brings one ENOSPC error, and the names come from an untrusted account. Each error code is
 * logged once in full; after that, how many more there were, at most once per `report()` (the
 * watcher calls it every rescan interval). Events still arrive through the folder's own watch, and
 * the rescan finds every file, so nothing is lost: this bounds the log, not the delivery.
 */
export class WatchErrorLog {
  private readonly reported = new Set<string>();
  private readonly since = new Map<string, number>();

  constructor(private readonly log: Logger) {}

  note(error: unknown): void {
    const code = String(errorCode(error) ?? "unknown");
    if (this.reported.has(code)) {
      this.since.set(code, (this.since.get(code) ?? 0) + 1);
      return;
    }
    this.reported.add(code);
    this.log.warn("watch: file event error; the rescan still finds every file; more of the same are counted, not logged", {
      event: "watch-error",
      code,
      error: errorMessage(error),
      ...(code === "ENOSPC" ? { hint: "one inotify watch per outbox file: raise fs.inotify.max_user_watches (see the operations guide)" } : {}),
    });
  }

  /** One line per error code seen again since the last report. */
  report(): void {
    for (const [code, count] of this.since) this.log.warn("watch: more file event errors since the last report", { event: "watch-errors", code, count });
    this.since.clear();
  }
}
