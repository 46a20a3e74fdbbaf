import { existsSync } from "node:fs";
import type { AgentConfig } from "@plutus/shared";
import { Journal } from "./journal";
import { acquirePassLock } from "./lock";
import { archiveDelivered } from "./courier";
import { StateError, UsageError, errorMessage } from "./errors";
import type { Logger } from "./logger";

export type Decision = "delivered" | "resend";

/**
 * An operator's decision on an in-doubt delivery, after looking at the ERP side:
 *   delivered  the ERP got it: journal `published` (fsync) and archive the outbox file
 *   resend     it never arrived: journal `abandoned` (fsync); the next pass sends it again
 * Only for an entry a pass reported in doubt (journal `doubt`); taken under the pass lock, so no
 * pass can be deciding the same entry meanwhile.
 */
export async function resolveInDoubt(config: AgentConfig, name: string, decision: Decision, log: Logger): Promise<string> {
  const notInDoubt = () => new UsageError(`no delivery of ${name} is in doubt in ${config.stateDir} (plutus-sync status lists them)`);
  // No state folder: no pass ever ran, so nothing can be in doubt (and nothing is created here).
  if (!existsSync(config.stateDir)) throw notInDoubt();
  const lock = await acquirePassLock(config.stateDir, (config.passDeadlineSeconds + 60) * 1000).catch((error) => {
    throw new StateError(`cannot take the pass lock in ${config.stateDir}: ${errorMessage(error)}`, { cause: error });
  });
  if (!lock) throw new StateError(`a pass is running on ${config.stateDir}; try again when it has finished`);
  try {
    const journal = await Journal.open(config.stateDir).catch((error) => {
      throw new StateError(`cannot use the journal in ${config.stateDir}: ${errorMessage(error)}`, { cause: error });
    });
    try {
      const entry = journal.entries().find((e) => e.name === name);
      if (!entry) throw notInDoubt();
      if (entry.state !== "committing") {
        throw new UsageError(`${name} was delivered (as ${entry.target}) and only awaits archiving; the next run archives it`);
      }
      // Not reported in doubt: its staging copy may still be there and the next pass renames it;
      // archiving it as delivered now could lose an order the ERP never got.
      if (entry.doubt === undefined) {
        throw new UsageError(`${name} is not in doubt: no run has reported it so, and the next run settles it itself; resolve only what a run reported in doubt (plutus-sync status lists them)`);
      }
      const at = new Date().toISOString();
      const where = { file: name, deliveredAs: entry.target, inbox: entry.inboxDir ?? config.remote.inbox, sha256: entry.sha256 };
      if (decision === "resend") {
        await journal.record({ t: "abandoned", id: entry.id, reason: "an operator found it missing on the ERP (resolve --resend)", at });
        log.warn("in-doubt delivery resolved by an operator: not delivered, to be sent again", { event: "resolved", decision, ...where });
        return `${name}: marked not delivered; the next run sends it again`;
      }
      await journal.record({ t: "published", id: entry.id, target: entry.target, at });
      log.warn("in-doubt delivery resolved by an operator: delivered", { event: "resolved", decision, ...where });
      const outcome = await archiveDelivered(config, journal, log, { ...entry, state: "published" }, undefined);
      if (!outcome.archived) return `${name}: marked delivered; archiving failed (${outcome.error}); the next run archives it`;
      return `${name}: marked delivered${outcome.path ? `; archived as ${outcome.path}` : "; no outbox file left to archive"}`;
    } finally {
      await journal.compact().catch((error) => log.error("could not compact the journal", { event: "journal-compact-failed", error: errorMessage(error) }));
      await journal.close().catch(() => undefined);
    }
  } finally {
    await lock.release().catch(() => undefined);
  }
}
