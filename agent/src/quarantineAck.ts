import { join } from "node:path";
import { writeFileAtomic } from "./durableFs";
import { listQuarantined } from "./localMoves";
import { isJsonObject, readStateJson } from "./stateFiles";

const FILE_NAME = "quarantine-ack.json";

/** The quarantined files the operator has not acknowledged with `plutus-sync ack-quarantine`. */
export async function unacknowledgedQuarantined(quarantineDir: string, stateDir: string): Promise<string[]> {
  const acknowledged = new Set(await readAcknowledged(stateDir));
  return (await listQuarantined(quarantineDir)).filter((name) => !acknowledged.has(name));
}

/** Records every file now in quarantine as seen; returns how many were new. */
export async function acknowledgeQuarantine(quarantineDir: string, stateDir: string, now = new Date()): Promise<{ acknowledged: number; newlyAcknowledged: number }> {
  const before = new Set(await readAcknowledged(stateDir));
  const names = await listQuarantined(quarantineDir);
  await writeFileAtomic(join(stateDir, FILE_NAME), JSON.stringify({ acknowledgedAt: now.toISOString(), names }) + "\n", 0o640);
  return { acknowledged: names.length, newlyAcknowledged: names.filter((n) => !before.has(n)).length };
}

async function readAcknowledged(stateDir: string): Promise<string[]> {
  const value = await readStateJson<{ names: string[] }>(stateDir, FILE_NAME, (value) =>
    isJsonObject(value) && Array.isArray(value.names) && value.names.every((n) => typeof n === "string") ? undefined : "holds no list of names",
  );
  return value?.names ?? [];
}
