import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { stagingFiles } from "../support/agent";

const repo = resolve(__dirname, "../..");

function runLab(env: NodeJS.ProcessEnv, args: string[] = []): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolvePromise) => {
    const child = spawn(process.execPath, [join(repo, "lab", "run.js"), ...args], { env: { PATH: process.env.PATH, ...env }, stdio: ["ignore", "pipe", "pipe"] });
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

describe("npm run lab -- --watch", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "plutus-lab-watch-"));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("runs plutus-sync watch live: five orders dropped one by one reach the inbox, each with its latency", async () => {
    const result = await runLab({ PLUTUS_LAB_DIR: dir }, ["--watch"]);
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^plutus-sync: watching \S+\/web\/outbox$/m);
    const lines = result.stdout.split("\n").filter((l) => l.includes("renamed into the outbox"));
    expect(lines).toHaveLength(5);
    lines.forEach((line, i) => expect(line).toMatch(new RegExp(`^  order-2000${i + 1}\\.json renamed into the outbox -> in the ERP inbox after \\d+ ms$`)));
    expect(result.stdout).toMatch(/^watcher: running \(pid \d+, since \S+, last delivery \S+, connection connected\)$/m);
    expect(result.stdout).toContain("plutus-sync: watch stopped on SIGTERM; 5 delivered\n");
    expect(readdirSync(join(dir, "erp", "Inbox")).filter((n) => n.startsWith("order-2000")).sort()).toEqual([1, 2, 3, 4, 5].map((i) => `order-2000${i}.json`));
  }, 60_000);
});
