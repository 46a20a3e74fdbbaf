import { createServer, connect, Server, Socket } from "node:net";

/**
 * A TCP proxy on 127.0.0.1 that the chaos suite puts between the agent and sshd, to break the
 * network on purpose. The SSH stream is encrypted, so faults are placed by byte counts, by time,
 * or on a signal from outside (the fake ERP seeing a file appear), never by reading the protocol.
 *
 *   cut after N bytes   a plan per connection: after N bytes (both directions counted) the
 *                       connection is closed or reset; the N-th byte is the last one forwarded
 *   black hole          nothing is forwarded either way and nothing is answered; sockets stay
 *                       open (like a partition where TCP keeps retransmitting). New connections
 *                       are accepted but never reach sshd. Lifting it lets held data through.
 *   reset / cut all     every open connection is reset (RST) or closed at once; data still held
 *                       back by `delayDownMs` is discarded, i.e. those replies are lost
 *   delayDownMs         server-to-client bytes are held this long, so a reply can be dropped
 *                       after the server acted on the request
 *   bytesPerSecond      a slow link: each direction of each connection carries at most this many
 *                       bytes a second; the sender is paused (TCP backpressure) while 64 KiB wait
 *   refuseNew           new connections are closed at once (an ERP that is down), open ones stay
 */
export interface Upstream {
  host: string;
  port: number;
}

export type CutStyle = "close" | "reset";

export interface CutPlan {
  afterBytes: number;
  style: CutStyle;
}

interface Link {
  id: number;
  client: Socket;
  server: Socket | undefined;
  bytes: number;
  plan: CutPlan | undefined;
  closed: boolean;
  /** The cut point was reached: nothing more is forwarded. */
  doomed: boolean;
  /** Client bytes that arrived before the upstream connection was open. */
  pendingUp: Buffer[];
  /** Bytes waiting for the bandwidth limit, per direction. */
  lanes: { up: Lane; down: Lane };
}

interface Lane {
  queue: Buffer[];
  queued: number;
  timer: NodeJS.Timeout | undefined;
  lastTick: number;
}

const newLane = (): Lane => ({ queue: [], queued: 0, timer: undefined, lastTick: 0 });
/** Queued bytes per direction above which the sending socket is paused. */
const LANE_HIGH_WATER = 64 * 1024;

export class TcpProxy {
  private readonly links = new Set<Link>();
  private blackholed = false;
  private nextId = 0;
  /** Hold server-to-client data this long (ms) before forwarding it. */
  delayDownMs = 0;
  /** Bandwidth of each direction of each connection (bytes a second); 0: unlimited. */
  bytesPerSecond = 0;
  /** Closes new connections at once instead of carrying them. */
  refuseNew = false;
  /** Decides, for each new connection, whether and where it will be cut. */
  planFor: ((connection: number) => CutPlan | undefined) | undefined;
  /** Connections accepted so far. */
  connections = 0;
  /** Faults actually carried out (cuts that happened, resets, black holes started). */
  faults = 0;
  bytesForwarded = 0;

  private constructor(
    private readonly server: Server,
    readonly port: number,
    private upstream: Upstream,
  ) {}

  static async start(upstream: Upstream): Promise<TcpProxy> {
    const server = createServer();
    const port = await new Promise<number>((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, "127.0.0.1", () => {
        const address = server.address();
        if (typeof address === "object" && address) resolve(address.port);
        else reject(new Error("the proxy got no port"));
      });
    });
    const proxy = new TcpProxy(server, port, upstream);
    server.on("connection", (client) => proxy.accept(client));
    return proxy;
  }

  /** Sends later connections elsewhere (e.g. to an impostor server on the "same address"). */
  setUpstream(upstream: Upstream): void {
    this.upstream = upstream;
  }

  get openConnections(): number {
    return this.links.size;
  }

  /**
   * Resolves once every connection has ended (or after `timeoutMs`): data held back from a dead
   * client has then reached the server, as it would once a partition heals.
   */
  async waitIdle(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.links.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  }

  /** Starts or ends a black hole. */
  blackhole(on: boolean): void {
    if (on === this.blackholed) return;
    this.blackholed = on;
    if (on) {
      this.faults++;
      for (const link of this.links) {
        link.client.pause();
        link.server?.pause();
      }
    } else {
      for (const link of this.links) {
        if (!link.server) this.connectUpstream(link);
        link.client.resume();
        link.server?.resume();
      }
    }
  }

  get isBlackholed(): boolean {
    return this.blackholed;
  }

  /** Resets (RST) every open connection; counts as one fault when there was one. */
  resetAll(): number {
    return this.killAll("reset");
  }

  /** Closes every open connection at once, dropping data held back by `delayDownMs`. */
  cutAll(): number {
    return this.killAll("close");
  }

  private killAll(style: CutStyle): number {
    const n = this.links.size;
    if (n > 0) this.faults++;
    for (const link of [...this.links]) this.kill(link, style);
    return n;
  }

  async stop(): Promise<void> {
    for (const link of [...this.links]) this.kill(link, "close");
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: Socket): void {
    if (this.refuseNew) return void client.destroy();
    const id = this.nextId++;
    this.connections++;
    const link: Link = { id, client, server: undefined, bytes: 0, plan: this.planFor?.(id), closed: false, doomed: false, pendingUp: [], lanes: { up: newLane(), down: newLane() } };
    this.links.add(link);
    client.setNoDelay(true);
    client.on("data", (chunk: Buffer) => this.carry(link, chunk, "up"));
    client.on("error", () => this.kill(link, "close"));
    client.on("close", () => this.kill(link, "close"));
    if (this.blackholed) client.pause();
    else this.connectUpstream(link);
  }

  private connectUpstream(link: Link): void {
    const server = connect(this.upstream.port, this.upstream.host);
    link.server = server;
    server.setNoDelay(true);
    server.on("connect", () => {
      for (const chunk of link.pendingUp.splice(0)) server.write(chunk);
    });
    server.on("data", (chunk: Buffer) => {
      if (this.delayDownMs > 0) {
        setTimeout(() => this.carry(link, chunk, "down"), this.delayDownMs);
      } else this.carry(link, chunk, "down");
    });
    server.on("error", () => this.kill(link, "close"));
    server.on("close", () => this.kill(link, "close"));
    if (this.blackholed) server.pause();
  }

  /** Forwards at once, or through the bandwidth limit. */
  private carry(link: Link, chunk: Buffer, direction: "up" | "down"): void {
    const lane = link.lanes[direction];
    if (this.bytesPerSecond <= 0 && lane.queued === 0) {
      this.forward(link, chunk, direction);
      return;
    }
    lane.queue.push(chunk);
    lane.queued += chunk.length;
    const source = direction === "up" ? link.client : link.server;
    if (lane.queued > LANE_HIGH_WATER) source?.pause();
    if (!lane.timer) {
      lane.lastTick = Date.now();
      lane.timer = setTimeout(() => this.drainLane(link, direction), 10);
    }
  }

  private drainLane(link: Link, direction: "up" | "down"): void {
    const lane = link.lanes[direction];
    lane.timer = undefined;
    if (link.closed) return;
    const now = Date.now();
    // Elapsed time, not the timer's nominal 10 ms: a loaded machine must not slow the link further.
    let allowance = this.bytesPerSecond > 0 ? Math.floor(((now - lane.lastTick) * this.bytesPerSecond) / 1000) : lane.queued;
    if (this.blackholed) allowance = 0;
    lane.lastTick = now;
    while (allowance > 0 && lane.queue.length > 0) {
      const head = lane.queue[0];
      const piece = head.length <= allowance ? head : head.subarray(0, allowance);
      if (piece === head) lane.queue.shift();
      else lane.queue[0] = head.subarray(allowance);
      lane.queued -= piece.length;
      allowance -= piece.length;
      this.forward(link, piece, direction);
    }
    const source = direction === "up" ? link.client : link.server;
    if (lane.queued <= LANE_HIGH_WATER && !this.blackholed) source?.resume();
    if (lane.queue.length > 0) lane.timer = setTimeout(() => this.drainLane(link, direction), 10);
  }

  private forward(link: Link, chunk: Buffer, direction: "up" | "down"): void {
    if (link.closed || link.doomed) return;
    let piece = chunk;
    let cutNow = false;
    if (link.plan && link.bytes + chunk.length >= link.plan.afterBytes) {
      piece = chunk.subarray(0, Math.max(0, link.plan.afterBytes - link.bytes));
      cutNow = true;
    }
    link.bytes += piece.length;
    this.bytesForwarded += piece.length;
    if (piece.length > 0) {
      if (direction === "down") link.client.write(piece);
      else if (link.server?.connecting === false) link.server.write(piece);
      else link.pendingUp.push(piece);
    }
    if (cutNow && link.plan) {
      this.faults++;
      const style = link.plan.style;
      link.doomed = true;
      // Let the last forwarded bytes leave before the connection goes.
      setImmediate(() => this.kill(link, style));
      link.plan = undefined;
    }
  }

  private kill(link: Link, style: CutStyle): void {
    if (link.closed) return;
    link.closed = true;
    for (const lane of [link.lanes.up, link.lanes.down]) clearTimeout(lane.timer);
    this.links.delete(link);
    for (const socket of [link.client, link.server]) {
      if (!socket || socket.destroyed) continue;
      if (style === "reset" && !socket.connecting) socket.resetAndDestroy();
      else socket.destroy();
    }
  }
}
