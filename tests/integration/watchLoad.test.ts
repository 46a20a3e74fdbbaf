import { execFileSync } from "node:child_process";
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, statSync, writeFileSync, writeSync } from "node:fs";
import { TcpProxy } from "../support/tcpProxy";
import { spawnWatch, startWatch, until, rewriteConfig, type WatchProcess } from "../support/watchProcess";
import { join } from "node:path";
import { useErpStandIn, sampleOrder } from "../support/agent";
import { freePort } from "../support/sshd";
import { loadConfig, readPrivateKey } from "../../agent/src/config";
import { createSilentLogger } from "../../agent/src/logger";
import { WarmLink } from "../../agent/src/warmLink";

/** Watch mode under load: a large outbox at start, growing files, a flapping ERP connection. */
const ctx = useErpStandIn();

async function stop(watch: WatchProcess): Promise<number | null> {
  if (watch.child.exitCode === null && watch.child.signalCode === null) watch.child.kill("SIGTERM");
  return (await watch.exited).code;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const configWith = (overrides: Record<string, unknown>) => rewriteConfig(ctx.local.configPath, overrides);

describe("watch mode under load", () => {
  it("SIGTERM during start-up with 100,000 files in the outbox and the ERP unreachable: exit 0 within 10 s", async () => {
    // chokidar's initial scan lstats every entry (about 4-10 s for this many files on a busy
    // 2-core machine; 10-30 s when it also watched each); the stop must not wait for it.
    const n = 100_000;
    for (let i = 0; i < n; i++) writeFileSync(join(ctx.local.outbox, `backlog-${i}.json`), "{}");
    const base = JSON.parse(readFileSync(ctx.local.configPath, "utf8"));
    const config = configWith({ remote: { ...base.remote, port: await freePort() } });
    const watch = spawnWatch(config);
    try {
      // Its first heartbeat is written once the watcher has begun starting up, after its SIGTERM
      // handler is in place; a fixed wait raced node's own start-up on a loaded machine.
      const heartbeat = join(ctx.local.stateDir, "watcher.json");
      await until(() => existsSync(heartbeat) && JSON.parse(readFileSync(heartbeat, "utf8")).pid === watch.child.pid, 60_000, () => `watch never began starting up: ${watch.stdout()} ${watch.stderr()}`);
      const started = Date.now();
      watch.child.kill("SIGTERM");
      // Bounded, so that a watcher that does not stop fails here with what it said.
      const ended = await Promise.race([watch.exited, new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 60_000).unref())]);
      const ms = Date.now() - started;
      process.stdout.write(`SIGTERM during start-up with ${n} files: exit ${ended?.code} after ${ms} ms\n`);
      expect({ ended: ended !== undefined, code: ended?.code, stopped: watch.stdout().includes("plutus-sync: watch stopped on SIGTERM; 0 delivered"), stderr: watch.stderr() }).toEqual({ ended: true, code: 0, stopped: true, stderr: "" });
      expect(ms).toBeLessThan(10_000);
      // Stopped during start-up (chokidar's scan of the outbox), not after it.
      expect(watch.stdout()).not.toContain("plutus-sync: watching");
      // A stop during start-up is still a clean stop: the heartbeat says so.
      expect(JSON.parse(readFileSync(join(ctx.local.stateDir, "watcher.json"), "utf8")).stoppedAt).toEqual(expect.any(String));
      expect(readdirSync(ctx.local.outbox)).toHaveLength(n);
    } finally {
      if (watch.child.exitCode === null && watch.child.signalCode === null) watch.child.kill("SIGKILL");
      await watch.exited;
    }
  }, 300_000);

  it("files growing in place to 9 MiB (an untrusted writer) do not hold up other orders (renamed-in orders within 1 s, one hiccup under 2 s allowed)", async () => {
    // Before: every event and recheck read and parsed the whole growing file on the event loop,
    // and orders renamed in meanwhile waited 2.7-5.2 s. Now a growing file costs one lstat per
    // look; it is read once, when it has settled.
    // The watcher and the ERP stand-in's sshd (whose sessions inherit it) run with the CPU a
    // service is given, not what the rest of a loaded CI machine (the other jest worker) leaves
    // them: the figure is the watcher's. Its own work (the stalls measured before) is not hidden.
    const sshdPid = readFileSync(join(ctx.erp.root, "sshd.pid"), "utf8").trim();
    execFileSync("renice", ["-n", "-10", "-p", sshdPid], { stdio: "ignore" });
    const watch = await startWatch(configWith({ minAgeSeconds: 60 }), { wrapper: ["nice", "-n", "-10"], startTimeoutMs: 30_000 });
    const producer = join(ctx.local.root, "producer");
    mkdirSync(producer);
    const latencies: number[] = [];
    const dropOrders = async (prefix: string, n: number) => {
      for (let i = 0; i < n; i++) {
        const name = `${prefix}-${i}.json`;
        writeFileSync(join(producer, name), sampleOrder(i));
        // Measured by the kernel's clock, from the order's last change just before it is renamed in
        // to its rename into the ERP inbox: this test process's own scheduling is not counted.
        const writtenAt = statSync(join(producer, name)).ctimeMs;
        renameSync(join(producer, name), join(ctx.local.outbox, name));
        await until(() => existsSync(join(ctx.erp.inboxDir, name)), 60_000, () => `${name} not delivered`);
        latencies.push(Math.round(statSync(join(ctx.erp.inboxDir, name)).ctimeMs - writtenAt));
        await sleep(100);
      }
    };
    try {
      await sleep(1_500);
      await dropOrders("quiet", 10);
      const quiet = latencies.splice(0);
      let writing = true;
      const writers = Array.from({ length: 4 }, async (_, w) => {
        const fd = openSync(join(ctx.local.outbox, `growing-${w}.json`), "w");
        writeSync(fd, '{"note":"');
        const chunk = "x".repeat(64 * 1024);
        for (let written = 0; writing && written < 9 * 1024 * 1024; written += chunk.length) {
          writeSync(fd, chunk);
          await sleep(20);
        }
        closeSync(fd);
      });
      await dropOrders("busy", 20);
      writing = false;
      await Promise.all(writers);
      process.stdout.write(`latency ms, quiet: ${quiet.join(" ")}; beside 4 files growing to 9 MiB: ${latencies.join(" ")}\n`);
      // On this loaded 2-core machine one order in a run can lose about a second to scheduling
      // alone (seen once in the quiet phase); the stalls measured before were 2.6-5.2 s.
      expect(latencies.filter((ms) => ms >= 1_000).length).toBeLessThanOrEqual(1);
      expect(Math.max(...latencies)).toBeLessThan(2_000);
      // The growing files are never JSON: not taken (the rescan quarantines them after minAgeSeconds).
      expect(readdirSync(ctx.local.outbox).sort()).toEqual(["growing-0.json", "growing-1.json", "growing-2.json", "growing-3.json"]);
      expect(readdirSync(ctx.erp.inboxDir)).toHaveLength(30);
    } finally {
      execFileSync("renice", ["-n", "0", "-p", sshdPid], { stdio: "ignore" });
      expect(await stop(watch)).toBe(0);
    }
  }, 180_000);

  it("a batch that reconnects its link after the idle check failed leaves one connection open, not two", async () => {
    // Before: the failed idle check dropped its RemoteLink without shutting it down; the batch
    // holding it reconnected it, the check connected a new one, and both stayed open for good.
    const proxy = await TcpProxy.start({ host: "127.0.0.1", port: ctx.erp.port });
    const base = JSON.parse(readFileSync(ctx.local.configPath, "utf8"));
    const config = await loadConfig(configWith({ remote: { ...base.remote, port: proxy.port } }));
    const warm = new WarmLink(config, await readPrivateKey(config.remote.privateKeyPath), createSilentLogger(), () => undefined, 100, 200);
    try {
      warm.start();
      await until(() => warm.connectionState === "connected", 20_000, () => `not connected: ${warm.connectionState}`);
      const heldByBatch = warm.current();
      // The ERP goes away: the idle check fails to reconnect.
      proxy.refuseNew = true;
      proxy.cutAll();
      await until(() => warm.connectionState === "disconnected", 20_000, () => `still ${warm.connectionState}`);
      proxy.refuseNew = false;
      // The batch retries a file over the link it holds, and the idle check reconnects too.
      await heldByBatch.session();
      await until(() => warm.connectionState === "connected", 20_000, () => `not reconnected: ${warm.connectionState}`);
      // Two that both stay open is the fault; one being replaced closes however slow the machine is.
      await until(() => proxy.openConnections === 1, 30_000, () => `${proxy.openConnections} connections open`);
    } finally {
      warm.close();
      await proxy.stop();
    }
  }, 60_000);
});
