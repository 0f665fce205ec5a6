/**
 * Recent history in memory, in front of a networked transport (Redis, NATS).
 *
 * A reconnect storm is every client resuming at once, each after the last update it saw, which is
 * nearly always among the newest. Read from Redis or NATS, each resume costs a round trip or two
 * and the decoding of every entry after its position, all of them queued behind one another on
 * the process's connection: at 100,000 clients the reads time out. The newest updates this process
 * received are kept here (the very objects the fan-out had, their encoded bytes with them), and a
 * resume from among them is answered without asking the transport.
 *
 * Only a run of updates received without a break is kept: the window starts over whenever the
 * transport is not ready (its live feed may have missed something meanwhile) or an update does not
 * come after the one before (a new history). An ID outside the window, `earliest`, or an update
 * older than the history's age limit, goes to the transport as before. The answer's head is the
 * newest update received: anything stored after it reaches the subscriber live, as the join expects.
 */
import type { Update } from '../core/update.js';
import { type BasicTransport, type HistoryLimits, type HistoryResult, isReady } from './transport.js';

/** Updates kept in memory at most (fewer when history itself keeps fewer). */
export const RECENT_UPDATES = 1024;

/** The newest updates received, in order, found by ID. */
export class RecentUpdates {
  readonly #capacity: number;
  readonly #ttl: number;
  readonly #ring: (Update | undefined)[];
  readonly #received: Float64Array;
  /** Position of each update in the window, counted over every update ever added. */
  readonly #positions = new Map<string, number>();
  /** Updates added since the window last started over, and the position of its oldest. */
  #next = 0;
  #first = 0;

  /** `ttl`: history's age limit in ms (0: none); an update older than that is not resumed from here. */
  constructor(capacity: number, ttl: number) {
    this.#capacity = capacity;
    this.#ttl = ttl;
    this.#ring = new Array<Update | undefined>(capacity);
    this.#received = new Float64Array(capacity);
  }

  /** Updates in the window. */
  get size(): number {
    return this.#next - this.#first;
  }

  /** Appends an update received live; starts over if it does not follow the newest (or has no `seq`). */
  add(update: Update, now = Date.now()): void {
    const newest = this.size > 0 ? this.#ring[(this.#next - 1) % this.#capacity] : undefined;
    if (update.seq === undefined || (newest?.seq !== undefined && update.seq <= newest.seq)) this.clear();
    if (update.seq === undefined) return;
    if (this.size === this.#capacity) {
      const oldest = this.#ring[this.#first % this.#capacity] as Update;
      if (this.#positions.get(oldest.id) === this.#first) this.#positions.delete(oldest.id);
      this.#first++;
    }
    const slot = this.#next % this.#capacity;
    this.#ring[slot] = update;
    this.#received[slot] = now;
    this.#positions.set(update.id, this.#next++);
  }

  /** Forgets every update: the next one starts a new run. */
  clear(): void {
    this.#ring.fill(undefined);
    this.#positions.clear();
    this.#first = this.#next;
  }

  /** The updates after `lastEventId` that pass `filter`, or `undefined` when it is not in the window (or too old to resume from). */
  after(lastEventId: string, filter: (update: Update) => boolean, now = Date.now()): HistoryResult | undefined {
    const at = this.#positions.get(lastEventId);
    if (at === undefined || at < this.#first) return undefined;
    if (this.#ttl > 0 && now - (this.#received[at % this.#capacity] as number) > this.#ttl) return undefined;
    const updates: Update[] = [];
    for (let p = at + 1; p < this.#next; p++) {
      const update = this.#ring[p % this.#capacity] as Update;
      if (filter(update)) updates.push(update);
    }
    const newest = this.#ring[(this.#next - 1) % this.#capacity] as Update;
    return { updates, found: true, head: newest.seq as bigint };
  }
}

/**
 * `transport` with resumes from its newest updates answered in memory (see the file comment);
 * every other method and capability is the transport's own.
 */
export function withRecentHistory<T extends BasicTransport>(transport: T, limits: HistoryLimits, capacity = RECENT_UPDATES): T {
  const size = Math.min(capacity, limits.size);
  if (size <= 0) return transport;
  const recent = new RecentUpdates(size, limits.ttl);
  // Registered before anyone else's: when the hub's listener gets an update, the window has it.
  transport.subscribe((update) => {
    if (isReady(transport)) recent.add(update);
    else recent.clear();
  });
  const history = (lastEventId: string, filter: (update: Update) => boolean): Promise<HistoryResult> => {
    if (lastEventId !== 'earliest' && isReady(transport)) {
      const result = recent.after(lastEventId, filter);
      if (result !== undefined) return Promise.resolve(result);
    }
    return transport.history(lastEventId, filter);
  };
  return new Proxy(transport, {
    get(target, property) {
      if (property === 'history') return history;
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}
