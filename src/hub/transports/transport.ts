/**
 * The Transport: where updates are stored (history) and how they reach every hub process.
 *
 * The core is small on purpose, so Redis Streams and NATS JetStream fit behind it unchanged:
 * `dispatch` resolves only once the update is stored (the hub answers 200 only then), live
 * updates arrive in history order with a `seq` that orders them, and `history` reports the
 * position it read up to, so the hub can join history and live updates with neither gap nor
 * duplicate even when the read is asynchronous.
 */
import type { Update } from '../update.js';

/** What a history read returns. */
export interface HistoryResult {
  /** Updates after the requested ID that pass the filter, oldest first. */
  updates: Update[];
  /** `false` when the requested ID is not in history (trimmed, or never seen): `updates` then holds everything kept. */
  found: boolean;
  /** Position of the newest stored update when the read happened: live updates at or before it are covered by the read. */
  head: bigint;
}

/** History and dispatch backend. */
export interface Transport {
  /** Stores the update, sets `update.seq`, and delivers it to every listener. Rejects with TransportUnavailableError or DuplicateIdError. */
  dispatch(update: Update): Promise<void>;
  /** Registers a listener for live updates, called in `seq` order; returns a function that removes it. */
  subscribe(listener: (update: Update) => void): () => void;
  /** Reads history after `lastEventId` (`earliest`: from the start). */
  history(lastEventId: string, filter: (update: Update) => boolean): Promise<HistoryResult>;
  /** The ID of the newest update in history, or `undefined` when history is empty. */
  lastId(): Promise<string | undefined>;
  /** `true` when the transport can store updates now. */
  ready(): boolean;
  /** Stops background work and releases resources. */
  close(): Promise<void>;
}

/** Limits of a history. */
export interface HistoryLimits {
  /** Updates kept (0: none). */
  size: number;
  /** Age in ms after which an update is dropped (0: no limit). */
  ttl: number;
}
