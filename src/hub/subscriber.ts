/**
 * A Subscriber: one connected client, its subscriptions (topic selectors) and what its token
 * lets it read. While its history is being replayed, live updates wait in a buffer; once the
 * replay is written they are flushed, skipping those the replay already covered, so the client
 * sees neither a gap nor a duplicate.
 */
import type { Stream } from '../server/index.js';
import { type Matcher, compileSelector, matchesAny } from './selector.js';
import { type Update, eventBytes } from './update.js';

/** One connected client. */
export class Subscriber {
  /** `urn:uuid:…`, used in subscription events and logs. */
  readonly id: string;
  /** The topic selectors of the request (its subscriptions). */
  readonly selectors: string[];
  /** The client's address. */
  readonly address: string;
  /** `mercure.payload` of its token. */
  readonly payload: unknown;
  /** Set once the stream is open. */
  stream: Stream | undefined;
  #matchers: Matcher[];
  #privateMatchers: Matcher[];
  #pending: Update[] | undefined = [];
  #overflowed = false;
  #maxPending: number;

  constructor(init: { id: string; selectors: string[]; privateMatchers: Matcher[]; address: string; payload: unknown; maxPending: number }) {
    this.id = init.id;
    this.selectors = init.selectors;
    this.address = init.address;
    this.payload = init.payload;
    this.#matchers = init.selectors.map(compileSelector);
    this.#privateMatchers = init.privateMatchers;
    this.#maxPending = init.maxPending;
  }

  /**
   * Whether this subscriber may receive `update`: one of its topics matches a selector of the
   * request, and, for a private update, one also matches the token's `mercure.subscribe`.
   */
  canReceive(update: Update): boolean {
    if (!matchesAny(update.topics, this.#matchers)) return false;
    return !update.private || matchesAny(update.topics, this.#privateMatchers);
  }

  /**
   * Hands a live update to the subscriber: buffered during replay, written afterwards. `bytes` is
   * the update's event, encoded once by the caller for every subscriber. Returns `true` if written.
   */
  deliver(update: Update, bytes: Uint8Array = eventBytes(update)): boolean {
    if (this.#pending !== undefined) {
      if (!this.canReceive(update)) return false;
      // A replay that takes long while updates pour in is a slow consumer too: past the bound the
      // buffer stops growing and the stream is dropped as soon as it exists, to resume later.
      if (this.#pending.length >= this.#maxPending) this.#overflowed = true;
      else this.#pending.push(update);
      return false;
    }
    if (this.stream === undefined || !this.canReceive(update)) return false;
    return this.stream.write(bytes);
  }

  /** Ends the replay: writes the buffered live updates that come after `head`, then goes live. Returns how many were written. */
  goLive(head: bigint): number {
    const pending = this.#pending ?? [];
    this.#pending = undefined;
    if (this.#overflowed) {
      this.stream?.destroy('slow-consumer');
      return 0;
    }
    let written = 0;
    for (const update of pending) {
      if ((update.seq ?? 0n) <= head) continue;
      if (this.stream?.write(eventBytes(update))) written++;
    }
    return written;
  }
}
