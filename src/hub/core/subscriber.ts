/**
 * A Subscriber: a set of subscriptions (topic selectors) of one connected client, with what its
 * token lets it read. While its history is being replayed, live updates wait in a buffer; once the
 * replay is written they are flushed, skipping those the replay already covered, so the client
 * sees neither a gap nor a duplicate.
 */
import type { ConnectionTrace } from '../ops/tracing.js';
import type { ClientTransport, Connection } from './connection.js';
import { type Encoder, SSE_ENCODER, joinEncoded } from './encoder.js';
import type { Outlet } from './outlet.js';
import type { Grant } from './grant.js';
import { type Matcher, type Selector, type SelectorLike, compile, matchesAny, toSelector } from './selector.js';
import type { Update } from './update.js';

/**
 * The updates of one fan-out pass, with their encodings joined once per encoder: a subscriber
 * that receives all of them (the usual case) gets these very bytes in one write, and so does
 * every other subscriber with the same wire format.
 */
export class Batch {
  readonly updates: Update[];
  #all: Buffer | undefined;
  #byEncoder: Map<Encoder, Buffer> | undefined;

  constructor(updates: Update[]) {
    this.updates = updates;
  }

  /** Every update's SSE event, in order, as one buffer (built on first use). */
  get all(): Buffer {
    this.#all ??= joinEncoded(SSE_ENCODER, this.updates);
    return this.#all;
  }

  /** Every update encoded by `encoder`, in order, as one buffer (built on first use per encoder). */
  bytes(encoder: Encoder): Buffer {
    if (encoder === SSE_ENCODER) return this.all;
    let bytes = this.#byEncoder?.get(encoder);
    if (bytes === undefined) {
      bytes = joinEncoded(encoder, this.updates);
      (this.#byEncoder ??= new Map()).set(encoder, bytes);
    }
    return bytes;
  }
}

/** The subscriptions of one connected client. */
export class Subscriber {
  /** `urn:uuid:…`, used in subscription events, logs and presence. */
  readonly id: string;
  /** The topic selectors of the request (its subscriptions), as text. */
  readonly selectors: string[];
  /** The same selectors, typed (how each is matched). */
  readonly typedSelectors: readonly Selector[];
  /** What its token grants (`undefined`: anonymous). */
  readonly grant: Grant | undefined;
  /** The client's address. */
  readonly address: string;
  /** The wire protocol it came with (`sse` for the Mercure front-end, `centrifugo`). */
  readonly protocol: string;
  /** How its client's bytes travel (`sse`, `websocket`, `http_stream`). */
  readonly transport: ClientTransport;
  /** The connection it came over (set by the join). */
  connection: Connection | undefined;
  /** How its updates are written. */
  readonly encoder: Encoder;
  /** `mercure.payload` of its token. */
  readonly payload: unknown;
  /** The `sub` claim of its token, when it has one. */
  readonly subject: string | undefined;
  /** Where its events are written; set once the connection is open. */
  outlet: Outlet | undefined;
  /** Its connection span, when tracing is on. */
  trace: ConnectionTrace | undefined;
  #matchers: Matcher[];
  #privateMatchers: Matcher[];
  #accepts: ((update: Update) => boolean) | undefined;
  #pending: Update[] | undefined = [];
  #overflowed = false;
  #maxPending: number;
  /** The transport position its replay covered: a later-delivered update at or before it was already written. */
  #head = -1n;

  /** @deprecated The outlet under its former name (an SSE stream); use `outlet`. Kept for one release. */
  get stream(): Outlet | undefined {
    return this.outlet;
  }
  set stream(outlet: Outlet | undefined) {
    this.outlet = outlet;
  }

  constructor(init: {
    id: string;
    selectors: SelectorLike[];
    privateMatchers: Matcher[];
    address: string;
    payload: unknown;
    maxPending: number;
    protocol?: string | undefined;
    transport?: ClientTransport | undefined;
    encoder?: Encoder | undefined;
    grant?: Grant | undefined;
    accepts?: ((update: Update) => boolean) | undefined;
    subject?: string | undefined;
  }) {
    this.id = init.id;
    this.subject = init.subject;
    this.protocol = init.protocol ?? 'sse';
    this.transport = init.transport ?? 'sse';
    this.encoder = init.encoder ?? SSE_ENCODER;
    this.typedSelectors = init.selectors.map(toSelector);
    this.selectors = this.typedSelectors.map((s) => s.value);
    this.grant = init.grant;
    this.#accepts = init.accepts;
    this.address = init.address;
    this.payload = init.payload;
    this.#matchers = this.typedSelectors.map(compile);
    this.#privateMatchers = init.privateMatchers;
    this.#maxPending = init.maxPending;
  }

  /**
   * Whether this subscriber may receive `update`: one of its topics matches a selector of the
   * request, and, for a private update, one also matches the token's `mercure.subscribe`; and the
   * front-end's own filter, if it gave one, lets it through.
   */
  canReceive(update: Update): boolean {
    if (!matchesAny(update.topics, this.#matchers)) return false;
    if (this.#accepts !== undefined && !this.#accepts(update)) return false;
    return !update.private || matchesAny(update.topics, this.#privateMatchers);
  }

  /**
   * Hands a live update to the subscriber: buffered during replay, written afterwards. `bytes` is
   * the update as its encoder makes it, encoded once by the caller for every subscriber. Returns
   * `true` if written.
   */
  deliver(update: Update, bytes?: Uint8Array): boolean {
    if (this.#pending !== undefined) {
      if (!this.canReceive(update)) return false;
      // A replay that takes long while updates pour in is a slow consumer too: past the bound the
      // buffer stops growing and the stream is dropped as soon as it exists, to resume later.
      if (this.#pending.length >= this.#maxPending) this.#overflowed = true;
      else this.#pending.push(update);
      return false;
    }
    if (this.outlet === undefined || !this.#wants(update)) return false;
    return this.outlet.write(bytes ?? this.encoder.encode(update));
  }

  /**
   * A live update it may receive and has not had yet. Fan-out runs in passes after dispatch, so an
   * update its replay already wrote can still reach it from a pass that began before it went live.
   */
  #wants(update: Update): boolean {
    return (update.seq === undefined || update.seq > this.#head) && this.canReceive(update);
  }

  /** Hands a fan-out pass's updates to the subscriber in one write, skipping those it may not receive. Returns how many were written. */
  deliverBatch(batch: Batch): number {
    const updates = batch.updates;
    if (updates.length === 1) return this.deliver(updates[0] as Update, batch.bytes(this.encoder)) ? 1 : 0;
    if (this.#pending !== undefined) {
      for (const update of updates) this.deliver(update);
      return 0;
    }
    if (this.outlet === undefined) return 0;
    let matching: Update[] | undefined;
    for (let i = 0; i < updates.length; i++) {
      const update = updates[i] as Update;
      if (this.#wants(update)) matching?.push(update);
      // The first update it may not receive: from here on, collect the ones it may.
      else matching ??= updates.slice(0, i);
    }
    if (matching === undefined) return this.outlet.write(batch.bytes(this.encoder), updates.length) ? updates.length : 0;
    if (matching.length === 0) return 0;
    return this.outlet.write(joinEncoded(this.encoder, matching), matching.length) ? matching.length : 0;
  }

  /** Ends the replay: writes the buffered live updates that come after `head`, then goes live. Returns how many were written. */
  goLive(head: bigint): number {
    const pending = this.#pending ?? [];
    this.#pending = undefined;
    this.#head = head;
    if (this.#overflowed) {
      this.outlet?.destroy('slow-consumer');
      return 0;
    }
    let written = 0;
    for (const update of pending) {
      if ((update.seq ?? 0n) <= head) continue;
      if (this.outlet?.write(this.encoder.encode(update))) written++;
    }
    return written;
  }
}
