// A loopback TCP proxy for chaos tests: sits between a client and a server and, on command,
// drops connections, stalls them (a path that silently stopped forwarding), half-closes them, or
// lets bytes through untouched.
import { type AddressInfo, type Server, type Socket, connect, createServer } from 'node:net';

/** Which way bytes stop: client → server (`upstream`), server → client (`downstream`), or `both`. */
export type Direction = 'upstream' | 'downstream' | 'both';

/** Which end of each connection a half-close ends: the socket towards the `client` or towards the `server`. */
export type Side = 'client' | 'server';

/** One proxied connection: the accepted client socket and the socket to the target. */
class Pipe {
  readonly client: Socket;
  readonly server: Socket;
  /** Stalled directions; a stalled direction's source is not read, so its bytes wait in kernel buffers and, past them, in the sender. */
  stalled: { upstream: boolean; downstream: boolean };
  #awaitingDrain = { upstream: false, downstream: false };

  constructor(client: Socket, server: Socket, stalled: { upstream: boolean; downstream: boolean }) {
    this.client = client;
    this.server = server;
    this.stalled = { ...stalled };
    // Paused before the 'data' listeners are added, which would otherwise start the flow.
    client.pause();
    server.pause();
    this.#forward('upstream', client, server);
    this.#forward('downstream', server, client);
    this.sync('upstream');
    this.sync('downstream');
  }

  /** Stops or restarts reading the source of one direction, from the stall and backpressure state. */
  sync(direction: 'upstream' | 'downstream'): void {
    const source = direction === 'upstream' ? this.client : this.server;
    if (this.stalled[direction] || this.#awaitingDrain[direction]) source.pause();
    else source.resume();
  }

  /** Cuts both sockets with a TCP reset, as a crashed middlebox or a lost NAT entry does. */
  reset(): void {
    for (const socket of [this.client, this.server]) if (!socket.destroyed) socket.resetAndDestroy();
  }

  #forward(direction: 'upstream' | 'downstream', from: Socket, to: Socket): void {
    from.on('data', (chunk: Buffer) => {
      if (to.write(chunk)) return;
      this.#awaitingDrain[direction] = true;
      this.sync(direction);
    });
    to.on('drain', () => {
      this.#awaitingDrain[direction] = false;
      this.sync(direction);
    });
    // A FIN is forwarded as a FIN: each direction closes on its own, as on a real path.
    from.on('end', () => to.end());
  }
}

/** A running proxy. Create it with `startTcpProxy`. */
export class TcpProxy {
  /** The port it listens on (127.0.0.1). */
  readonly port: number;
  #server: Server;
  #pipes = new Set<Pipe>();
  #accepted = 0;
  /** Directions stalled for connections accepted from now on (set by `stall(…, { newConnections: true })`). */
  #stallNew = { upstream: false, downstream: false };

  /** @internal Use `startTcpProxy`. */
  constructor(server: Server, targetPort: number, targetHost: string) {
    this.#server = server;
    this.port = (server.address() as AddressInfo).port;
    server.on('connection', (client) => {
      this.#accepted++;
      const upstream = connect({ port: targetPort, host: targetHost, allowHalfOpen: true });
      const pipe = new Pipe(client, upstream, this.#stallNew);
      this.#pipes.add(pipe);
      // A reset on one side is passed on as a reset; a clean close waits for the other side to
      // finish by itself (its FIN was already forwarded), so bytes in flight are not cut off.
      let open = 2;
      for (const socket of [client, upstream]) {
        socket.on('error', () => pipe.reset());
        socket.on('close', () => {
          if (--open === 0) this.#pipes.delete(pipe);
        });
      }
    });
  }

  /** Connections accepted since the proxy started. */
  get connections(): number {
    return this.#accepted;
  }

  /** Connections open now. */
  get active(): number {
    return this.#pipes.size;
  }

  /** Cuts every open connection at once with a TCP reset to both ends. Returns how many. */
  drop(): number {
    const n = this.#pipes.size;
    for (const pipe of this.#pipes) pipe.reset();
    return n;
  }

  /**
   * Stops forwarding in `direction` while keeping every socket open: neither end is told anything,
   * like a proxy or NAT that silently lost the connection. Bytes are held back, not discarded
   * (the source is simply not read), so `resume()` delivers them late, like a path that heals.
   * By default connections accepted during the stall are stalled too (the path is down);
   * `newConnections: false` stalls only the connections open now.
   */
  stall(direction: Direction = 'both', options: { newConnections?: boolean } = {}): void {
    const ways = direction === 'both' ? (['upstream', 'downstream'] as const) : ([direction] as const);
    for (const way of ways) {
      if (options.newConnections !== false) this.#stallNew[way] = true;
      for (const pipe of this.#pipes) {
        pipe.stalled[way] = true;
        pipe.sync(way);
      }
    }
  }

  /** Ends every stall: open connections forward again (held-back bytes first), new ones pass through. */
  resume(): void {
    this.#stallNew = { upstream: false, downstream: false };
    for (const pipe of this.#pipes) {
      pipe.stalled = { upstream: false, downstream: false };
      pipe.sync('upstream');
      pipe.sync('downstream');
    }
  }

  /**
   * Sends a FIN on one side of every open connection, as if the other peer had finished: `client`
   * ends the socket towards the client (it sees a clean end of stream while the server still
   * thinks it is connected), `server` ends the socket towards the server. The other direction
   * keeps flowing.
   */
  halfClose(side: Side): number {
    const n = this.#pipes.size;
    for (const pipe of this.#pipes) (side === 'client' ? pipe.client : pipe.server).end();
    return n;
  }

  /** Stops listening and destroys every connection. */
  async close(): Promise<void> {
    this.drop();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

/** Starts a proxy on 127.0.0.1 (a free port) forwarding every connection to `targetHost:targetPort`. */
export async function startTcpProxy(targetPort: number, targetHost = '127.0.0.1'): Promise<TcpProxy> {
  const server = createServer({ allowHalfOpen: true, pauseOnConnect: true });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  return new TcpProxy(server, targetPort, targetHost);
}
