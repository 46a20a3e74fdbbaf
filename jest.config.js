/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: "node",
  roots: ["<rootDir>/tests"],
  testMatch: ["**/*.test.ts"],
  transform: { "^.+\\.ts$": ["ts-jest", { tsconfig: "<rootDir>/tests/tsconfig.json" }] },
  moduleNameMapper: { "^@plutus/shared$": "<rootDir>/shared/src/index.ts" },
  // Two workers: most suites wait on sshd, timers and child processes rather than compute. Suites
  // that share machine-wide state hold a named lock for their run (tests/support/machineLock.ts).
  maxWorkers: 2,
  testSequencer: "<rootDir>/tests/support/testSequencer.js",
  testTimeout: 60_000,
  // Shared test accounts made during the run are removed at its end (those that existed before stay).
  globalSetup: "<rootDir>/tests/support/testAccounts.setup.js",
  globalTeardown: "<rootDir>/tests/support/testAccounts.teardown.js",
};
