import { rmSync } from "node:fs";
import { dirname } from "node:path";
import { Row, Rng, agentBundle } from "./harness";
import { SCENARIOS } from "./scenarios";
import { formatDetails, formatTable } from "./suite";
import { KNOWN_FAILURES, unexplainedProblems } from "./known";

// The SHORT chaos suite (what `npm run chaos` runs without --long), one test per scenario,
// against the bundled agent and a real sshd. Needs root, like the integration tests. A row whose
// `alsoShownBy` names a jest suite is left to `npm run chaos` (it would only repeat that suite).
const seed = process.env.CHAOS_SEED ? Number(process.env.CHAOS_SEED) : Date.now() % 1_000_000;
/**
 * A guard against a hung row, not a bound on it: the kill -9 row starts 100 passes, each a Node.js
 * start-up; it took 80 s on an idle machine and 212 s under four busy loops.
 */
const ROW_TIMEOUT_MS = 10 * 60_000;
const rows: Row[] = [];

beforeAll(() => {
  process.stdout.write(`chaos: seed ${seed} (replay with CHAOS_SEED=${seed}), bundle sha256 ${agentBundle().sha256.slice(0, 16)}\n`);
});

afterAll(() => {
  process.stdout.write(`\n${formatTable(rows)}\n${formatDetails(rows)}\n`);
  // The bundle's private copy: jest may end this worker without a normal process exit.
  rmSync(dirname(agentBundle().path), { recursive: true, force: true });
});

describe("chaos (short): faults, kills and hostile inputs never lose, duplicate or expose a partial order", () => {
  // Indexes stay those of SCENARIOS, so a seed replays the same rows under `npm run chaos`.
  SCENARIOS.forEach((scenario, index) => {
    if (scenario.alsoShownBy) return;
    it(
      scenario.name,
      async () => {
        const row = await scenario.run({ long: false }, new Rng(seed + index));
        rows.push(row);
        const tolerated = KNOWN_FAILURES.filter((k) => k.scenario.test(row.scenario));
        expect(unexplainedProblems(row)).toEqual([]);
        expect(row.lost).toBe(0);
        expect(row.partial).toBe(0);
        if (!tolerated.some((k) => k.allowsDuplicates)) expect(row.duplicated).toBe(0);
        expect(row.passes).toBeGreaterThan(0);
        expect(row.faults).toBeGreaterThan(0);
        if (scenario.name.startsWith("kill -9")) expect(row.passes).toBeGreaterThanOrEqual(100);
      },
      ROW_TIMEOUT_MS,
    );
  });
});
