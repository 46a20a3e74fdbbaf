import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readStateJson, readLastRun, isJsonObject } from "../../agent/src/stateFiles";
import { readCounters } from "../../agent/src/counters";
import { readErpInbox } from "../../agent/src/erpInbox";
import { unacknowledgedQuarantined } from "../../agent/src/quarantineAck";
import { readHeartbeat } from "../../agent/src/heartbeat";
import { DamagedStateFileError, StateError } from "../../agent/src/errors";

let stateDir: string;
beforeEach(() => {
  stateDir = mkdtempSync(join(tmpdir(), "plutus-statefiles-"));
});
afterEach(() => rmSync(stateDir, { recursive: true, force: true }));

const needsCount = (value: unknown) => (isJsonObject(value) && typeof value.count === "number" ? undefined : "holds no count");

async function damage(promise: Promise<unknown>): Promise<DamagedStateFileError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(DamagedStateFileError);
  return error as DamagedStateFileError;
}

describe("readStateJson", () => {
  it("a file not written yet is null", async () => {
    expect(await readStateJson(stateDir, "thing.json", needsCount)).toBeNull();
  });

  it("a file as the agent wrote it is its value", async () => {
    writeFileSync(join(stateDir, "thing.json"), '{"count": 3}\n');
    expect(await readStateJson(stateDir, "thing.json", needsCount)).toEqual({ count: 3 });
  });

  it("a torn file is a DamagedStateFileError (a StateError: exit 2) naming the file and where, never quoting it", async () => {
    writeFileSync(join(stateDir, "thing.json"), '{"count": 3, "secret": "abc');
    const error = await damage(readStateJson(stateDir, "thing.json", needsCount));
    expect(error).toBeInstanceOf(StateError);
    expect(error.exitCode).toBe(2);
    expect(error.message).toBe(`${join(stateDir, "thing.json")} is damaged: invalid JSON: unexpected end of input at line 1, column 28`);
    expect(error.cause).toBeInstanceOf(SyntaxError);
  });

  it("a value of the wrong shape is rejected by the check, with what it says", async () => {
    for (const text of ['{"count": "3"}', "null", "[]", "7"]) {
      writeFileSync(join(stateDir, "thing.json"), text);
      expect((await damage(readStateJson(stateDir, "thing.json", needsCount))).message).toBe(`${join(stateDir, "thing.json")} is damaged: holds no count`);
    }
  });

  it("any other failure to read is thrown as it is", async () => {
    mkdirSync(join(stateDir, "thing.json"));
    await expect(readStateJson(stateDir, "thing.json", needsCount)).rejects.toMatchObject({ code: "EISDIR" });
    if (process.getuid?.() !== 0) {
      rmSync(join(stateDir, "thing.json"), { recursive: true });
      writeFileSync(join(stateDir, "thing.json"), "{}");
      chmodSync(join(stateDir, "thing.json"), 0);
      await expect(readStateJson(stateDir, "thing.json", needsCount)).rejects.toMatchObject({ code: "EACCES" });
    }
  });
});

describe("the state files read through it", () => {
  it.each([
    ["last-run.json", () => readLastRun(stateDir), "[1]", "not a record of a run"],
    ["counters.json", () => readCounters(stateDir), '{"passes": 1, "delivered": -1, "failed": 0, "quarantined": 0, "recovered": 0}', "delivered is not a count"],
    ["erp-inbox.json", () => readErpInbox(stateDir), '{"observedAt": "2026-01-01T00:00:00.000Z"}', "not an ERP inbox observation"],
    ["quarantine-ack.json", () => unacknowledgedQuarantined(join(stateDir, "quarantine"), stateDir), '{"names": [1]}', "holds no list of names"],
    ["watcher.json", () => readHeartbeat(stateDir), '{"pid": 4242, "startedAt": "2026-01-01T00:00:00.000Z", "heartbeatAt": "soon"}', "heartbeatAt is not a time"],
  ])("%s: missing is nothing yet; torn or of another shape is damaged, with what is wrong", async (name, read, wrongShape, problem) => {
    expect(await read()).toEqual(name === "quarantine-ack.json" ? [] : null);
    writeFileSync(join(stateDir, name), "{");
    expect((await damage(read())).message).toBe(`${join(stateDir, name)} is damaged: invalid JSON: unexpected end of input at line 1, column 2`);
    writeFileSync(join(stateDir, name), wrongShape);
    expect((await damage(read())).message).toBe(`${join(stateDir, name)} is damaged: ${problem}`);
  });
});
