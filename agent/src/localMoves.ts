import { promises as fs } from "node:fs";
import { basename, join } from "node:path";
import { moveWithoutOverwrite, writeFileAtomic } from "./durableFs";

/**
 * Moves an outbox entry into the quarantine folder and writes `<name>.reason` (JSON) beside it.
 * Order names end in `.json`, so no reason file can ever take the place of a quarantined order.
 */
export async function quarantineFile(path: string | Buffer, displayName: string, reason: string, quarantineDir: string): Promise<string> {
  const safeName = displayName.replace(/[\0/]/g, "_") || "unnamed";
  const dest = await moveWithoutOverwrite(path, quarantineDir, safeName);
  const note = { file: basename(dest), originalName: displayName, reason, quarantinedAt: new Date().toISOString() };
  await writeFileAtomic(`${dest}.reason`, JSON.stringify(note, null, 2) + "\n", 0o640);
  return dest;
}

/** Local calendar date, the folder name under the archive. */
export function dayFolder(date: Date): string {
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
}

export async function archiveFile(path: string, name: string, archiveDir: string, deliveredAt: Date): Promise<string> {
  return moveWithoutOverwrite(path, join(archiveDir, dayFolder(deliveredAt)), name);
}

/** Files waiting in quarantine (their `.reason` companions not counted). */
export async function countQuarantined(quarantineDir: string): Promise<number> {
  try {
    const names = await fs.readdir(quarantineDir);
    return names.filter((n) => !n.endsWith(".reason") && !n.endsWith(".tmp")).length;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return 0;
    throw error;
  }
}
