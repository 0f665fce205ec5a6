/**
 * The Hub: subscribers, the transport, and the fan-out between them. HTTP lives in http.ts;
 * this file is the protocol's state and decisions.
 */
import type { SpanContext } from '@opentelemetry/api';
import type { Logger } from 'pino';
import type { CloseReason } from '../server/index.js';
import { StreamSet } from '../server/index.js';
import type { HubConfig } from './config.js';
import { HubMetrics } from './metrics.js';
import { isExactSelector } from './selector.js';
import { Batch, type Subscriber } from './subscriber.js';
import type { HistoryResult, Transport } from './transports/index.js';
import type { Tracing } from './tracing.js';
import { type Update, type UpdateInput, toUpdate, updateProblem } from './update.js';

/** Connection ends remembered for the dashboard. */
const RECENT_ENDS = 50;

/** One ended connection, as the dashboard lists it. */
export interface ConnectionEnd {
  id: string;
  address: string;
  topics: number;
  reason: CloseReason;
  durationMs: number;
  events: number;
  bytes: number;
  endedAt: number;
}

/** Poison entries whose refs are remembered, so that each is logged once (a resume may read one again and again). */
const POISON_REMEMBERED = 1000;

/** Subscribers served per turn of the event loop during a fan-out pass. */
const FAN_OUT_SLICE = 2000;

/** Why the hub is not ready, or `undefined` when it is. */
export type NotReady = 'draining' | 'transport-unavailable' | 'over-connection-budget' | undefined;

/** Hub state shared by the HTTP handlers. */
export class Hub {
  readonly config: HubConfig;
  readonly transport: Transport;
  readonly metrics = new HubMetrics();
  readonly log: Logger;
  /** OpenTelemetry spans, when `--tracing` is on. */
  tracing: Tracing | undefined;
  /** Every open stream, for broadcast-free bookkeeping and graceful shutdown. */
  readonly streams = new StreamSet();
  /** Subscribers, live or replaying. */
  readonly subscribers = new Set<Subscriber>();
  /** Open streams per client address (only counted when a per-address limit is set). */
  readonly perAddress = new Map<string, number>();
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

  constructor(config: HubConfig, transport: Transport, log: Logger) {
    this.config = config;
    this.transport = transport;
    this.log = log;
    this.#unsubscribe = transport.subscribe((update) => this.#enqueue(update));
    this.#stopPoison = transport.onPoison?.((entry) => this.#poisoned(entry.ref, entry.reason, 'transport'));
  }

  /** `true` once shutdown began: new subscriptions are refused and readiness fails. */
  get draining(): boolean {
    return this.#draining;
  }

  /** Why the hub should not get traffic now, or `undefined`. */
  notReady(): NotReady {
    if (this.#draining) return 'draining';
    if (!this.transport.ready()) return 'transport-unavailable';
    if (this.config.maxConnections > 0 && this.streams.size >= this.config.maxConnections) return 'over-connection-budget';
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

  /** Skips an entry that is not a valid update: counted every time, logged once per entry. */
  #poisoned(ref: string, reason: string, where: 'live' | 'history' | 'transport'): void {
    this.metrics.poison.inc({ where });
    if (this.#poisonLogged.has(ref)) return;
    if (this.#poisonLogged.size >= POISON_REMEMBERED) this.#poisonLogged.delete(this.#poisonLogged.values().next().value as string);
    this.#poisonLogged.add(ref);
    this.log.error({ update: ref, reason, where }, 'skipped an entry of the transport that is not a valid update');
  }

  /** Registers a subscriber (from now on it receives live updates, buffered until it goes live) and counts it against its address. */
  admit(subscriber: Subscriber): void {
    this.subscribers.add(subscriber);
    this.#index(subscriber, true);
    if (this.config.maxConnectionsPerIp > 0) this.perAddress.set(subscriber.address, (this.perAddress.get(subscriber.address) ?? 0) + 1);
  }

  /** Forgets a subscriber; safe to call more than once. */
  release(subscriber: Subscriber): void {
    if (!this.subscribers.delete(subscriber)) return;
    this.#index(subscriber, false);
    if (this.config.maxConnectionsPerIp === 0) return;
    const n = (this.perAddress.get(subscriber.address) ?? 1) - 1;
    if (n <= 0) this.perAddress.delete(subscriber.address);
    else this.perAddress.set(subscriber.address, n);
  }

  /** When this hub started (ms since the epoch). */
  readonly startedAt = Date.now();
  /** The last connection ends, newest last (for the /ui dashboard). */
  readonly recentEnds: ConnectionEnd[] = [];

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

  /** Records a stream that ended. */
  streamClosed(subscriber: Subscriber, reason: CloseReason, info: { bytes: number; events: number; openedAt: number }): void {
    this.recentEnds.push({ id: subscriber.id, address: subscriber.address, topics: subscriber.selectors.length, reason, durationMs: Date.now() - info.openedAt, events: info.events, bytes: info.bytes, endedAt: Date.now() });
    if (this.recentEnds.length > RECENT_ENDS) this.recentEnds.shift();
    this.release(subscriber);
    this.metrics.connections.dec();
    this.metrics.subscriptions.dec(subscriber.selectors.length);
    this.metrics.closed.inc({ reason });
    this.log.info(
      { conn: subscriber.id, addr: subscriber.address, topics: subscriber.selectors.length, duration_ms: Date.now() - info.openedAt, bytes: info.bytes, events: info.events, reason },
      'stream closed',
    );
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
    const exact = subscriber.selectors.every(isExactSelector);
    if (!exact) {
      if (add) this.#anyTopic.add(subscriber);
      else this.#anyTopic.delete(subscriber);
      return;
    }
    for (const topic of subscriber.selectors) {
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
          // pass would end the process and every stream with it. This subscriber alone is dropped.
          this.log.error({ err: error instanceof Error ? { message: error.message, stack: error.stack } : String(error), conn: subscriber.id }, 'delivery failed; closing the stream');
          subscriber.stream?.destroy('error');
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

  /** Graceful shutdown: readiness off, streams closed in batches over the drain window, then the transport. */
  async shutdown(): Promise<void> {
    if (this.#draining) return;
    this.#draining = true;
    await this.streams.close({ window: this.config.drainTimeout, reason: 'shutdown' });
    this.#unsubscribe();
    this.#stopPoison?.();
    await this.transport.close();
  }
}

/** How a log names an entry: its ID when it has a printable one. */
function refOf(update: Update): string {
  const id = (update as { id?: unknown }).id;
  return typeof id === 'string' && id !== '' ? id : `seq ${String(update.seq ?? '?')}`;
}
