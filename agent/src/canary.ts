import { promises as fs, lstatSync } from "node:fs";
import { join } from "node:path";
import { CANARY_PREFIX, type AgentConfig } from "@plutus/shared";
import { dayFolder } from "./localMoves";
import { UsageError } from "./errors";

/** Where a canary order was after the pass that should have delivered it. */
export type CanaryLocation = { where: "delivered"; archivedAs: string } | { where: "outbox" } | { where: "quarantine"; reason: string } | { where: "unknown" };

/**
 * Drops one synthetic order in the outbox the way the web shop does: written under a temporary
 * name that the scan ignores, dated back past `minAgeSeconds` so the pass takes it at once, then
 * renamed to `plutus-canary-<UTC timestamp>.json`. Returns its name.
 */
export async function writeCanary(config: AgentConfig, now = new Date()): Promise<string> {
  const stamp = now.toISOString().replace(/[-:]/g, "").replace(/\.\d{3}/, "");
  const name = `${CANARY_PREFIX}${stamp}.json`;
  const final = join(config.outbox, name);
  if (lstatSync(final, { throwIfNoEntry: false })) throw new UsageError(`${final} exists already; try again in a second`);
  const temp = join(config.outbox, `.${name}.tmp`);
  const order = {
    orderId: `${CANARY_PREFIX}${stamp}`,
    canary: true,
    createdAt: now.toISOString(),
    note: `Synthetic order sent by plutus-sync canary; the ERP ignores files named ${CANARY_PREFIX}*`,
  };
  await fs.writeFile(temp, JSON.stringify(order) + "\n", { flag: "wx", mode: 0o640 });
  const old = new Date(now.getTime() - (config.minAgeSeconds + 1) * 1000);
  await fs.utimes(temp, old, old);
  await fs.rename(temp, final);
  return name;
}

/** Looks for the canary in the outbox, the quarantine and the archive day folders of the pass. */
export async function locateCanary(config: AgentConfig, name: string, passStarted: Date, passEnded = new Date()): Promise<CanaryLocation> {
  if (lstatSync(join(config.outbox, name), { throwIfNoEntry: false })) return { where: "outbox" };
  for (const day of new Set([dayFolder(passStarted), dayFolder(passEnded)])) {
    const archived = join(config.archive, day, name);
    if (lstatSync(archived, { throwIfNoEntry: false })) return { where: "delivered", archivedAs: archived };
  }
  const quarantined = join(config.quarantine, name);
  if (lstatSync(quarantined, { throwIfNoEntry: false })) {
    const reason = await fs
      .readFile(`${quarantined}.reason`, "utf8")
      .then((text) => String((JSON.parse(text) as { reason?: unknown }).reason))
      .catch(() => "reason file unreadable");
    return { where: "quarantine", reason };
  }
  return { where: "unknown" };
}

export function describeCanary(name: string, location: CanaryLocation, passExitCode: number): string {
  switch (location.where) {
    case "delivered":
      return `canary ${name} delivered; archived as ${location.archivedAs}`;
    case "outbox":
      return `canary ${name} NOT delivered: still in the outbox (pass exit code ${passExitCode}; see the summary above and the log)`;
    case "quarantine":
      return `canary ${name} NOT delivered: quarantined: ${location.reason}`;
    default:
      return `canary ${name} NOT delivered: not found in the outbox, the archive or the quarantine (pass exit code ${passExitCode})`;
  }
}
