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
  /**
   * Optional: registers a listener for history entries that could not be read as updates (a
   * transport whose entries are only ever written by this hub process need not have it).
   */
  onPoison?(listener: (entry: PoisonEntry) => void): () => void;
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
