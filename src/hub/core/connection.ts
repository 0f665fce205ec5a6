/**
 * A Connection: one client's connection to the hub, whatever its protocol. It is admitted once
 * (`Hub.connect`: draining, `--max-connections`, `--max-connections-per-ip`), counted once its
 * outlet is attached, and ended once, when that outlet closes. It holds the subscribers that came
 * over it: an SSE stream of the Mercure front-end is one connection with one subscriber; a
 * Centrifugo connection subscribes and unsubscribes channels while it stays open, one subscriber
 * each. A subscriber leaving (an unsubscribe) does not end its connection; the connection ending
 * ends every subscriber still on it.
 */
import type { EndReason, Outlet } from './outlet.js';
import type { Subscriber } from './subscriber.js';

/**
 * How the client's bytes travel: an SSE response, a WebSocket, or a streamed HTTP response. (In
 * this project "transport" alone is the history and dispatch backend; this is the client transport.)
 */
export type ClientTransport = 'sse' | 'websocket' | 'http_stream';

/** Every client transport, for metrics initialised at 0. */
export const CLIENT_TRANSPORTS: readonly ClientTransport[] = ['sse', 'websocket', 'http_stream'];

/** What a front-end says of a new connection. */
export interface ConnectionInit {
  /** Its ID (default: made by the caller of `Hub.connect`). */
  id: string;
  /** The client's address, for per-address limits and logs. */
  address: string;
  /** The front-end's protocol, as subscribers carry it (`sse` for Mercure, `centrifugo`). */
  protocol: string;
  transport: ClientTransport;
}

/** What the hub does when a connection opens and ends (see Hub.connect); one object for all its connections. */
export interface ConnectionHooks {
  opened(connection: Connection): void;
  ended(connection: Connection, reason: EndReason, topics: number): void;
  leave(subscriber: Subscriber, reason: EndReason): void;
}

/** One admitted client connection. */
export class Connection {
  readonly id: string;
  readonly address: string;
  readonly protocol: string;
  readonly transport: ClientTransport;
  /** Where its bytes go, once attached. */
  outlet: Outlet | undefined;
  /** Its subscribers, live or replaying. */
  readonly subscribers = new Set<Subscriber>();
  /** Why it ended, once it has. */
  endReason: EndReason | undefined;
  readonly #hooks: ConnectionHooks;
  /** Frees its place against the per-address limit; `undefined` once called. */
  #release: (() => void) | undefined;

  constructor(init: ConnectionInit, hooks: ConnectionHooks, release: () => void) {
    this.id = init.id;
    this.address = init.address;
    this.protocol = init.protocol;
    this.transport = init.transport;
    this.#hooks = hooks;
    this.#release = release;
  }

  /** `true` from `attach` until its outlet begins to close. */
  get open(): boolean {
    return this.outlet?.open === true && this.endReason === undefined;
  }

  /** When it opened (its outlet's), or now before it has one. */
  get openedAt(): number {
    return this.outlet?.openedAt ?? Date.now();
  }

  /** Gives the connection its outlet: from now on it counts, and it ends when the outlet closes. */
  attach(outlet: Outlet): void {
    if (this.outlet !== undefined) throw new Error(`connection ${this.id} already has an outlet`);
    this.outlet = outlet;
    this.#hooks.opened(this);
    // `on`, not `once`: an outlet closes once, and a once-wrapper per connection costs memory.
    outlet.on('close', (reason) => this.#end(reason));
  }

  /** Gives up a connection that never got an outlet (its join failed): frees its place. Safe to call twice. */
  abandon(): void {
    if (this.outlet !== undefined) return;
    this.#free();
  }

  #end(reason: EndReason): void {
    if (this.endReason !== undefined) return;
    this.endReason = reason;
    let topics = 0;
    for (const subscriber of this.subscribers) topics += subscriber.selectors.length;
    for (const subscriber of [...this.subscribers]) this.#hooks.leave(subscriber, reason);
    this.subscribers.clear();
    this.#free();
    this.#hooks.ended(this, reason, topics);
  }

  #free(): void {
    const release = this.#release;
    this.#release = undefined;
    release?.();
  }
}
