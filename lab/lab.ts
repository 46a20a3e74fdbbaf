import { spawn } from "node:child_process";
import { mkdirSync, rmSync, writeFileSync, readdirSync, readFileSync, utimesSync, chmodSync, renameSync, existsSync } from "node:fs";
import { createHash } from "node:crypto";
import { join, relative, resolve } from "node:path";
import { utils } from "ssh2";
import type { AgentConfigInput } from "@plutus/shared";
import { startEmbeddedStandIn, startOpenSshStandIn, systemSshdAvailable, ErpStandIn } from "./erpStandIn";

/**
 * `npm run lab`: a real delivery on this machine with nothing to configure. Keys are generated,
 * an ERP stand-in listens on 127.0.0.1, sample orders (one invalid) are written to an outbox,
 * the bundled agent runs one pass as cron would, and the result is shown. With --watch it then runs
 * `plutus-sync watch` and drops orders one by one, printing how long each took to reach the inbox.
 */
const repo = resolve(__dirname, "..", "..");
const labDir = process.env.PLUTUS_LAB_DIR ? resolve(process.env.PLUTUS_LAB_DIR) : join(repo, ".lab");
const agent = join(repo, "agent", "dist", "plutus-sync.cjs");

/** Runs the agent without blocking this process, which may be serving the embedded ERP. */
function runAgent(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [agent, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("error", reject);
    child.on("close", (status) => resolvePromise({ status, stdout, stderr }));
  });
}

function fingerprint(publicKeyLine: string): string {
  const key = utils.parseKey(publicKeyLine);
  if (key instanceof Error) throw key;
  return "SHA256:" + createHash("sha256").update(key.getPublicSSH()).digest("base64").replace(/=+$/, "");
}

function writeSecret(path: string, content: string): void {
  writeFileSync(path, content, { mode: 0o600 });
  chmodSync(path, 0o600);
}

function listTree(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? listTree(join(dir, entry.name)).map((p) => `${entry.name}/${p}`) : [entry.name],
  );
}

const SAMPLE_ORDERS: Record<string, unknown> = {
  "order-100231.json": { orderId: "100231", customer: "Atelier Nord", lines: [{ sku: "ARC-FLOOR-BRASS", qty: 2, price: 389.0 }] },
  "order-100232.json": { orderId: "100232", customer: "Café Lumière", lines: [{ sku: "PENDANT-OPAL-30", qty: 6, price: 129.5 }] },
  "order-100233.json": { orderId: "100233", customer: "Studio Süd", lines: [{ sku: "DESK-TILT-BLACK", qty: 1, price: 149.0 }] },
  "order-100234.json": { orderId: "100234", customer: "Hotel Aurora", lines: [{ sku: "WALL-SCONCE-OAK", qty: 24, price: 89.9 }] },
};

const USAGE = `usage: npm run lab [-- --keep] [-- --embedded] [-- --watch]
  --keep      leave the ERP stand-in running afterwards, to try check, status and health on .lab/agent.json
  --embedded  use the embedded SFTP server (ssh2) even when OpenSSH's sshd is installed (also PLUTUS_LAB_EMBEDDED=1)
  --watch     then run plutus-sync watch live: orders dropped one by one, each with its time to the ERP inbox`;

/** Resolves on Ctrl-C or SIGTERM: how a kept stand-in is stopped. */
function untilStopped(): Promise<void> {
  return new Promise((resolvePromise) => {
    const stop = () => {
      process.off("SIGINT", stop);
      process.off("SIGTERM", stop);
      resolvePromise();
    };
    process.on("SIGINT", stop);
    process.on("SIGTERM", stop);
  });
}

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  const unknown = args.find((a) => a !== "--keep" && a !== "--embedded" && a !== "--watch");
  if (unknown !== undefined) {
    process.stderr.write(`lab: unknown option ${unknown}\n${USAGE}\n`);
    return 2;
  }
  const keep = args.includes("--keep");
  const forceEmbedded = args.includes("--embedded") || process.env.PLUTUS_LAB_EMBEDDED === "1";
  rmSync(labDir, { recursive: true, force: true });
  mkdirSync(labDir, { recursive: true, mode: 0o700 });
  const keysDir = join(labDir, "keys");
  mkdirSync(keysDir, { mode: 0o700 });
  const hostKey = utils.generateKeyPairSync("ed25519", { comment: "plutus-lab-erp-host" });
  const clientKey = utils.generateKeyPairSync("ed25519", { comment: "plutus-lab-sync" });
  const hostKeyPath = join(keysDir, "erp_host_ed25519");
  writeSecret(hostKeyPath, hostKey.private);
  writeFileSync(`${hostKeyPath}.pub`, hostKey.public + "\n");
  const clientKeyPath = join(keysDir, "sync_ed25519");
  writeSecret(clientKeyPath, clientKey.private);
  writeFileSync(`${clientKeyPath}.pub`, clientKey.public + "\n");
  const keys = { hostKeyPath, hostKey: hostKey.private, clientPublicKey: clientKey.public };

  const useOpenSsh = systemSshdAvailable() && !forceEmbedded;
  const erp: ErpStandIn = useOpenSsh ? await startOpenSshStandIn(labDir, keys) : await startEmbeddedStandIn(labDir, keys);
  try {
    const web = join(labDir, "web");
    const config: AgentConfigInput = {
      outbox: join(web, "outbox"),
      archive: join(web, "archive"),
      quarantine: join(web, "quarantine"),
      stateDir: join(web, "state"),
      logDir: join(web, "log"),
      minAgeSeconds: 10,
      remote: {
        host: "127.0.0.1",
        port: erp.port,
        username: erp.username,
        privateKeyPath: clientKeyPath,
        hostKeySha256: fingerprint(hostKey.public),
        inbox: erp.inbox,
        staging: erp.staging,
      },
    };
    mkdirSync(config.outbox, { recursive: true });
    const configPath = join(labDir, "agent.json");
    writeFileSync(configPath, JSON.stringify(config, null, 2) + "\n");
    // Written a minute ago, so they pass the minAgeSeconds stability rule at once.
    const aMinuteAgo = new Date(Date.now() - 60_000);
    const samples: Record<string, string> = Object.fromEntries(Object.entries(SAMPLE_ORDERS).map(([n, o]) => [n, JSON.stringify(o, null, 2) + "\n"]));
    samples["order-100235.json"] = '{ "orderId": "100235", "customer": "truncated upload", ';
    for (const [name, content] of Object.entries(samples)) {
      const path = join(config.outbox, name);
      writeFileSync(path, content);
      utimesSync(path, aMinuteAgo, aMinuteAgo);
    }

    const say = (line = "") => process.stdout.write(line + "\n");
    say("PLUTUS order sync — lab");
    say(`  ERP stand-in : ${erp.kind === "openssh" ? "OpenSSH sshd (SFTP only, key only)" : "embedded SFTP server (ssh2; sshd is not installed)"} on 127.0.0.1:${erp.port}`);
    say(`  host key     : ${config.remote.hostKeySha256} (pinned in the agent config)`);
    say(`  config       : ${relative(repo, configPath)}`);
    say(`  outbox       : ${Object.keys(samples).length} sample orders, one of them invalid JSON`);
    say();
    say(`$ node ${relative(repo, agent)} run --config ${relative(repo, configPath)}`);
    const run = await runAgent(["run", "--config", configPath]);
    process.stdout.write(run.stdout);
    process.stderr.write(run.stderr);
    say();
    say(`ERP inbox (${erp.inbox}):`);
    for (const name of readdirSync(erp.inboxDir).sort()) say(`  ${name}`);
    say(`Local archive (${relative(repo, config.archive)}):`);
    for (const path of listTree(config.archive).sort()) say(`  ${path}`);
    say(`Quarantine (${relative(repo, config.quarantine)}):`);
    for (const name of readdirSync(config.quarantine).filter((n) => n.endsWith(".reason")).sort()) {
      const note = JSON.parse(readFileSync(join(config.quarantine, name), "utf8")) as { file: string; reason: string };
      say(`  ${note.file}: ${note.reason}`);
    }
    const logs = readdirSync(config.logDir).filter((n) => n.endsWith(".log"));
    say(`Log: ${logs.map((n) => relative(repo, join(config.logDir, n))).join(", ")} (JSON lines; one per file event and one per pass)`);
    say();
    say(`$ node ${relative(repo, agent)} status --config ${relative(repo, configPath)}`);
    const status = await runAgent(["status", "--config", configPath]);
    process.stdout.write(status.stdout);
    say();
    if (args.includes("--watch")) {
      const watched = await watchLive(configPath, config.outbox, erp.inboxDir, say);
      if (watched !== 0) return watched;
    }
    say(`$ node ${relative(repo, agent)} health --config ${relative(repo, configPath)}`);
    const health = await runAgent(["health", "--config", configPath]);
    process.stdout.write(health.stdout);
    say();
    if (keep) {
      say(`ERP stand-in kept running on 127.0.0.1:${erp.port}. In another terminal, try:`);
      for (const command of ["check", "status", "health", "run"]) say(`  node ${relative(repo, agent)} ${command} --config ${relative(repo, configPath)}`);
      say(`Stop it with Ctrl-C, or: kill ${process.pid}`);
      await untilStopped();
      say("ERP stand-in stopped.");
    } else {
      say("Run it again with `npm run lab`; everything lives under .lab/ and is recreated each time.");
      say("`npm run lab -- --keep` leaves the ERP stand-in running to try check, status and health.");
    }
    return run.status ?? 1;
  } finally {
    await erp.stop();
  }
}

/** `--watch`: the watcher live, orders dropped one by one (written aside, renamed in), latency printed. */
async function watchLive(configPath: string, outbox: string, inboxDir: string, say: (line?: string) => void): Promise<number> {
  say();
  say(`$ node ${relative(repo, agent)} watch --config ${relative(repo, configPath)}`);
  const child = spawn(process.execPath, [agent, "watch", "--config", configPath], { stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout.on("data", (d) => (output += d));
  child.stderr.on("data", (d) => (output += d));
  const exited = new Promise<number | null>((r) => child.on("close", (code) => r(code)));
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  for (let i = 0; i < 500 && !output.includes("plutus-sync: watching"); i++) await sleep(20);
  process.stdout.write(output);
  if (!output.includes("plutus-sync: watching")) return 1;
  await sleep(1_000);
  const aside = join(labDir, "web", "writing");
  mkdirSync(aside, { recursive: true });
  for (let i = 1; i <= 5; i++) {
    const name = `order-2000${i}.json`;
    writeFileSync(join(aside, name), JSON.stringify({ orderId: `2000${i}`, customer: "Live Kunde", lines: [{ sku: "ARC-FLOOR-BRASS", qty: i, price: 389.0 }] }) + "\n");
    renameSync(join(aside, name), join(outbox, name));
    const t0 = performance.now();
    while (!existsSync(join(inboxDir, name)) && performance.now() - t0 < 10_000) await sleep(2);
    const ms = performance.now() - t0;
    say(existsSync(join(inboxDir, name)) ? `  ${name} renamed into the outbox -> in the ERP inbox after ${ms.toFixed(0)} ms` : `  ${name}: not in the inbox after 10 s`);
    await sleep(400 + Math.random() * 800);
  }
  await sleep(1_200);
  say(`$ node ${relative(repo, agent)} status --config ${relative(repo, configPath)}`);
  process.stdout.write((await runAgent(["status", "--config", configPath])).stdout.split("\n").filter((l) => l.startsWith("watcher:")).join("\n") + "\n");
  const before = output.length;
  child.kill("SIGTERM");
  const code = await exited;
  process.stdout.write(output.slice(before));
  say();
  return code ?? 1;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: Error) => {
    process.stderr.write(`lab failed: ${error.message}\n`);
    process.exitCode = 1;
  },
);
