/**
 * `memory`: history in a bounded ring (count, bytes and age), dispatch within one process.
 * Nothing survives a restart; use `sqlite:PATH` for that. Each transport is an epoch of its own.
 */
import { randomBytes } from 'node:crypto';
import { DuplicateIdError, TransportUnavailableError } from '../core/errors.js';
import type { Update } from '../core/update.js';
import type { HistoryLimits, HistoryResult, Transport } from './transport.js';

const DEFAULT_MAX_BYTES = 64 * 1024 * 1024;

function sizeOf(u: Update): number {
  return u.data.length * 2 + u.id.length * 2 + u.topics.reduce((n, t) => n + t.length * 2, 0) + 200;
}

/** In-memory transport. */
export class MemoryTransport implements Transport {
  #ring: Update[] = [];
  #start = 0;
  #bytes = 0;
  #ids = new Map<string, bigint>();
  #seq = 0n;
  #listeners = new Set<(u: Update) => void>();
  #limits: HistoryLimits;
  #maxBytes: number;
  #closed = false;
  /** This history's lifetime: a new transport (a restart) starts another. */
  readonly #epoch = randomBytes(6).toString('base64url');

  constructor(limits: HistoryLimits, maxBytes = DEFAULT_MAX_BYTES) {
    this.#limits = limits;
    this.#maxBytes = maxBytes;
  }

  async dispatch(update: Update): Promise<void> {
    if (this.#closed) throw new TransportUnavailableError('the memory transport is closed');
    if (this.#ids.has(update.id)) throw new DuplicateIdError(`an update with id "${update.id}" is already in history`);
    update.seq = ++this.#seq;
    if (this.#limits.size > 0) {
      this.#ring.push(update);
      this.#ids.set(update.id, update.seq);
      this.#bytes += sizeOf(update);
      this.#trim(Date.now());
    }
    for (const listener of this.#listeners) listener(update);
  }

  subscribe(listener: (u: Update) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  async history(lastEventId: string, filter: (u: Update) => boolean): Promise<HistoryResult> {
    this.#trim(Date.now());
    let from = this.#start;
    let found = lastEventId === 'earliest';
    if (!found) {
      const seq = this.#ids.get(lastEventId);
      if (seq !== undefined) {
        found = true;
        from = this.#indexAfter(seq);
      }
    }
    const updates: Update[] = [];
    for (let i = from; i < this.#ring.length; i++) {
      const u = this.#ring[i] as Update;
      if (filter(u)) updates.push(u);
    }
    return { updates, found, head: this.#seq };
  }

  async epoch(): Promise<string> {
    return this.#epoch;
  }

  async head(): Promise<bigint> {
    return this.#seq;
  }

  async historyAfter(seq: bigint, filter: (u: Update) => boolean): Promise<HistoryResult> {
    this.#trim(Date.now());
    const head = this.#seq;
    // Past the head: a position of another history (this one started over), not one to resume from.
    if (seq > head) return { updates: [], found: false, head };
    if (seq === head) return { updates: [], found: true, head };
    // Positions are consecutive: nothing after `seq` is gone while the oldest kept is at most the next one.
    const oldest = this.#ring.length > this.#start ? ((this.#ring[this.#start] as Update).seq as bigint) : head + 1n;
    if (oldest > seq + 1n) return { updates: [], found: false, head };
    const updates: Update[] = [];
    for (let i = this.#indexAfter(seq); i < this.#ring.length; i++) {
      const u = this.#ring[i] as Update;
      if (filter(u)) updates.push(u);
    }
    return { updates, found: true, head };
  }

  async lastId(): Promise<string | undefined> {
    this.#trim(Date.now());
    return this.#ring.length > this.#start ? this.#ring[this.#ring.length - 1]?.id : undefined;
  }

  ready(): boolean {
    return !this.#closed;
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#listeners.clear();
  }

  /** Index of the first update with a seq above `seq` (the ring is sorted by seq). */
  #indexAfter(seq: bigint): number {
    let lo = this.#start;
    let hi = this.#ring.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (((this.#ring[mid] as Update).seq as bigint) <= seq) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  #trim(now: number): void {
    const { size, ttl } = this.#limits;
    while (this.#ring.length - this.#start > 0) {
      const oldest = this.#ring[this.#start] as Update;
      const tooMany = this.#ring.length - this.#start > size;
      const tooOld = ttl > 0 && (oldest.publishedAt ?? now) < now - ttl;
      if (!tooMany && !tooOld && this.#bytes <= this.#maxBytes) break;
      this.#ids.delete(oldest.id);
      this.#bytes -= sizeOf(oldest);
      this.#start++;
    }
    // Compact once the dead prefix outweighs the live part, so trimming stays O(1) amortised.
    if (this.#start > 1024 && this.#start * 2 > this.#ring.length) {
      this.#ring = this.#ring.slice(this.#start);
      this.#start = 0;
    }
  }
}
