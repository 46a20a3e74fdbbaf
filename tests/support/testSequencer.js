// Jest test sequencer: with two workers the run ends when the last file ends, so the long files
// start first. A fresh CI machine has no timings cached and jest would order by file size, which
// puts the short chaos file (the longest run) last. Files not listed follow in jest's own order.
const Sequencer = require("@jest/test-sequencer").default;

/** Longest first (seconds measured on the 2-core CI machine, one worker; only the order matters). */
const LONG_RUNNING = [
  "chaos/chaos.test.ts", // 167
  "deploy/scripts.test.ts", // 87 (holds the deploy lock: kept apart from install.test.ts)
  "infra/lab-e2e.test.ts", // 78
  "integration/passLock.test.ts", // 68
  "integration/watch.test.ts", // 64
  "infra/pester.test.ts", // 57
  "deploy/install.test.ts", // 57 (deploy lock)
  "integration/recovery.test.ts", // 27
  "integration/hostileErp.test.ts", // 27
  "integration/killedPass.test.ts", // 24
  "integration/lab.test.ts", // 16
  "operations/procedures.test.ts", // 14
  "integration/security.test.ts", // 13
  "integration/health.test.ts", // 11
  "integration/supervision.test.ts", // 10
  "integration/renameRefused.test.ts", // 9
];

function rank(test) {
  const path = test.path.replace(/\\/g, "/");
  return LONG_RUNNING.findIndex((suffix) => path.endsWith(`/tests/${suffix}`));
}

class LongestFirstSequencer extends Sequencer {
  sort(tests) {
    const listed = tests.filter((t) => rank(t) !== -1).sort((a, b) => rank(a) - rank(b));
    const rest = super.sort(tests.filter((t) => rank(t) === -1));
    return [...listed, ...rest];
  }
}

module.exports = LongestFirstSequencer;
