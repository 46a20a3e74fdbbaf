// Runs the Pester suites (tests/powershell/**/*.Tests.ps1) under PowerShell 7 and ends with Pester's
// summary and one "N passed, N failed" line. Never skips: without pwsh or Pester it fails and says
// how to get them.   node tests/powershell/run.mjs [path filter...]
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { homedir } from "node:os";
import { delimiter, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const PESTER_VERSION = "6.2.0";
const here = dirname(fileURLToPath(import.meta.url));

/** pwsh on PATH, else the .NET global tool's copy, else undefined. */
export function findPwsh(env = process.env) {
  for (const dir of [...(env.PATH ?? "").split(delimiter), join(homedir(), ".dotnet", "tools")]) {
    if (dir && existsSync(join(dir, "pwsh"))) return join(dir, "pwsh");
  }
  return undefined;
}

export function findPester(env = process.env) {
  const manifest = env.PLUTUS_PESTER_MODULE ?? join(env.PLUTUS_PESTER_HOME ?? join(homedir(), ".cache", "plutus-pester"), "pester", PESTER_VERSION, "tools", "Pester.psd1");
  return existsSync(manifest) ? manifest : undefined;
}

export const HOW_TO_GET =
  "Install PowerShell 7.6.9 and Pester " + PESTER_VERSION + " with `bash tests/powershell/install-tools.sh` " +
  "(it needs the .NET SDK: `dotnet`; .ci/run does the same).";

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const pwsh = findPwsh();
  const pester = findPester();
  if (!pwsh || !pester) {
    console.error(`The PowerShell suites cannot run: ${!pwsh ? "pwsh (PowerShell 7) was not found on PATH or in ~/.dotnet/tools" : `Pester ${PESTER_VERSION} was not found`}. ${HOW_TO_GET}`);
    console.error("0 passed, 1 failed");
    process.exit(1);
  }
  const result = spawnSync(pwsh, ["-NoProfile", "-NonInteractive", "-File", join(here, "Invoke-PlutusPester.ps1"), "-PesterModule", pester, ...process.argv.slice(2)], { stdio: "inherit", env: { ...process.env, POWERSHELL_UPDATECHECK: "Off", POWERSHELL_TELEMETRY_OPTOUT: "1" } });
  process.exit(result.status ?? 1);
}
