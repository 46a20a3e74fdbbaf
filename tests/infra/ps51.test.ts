/*
 * The Hyper-V host runs every lab script with Windows PowerShell 5.1 (powershell.exe). This check
 * walks the tree-sitter-powershell syntax tree of each script for what 5.1 does not have or does
 * differently (tests/infra/ps51-check.mjs); each rule is proven to fire on a sample.
 */
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { REPO } from "./harness";
import { renderBootstrap } from "../../infra/powershell";

interface Problem { rule: string; line: number; column: number; text: string }

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "plutus-ps51-"));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function check(files: string[]): { file: string; problems: Problem[] }[] {
  return JSON.parse(execFileSync(process.execPath, [path.join(__dirname, "ps51-check.mjs"), ...files], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], cwd: REPO }));
}

function rulesOf(snippet: string): string[] {
  const file = path.join(tmp, `sample-${Math.random().toString(36).slice(2)}.ps1`);
  fs.writeFileSync(file, snippet);
  return check([file])[0].problems.map((p) => `${p.line}:${p.rule}`);
}

test("every .ps1/.psm1 in the repository and both bootstraps pass the Windows PowerShell 5.1 check", () => {
  const scripts = fs.readdirSync(path.join(REPO, "infra", "scripts")).filter((f) => /\.ps(m?)1$/.test(f)).map((f) => path.join(REPO, "infra", "scripts", f));
  const bootstraps = (["create", "delete"] as const).map((step) => {
    const file = path.join(tmp, `bootstrap-${step}.ps1`);
    fs.writeFileSync(file, renderBootstrap(step));
    return file;
  });
  const files = [...scripts, path.join(REPO, "Deploy-PlutusInfra.ps1"), ...bootstraps];
  expect(scripts.length).toBe(12);
  const results = check(files);
  expect(results.filter((r) => r.problems.length > 0)).toEqual([]);
  expect(results).toHaveLength(files.length);
});

test.each([
  ["ternary", "$a = $b ? 1 : 2\n", ["1:operator-7"]],
  ["null-coalescing", "$c = $d ?? 'x'\n", ["1:operator-7"]],
  ["null-coalescing assignment", "$e ??= 3\n", ["1:operator-7"]],
  ["null-conditional member", "$n = $o?.Name\n", ["1:operator-7"]],
  ["&& chain", "Get-Item x && Get-Item y\n", ["1:pipeline-chain-7"]],
  ["|| chain", "Get-Item x || Get-Item y\n", ["1:pipeline-chain-7"]],
  ["ConvertFrom-Json -AsHashtable", "$j = '{}' | Microsoft.PowerShell.Utility\\ConvertFrom-Json -AsHashtable\n", ["1:parameter-7"]],
  ["ConvertFrom-Json -Depth", "$j = '{}' | ConvertFrom-Json -Depth 5\n", ["1:parameter-7"]],
  ["Get-Content -AsByteStream", "$k = Get-Content -Path x -AsByteStream\n", ["1:parameter-7"]],
  ["ForEach-Object -Parallel", "1..3 | ForEach-Object -Parallel { $_ }\n", ["1:parameter-7"]],
  ["-Encoding utf8NoBOM", "Set-Content -Path x -Value y -Encoding utf8NoBOM\n", ["1:encoding-7"]],
  ["-Encoding:utf8NoBOM", "Out-File -FilePath x -InputObject y -Encoding:utf8NoBOM\n", ["1:encoding-7"]],
  ["Join-String", "$l = 1, 2 | Join-String -Separator ','\n", ["1:command-7"]],
  ["Out-File without -Encoding", "'x' | Out-File -FilePath y\n", ["1:write-encoding"]],
  ["Set-Content without -Encoding", "Set-Content -Path y -Value x\n", ["1:write-encoding"]],
  ["> to a file", "'x' > y.txt\n", ["1:redirect-encoding"]],
  [">> to a file", "'x' >> y.txt\n", ["1:redirect-encoding"]],
  ["[IO.File]::WriteAllText without an encoding", "[System.IO.File]::WriteAllText($p, $t)\n", ["1:write-encoding"]],
  ["DriveLetter truthiness", "if (-not $partition.DriveLetter) { }\n", ["1:driveletter-truthiness"]],
  ["DriveLetter truthiness in if", "if ($partition.DriveLetter) { }\n", ["1:driveletter-truthiness"]],
])("the 5.1 check rejects %s", (_what, snippet, expected) => {
  expect(rulesOf(snippet)).toEqual(expected);
});

test.each([
  ["redirection to $null and stream merging", "'x' > $null\n& cmd 2>&1\n"],
  ["writes that state their encoding", "Set-Content -Path y -Value x -Encoding ascii\n'x' | Out-File -FilePath y -Encoding utf8\n[System.IO.File]::WriteAllText($p, $t, (New-Object -TypeName System.Text.UTF8Encoding -ArgumentList $false))\n"],
  ["5.1 parameters of the same commands", "$j = '{}' | ConvertFrom-Json\n$b = [System.IO.File]::ReadAllBytes($p)\n1..3 | ForEach-Object { $_ }\n"],
  ["a drive letter compared by code", "if ([int][char]$partition.DriveLetter -eq 0) { }\n"],
])("the 5.1 check accepts %s", (_what, snippet) => {
  expect(rulesOf(snippet)).toEqual([]);
});
