import { join } from "node:path";
import type { AgentConfig } from "@plutus/shared";
import type { RemoteEntry } from "./sftpSession";
import { writeFileAtomic } from "./durableFs";
import { isJsonObject, readStateJson } from "./stateFiles";
import { errorMessage } from "./errors";
import type { Logger } from "./logger";

/** Entries read from the ERP inbox at most; a count at the cap means "at least that many". */
export const ERP_INBOX_MAX_ENTRIES = 10_000;
const FILE_NAME = "erp-inbox.json";

/** What the agent last saw in the ERP's inbox; kept in `<stateDir>/erp-inbox.json`. */
export interface ErpInboxObservation {
  observedAt: string;
  /** Regular files waiting in the inbox (at least this many when `complete` is false). */
  waiting: number;
  /** The oldest file's modification time as the server reported it, or null when empty. */
  oldestModifiedAt: string | null;
  /** False when the listing was cut at ERP_INBOX_MAX_ENTRIES. */
  complete: boolean;
}

export interface InboxLister {
  listEntries(path: string, maxEntries: number): Promise<{ entries: RemoteEntry[]; complete: boolean }>;
}

/** One listing of the inbox over an open session: how many files wait there, and since when. */
export async function observeErpInbox(session: InboxLister, inbox: string, now = new Date()): Promise<ErpInboxObservation> {
  const { entries, complete } = await session.listEntries(inbox, ERP_INBOX_MAX_ENTRIES);
  let waiting = 0;
  let oldest: number | undefined;
  for (const entry of entries) {
    if (!entry.isFile) continue;
    waiting++;
    // A server's clock or attributes are not trusted to be sane: no time before 1970 or after now.
    if (entry.mtimeSeconds !== undefined) {
      const modified = Math.min(Math.max(0, entry.mtimeSeconds * 1000), now.getTime());
      oldest = oldest === undefined ? modified : Math.min(oldest, modified);
    }
  }
  return {
    observedAt: now.toISOString(),
    waiting,
    oldestModifiedAt: oldest === undefined ? null : new Date(oldest).toISOString(),
    complete,
  };
}

/**
 * Lists the inbox and records what was seen; called at the end of a pass (and by watch mode every
 * minute). A failure is logged and leaves the previous observation in place: it never fails a pass.
 */
export async function observeAndRecordErpInbox(config: AgentConfig, session: () => Promise<InboxLister>, log: Logger): Promise<ErpInboxObservation | undefined> {
  try {
    const observation = await observeErpInbox(await session(), config.remote.inbox);
    await writeFileAtomic(join(config.stateDir, FILE_NAME), JSON.stringify(observation) + "\n", 0o640);
    if (!observation.complete) log.warn("the ERP inbox holds more files than are counted", { event: "erp-inbox-truncated", counted: observation.waiting, cap: ERP_INBOX_MAX_ENTRIES });
    return observation;
  } catch (error) {
    log.warn("could not list the ERP inbox", { event: "erp-inbox-unobserved", error: errorMessage(error) });
    return undefined;
  }
}

/** The last observation, null when none was made yet; throws DamagedStateFileError when the file is damaged. */
export async function readErpInbox(stateDir: string): Promise<ErpInboxObservation | null> {
  return readStateJson<ErpInboxObservation>(stateDir, FILE_NAME, (value) =>
    isJsonObject(value) && typeof value.waiting === "number" && typeof value.observedAt === "string" ? undefined : "not an ERP inbox observation",
  );
}
