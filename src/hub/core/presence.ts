/**
 * Presence: who is subscribed to which topic, across every node of the cluster, and the events
 * that follow from it (a subscriber came or went, a topic got its first subscriber or lost its
 * last) — each decided once for the whole cluster, not once per node.
 *
 * A PresenceStore keeps the entries where every node can read them (Redis, NATS key-value; in
 * memory for one node). Each node holds a lease it refreshes on a heartbeat; the entries of a node
 * whose lease ran out (it died, or was cut off) are claimed by exactly one live node, which
 * removes them and announces what that means: no ghosts after `--presence-ttl`.
 *
 * A topic's occupancy changes by compare-and-set on its state in the store, so when two nodes
 * take a topic's first subscriber (or lose its last) at once, one of them wins and tells.
 * Vacating waits `vacateDelay` and looks again, so a client that reconnects does not make a topic
 * flap empty and occupied.
 *
 * At 100,000 subscribers a node cannot afford a few store round trips per subscriber, one after
 * the other: joins and leaves are written in batches (everything that came while the previous
 * batch was being written: one `add` for all its entries), and a topic's occupancy is only looked
 * at when this node's first subscriber of it comes or its last goes (while this node holds one,
 * the topic is occupied).
 */
import { EventEmitter } from 'node:events';
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import type { Selector, SelectorKind } from './selector.js';

/** One subscription of one subscriber, as the cluster sees it. */
export interface PresenceEntry {
  /** The subscriber's ID. */
  subscriber: string;
  /** The ID of the client connection it came over, when it differs (a Centrifugo client's, with one subscriber per channel). */
  connection?: string | undefined;
  /** The selector it subscribed with (an exact topic, a template, `*`, a URL pattern). */
  topic: string;
  /**
   * How `topic` is read (a Mercure 1.0 `match` holding `{` is exact, a `match_urlpattern` a URL
   * pattern). Absent: as draft-07 reads a bare string (entries written before it was recorded).
   */
  kind?: SelectorKind | undefined;
  /** The node holding its connection. */
  node: string;
  /** The `sub` claim of its token, when it has one. */
  subject?: string | undefined;
  /** `mercure.payload` of its token, when it has one. */
  payload?: unknown;
  /** The wire protocol it came with. */
  protocol: string;
  /** When it subscribed (ms since the epoch). */
  since: number;
}

/** The entries of a node whose lease ran out, claimed by the caller alone. */
export interface LostNode {
  node: string;
  entries: PresenceEntry[];
}

/** A topic's occupancy in the cluster. */
export type Occupancy = 'occupied' | 'vacated';

/** Where presence is kept: one store per node, all reading the same data. */
export interface PresenceStore {
  /** Records subscriptions of this node (one entry per selector of a subscriber). */
  add(entries: readonly PresenceEntry[]): Promise<void>;
  /** Forgets the subscriptions of one subscriber of this node. */
  remove(subscriber: string, topics: readonly string[]): Promise<void>;
  /** Every live entry of the cluster, optionally for one topic (selector) or one subscriber. */
  list(filter?: { topic?: string; subscriber?: string }): Promise<PresenceEntry[]>;
  /** How many live subscriptions `topic` (a selector) has across the cluster. */
  count(topic: string): Promise<number>;
  /** Sets `topic`'s occupancy from `from` to `to` if it is `from` now (a topic never seen is `vacated`); `true` when this call changed it. */
  transition(topic: string, from: Occupancy, to: Occupancy): Promise<boolean>;
  /**
   * Refreshes this node's lease, and claims the nodes whose lease ran out: each lost node is
   * returned to exactly one caller in the cluster, its entries already removed. `renewed` is
   * `false` when this node's own lease had run out (its entries may have been claimed: add them again).
   */
  heartbeat(): Promise<{ renewed: boolean; lost: LostNode[] }>;
  /** Removes this node's entries and lease (a clean shutdown) and stops. */
  close(): Promise<void>;
}

/** What presence tells its listeners; each is decided once per cluster. */
export type PresenceEvent =
  | { type: 'subscriber.connected'; subscriber: string; topics: string[]; subject: string | undefined; node: string; protocol: string }
  | { type: 'subscriber.disconnected'; subscriber: string; topics: string[]; subject: string | undefined; node: string; protocol: string; reason: string }
  | { type: 'topic.occupied'; topic: string; subscriber: string; subject: string | undefined; node: string }
  | { type: 'topic.vacated'; topic: string; subscriber: string; subject: string | undefined; node: string };

/** Events of a Presence. */
export interface PresenceEvents {
  event: [event: PresenceEvent];
  /** The entries of a lost node, after they were removed (for protocol-specific clean-up, e.g. subscription events). */
  lost: [lost: LostNode];
}

/** A node ID: the host, the process and a random part (a restarted process is another node). */
export function newNodeId(): string {
  return `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
}

/** Joins and leaves written by one store call at most (a script call for thousands of entries holds Redis up for a while). */
const BATCH = 500;

/** A join or a leave waiting for its batch. */
type Change =
  | { kind: 'join'; subscriber: string; entries: PresenceEntry[]; topics: string[]; info: { subject: string | undefined; protocol: string }; occupy: string[] }
  | { kind: 'leave'; subscriber: string; entries: PresenceEntry[]; reason: string; vacate: string[] };

/** The presence of one node in the cluster. */
export class Presence extends EventEmitter<PresenceEvents> {
  readonly node: string;
  readonly store: PresenceStore;
  readonly #ttl: number;
  readonly #vacateDelay: number;
  readonly #log: Logger;
  /** This node's entries, by subscriber: what a lease that lapsed must put back. */
  readonly #mine = new Map<string, PresenceEntry[]>();
  /** Pending vacate checks, by topic. */
  readonly #vacating = new Map<string, { timer: NodeJS.Timeout; check: () => Promise<void> }>();
  /** This node's subscribers per topic. */
  readonly #here = new Map<string, number>();
  /** Joins and leaves not yet written, in order, and the promise of the batch that will write them. */
  #changes: Change[] = [];
  #batch: Promise<void> | undefined;
  /** After a write the store did not answer, the next is left to the heartbeat (not every change: that would hammer a store already behind). */
  #backingOff = false;
  /** Store writes in order (an add is in before its remove), and failures logged, never thrown. */
  #queue: Promise<unknown> = Promise.resolve();
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(store: PresenceStore, options: { node: string; ttl: number; vacateDelay: number; log: Logger }) {
    super();
    this.store = store;
    this.node = options.node;
    this.#ttl = options.ttl;
    this.#vacateDelay = options.vacateDelay;
    this.#log = options.log;
  }

  /** Starts the heartbeat: the lease is refreshed (and lost nodes looked for) three times per TTL. */
  start(): Promise<void> {
    this.#timer = setInterval(() => this.#beat(), Math.max(100, Math.floor(this.#ttl / 3)));
    this.#timer.unref();
    return this.#enqueue(() => this.store.heartbeat().then((r) => this.#handleLost(r.lost)));
  }

  /** A subscriber of this node joined with these selectors (typed, or bare strings read as draft-07 reads them). Resolves once its batch is written. */
  joined(subscriber: string, selectors: readonly (string | Selector)[], info: { subject: string | undefined; payload: unknown; protocol: string; connection?: string | undefined }): Promise<void> {
    const since = Date.now();
    const topics = selectors.map((s) => (typeof s === 'string' ? s : s.value));
    const entries = selectors.map((s): PresenceEntry => ({ subscriber, connection: info.connection, topic: typeof s === 'string' ? s : s.value, kind: typeof s === 'string' ? undefined : s.kind, node: this.node, subject: info.subject, payload: info.payload, protocol: info.protocol, since }));
    this.#mine.set(subscriber, entries);
    const occupy: string[] = [];
    for (const topic of new Set(topics)) {
      const here = this.#here.get(topic) ?? 0;
      this.#here.set(topic, here + 1);
      if (here === 0) occupy.push(topic);
    }
    return this.#change({ kind: 'join', subscriber, entries, topics: [...topics], info, occupy });
  }

  /** A subscriber of this node left, and why. Without a matching `joined`, nothing happens. Resolves once its batch is written. */
  left(subscriber: string, reason: string): Promise<void> {
    const entries = this.#mine.get(subscriber);
    if (entries === undefined) return Promise.resolve();
    this.#mine.delete(subscriber);
    const vacate: string[] = [];
    for (const topic of new Set(entries.map((e) => e.topic))) {
      const here = (this.#here.get(topic) ?? 1) - 1;
      if (here > 0) this.#here.set(topic, here);
      else {
        this.#here.delete(topic);
        vacate.push(topic);
      }
    }
    return this.#change({ kind: 'leave', subscriber, entries, reason, vacate });
  }

  /** Adds a join or a leave to the next batch, which is written once the store is done with the one before. */
  #change(change: Change): Promise<void> {
    this.#changes.push(change);
    if (this.#backingOff) return this.#batch ?? Promise.resolve();
    this.#batch ??= this.#enqueue(() => this.#write());
    return this.#batch;
  }

  /**
   * Writes a batch: every join's entries in one `add` (before any remove, so that a subscriber
   * that came and went within the batch ends up absent), the occupancy of the topics this node
   * got its first subscriber of, the leaves' removes; then tells, change by change, in order.
   */
  async #write(): Promise<void> {
    const changes = this.#changes;
    this.#changes = [];
    this.#batch = undefined;
    for (let i = 0; i < changes.length; i += BATCH) {
      try {
        await this.#writeBatch(changes.slice(i, i + BATCH));
      } catch (error) {
        // The store did not answer (overloaded, unreachable): the changes not written are kept, in
        // order before any that came since, and written again at the next heartbeat. Every
        // write is idempotent (entries by subscriber and topic, occupancy by compare-and-set) and
        // nothing of a batch is told before all of it is in, so writing one again is safe; dropping
        // it would leave the entries of subscribers long gone (ghosts) for the life of this node.
        this.#changes = [...changes.slice(i), ...this.#changes];
        this.#backingOff = true;
        throw error;
      }
    }
  }

  async #writeBatch(changes: Change[]): Promise<void> {
    const added = changes.flatMap((c) => (c.kind === 'join' ? c.entries : []));
    if (added.length > 0) await this.store.add(added);
    const occupied = new Set<string>();
    for (const change of changes) {
      if (change.kind !== 'join') continue;
      for (const topic of change.occupy) {
        this.#cancelVacate(topic);
        if (occupied.has(topic)) continue;
        if ((await this.store.count(topic)) > 0 && (await this.store.transition(topic, 'vacated', 'occupied'))) occupied.add(topic);
      }
    }
    await Promise.all(changes.map((c) => (c.kind === 'leave' ? this.store.remove(c.subscriber, c.entries.map((e) => e.topic)) : undefined)));
    for (const change of changes) {
      if (change.kind === 'join') {
        const { subscriber, topics, info } = change;
        this.emit('event', { type: 'subscriber.connected', subscriber, topics, subject: info.subject, node: this.node, protocol: info.protocol });
        for (const topic of change.occupy) {
          if (occupied.delete(topic)) this.emit('event', { type: 'topic.occupied', topic, subscriber, subject: info.subject, node: this.node });
        }
      } else {
        const { subscriber, entries, reason } = change;
        const first = entries[0] as PresenceEntry;
        this.emit('event', { type: 'subscriber.disconnected', subscriber, topics: entries.map((e) => e.topic), subject: first.subject, node: this.node, protocol: first.protocol, reason });
        for (const topic of change.vacate) this.#scheduleVacate(topic, subscriber, first.subject);
      }
    }
  }

  /** Every live entry of the cluster (optionally filtered). */
  list(filter?: { topic?: string; subscriber?: string }): Promise<PresenceEntry[]> {
    return this.store.list(filter);
  }

  /**
   * Stops the heartbeat and removes this node's entries (its subscribers were closed by the drain).
   * Topics waiting to be found vacated are looked at now: nobody else would, and their clients
   * have had the drain window to come back on another node.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    for (const [topic, { timer, check }] of this.#vacating) {
      clearTimeout(timer);
      this.#vacating.delete(topic);
      void this.#enqueue(check);
    }
    await this.#queue;
    await this.store.close().catch((error: unknown) => this.#log.warn({ err: (error as Error).message }, 'presence: could not remove this node\'s entries'));
  }

  #beat(): void {
    if (this.#closed) return;
    void this.#enqueue(async () => {
      const { renewed, lost } = await this.store.heartbeat();
      if (!renewed && this.#mine.size > 0) {
        // This node's lease ran out (a stall longer than the TTL, a partition) and its entries may
        // have been claimed as a lost node's, announced gone: they are still connected here, so
        // they are put back and announced again, and their topics occupied again if need be.
        this.#log.warn({ subscribers: this.#mine.size }, 'presence: this node\'s lease had run out; its entries are added again');
        await this.store.add([...this.#mine.values()].flat());
        const topics = new Map<string, PresenceEntry>();
        for (const entries of this.#mine.values()) {
          const first = entries[0] as PresenceEntry;
          this.emit('event', { type: 'subscriber.connected', subscriber: first.subscriber, topics: entries.map((e) => e.topic), subject: first.subject, node: this.node, protocol: first.protocol });
          for (const e of entries) if (!topics.has(e.topic)) topics.set(e.topic, e);
        }
        for (const [topic, e] of topics) {
          if (await this.store.transition(topic, 'vacated', 'occupied')) this.emit('event', { type: 'topic.occupied', topic, subscriber: e.subscriber, subject: e.subject, node: this.node });
        }
      }
      await this.#handleLost(lost);
      // Changes a failed write kept, with no write scheduled since.
      this.#backingOff = false;
      if (this.#changes.length > 0) this.#batch ??= this.#enqueue(() => this.#write());
    });
  }

  async #handleLost(lost: LostNode[]): Promise<void> {
    for (const node of lost) {
      this.#log.warn({ lost: node.node, subscriptions: node.entries.length }, 'presence: a node stopped renewing its lease; its subscribers are gone');
      this.emit('lost', node);
      const bySubscriber = new Map<string, PresenceEntry[]>();
      for (const entry of node.entries) bySubscriber.set(entry.subscriber, [...(bySubscriber.get(entry.subscriber) ?? []), entry]);
      for (const [subscriber, entries] of bySubscriber) {
        const first = entries[0] as PresenceEntry;
        this.emit('event', { type: 'subscriber.disconnected', subscriber, topics: entries.map((e) => e.topic), subject: first.subject, node: node.node, protocol: first.protocol, reason: 'node-lost' });
      }
      for (const entry of node.entries) this.#scheduleVacate(entry.topic, entry.subscriber, entry.subject, node.node);
    }
  }

  #scheduleVacate(topic: string, subscriber: string, subject: string | undefined, node = this.node): void {
    if (this.#vacating.has(topic)) return;
    const check = async (): Promise<void> => {
      if ((await this.store.count(topic)) === 0 && (await this.store.transition(topic, 'occupied', 'vacated'))) {
        this.emit('event', { type: 'topic.vacated', topic, subscriber, subject, node });
      }
    };
    if (this.#closed) {
      void this.#enqueue(check);
      return;
    }
    const timer = setTimeout(() => {
      this.#vacating.delete(topic);
      void this.#enqueue(check);
    }, this.#vacateDelay);
    timer.unref();
    this.#vacating.set(topic, { timer, check });
  }

  /** The topic got a subscriber here: its pending vacate check is moot (this node counts in it now). */
  #cancelVacate(topic: string): void {
    const pending = this.#vacating.get(topic);
    if (pending === undefined) return;
    clearTimeout(pending.timer);
    this.#vacating.delete(topic);
  }

  #enqueue(work: () => Promise<void>): Promise<void> {
    const next = this.#queue.then(work).catch((error: unknown) => {
      this.#log.warn({ err: error instanceof Error ? error.message : String(error) }, 'presence: the store did not answer; will retry on the next heartbeat');
    });
    this.#queue = next;
    return next;
  }
}

/**
 * Presence for one node (the memory and sqlite transports, or a transport without its own):
 * everything in this process; nothing is ever lost by another node.
 */
export class LocalPresenceStore implements PresenceStore {
  readonly #entries = new Map<string, PresenceEntry[]>();
  readonly #states = new Map<string, Occupancy>();

  async add(entries: readonly PresenceEntry[]): Promise<void> {
    for (const entry of entries) this.#entries.set(entry.subscriber, [...(this.#entries.get(entry.subscriber) ?? []).filter((e) => e.topic !== entry.topic), entry]);
  }

  async remove(subscriber: string, _topics?: readonly string[]): Promise<void> {
    this.#entries.delete(subscriber);
  }

  async list(filter: { topic?: string; subscriber?: string } = {}): Promise<PresenceEntry[]> {
    const all = filter.subscriber !== undefined ? (this.#entries.get(filter.subscriber) ?? []) : [...this.#entries.values()].flat();
    return filter.topic === undefined ? all : all.filter((e) => e.topic === filter.topic);
  }

  async count(topic: string): Promise<number> {
    let n = 0;
    for (const entries of this.#entries.values()) for (const e of entries) if (e.topic === topic) n++;
    return n;
  }

  async transition(topic: string, from: Occupancy, to: Occupancy): Promise<boolean> {
    if ((this.#states.get(topic) ?? 'vacated') !== from) return false;
    if (to === 'vacated') this.#states.delete(topic);
    else this.#states.set(topic, to);
    return true;
  }

  async heartbeat(): Promise<{ renewed: boolean; lost: LostNode[] }> {
    return { renewed: true, lost: [] };
  }

  async close(): Promise<void> {
    this.#entries.clear();
  }
}
