import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { stagingFiles } from "../support/agent";

const repo = resolve(__dirname, "../..");

function runLab(env: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolvePromise) => {
    const child = spawn(process.execPath, [join(repo, "lab", "run.js")], { env: { PATH: process.env.PATH, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("close", (code) => resolvePromise({ code, stdout, stderr }));
  });
}

describe.each([
  ["OpenSSH sshd", {}, /^ {2}ERP stand-in : OpenSSH sshd \(SFTP only, key only\) on 127\.0\.0\.1:\d+$/m],
  ["embedded ssh2 server", { PLUTUS_LAB_EMBEDDED: "1" }, /^ {2}ERP stand-in : embedded SFTP server \(ssh2; sshd is not installed\) on 127\.0\.0\.1:\d+$/m],
])("npm run lab with the %s stand-in", (_kind, env, standInLine) => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "plutus-lab-"));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("delivers the four valid sample orders, quarantines the invalid one and shows where everything went", async () => {
    const result = await runLab({ ...env, PLUTUS_LAB_DIR: dir });
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(standInLine);
    expect(result.stdout).toMatch(/^plutus-sync: 4\/5 delivered, 0 failed, 1 quarantined, 0 deferred in \d+\.\d s$/m);
    expect(result.stdout).toMatch(/^ {2}order-100235\.json: invalid JSON: unexpected end of input at line 1, column 56$/m);
    const inbox = readdirSync(join(dir, "erp", "Inbox")).sort();
    expect(inbox).toEqual(["order-100231.json", "order-100232.json", "order-100233.json", "order-100234.json"]);
    expect(JSON.parse(readFileSync(join(dir, "erp", "Inbox", "order-100232.json"), "utf8"))).toMatchObject({ customer: "Café Lumière" });
    expect(stagingFiles(join(dir, "erp", "Staging"))).toEqual([]);
    expect(readdirSync(join(dir, "web", "outbox"))).toEqual([]);
    expect(result.stdout).toMatch(/^last run: \S+ exit 0: 4\/5 delivered, 0 failed, 1 quarantined, 0 deferred$/m);
  });
});
