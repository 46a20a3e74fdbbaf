/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: "node",
  roots: ["<rootDir>/tests"],
  testMatch: ["**/*.test.ts"],
  transform: { "^.+\\.ts$": ["ts-jest", { tsconfig: "<rootDir>/tests/tsconfig.json" }] },
  moduleNameMapper: { "^@plutus/shared$": "<rootDir>/shared/src/index.ts" },
  // The integration suites start real sshd processes; two cores, so run files one at a time.
  maxWorkers: 1,
  testTimeout: 60_000,
  // Shared test accounts made during the run are removed at its end (those that existed before stay).
  globalSetup: "<rootDir>/tests/support/testAccounts.setup.js",
  globalTeardown: "<rootDir>/tests/support/testAccounts.teardown.js",
};
