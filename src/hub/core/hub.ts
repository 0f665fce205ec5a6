/**
 * The Hub: the protocol-neutral core. It knows updates, topics, connections, subscribers, history
 * and grants, and nothing of HTTP: front-ends (Mercure, Centrifugo) translate a wire protocol to
 * its calls — `publish`, `connect` (a client connection: capacity), `join` (a subscriber: history,
 * replay, then live), `history` — and give it an Outlet per connection to write to. Fan-out from
 * the transport to the subscribers is here.
 */
import { EventEmitter } from 'node:events';
import type { SpanContext } from '@opentelemetry/api';
import type { Logger } from 'pino';
import { closeGracefully } from '../../server/stream-set.js';
import type { HubConfig } from '../config.js';
import { HubMetrics } from '../ops/metrics.js';
import type { Tracing } from '../ops/tracing.js';
import { type BasicTransport, type HistoryResult, isReady } from '../transports/transport.js';
import { Connection, type ConnectionHooks, type ConnectionInit } from './connection.js';
import { DrainingError, OverCapacityError } from './errors.js';
import { type JoinRequest, type Subscription, join } from './join.js';
import type { EndReason, Outlet } from './outlet.js';
import { type Presence, type PresenceEntry, newNodeId } from './presence.js';
import { LocalSignals, type NodeSignals } from './signals.js';
import { isExactSelector } from './selector.js';
import { Batch, type Subscriber } from './subscriber.js';
import { type Update, type UpdateInput, toUpdate, updateProblem } from './update.js';

export { Connection };

/** The release of a connection that counts against no address. */
const NOTHING_TO_RELEASE = (): void => {};

/** Connection ends remembered for the dashboard. */
const RECENT_ENDS = 50;

/** Poison entries whose refs are remembered, so that each is logged once (a resume may read one again and again). */
const POISON_REMEMBERED = 1000;

/** Subscribers served per turn of the event loop during a fan-out pass. */
const FAN_OUT_SLICE = 2000;

/** One ended connection, as the dashboard lists it. */
export interface ConnectionEnd {
  id: string;
  address: string;
  topics: number;
  reason: EndReason;
  durationMs: number;
  events: number;
  bytes: number;
  endedAt: number;
}

/** Why the hub is not ready, or `undefined` when it is. */
export type NotReady = 'draining' | 'transport-unavailable' | 'over-connection-budget' | undefined;

/** The signals a front-end (or an operator's code) can listen to. */
export interface HubEvents {
  /** A subscriber's history was replayed and it is live. */
  subscribed: [subscriber: Subscriber];
  /** A subscriber left (its connection ended, or it alone was unsubscribed), and why. */
  unsubscribed: [subscriber: Subscriber, reason: EndReason];
  /** A client connection ended (after its subscribers left), and why. */
  disconnected: [connection: Connection, reason: EndReason];
}

/** The open connections of a hub: what capacity counts and the drain closes. */
export class Connections implements Iterable<Outlet> {
  readonly #open = new Set<Outlet>();

  /** Open connections. */
  get size(): number {
    return this.#open.size;
  }

  /** Registers an open outlet; the hub removes it when its connection ends. */
  add(outlet: Outlet): void {
    if (outlet.open) this.#open.add(outlet);
  }

  /** Forgets an outlet that ended. */
  delete(outlet: Outlet): void {
    this.#open.delete(outlet);
  }

  [Symbol.iterator](): Iterator<Outlet> {
    return this.#open.values();
  }
}

/** The core of one hub process. */
export class Hub extends EventEmitter<HubEvents> {
  readonly config: HubConfig;
  readonly transport: BasicTransport;
  /** This process's ID in the cluster (presence, signals between nodes). */
  readonly node: string = newNodeId();
  readonly metrics = new HubMetrics();
  readonly log: Logger;
  /** OpenTelemetry spans, when `--tracing` is on. */
  tracing: Tracing | undefined;
  /** Who is subscribed to what across the cluster (set by `startHub`). */
  presence: Presence | undefined;
  /** Every open connection, for capacity and graceful shutdown. */
  readonly connections = new Connections();
  /** Subscribers, live or replaying. */
  readonly subscribers = new Set<Subscriber>();
  /** Open connections per client address (only counted when a per-address limit is set). */
  readonly perAddress = new Map<string, number>();
  /** When this hub started (ms since the epoch). */
  readonly startedAt = Date.now();
  /** The last connection ends, newest last (for the /ui dashboard). */
  readonly recentEnds: ConnectionEnd[] = [];
  #draining = false;
  #unsubscribe: () => void;
  /** Subscribers whose selectors are all exact topics, by topic: a pass visits only those an update names. */
  readonly #byTopic = new Map<string, Set<Subscriber>>();
  /** Subscribers with a template or `*` selector: every pass visits them. */
  readonly #anyTopic = new Set<Subscriber>();
  /** Updates dispatched since the current fan-out pass took its batch. */
  #batch: Update[] = [];
  #passScheduled = false;
  /** Poison entries already logged. */
  readonly #poisonLogged = new Set<string>();
  #stopPoison: (() => void) | undefined;
  readonly #afterDrain: (() => Promise<void>)[] = [];
  /** Subscribers counted in the metrics (joined, not yet left). */
  readonly #counted = new WeakSet<Subscriber>();
  #signals: NodeSignals | undefined;
  /** What a connection calls when it opens and ends: one object for all of them (closures per connection add up). */
  readonly #connectionHooks: ConnectionHooks = {
    opened: (connection) => this.#opened(connection),
    ended: (connection, reason, topics) => this.#ended(connection, reason, topics),
    leave: (subscriber, reason) => this.leave(subscriber, reason),
  };

  constructor(config: HubConfig, transport: BasicTransport, log: Logger) {
    super();
    this.config = config;
    this.transport = transport;
    this.log = log;
    this.#unsubscribe = transport.subscribe((update) => this.#enqueue(update));
    this.#stopPoison = transport.onPoison?.((entry) => this.#poisoned(entry.ref, entry.reason, 'transport'));
  }

  /** @deprecated The open connections under their former name; use `connections`. Kept for one release. */
  get streams(): Connections {
    return this.connections;
  }

  /** `true` once shutdown began: new connections are refused and readiness fails. */
  get draining(): boolean {
    return this.#draining;
  }

  /** Why the hub should not get traffic now, or `undefined`. */
  notReady(): NotReady {
    if (this.#draining) return 'draining';
    if (!isReady(this.transport)) return 'transport-unavailable';
    if (this.config.maxConnections > 0 && this.connections.size >= this.config.maxConnections) return 'over-connection-budget';
    return undefined;
  }

  /**
   * Checks, stores and dispatches an update; resolves with the update as stored (its `id` filled
   * in when none was given) once the transport has it. Rejects with InvalidUpdateError (nothing
   * stored), DuplicateIdError or TransportUnavailableError.
   */
  async publish(input: UpdateInput): Promise<Update> {
    const update = toUpdate(input);
    update.publishedAt = Date.now();
    await this.transport.dispatch(update);
    this.metrics.updatesPublished.inc();
    return update;
  }

  /**
   * Reads history after `lastEventId` through the transport, leaving out (and reporting) entries
   * that are not valid updates, so a resume over one neither fails nor stops there.
   */
  history(lastEventId: string, filter: (update: Update) => boolean): Promise<HistoryResult> {
    return this.transport.history(lastEventId, (update) => {
      const problem = updateProblem(update);
      if (problem === undefined) return filter(update);
      this.#poisoned(refOf(update), problem.message, 'history');
      return false;
    });
  }

  /**
   * The capacity checks, in one place, for a new connection from `address`: refused while
   * draining (DrainingError), over `--max-connections` or `--max-connections-per-ip`
   * (OverCapacityError). Admitted, it counts against its address until the returned function is
   * called (safe to call more than once); against the process once its outlet is `opened`.
   */
  admitConnection(address: string): () => void {
    if (this.#draining) throw new DrainingError();
    const { maxConnections, maxConnectionsPerIp } = this.config;
    if (maxConnections > 0 && this.connections.size >= maxConnections) {
      throw new OverCapacityError('node', `this hub process serves at most ${maxConnections} streams (--max-connections)`, 5 + Math.floor(Math.random() * 10));
    }
    if (maxConnectionsPerIp === 0) return NOTHING_TO_RELEASE;
    const n = this.perAddress.get(address) ?? 0;
    if (n >= maxConnectionsPerIp) throw new OverCapacityError('address', `address ${address} already has ${n} streams open (--max-connections-per-ip)`, 10);
    this.perAddress.set(address, n + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.perAddress.get(address) ?? 1) - 1;
      if (left <= 0) this.perAddress.delete(address);
      else this.perAddress.set(address, left);
    };
  }

  /**
   * A subscriber joins: capacity is checked, history after its last position is read, the
   * front-end opens its outlet (knowing whether history covered the resume), the history is
   * replayed at the client's pace while live updates wait, then it goes live. See core/join.ts.
   */
  join(request: JoinRequest): Promise<Subscription> {
    return join(this, request);
  }

  /**
   * A new client connection: capacity is checked here, once per connection whatever it carries
   * (DrainingError, OverCapacityError). It counts against its address from now on, against the
   * process once its outlet is attached (`Connection.attach`); it ends when that outlet closes.
   */
  connect(init: ConnectionInit): Connection {
    return new Connection(init, this.#connectionHooks, this.admitConnection(init.address));
  }

  /** Messages to and from the other nodes (the transport's, or this process's alone); opened on first use. */
  get signals(): NodeSignals {
    this.#signals ??= this.transport.signals?.(this.node) ?? new LocalSignals(this.node);
    return this.#signals;
  }

  /** Registers a subscriber (from now on it receives live updates, buffered until it goes live). */
  admit(subscriber: Subscriber): void {
    this.subscribers.add(subscriber);
    this.#index(subscriber, true);
  }

  /** Forgets a subscriber; safe to call more than once. */
  release(subscriber: Subscriber): void {
    if (!this.subscribers.delete(subscriber)) return;
    this.#index(subscriber, false);
  }

  /** Counts a subscriber whose outlet is open (the join calls this). */
  joined(subscriber: Subscriber): void {
    this.#counted.add(subscriber);
    this.metrics.subscriptions.inc(subscriber.selectors.length);
    this.metrics.clientSubscriptions.inc({ transport: subscriber.transport }, subscriber.selectors.length);
  }

  /**
   * A subscriber leaves — its connection ended, or it alone was unsubscribed: it is forgotten,
   * uncounted, and announced (`unsubscribed`). Safe to call more than once.
   */
  leave(subscriber: Subscriber, reason: EndReason): void {
    const known = this.subscribers.has(subscriber);
    this.release(subscriber);
    subscriber.connection?.subscribers.delete(subscriber);
    if (!this.#counted.has(subscriber)) return;
    this.#counted.delete(subscriber);
    this.metrics.subscriptions.dec(subscriber.selectors.length);
    this.metrics.clientSubscriptions.dec({ transport: subscriber.transport }, subscriber.selectors.length);
    subscriber.trace?.end(reason);
    if (known) this.emit('unsubscribed', subscriber, reason);
  }

  #opened(connection: Connection): void {
    this.connections.add(connection.outlet as Outlet);
    this.metrics.connections.inc();
    this.metrics.clientConnections.inc({ protocol: protocolLabel(connection.protocol), transport: connection.transport });
  }

  /** Records a connection that ended: counts it, logs one line, and tells the listeners. */
  #ended(connection: Connection, reason: EndReason, topics: number): void {
    const outlet = connection.outlet as Outlet;
    this.connections.delete(outlet);
    const durationMs = Date.now() - outlet.openedAt;
    this.recentEnds.push({ id: connection.id, address: connection.address, topics, reason, durationMs, events: outlet.eventsWritten, bytes: outlet.bytesWritten, endedAt: Date.now() });
    if (this.recentEnds.length > RECENT_ENDS) this.recentEnds.shift();
    this.metrics.connections.dec();
    this.metrics.clientConnections.dec({ protocol: protocolLabel(connection.protocol), transport: connection.transport });
    this.metrics.closed.inc({ reason });
    // An SSE connection of the Mercure front-end is a stream; other protocols' connections are named by their protocol.
    const sse = connection.protocol === 'sse';
    this.log.info(
      { conn: connection.id, protocol: connection.protocol, transport: connection.transport, addr: connection.address, topics, duration_ms: durationMs, bytes: outlet.bytesWritten, events: outlet.eventsWritten, reason },
      sse ? 'stream closed' : `${connection.protocol} connection closed`,
    );
    this.emit('disconnected', connection, reason);
  }

  /** The `seq` of the newest update ever stored in this epoch (0 when none), or -1 when the transport cannot tell. */
  async head(): Promise<bigint> {
    return (await this.transport.head?.()) ?? -1n;
  }

  /**
   * History after transport position `seq` (a Centrifugo offset), as `history` reads it after an
   * ID; `found` is false when something after it is gone, or when the transport cannot resume
   * from a position (then only a position at the head counts as covered).
   */
  async historyAfter(seq: bigint, filter: (update: Update) => boolean): Promise<HistoryResult> {
    const wrapped = (update: Update): boolean => {
      const problem = updateProblem(update);
      if (problem === undefined) return filter(update);
      this.#poisoned(refOf(update), problem.message, 'history');
      return false;
    };
    if (this.transport.historyAfter !== undefined) return this.transport.historyAfter(seq, wrapped);
    const head = await this.head();
    return { updates: [], found: head >= 0n && seq === head, head };
  }

  /**
   * The subscriptions of the whole cluster: this node's from its own subscribers (exact, even
   * during a replay), the other nodes' from presence. Filtered by selector or subscriber ID.
   */
  async listSubscriptions(filter: { topic?: string; subscriber?: string } = {}): Promise<PresenceEntry[]> {
    const node = this.presence?.node ?? this.node;
    const entries: PresenceEntry[] = [];
    for (const s of this.subscribers) {
      if (filter.subscriber !== undefined && s.id !== filter.subscriber) continue;
      for (const { value: topic, kind } of s.typedSelectors) {
        if (filter.topic === undefined || topic === filter.topic) entries.push({ subscriber: s.id, connection: s.connection?.id === s.id ? undefined : s.connection?.id, topic, kind, node, subject: s.subject, payload: s.payload, protocol: s.protocol, since: s.outlet?.openedAt ?? Date.now() });
      }
    }
    if (this.presence === undefined) return entries;
    for (const entry of await this.presence.list(filter)) if (entry.node !== node) entries.push(entry);
    return entries;
  }

  /**
   * Subscribers per exact topic, and how many subscribe with a template or `*` (for the /ui
   * dashboard). A subscriber with any template selector is counted with the latter only, as the
   * fan-out index files it.
   */
  topicCounts(): { topics: { topic: string; subscribers: number }[]; templateSubscribers: number } {
    const topics = [...this.#byTopic].map(([topic, set]) => ({ topic, subscribers: set.size }));
    topics.sort((a, b) => b.subscribers - a.subscribers || a.topic.localeCompare(b.topic));
    return { topics, templateSubscribers: this.#anyTopic.size };
  }

  /** Skips an entry that is not a valid update: counted every time, logged once per entry. */
  #poisoned(ref: string, reason: string, where: 'live' | 'history' | 'transport'): void {
    this.metrics.poison.inc({ where });
    if (this.#poisonLogged.has(ref)) return;
    if (this.#poisonLogged.size >= POISON_REMEMBERED) this.#poisonLogged.delete(this.#poisonLogged.values().next().value as string);
    this.#poisonLogged.add(ref);
    this.log.error({ update: ref, reason, where }, 'skipped an entry of the transport that is not a valid update');
  }

  /**
   * Fan-out is asynchronous and batched: the publisher is answered once its update is stored, and
   * a pass delivers every update dispatched since the last one. Updates that arrive while a pass
   * runs are coalesced into the next, so a subscriber gets them in one write (the kernel's write
   * per socket is what fan-out costs). A pass works in slices, yielding to the event loop so that
   * connections and publishes keep being accepted during a fan-out to many subscribers.
   */
  #enqueue(update: Update): void {
    const problem = updateProblem(update);
    if (problem !== undefined) {
      this.#poisoned(refOf(update), problem.message, 'live');
      return;
    }
    this.#batch.push(update);
    if (this.#passScheduled) return;
    this.#passScheduled = true;
    setImmediate(() => this.#pass());
  }

  #index(subscriber: Subscriber, add: boolean): void {
    // Typed: an exact Mercure 1.0 topic holding `{` is indexed as exact, unlike a draft-07 template.
    const exact = subscriber.typedSelectors.every(isExactSelector);
    if (!exact) {
      if (add) this.#anyTopic.add(subscriber);
      else this.#anyTopic.delete(subscriber);
      return;
    }
    for (const { value: topic } of subscriber.typedSelectors) {
      let set = this.#byTopic.get(topic);
      if (add) {
        if (set === undefined) this.#byTopic.set(topic, (set = new Set()));
        set.add(subscriber);
      } else if (set !== undefined) {
        set.delete(subscriber);
        if (set.size === 0) this.#byTopic.delete(topic);
      }
    }
  }

  /** The subscribers a batch may concern: those of its topics, and every one with a template or `*`. */
  #candidates(updates: readonly Update[]): Subscriber[] {
    const topics = new Set<string>();
    for (const update of updates) for (const topic of update.topics) topics.add(topic);
    if (topics.size === 1 && this.#anyTopic.size === 0) return [...(this.#byTopic.get(topics.values().next().value as string) ?? [])];
    const candidates = new Set(this.#anyTopic);
    for (const topic of topics) for (const subscriber of this.#byTopic.get(topic) ?? []) candidates.add(subscriber);
    return [...candidates];
  }

  #pass(): void {
    const updates = this.#batch;
    this.#batch = [];
    const batch = new Batch(updates);
    // A snapshot: a subscriber admitted during the pass starts from the next batch (its replay, if
    // any, covers these updates, as it would have without batching).
    const subscribers = this.#candidates(updates);
    let next = 0;
    let delivered = 0;
    const tracing = this.tracing;
    // With tracing on: per update, the connection spans it reached and how many there were.
    const reached = tracing === undefined ? undefined : updates.map(() => ({ contexts: [] as SpanContext[], count: 0 }));
    const slice = (): void => {
      const end = Math.min(next + FAN_OUT_SLICE, subscribers.length);
      for (; next < end; next++) {
        const subscriber = subscribers[next] as Subscriber;
        let written: number;
        try {
          written = subscriber.deliverBatch(batch);
        } catch (error) {
          // A bug, not input (updates are checked before they get here); but a throw inside this
          // pass would end the process and every connection with it. This subscriber alone is dropped.
          this.log.error({ err: error instanceof Error ? { message: error.message, stack: error.stack } : String(error), conn: subscriber.id }, 'delivery failed; closing the connection');
          subscriber.outlet?.destroy('error');
          continue;
        }
        delivered += written;
        if (reached !== undefined && written > 0) {
          updates.forEach((update, i) => {
            if (!subscriber.canReceive(update)) return;
            const r = reached[i] as { contexts: SpanContext[]; count: number };
            r.count++;
            if (subscriber.trace !== undefined) r.contexts.push(subscriber.trace.context);
          });
        }
      }
      if (next < subscribers.length) {
        setImmediate(slice);
        return;
      }
      this.metrics.deliveries.inc(delivered);
      if (tracing !== undefined && reached !== undefined) updates.forEach((update, i) => tracing.delivered(update, reached[i]?.contexts ?? [], reached[i]?.count ?? 0));
      const now = Date.now();
      for (const update of updates) if (update.publishedAt !== undefined) this.metrics.deliveryLatency.observe((now - update.publishedAt) / 1000);
      if (this.#batch.length > 0) setImmediate(() => this.#pass());
      else this.#passScheduled = false;
    };
    slice();
  }

  /** Registers work for the shutdown, run in order once the connections are drained and before the transport closes. */
  afterDrain(work: () => Promise<void>): void {
    this.#afterDrain.push(work);
  }

  /** Graceful shutdown: readiness off, connections closed in batches over the drain window, then the transport. */
  async shutdown(): Promise<void> {
    if (this.#draining) return;
    this.#draining = true;
    await closeGracefully(this.connections, { window: this.config.drainTimeout, reason: 'shutdown' });
    for (const work of this.#afterDrain) await work();
    await this.#signals?.close();
    this.#unsubscribe();
    this.#stopPoison?.();
    await this.transport.close();
  }
}

/** A connection's protocol as metrics label it: the Mercure front-end's subscribers say `sse`, from before there were others. */
function protocolLabel(protocol: string): string {
  return protocol === 'sse' ? 'mercure' : protocol;
}

/** How a log names an entry: its ID when it has a printable one. */
function refOf(update: Update): string {
  const id = (update as { id?: unknown }).id;
  return typeof id === 'string' && id !== '' ? id : `seq ${String(update.seq ?? '?')}`;
}
