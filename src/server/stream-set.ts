/**
 * A set of open streams: broadcast to all of them, and close all of them gracefully.
 *
 * Graceful shutdown matters because every client of a closed stream reconnects: closing ten
 * thousand at once brings ten thousand reconnects in the same second to whichever node is left.
 * So streams are closed in batches spread over a drain window, each with a jittered `retry:`.
 */
import { type Broadcastable, broadcast } from './broadcast.js';
import type { CloseReason, Stream } from './stream.js';

/** Options of a graceful close of many streams. */
export interface DrainOptions {
  /** Time over which the batches are spread, in ms. Default 10000. */
  window?: number;
  /** Minimum time between two batches, in ms. Default 100. */
  batchInterval?: number;
  /** Reason given to each stream. Default `shutdown`. */
  reason?: CloseReason;
}

/** What `closeGracefully` can close: a Stream, or anything that closes like one. */
export interface Closable {
  readonly open: boolean;
  close(reason: CloseReason): void;
  once(event: 'close', listener: () => void): unknown;
}

/**
 * Closes every open stream in batches spread over `window`; resolves once all have closed (each
 * has its own close timeout, so this ends at most `window` + that timeout later).
 */
export function closeGracefully(streams: Iterable<Closable>, options: DrainOptions = {}): Promise<void> {
  const list = [...streams].filter((s) => s.open);
  if (list.length === 0) return Promise.resolve();
  const window = Math.max(options.window ?? 10_000, 0);
  const interval = Math.max(options.batchInterval ?? 100, 1);
  const reason = options.reason ?? 'shutdown';
  const batches = Math.max(1, Math.min(list.length, Math.floor(window / interval)));
  const perBatch = Math.ceil(list.length / batches);
  const gap = batches > 1 ? window / batches : 0;

  const closed = Promise.all(list.map((s) => new Promise<void>((resolve) => (s.open ? s.once('close', () => resolve()) : resolve()))));
  let next = 0;
  let timer: NodeJS.Timeout | undefined;
  const closeBatch = (): void => {
    for (const stream of list.slice(next, next + perBatch)) stream.close(reason);
    next += perBatch;
    if (next < list.length) timer = setTimeout(closeBatch, gap);
  };
  closeBatch();
  // Streams may all close early (their clients left): then no batch timer may keep the process alive.
  return closed.then(() => clearTimeout(timer));
}

/** A set of streams that forgets each one when it closes. */
export class StreamSet implements Iterable<Stream> {
  #streams = new Set<Stream>();

  /** Number of open streams. */
  get size(): number {
    return this.#streams.size;
  }

  /** Adds a stream; it leaves the set by itself when it closes. */
  add(stream: Stream): this {
    if (!stream.open || this.#streams.has(stream)) return this;
    this.#streams.add(stream);
    stream.once('close', () => this.#streams.delete(stream));
    return this;
  }

  has(stream: Stream): boolean {
    return this.#streams.has(stream);
  }

  [Symbol.iterator](): Iterator<Stream> {
    return this.#streams.values();
  }

  /** Sends one event, encoded once, to every stream; returns how many accepted it. */
  broadcast(event: Broadcastable): number {
    return broadcast(this.#streams, event);
  }

  /** Closes every stream gracefully, in batches (see `closeGracefully`). */
  close(options: DrainOptions = {}): Promise<void> {
    return closeGracefully(this.#streams, options);
  }
}
