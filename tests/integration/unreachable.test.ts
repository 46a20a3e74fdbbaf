import { readFileSync, writeFileSync, readdirSync } from "node:fs";
import { createServer, Server, Socket } from "node:net";
import { join } from "node:path";
import { startErpServer, ErpServer } from "../support/sshd";
import { makeLocalSide, runAgent, lastJsonLine, sampleOrder, LocalSide, stagingFiles } from "../support/agent";


let erp: ErpServer;
let local: LocalSide;
let silent: Server;
let silentPort: number;
const sockets: Socket[] = [];

beforeAll(async () => {
  erp = await startErpServer();
  // Accepts TCP and never says a word: a hung ERP.
  silent = createServer((socket) => sockets.push(socket));
  await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
  silentPort = (silent.address() as { port: number }).port;
});
afterAll(async () => {
  for (const socket of sockets) socket.destroy();
  await new Promise((resolve) => silent.close(resolve));
  await erp?.destroy();
});
beforeEach(() => {
  local = makeLocalSide(erp);
});
afterEach(() => local.destroy());

it("an ERP that accepts TCP but never answers: in-doubt entries stay, the pass ends in time with exit 3 and a record", async () => {
  for (let i = 0; i < 6; i++) local.writeOrder(`o-${i}.json`, sampleOrder(i));
  const crashed = await runAgent(["run", "--config", local.configPath], { PLUTUS_CRASH_AT: "after-commit-record:6" });
  expect(crashed.signal).toBe("SIGKILL");
  const records = readFileSync(join(local.stateDir, "journal.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as { t: string; id: string });
  const published = new Set(records.filter((r) => r.t === "published").map((r) => r.id));
  const inDoubt = records.filter((r) => r.t === "commit" && !published.has(r.id)).length;
  expect(inDoubt).toBeGreaterThanOrEqual(3);
  writeFileSync(
    local.configPath,
    JSON.stringify({ ...local.config, connectTimeoutSeconds: 2, passDeadlineSeconds: 10, operationTimeoutSeconds: 2, remote: { ...local.config.remote, port: silentPort } }),
  );
  const result = await runAgent(["run", "--config", local.configPath, "--json"]);
  const endedAt = Date.now();
  expect(result.code).toBe(3);
  expect(result.stderr).toBe(`plutus-sync: cannot connect to plutus-erp@127.0.0.1:${silentPort}: no SSH session within 2000 ms\n`);
  expect(lastJsonLine(result.stdout)).toMatchObject({ found: 0, delivered: 0, recovered: 0, failed: 0 });
  const lastRun = JSON.parse(readFileSync(join(local.stateDir, "last-run.json"), "utf8"));
  // Within its deadline, counted from the pass's start (node's start-up, slow on a loaded machine, is not part of it).
  expect(endedAt - Date.parse(lastRun.startedAt)).toBeLessThan(10_000);
  // Two failed runs in a row: the killed pass (its lock outlived it) and this one.
  expect(lastRun).toMatchObject({ exitCode: 3, consecutiveFailedRuns: 2, error: `cannot connect to plutus-erp@127.0.0.1:${silentPort}: no SSH session within 2000 ms` });
  const status = JSON.parse((await runAgent(["status", "--config", local.configPath, "--json"])).stdout);
  // A file whose "published" note had not reached the disk yet is in doubt but already archived.
  const waiting = readdirSync(local.outbox).filter((n) => n.endsWith(".json")).length;
  expect(status).toMatchObject({ inDoubt, outbox: { waiting } });

  // Back to the real ERP: the in-doubt orders are settled, each delivered exactly once.
  writeFileSync(local.configPath, JSON.stringify(local.config));
  const recovered = await runAgent(["run", "--config", local.configPath, "--json"]);
  expect(recovered.code).toBe(0);
  expect(lastJsonLine(recovered.stdout)).toMatchObject({ recovered: inDoubt, failed: 0 });
  expect(readdirSync(local.outbox)).toEqual([]);
  expect(readdirSync(erp.inboxDir).sort()).toEqual(Array.from({ length: 6 }, (_, i) => `o-${i}.json`));
  expect(stagingFiles(erp.stagingDir)).toEqual([]);
});

it("shutdown abandons a connect in progress at once: the attempt fails with its reason, its socket is closed, nothing is kept", async () => {
  const { RemoteLink } = await import("../../agent/src/remoteLink");
  const { createSilentLogger } = await import("../../agent/src/logger");
  const { readFileSync: read } = await import("node:fs");
  // Accepts the connection and holds it without a word (what the agent sends is read, so its close
  // is seen): the handshake cannot finish before the shutdown, however slow the machine.
  let clientClosed: Promise<void> | undefined;
  let accepted: () => void = () => undefined;
  const connected = new Promise<void>((resolve) => (accepted = resolve));
  const mute = createServer((client) => {
    clientClosed = new Promise((resolve) => client.once("close", () => resolve()));
    client.on("data", () => undefined).on("error", () => undefined);
    accepted();
  });
  await new Promise<void>((resolve) => mute.listen(0, "127.0.0.1", resolve));
  const port = (mute.address() as { port: number }).port;
  try {
    const link = new RemoteLink(
      {
        host: "127.0.0.1",
        port,
        username: erp.username,
        privateKey: read(erp.clientKeyPath),
        hostKeySha256: erp.hostKeySha256,
        connectTimeoutMs: 30_000,
        operationTimeoutMs: 5_000,
      },
      createSilentLogger(),
    );
    const started = Date.now();
    const attempt = link.session();
    // The connect is in progress: its TCP connection is accepted, its SSH handshake waits.
    await connected;
    link.shutdown("pass deadline of 10 s reached");
    await expect(attempt).rejects.toThrow("pass deadline of 10 s reached");
    // At once, not when the connect timeout (30 s) ends it: a bound half that, so a loaded machine
    // cannot reach it, nor a connect that only ends at its timeout stay under it.
    expect(Date.now() - started).toBeLessThan(15_000);
    expect(clientClosed).toBeDefined();
    await clientClosed;
    await expect(link.session()).rejects.toThrow("pass deadline of 10 s reached");
  } finally {
    await new Promise((resolve) => mute.close(resolve));
  }
});
