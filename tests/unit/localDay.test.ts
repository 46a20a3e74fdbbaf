import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { archiveDayOf, localDay, localDaysSince, sameLocalDayFor } from "../support/localDay";

// The helpers the deploy and operations suites use to stay right across local midnight.
const beforeMidnight = (secondsLeft: number) => new Date(2026, 11, 31, 23, 59, 60 - secondsLeft);

afterEach(() => jest.useRealTimers());

test("localDay is the local calendar date", () => {
  expect(localDay(new Date(2026, 0, 5, 0, 0, 0))).toBe("2026-01-05");
  expect(localDay(new Date(2026, 11, 31, 23, 59, 59))).toBe("2026-12-31");
});

test("an action across midnight has two candidate days, one within a day has one", () => {
  jest.useFakeTimers({ now: beforeMidnight(1) });
  const before = localDay();
  expect(localDaysSince(before)).toEqual(["2026-12-31"]);
  jest.setSystemTime(new Date(2027, 0, 1, 0, 0, 1));
  expect(localDaysSince(before)).toEqual(["2026-12-31", "2027-01-01"]);
});

test("archiveDayOf finds the folder the order was archived in, on either side of midnight", () => {
  const archive = mkdtempSync(join(tmpdir(), "plutus-localday-"));
  try {
    jest.useFakeTimers({ now: new Date(2027, 0, 1, 0, 0, 1) });
    mkdirSync(join(archive, "2026-12-31"));
    writeFileSync(join(archive, "2026-12-31", "order-1.json"), "{}");
    expect(archiveDayOf(archive, "order-1.json", "2026-12-31")).toBe("2026-12-31");
    mkdirSync(join(archive, "2027-01-01"));
    writeFileSync(join(archive, "2027-01-01", "order-2.json"), "{}");
    expect(archiveDayOf(archive, "order-2.json", "2026-12-31")).toBe("2027-01-01");
    // Nowhere: the latest date, so the caller's read fails naming that path.
    expect(archiveDayOf(archive, "order-3.json", "2026-12-31")).toBe("2027-01-01");
  } finally {
    rmSync(archive, { recursive: true, force: true });
  }
});

test("sameLocalDayFor waits until just after midnight only when less than the time asked for is left", async () => {
  jest.useFakeTimers({ now: beforeMidnight(120) });
  let done = false;
  void sameLocalDayFor(60_000).then(() => (done = true));
  await jest.advanceTimersByTimeAsync(0);
  expect(done).toBe(true);

  jest.setSystemTime(beforeMidnight(20));
  done = false;
  void sameLocalDayFor(60_000).then(() => (done = true));
  await jest.advanceTimersByTimeAsync(20_000);
  expect([done, localDay()]).toEqual([false, "2027-01-01"]);
  await jest.advanceTimersByTimeAsync(1_000);
  expect(done).toBe(true);
});
