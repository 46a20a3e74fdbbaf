import type { Socket } from "node:net";
import type { Client, SFTPWrapper } from "ssh2";

/**
 * The parts of ssh2's internals this module relies on (ssh2 is pinned to an exact version in
 * agent/package.json for this reason). They are not public API, so
 * `coalesceSftpRequests` checks them and leaves the connection alone when they are not there.
 */
interface Ssh2Protocol {
  channelData(channel: number, data: Buffer | string): void;
}
interface Ssh2SftpOutgoing {
  id: number;
  packetSize: number;
}

/**
 * Makes SFTP requests issued in the same tick leave in one SSH CHANNEL_DATA message.
 *
 * ssh2 sends every SFTP request as its own SSH packet, and each packet costs, in JavaScript,
 * random padding, a cipher call and a new HMAC on both ends. An order takes five small requests,
 * so with 64 orders in flight that per-packet cost was the largest share of the agent's CPU.
 * SFTP runs over the channel as a byte stream (draft-ietf-secsh-filexfer-02 §3, RFC 4254 §5.2):
 * a message may hold several requests, and sftp-server reads them all and answers them in one
 * write. ssh2 has already charged each request against the peer's window and kept it within the
 * peer's maximum packet size, so requests are only joined while the total stays within that size.
 *
 * The socket is corked while the message is sent: ssh2 writes a packet's length, ciphertext and
 * MAC separately, and TCP_NODELAY would put each in a segment of its own.
 *
 * Returns false when ssh2's internals are not what this expects (the session then works as is).
 */
export function coalesceSftpRequests(client: Client, sftp: SFTPWrapper, socket: Socket): boolean {
  const protocol = (client as unknown as { _protocol?: Ssh2Protocol })._protocol;
  const outgoing = (sftp as unknown as { outgoing?: Ssh2SftpOutgoing }).outgoing;
  if (typeof protocol?.channelData !== "function" || typeof outgoing?.id !== "number" || !(outgoing.packetSize > 0)) return false;

  const send = protocol.channelData.bind(protocol);
  const channel = outgoing.id;
  const maxBytes = outgoing.packetSize;
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let flushScheduled = false;

  const flush = (): void => {
    flushScheduled = false;
    if (pendingBytes === 0) return;
    const data = pending.length === 1 ? pending[0] : Buffer.concat(pending, pendingBytes);
    pending = [];
    pendingBytes = 0;
    socket.cork();
    try {
      send(channel, data);
    } finally {
      socket.uncork();
    }
  };

  protocol.channelData = (target: number, data: Buffer | string): void => {
    if (target !== channel || typeof data === "string") {
      flush();
      send(target, data);
      return;
    }
    if (pendingBytes + data.length > maxBytes) flush();
    pending.push(data);
    pendingBytes += data.length;
    if (!flushScheduled) {
      flushScheduled = true;
      // After the current promise jobs: the workers' next requests are issued in them.
      process.nextTick(flush);
    }
  };
  return true;
}
