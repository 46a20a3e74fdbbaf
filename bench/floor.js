#!/usr/bin/env node
/*
 * The least a Node.js + ssh2 client can do to move order files over SFTP: the floor under
 * plutus-sync's speed on this machine, measured by bench/run.js beside the real agent. NOT a
 * delivery tool: no journal, no fsync, no crash recovery, no quarantine, no retries, no logs.
 *
 *   node bench/floor.js CONFIG.json [--coalesce] [--verify]
 *
 * CONFIG: { outbox, archive, host, port, username, privateKeyPath, hostKeySha256, staging, inbox,
 *           coalescerModule: agent/src/channelCoalescer.ts compiled to CommonJS }
 *
 * Per file, 64 files in flight like the agent: read it, OPEN a unique name in staging, WRITE,
 * CLOSE, RENAME into the inbox.
 *   --coalesce  SFTP requests of one tick share one SSH message (agent/src/channelCoalescer.ts)
 *   --verify    what the agent checks and keeps besides: JSON.parse of the content, SHA-256 of it,
 *               READ back (size + 1 bytes) and its SHA-256 compared, the local file renamed into the
 *               archive folder afterwards
 * Prints {"found":N,"delivered":N} like `plutus-sync run --json`; exits 1 on the first error.
 */
"use strict";
const fs = require("node:fs");
const path = require("node:path");
const net = require("node:net");
const crypto = require("node:crypto");
const { Client, utils } = require("ssh2");

const [configPath, ...flags] = process.argv.slice(2);
const config = JSON.parse(fs.readFileSync(configPath, "utf8"));
const coalesce = flags.includes("--coalesce");
const verify = flags.includes("--verify");
const IN_FLIGHT = 64;
const { OPEN_MODE } = utils.sftp;

const fail = (error) => {
  process.stderr.write(`floor: ${error.message}\n`);
  process.exit(1);
};

const names = fs.readdirSync(config.outbox).filter((name) => name.endsWith(".json"));
if (verify) fs.mkdirSync(config.archive, { recursive: true });
const socket = new net.Socket();
socket.setNoDelay(true);
const client = new Client();
client.on("error", fail);
client.on("ready", () =>
  client.sftp((error, sftp) => {
    if (error) return fail(error);
    // The agent's own module, compiled by bench/run.js (config.coalescerModule).
    if (coalesce && !require(config.coalescerModule).coalesceSftpRequests(client, sftp, socket)) {
      return fail(new Error("ssh2's internals are not what channelCoalescer.ts expects"));
    }
    let next = 0;
    let delivered = 0;
    const sendNext = () => {
      if (next >= names.length) return;
      const name = names[next++];
      const content = fs.readFileSync(path.join(config.outbox, name));
      let sha256;
      if (verify) {
        JSON.parse(content.toString("utf8"));
        sha256 = crypto.createHash("sha256").update(content).digest("hex");
      }
      const staging = `${config.staging}/floor-${crypto.randomUUID()}.part`;
      sftp.open(staging, OPEN_MODE.CREAT | OPEN_MODE.EXCL | OPEN_MODE.READ | OPEN_MODE.WRITE, { mode: 0o640 }, (error, handle) => {
        if (error) return fail(error);
        sftp.write(handle, content, 0, content.length, 0, (error) => error && fail(error));
        if (verify) {
          const back = Buffer.allocUnsafe(content.length + 1);
          sftp.read(handle, back, 0, back.length, 0, (error, bytesRead) => {
            if (error) return fail(error);
            const readBack = crypto.createHash("sha256").update(back.subarray(0, bytesRead)).digest("hex");
            if (bytesRead !== content.length || readBack !== sha256) fail(new Error(`${name}: read-back differs`));
          });
        }
        sftp.close(handle, (error) => {
          if (error) return fail(error);
          sftp.rename(staging, `${config.inbox}/${name}`, (error) => {
            if (error) return fail(error);
            if (verify) fs.renameSync(path.join(config.outbox, name), path.join(config.archive, name));
            if (++delivered === names.length) {
              process.stdout.write(JSON.stringify({ found: names.length, delivered }) + "\n");
              client.end();
            } else sendNext();
          });
        });
      });
    };
    if (names.length === 0) {
      process.stdout.write(JSON.stringify({ found: 0, delivered: 0 }) + "\n");
      return client.end();
    }
    for (let i = 0; i < IN_FLIGHT; i++) sendNext();
  }),
);
socket.connect({ host: config.host, port: config.port });
client.connect({
  sock: socket,
  username: config.username,
  privateKey: fs.readFileSync(config.privateKeyPath),
  hostVerifier: (key) => "SHA256:" + crypto.createHash("sha256").update(key).digest("base64").replace(/=+$/, "") === config.hostKeySha256,
  // The agent's choice (see agent/src/sftpSession.ts).
  algorithms: { cipher: ["aes128-ctr"], hmac: ["hmac-sha2-256-etm@openssh.com"] },
});
