/**
 * The Transport: where updates are stored (history) and how they reach every hub process.
 *
 * The core is small on purpose, so Redis Streams and NATS JetStream fit behind it unchanged:
 * `dispatch` resolves only once the update is stored (the hub answers 200 only then), live
 * updates arrive in history order with a `seq` that orders them, and `history` reports the
 * position it read up to, so the hub can join history and live updates with neither gap nor
 * duplicate even when the read is asynchronous.
 */
import type { PresenceStore } from '../core/presence.js';
import type { NodeSignals } from '../core/signals.js';
import type { Update } from '../core/update.js';

/** What a history read returns. */
export interface HistoryResult {
  /** Updates after the requested ID that pass the filter, oldest first. */
  updates: Update[];
  /** `false` when the requested ID is not in history (trimmed, or never seen): `updates` then holds everything kept. */
  found: boolean;
  /** Position of the newest stored update when the read happened: live updates at or before it are covered by the read. */
  head: bigint;
}

/**
 * An entry of the transport's history that is not a valid update (written by another version,
 * or by hand): it is skipped, never delivered, and never holds back the entries behind it.
 */
export interface PoisonEntry {
  /** Where it is: the update's ID when it could be read, else the transport's own position (a stream entry ID, a sequence). */
  ref: string;
  /** Why it was refused. */
  reason: string;
}

/**
 * What the hub needs of a history and dispatch backend: four methods. `ready`, `lastId` and
 * `onPoison` are capabilities it uses when a transport has them, checked at run time, so an
 * embedder's own transport may leave them out.
 */
export interface BasicTransport {
  /** Stores the update, sets `update.seq`, and delivers it to every listener. Rejects with TransportUnavailableError or DuplicateIdError. */
  dispatch(update: Update): Promise<void>;
  /** Registers a listener for live updates, called in `seq` order; returns a function that removes it. */
  subscribe(listener: (update: Update) => void): () => void;
  /** Reads history after `lastEventId` (`earliest`: from the start). */
  history(lastEventId: string, filter: (update: Update) => boolean): Promise<HistoryResult>;
  /** Stops background work and releases resources. */
  close(): Promise<void>;
  /** Optional: `true` when the transport can store updates now (readiness); without it, always. */
  ready?(): boolean;
  /** Optional: the ID of the newest update in history, `undefined` when it is empty (the subscriptions API's `lastEventID`). */
  lastId?(): Promise<string | undefined>;
  /** Optional: registers a listener for history entries that could not be read as updates. */
  onPoison?(listener: (entry: PoisonEntry) => void): () => void;
  /**
   * Optional: a presence store shared by every node on this transport, for node `node` with a
   * lease of `ttl` ms. Without it, presence is this process's alone (right for one node).
   */
  presenceStore?(node: string, ttl: number): PresenceStore;
  /**
   * Optional: messages between nodes that are not updates (never stored), for node `node`. Without
   * it, they stay in this process (right for one node). See core/signals.ts.
   */
  signals?(node: string): NodeSignals;
  /**
   * Optional, with the four below (positions, for the Centrifugo front-end's offsets and epochs):
   * the name of this history's lifetime. It changes when history is lost (a new memory transport,
   * a new SQLite file, a JetStream stream made again, a Redis that lost its data), which tells a
   * client that its position means nothing any more.
   */
  epoch?(): Promise<string>;
  /** Optional: the `seq` of the newest update ever stored in this epoch (0 when none), kept or trimmed. */
  head?(): Promise<bigint>;
  /**
   * Optional: reads history after position `seq` (0: from the start of the epoch), as `history`
   * does after an ID: `found` is false when an update after `seq` is no longer kept (then
   * `updates` is empty: the caller cannot resume there).
   */
  historyAfter?(seq: bigint, filter: (update: Update) => boolean): Promise<HistoryResult>;
  /** Optional: `seq` as a safe integer, the same on every node (a Centrifugo offset); without it, `seq` itself. */
  offsetOf?(seq: bigint): number;
  /** Optional: the inverse of `offsetOf`. */
  seqOfOffset?(offset: number): bigint;
}

/** A transport with every capability: what the built-in ones (memory, sqlite, redis, nats) are. */
export interface Transport extends BasicTransport {
  ready(): boolean;
  lastId(): Promise<string | undefined>;
}

/** The listeners of a transport's poison entries (a helper for the transports that have them). */
export class PoisonListeners {
  #listeners = new Set<(entry: PoisonEntry) => void>();

  /** Adds a listener; returns a function that removes it. */
  add(listener: (entry: PoisonEntry) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Tells every listener about an entry that was skipped. */
  report(ref: string, reason: string): void {
    for (const listener of this.#listeners) listener({ ref, reason });
  }
}

/** Limits of a history. */
export interface HistoryLimits {
  /** Updates kept (0: none). */
  size: number;
  /** Age in ms after which an update is dropped (0: no limit). */
  ttl: number;
}

const REQUIRED = ['dispatch', 'subscribe', 'history', 'close'] as const;

/** Checks at run time that `value` has the required methods of a transport; throws a TypeError naming the missing ones. */
export function assertTransport(value: unknown): asserts value is BasicTransport {
  const missing = REQUIRED.filter((name) => typeof (value as Record<string, unknown> | null)?.[name] !== 'function');
  if (missing.length > 0) throw new TypeError(`not a Transport: it has no ${missing.map((m) => `${m}()`).join(', ')} (required: ${REQUIRED.join(', ')})`);
}

/** Whether a transport can store updates now (one without `ready` always can). */
export function isReady(transport: BasicTransport): boolean {
  return transport.ready?.() ?? true;
}
