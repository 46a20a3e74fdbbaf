import { existsSync } from "node:fs";
import { join } from "node:path";

/**
 * The agent names archive day folders by the local date at the moment it archives. A test that
 * reads the date before or after that moment can be a day off when the run crosses midnight:
 * these helpers take the date on both sides of the action instead.
 */

/** The local date, YYYY-MM-DD, as the agent names archive day folders. */
export function localDay(at = new Date()): string {
  return `${at.getFullYear()}-${String(at.getMonth() + 1).padStart(2, "0")}-${String(at.getDate()).padStart(2, "0")}`;
}

/** The local dates from `before` (read before an action) to now: one, or two when the action ran across midnight. */
export function localDaysSince(before: string): string[] {
  const now = localDay();
  return now === before ? [now] : [before, now];
}

/**
 * The day folder of `archive` that holds `name`, among the local dates since `before`: the day the
 * agent archived it. When no folder holds it, the latest date (so the caller's read fails naming it).
 */
export function archiveDayOf(archive: string, name: string, before: string): string {
  const days = localDaysSince(before);
  return days.find((day) => existsSync(join(archive, day, name))) ?? days[days.length - 1];
}

/**
 * Resolves at once, or just after the next local midnight when less than `ms` is left before it:
 * for steps that must all happen on one local day (a day folder made first, then a pass that must
 * find it), taking less than `ms` in all.
 */
export async function sameLocalDayFor(ms: number): Promise<void> {
  const now = new Date();
  const midnight = new Date(now.getFullYear(), now.getMonth(), now.getDate() + 1);
  const left = midnight.getTime() - now.getTime();
  if (left < ms) await new Promise((resolve) => setTimeout(resolve, left + 1_000));
}
