import { spawn } from "node:child_process";
import { connect } from "node:net";
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
    expect(result.stdout).toMatch(/^PLUTUS-SYNC WARNING - 1 file\(s\) quarantined since last acknowledged \(plutus-sync ack-quarantine\); the ERP inbox has|^PLUTUS-SYNC WARNING - 1 file\(s\) quarantined since last acknowledged \(plutus-sync ack-quarantine\) \| /m);
  });

  it("--keep leaves the stand-in running for check, status and health, and stops it on SIGTERM", async () => {
    const child = spawn(process.execPath, [join(repo, "lab", "run.js"), "--keep"], { env: { PATH: process.env.PATH, ...env, PLUTUS_LAB_DIR: dir }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    child.stdout.on("data", (d) => (stdout += d));
    const exited = new Promise<number | null>((done) => child.on("close", (code) => done(code)));
    try {
      await keptStandIn();
    } finally {
      child.kill("SIGKILL");
    }

    async function keptStandIn(): Promise<void> {
    const deadline = Date.now() + 100_000;
    while (!/Stop it with Ctrl-C, or: kill \d+\n/.test(stdout)) {
      if (Date.now() > deadline) throw new Error(`the lab did not say it kept the stand-in:\n${stdout}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(stdout).toContain(`Stop it with Ctrl-C, or: kill ${child.pid}\n`);
    const port = Number(/kept running on 127\.0\.0\.1:(\d+)\./.exec(stdout)![1]);
    const config = join(dir, "agent.json");
    const agent = (args: string[]) =>
      new Promise<{ code: number | null; stdout: string }>((done) => {
        const c = spawn(process.execPath, [join(repo, "agent", "dist", "plutus-sync.cjs"), ...args, "--config", config], { stdio: ["ignore", "pipe", "ignore"] });
        let out = "";
        c.stdout.on("data", (d) => (out += d));
        c.on("close", (code) => done({ code, stdout: out }));
      });
    const check = await agent(["check"]);
    expect(check.code).toBe(0);
    expect(check.stdout.endsWith("OK\n")).toBe(true);
    expect((await agent(["ack-quarantine"])).code).toBe(0);
    const health = await agent(["health"]);
    // Compared whole, so a failure shows the health line and what the lab printed.
    expect({ code: health.code, stdout: health.stdout, lab: stdout }).toEqual({
      code: 0,
      stdout: expect.stringMatching(/^PLUTUS-SYNC OK - last success \d+ s ago, 0 waiting in the outbox, 4 in the ERP inbox \| /),
      lab: expect.stringContaining("plutus-sync: 4/5 delivered, 0 failed, 1 quarantined, 0 deferred in "),
    });
    child.kill("SIGTERM");
    expect(await exited).toBe(0);
    expect(stdout.endsWith("ERP stand-in stopped.\n")).toBe(true);
    const refused = await new Promise<boolean>((done) => {
      const socket = connect(port, "127.0.0.1");
      socket.once("connect", () => { socket.destroy(); done(false); });
      socket.once("error", () => done(true));
    });
    expect(refused).toBe(true);
    }
  }, 150_000);
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
