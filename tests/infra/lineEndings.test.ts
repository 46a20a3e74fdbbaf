/*
 * Line endings (issue 13, defect 2 and "line endings change the script hashes"): a clone made by Git
 * for Windows with core.autocrlf=true must neither ship CRLF shell scripts to the web VM nor change
 * the PowerShell scripts' hashes in the triggers (which would rebuild the lab).
 */
import { execFileSync } from "node:child_process";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { REPO, runProgram, type ProgramRun } from "./harness";
import { readBundle } from "../../infra/bundle";

const SCRIPTS = path.join(REPO, "infra", "scripts");
const sha256 = (data: string | Buffer) => crypto.createHash("sha256").update(data).digest("hex");
const crlf = (text: string) => text.replace(/\r?\n/g, "\r\n");

const temps: string[] = [];
function tempDir(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  temps.push(dir);
  return dir;
}
afterAll(() => {
  for (const dir of temps) fs.rmSync(dir, { recursive: true, force: true });
});

describe("PowerShell scripts checked out with CRLF", () => {
  /** Per host command: the script texts it sends and the script hashes at the head of its triggers. */
  const sent = (run: ProgramRun) =>
    run.resources
      .filter((r) => r.type.startsWith("command:") && typeof r.inputs.stdin === "string" && r.inputs.stdin.startsWith('{"create"'))
      .map((r) => {
        const doc = JSON.parse(r.inputs.stdin);
        const scripts = [doc.create, doc.delete].filter(Boolean).flatMap((s: { script: string; parameters: { Helpers?: string[] } }) => [s.script, ...(s.parameters.Helpers ?? [])]);
        return { name: r.name, scripts, hashes: r.inputs.triggers.slice(0, scripts.length) };
      });

  test("send the same LF texts and the same hashes as an LF checkout", async () => {
    const real = jest.requireActual<typeof import("node:fs")>("node:fs");
    const original = real.readFileSync;
    let converted = 0;
    const spy = jest.spyOn(real, "readFileSync").mockImplementation(((file: fs.PathOrFileDescriptor, options?: unknown) => {
      const content = (original as (f: fs.PathOrFileDescriptor, o?: unknown) => string | Buffer)(file, options);
      if (typeof file === "string" && path.dirname(file) === SCRIPTS && /\.psm?1$/.test(file)) {
        converted++;
        return typeof content === "string" ? crlf(content) : Buffer.from(crlf(content.toString("utf8")));
      }
      return content;
    }) as typeof real.readFileSync);
    let run: ProgramRun;
    try {
      run = await runProgram();
    } finally {
      spy.mockRestore();
    }
    expect(converted).toBeGreaterThan(10);
    const steps = sent(run);
    expect(steps.length).toBe(10);
    for (const step of steps) {
      const files = step.scripts.map((text: string) => {
        expect([step.name, text.includes("\r")]).toEqual([step.name, false]);
        return text;
      });
      const onDisk = fs.readdirSync(SCRIPTS).map((f) => fs.readFileSync(path.join(SCRIPTS, f), "utf8"));
      for (const text of files) expect(onDisk).toContain(text);
      expect([step.name, step.hashes]).toEqual([step.name, files.map((t: string) => sha256(t))]);
    }
  }, 60_000);
});

describe(".gitattributes", () => {
  /** Tracked files matching the pattern, with the blob the index holds for each. */
  const tracked = (pattern: RegExp) =>
    execFileSync("git", ["ls-files", "-s", "-z"], { cwd: REPO, encoding: "utf8" })
      .split("\0")
      .map((line) => /^\d+ ([0-9a-f]+) \d+\t(.+)$/.exec(line))
      .filter((m): m is RegExpExecArray => m !== null && pattern.test(m[2]))
      .map((m) => ({ file: m[2], blob: m[1] }));
  /** What a checkout with core.autocrlf=true writes for this blob at this path. */
  const checkedOut = (file: string, blob: string) =>
    execFileSync("git", ["-c", "core.autocrlf=true", "-c", "core.eol=crlf", "cat-file", "--filters", `--path=${file}`, blob], { cwd: REPO });

  test("a Git for Windows checkout (core.autocrlf=true) gets every shell and PowerShell file with LF", () => {
    const files = tracked(/\.(sh|ps1|psm1|psd1)$/);
    expect(files.map((f) => f.file)).toEqual(expect.arrayContaining(["agent/scripts/install.sh", "agent/scripts/sync_plutus.sh", "Deploy-PlutusInfra.ps1", "infra/scripts/PlutusDirect.psm1"]));
    for (const { file, blob } of files) expect([file, checkedOut(file, blob).includes(0x0d)]).toEqual([file, false]);
    // the same conversion does write CRLF where no attribute asks for LF (README.md)
    const [readme] = tracked(/^README\.md$/);
    expect(checkedOut(readme.file, readme.blob).toString("utf8")).toContain("\r\n");
  });
});

describe("the agent bundle build", () => {
  const { writeBundle } = require(path.join(REPO, "agent", "build.js")) as {
    writeBundle(o: { agentFile: string; scriptsDir: string; bundleDir: string }): { normalised: string[]; sha256: string };
  };

  function scriptsCopy(transform: (name: string, text: string) => string): { scriptsDir: string; agentFile: string } {
    const dir = tempDir("plutus-build-");
    const scriptsDir = path.join(dir, "scripts");
    fs.mkdirSync(scriptsDir);
    for (const name of ["install.sh", "sync_plutus.sh"]) {
      fs.writeFileSync(path.join(scriptsDir, name), transform(name, fs.readFileSync(path.join(REPO, "agent", "scripts", name), "utf8")));
    }
    const agentFile = path.join(dir, "plutus-sync.cjs");
    fs.writeFileSync(agentFile, "#!/usr/bin/env node\nconsole.log('agent');\n");
    return { scriptsDir, agentFile };
  }

  test("a CRLF install.sh ships with LF, and SHA256SUMS covers the bytes that ship", () => {
    const { scriptsDir, agentFile } = scriptsCopy((name, text) => (name === "install.sh" ? crlf(text) : text));
    expect(fs.readFileSync(path.join(scriptsDir, "install.sh"), "utf8")).toContain("set -euo pipefail\r\n");
    const bundleDir = path.join(path.dirname(scriptsDir), "bundle");
    const result = writeBundle({ agentFile, scriptsDir, bundleDir });
    expect(result.normalised).toEqual(["install.sh"]);
    for (const name of ["install.sh", "sync_plutus.sh"]) {
      expect(fs.readFileSync(path.join(bundleDir, name))).toEqual(fs.readFileSync(path.join(REPO, "agent", "scripts", name)));
    }
    execFileSync("sha256sum", ["--check", "--strict", "--quiet", "SHA256SUMS"], { cwd: bundleDir });
    expect(result.sha256).toBe(sha256(fs.readFileSync(path.join(bundleDir, "SHA256SUMS"))));
    // and bash runs it: --help prints the usage instead of failing on "pipefail\r"
    const help = execFileSync("bash", [path.join(bundleDir, "install.sh"), "--help"], { encoding: "utf8" });
    expect(help).toContain("install.sh --stdin");
    expect(readBundle(bundleDir).files.map((f) => f.name)).toEqual(["plutus-sync.cjs", "sync_plutus.sh", "install.sh", "SHA256SUMS"]);
  });

  test("a carriage return inside a line is refused with the file and line", () => {
    const { scriptsDir, agentFile } = scriptsCopy((name, text) => (name === "sync_plutus.sh" ? text.replace("\n", "\nexport X=1\r; \n") : text));
    expect(() => writeBundle({ agentFile, scriptsDir, bundleDir: path.join(path.dirname(scriptsDir), "bundle") })).toThrow(
      "sync_plutus.sh has a carriage return that does not end a line (line 2); remove it",
    );
  });

  test("the program refuses a bundle that an older build shipped with CRLF scripts", () => {
    const dir = tempDir("plutus-crlf-bundle-");
    const files: Record<string, string> = { "plutus-sync.cjs": "x\n", "sync_plutus.sh": "#!/bin/sh\r\nexit 0\r\n", "install.sh": "#!/bin/bash\nexit 0\n" };
    for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), text);
    fs.writeFileSync(path.join(dir, "SHA256SUMS"), Object.entries(files).map(([n, t]) => `${sha256(t)}  ${n}\n`).join(""));
    expect(() => readBundle(dir)).toThrow(`agent bundle at ${dir} is unusable: sync_plutus.sh has carriage returns (Windows line endings); run npm run build again (it writes LF)`);
  });
});
