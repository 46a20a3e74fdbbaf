import type { Socket } from "node:net";
import type { Client, SFTPWrapper } from "ssh2";
import { coalesceSftpRequests } from "../../agent/src/channelCoalescer";

/** Stands in for ssh2's protocol object: records every CHANNEL_DATA it is asked to send. */
function fakeConnection(packetSize = 100) {
  const sent: { channel: number; data: string; corked?: true }[] = [];
  let corks = 0;
  const socket = {
    cork: () => void corks++,
    uncork: () => void corks--,
  } as unknown as Socket;
  const protocol = {
    channelData(channel: number, data: Buffer | string) {
      sent.push({ channel, data: data.toString(), ...(corks > 0 ? { corked: true as const } : {}) });
    },
  };
  const client = { _protocol: protocol } as unknown as Client;
  const sftp = { outgoing: { id: 7, packetSize } } as unknown as SFTPWrapper;
  return { sent, protocol, client, sftp, socket, corks: () => corks };
}

const nextTick = () => new Promise<void>((resolve) => process.nextTick(resolve));

describe("coalesceSftpRequests", () => {
  it("sends the SFTP channel's writes of one tick as one message, in order, on a corked socket", async () => {
    const { sent, protocol, client, sftp, socket, corks } = fakeConnection();
    expect(coalesceSftpRequests(client, sftp, socket)).toBe(true);
    protocol.channelData(7, Buffer.from("open;"));
    protocol.channelData(7, Buffer.from("write;"));
    protocol.channelData(7, Buffer.from("read;"));
    expect(sent).toEqual([]);
    await nextTick();
    expect(sent).toEqual([{ channel: 7, data: "open;write;read;", corked: true }]);
    protocol.channelData(7, Buffer.from("close;"));
    await nextTick();
    expect(sent).toEqual([
      { channel: 7, data: "open;write;read;", corked: true },
      { channel: 7, data: "close;", corked: true },
    ]);
    expect(corks()).toBe(0);
  });

  it("never makes a message larger than the peer's maximum packet size", async () => {
    const { sent, protocol, client, sftp, socket } = fakeConnection(10);
    coalesceSftpRequests(client, sftp, socket);
    protocol.channelData(7, Buffer.from("aaaa"));
    protocol.channelData(7, Buffer.from("bbbbbb"));
    protocol.channelData(7, Buffer.from("c"));
    protocol.channelData(7, Buffer.from("dddddddddd"));
    await nextTick();
    expect(sent.map((s) => s.data)).toEqual(["aaaabbbbbb", "c", "dddddddddd"]);
  });

  it("flushes what is held before anything sent on another channel, so order is kept", async () => {
    const { sent, protocol, client, sftp, socket } = fakeConnection();
    coalesceSftpRequests(client, sftp, socket);
    protocol.channelData(7, Buffer.from("sftp-1;"));
    protocol.channelData(3, Buffer.from("other"));
    protocol.channelData(7, "text");
    await nextTick();
    expect(sent).toEqual([
      { channel: 7, data: "sftp-1;", corked: true },
      { channel: 3, data: "other" },
      { channel: 7, data: "text" },
    ]);
  });

  it("leaves a connection alone when ssh2's internals are not what it expects", () => {
    const { client, socket } = fakeConnection();
    expect(coalesceSftpRequests(client, {} as SFTPWrapper, socket)).toBe(false);
    expect(coalesceSftpRequests({} as Client, { outgoing: { id: 1, packetSize: 100 } } as unknown as SFTPWrapper, socket)).toBe(false);
  });
});

describe("the ssh2 this relies on", () => {
  it("is pinned to one exact version, and that version is the one installed", () => {
    const manifest = JSON.parse(require("node:fs").readFileSync(require("node:path").join(__dirname, "../../agent/package.json"), "utf8"));
    const pinned: string = manifest.dependencies.ssh2;
    expect(pinned).toMatch(/^\d+\.\d+\.\d+$/);
    expect(require("ssh2/package.json").version).toBe(pinned);
  });
});
