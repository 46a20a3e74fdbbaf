import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { useErpStandIn, runAgent, lastJsonLine, sampleOrder, stagingFiles, logEvents } from "../support/agent";

// Win32-OpenSSH holds 256 descriptors in all and its 8.1 build does not announce limits@openssh.com,
// so the agent cannot know how many handles it may open. Here the real OpenSSH sftp-server plays
// it: its limits request denied (`internal-sftp -P limits`: nothing announced, the agent keeps its
// cap of 100) and its descriptors capped (prlimit on sshd, inherited by every session). Opens past
// what it holds fail with EMFILE, which sftp-server answers as SSH_FX_FAILURE.

const NOFILE = 40;
const ORDERS = 120;
const ctx = useErpStandIn({ sftpArgs: ["-P", "limits"] });

beforeAll(() => {
  const sshdPid = readFileSync(join(ctx.erp.root, "sshd.pid"), "utf8").trim();
  execFileSync("prlimit", ["--pid", sshdPid, `--nofile=${NOFILE}:${NOFILE}`]);
});

const sha = (data: string) => createHash("sha256").update(data).digest("hex");

it("a real sftp-server that runs out of descriptors and never said how many: refused opens are retried, every order delivered once in one pass", async () => {
  writeFileSync(ctx.local.configPath, JSON.stringify({ ...ctx.local.config, concurrency: 64, passDeadlineSeconds: 60 }));
  const sums = new Map<string, string>();
  for (let i = 0; i < ORDERS; i++) {
    const content = sampleOrder(i, i % 10 === 0 ? 40_000 : 2_000);
    ctx.local.writeOrder(`order-${i}.json`, content);
    sums.set(`order-${i}.json`, sha(content));
  }

  const run = await runAgent(["run", "--config", ctx.local.configPath, "--json"]);
  const events = logEvents(ctx.local.logDir);
  const short = events.filter((e) => e.event === "handles-short");
  process.stdout.write(`nofile ${NOFILE}, no limits announced: exit ${run.code}, ${JSON.stringify(short.map(({ refusedOpens, maxOpenHandles }) => ({ refusedOpens, maxOpenHandles })))}\n`);
  expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: "" });
  expect(lastJsonLine(run.stdout)).toMatchObject({ found: ORDERS, delivered: ORDERS, failed: 0 });
  // Nothing was announced, and the server did refuse opens: the agent learnt its real size.
  expect(events.filter((e) => e.event === "connected").map((e) => e.maxOpenHandles)).toEqual([100]);
  expect(short).toEqual([expect.objectContaining({ level: "warn", refusedOpens: expect.any(Number), maxOpenHandles: expect.any(Number) })]);
  expect(short[0].refusedOpens).toBeGreaterThan(0);
  expect(short[0].maxOpenHandles).toBeLessThan(NOFILE);

  // Exactly once: every order in the inbox under its name with its bytes, nothing else there,
  // nothing left in staging or the outbox.
  const inbox = readdirSync(ctx.erp.inboxDir).sort();
  expect(inbox).toEqual([...sums.keys()].sort());
  for (const name of inbox) expect(sha(readFileSync(join(ctx.erp.inboxDir, name), "utf8"))).toBe(sums.get(name));
  expect(stagingFiles(ctx.erp.stagingDir)).toEqual([]);
  expect(readdirSync(ctx.local.outbox)).toEqual([]);
  expect(readdirSync(ctx.local.archive).flatMap((day) => readdirSync(join(ctx.local.archive, day))).length).toBe(ORDERS);
}, 120_000);
