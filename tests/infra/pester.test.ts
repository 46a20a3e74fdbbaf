/*
 * `npm test` runs the Pester suites too (tests/powershell/suites, against the simulated Hyper-V
 * host), through the same runner as `npm run test:powershell`. Without pwsh or Pester this fails
 * and says how to get them: it is never skipped.
 */
import { spawnSync } from "node:child_process";
import * as path from "node:path";
import { REPO } from "./harness";

test("the Pester suites pass under PowerShell 7 against the simulated host", () => {
  const run = spawnSync(process.execPath, [path.join(REPO, "tests", "powershell", "run.mjs")], { encoding: "utf8", env: { ...process.env, NO_COLOR: "1" }, maxBuffer: 64 * 1024 * 1024 });
  const output = `${run.stdout}\n${run.stderr}`;
  const summary = /^(\d+) passed, (\d+) failed$/m.exec(output);
  if (run.status !== 0 || !summary) throw new Error(`the Pester suites failed (exit ${run.status}):\n${output.slice(-20000)}`);
  expect(Number(summary[1])).toBeGreaterThan(0);
  expect(Number(summary[2])).toBe(0);
}, 20 * 60_000);
