import { HostileReplyError } from "../../agent/src/errors";
import { chunkBytesFor, inOrderWithin, MAX_REQUESTS_IN_FLIGHT_PER_FILE } from "../../agent/src/sftpSession";

describe("limits a server announces (limits@openssh.com)", () => {
  it("a max-read-length of 1 byte is refused as hostile", () => {
    const refuse = () => chunkBytesFor({ _maxReadLen: 1, _maxWriteLen: 261_120 }, "erp@host:22");
    expect(refuse).toThrow(HostileReplyError);
    expect(refuse).toThrow("erp@host:22 announced a max-read-length of 1 bytes (limits@openssh.com), less than the 4096 any server takes; refused");
  });

  it("limits from 4 KiB up are taken, capped at 30 KiB; none announced is 30 KiB", () => {
    expect(chunkBytesFor({ _maxReadLen: 4096, _maxWriteLen: 8192 }, "x")).toBe(4096);
    expect(chunkBytesFor({ _maxReadLen: 261_120, _maxWriteLen: 261_120 }, "x")).toBe(30 * 1024);
    expect(chunkBytesFor({}, "x")).toBe(30 * 1024);
  });
});

describe("inOrderWithin", () => {
  it("starts tasks in order with never more than the limit unsettled", async () => {
    const send = inOrderWithin(MAX_REQUESTS_IN_FLIGHT_PER_FILE);
    let running = 0;
    let most = 0;
    const started: number[] = [];
    const outcomes = await Promise.all(
      Array.from({ length: 1000 }, (_, i) =>
        send(async () => {
          started.push(i);
          most = Math.max(most, ++running);
          await new Promise((resolve) => setImmediate(resolve));
          running--;
          if (i === 7) throw new Error("seven");
          return i;
        }).catch((error: Error) => error.message),
      ),
    );
    expect(most).toBe(MAX_REQUESTS_IN_FLIGHT_PER_FILE);
    expect(started).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    expect(outcomes[7]).toBe("seven");
    expect(outcomes[999]).toBe(999);
  });
});
