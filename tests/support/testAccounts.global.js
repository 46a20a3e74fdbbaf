// Jest globalSetup / globalTeardown: the test fixtures create system accounts that several suites
// share (the ERP stand-in's and the chaos agent's); the run removes those it created, and never
// one that was there before it started.
const { execFileSync } = require("node:child_process");

const SHARED_TEST_ACCOUNTS = ["plutus-erp", "plutus-chaos"];

function exists(name) {
  try {
    execFileSync("getent", ["passwd", name], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

async function setup() {
  globalThis.__plutusAccountsBefore = SHARED_TEST_ACCOUNTS.filter(exists);
}

async function teardown() {
  const before = new Set(globalThis.__plutusAccountsBefore ?? SHARED_TEST_ACCOUNTS);
  for (const name of SHARED_TEST_ACCOUNTS) {
    if (before.has(name) || !exists(name)) continue;
    try {
      execFileSync("userdel", [name], { stdio: "ignore" });
    } catch (error) {
      process.stderr.write(`test teardown: could not remove the test account ${name}: ${error.message}\n`);
    }
  }
}

module.exports = { setup, teardown };
