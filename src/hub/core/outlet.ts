/**
 * An Outlet: where the core writes one client's events, whatever the protocol. A front-end
 * provides it (the Mercure front-end's is an SSE Stream of the server library); the core writes
 * encoded bytes to it, paces a history replay on `drained`, closes it (gracefully or at once) and
 * listens for its end. Memory bounds, heartbeats and the lifetime are the outlet's own.
 */

/**
 * Why a connection (or one subscriber of it) ended; logged and counted. The first seven are every
 * front-end's; the others come from bidirectional protocols: `unsubscribed` (one subscription
 * ended, by its client or the server API, its connection going on), `no-pong` (pings unanswered),
 * `bad-request` (the client broke the protocol), `unauthorized` (a refused or missing token),
 * `too-many-requests` (a command flood), `disconnected` (by the server API), `stale` (no connect
 * command in time).
 */
export type EndReason =
  | 'client-closed'
  | 'slow-consumer'
  | 'lifetime'
  | 'token-expired'
  | 'shutdown'
  | 'server-closed'
  | 'error'
  | 'unsubscribed'
  | 'no-pong'
  | 'bad-request'
  | 'unauthorized'
  | 'too-many-requests'
  | 'disconnected'
  | 'stale';

/** One client connection's writable end, as the core uses it. */
export interface Outlet {
  /** `true` until a close has begun. */
  readonly open: boolean;
  /** When it was opened (ms since the epoch). */
  readonly openedAt: number;
  /** Bytes and events handed to the connection so far. */
  readonly bytesWritten: number;
  readonly eventsWritten: number;
  /** Bytes waiting for the client to catch up, and whether writes are queueing now. */
  readonly queuedBytes: number;
  readonly blocked: boolean;
  /** The position the client resumed from, for diagnostics. */
  readonly lastEventId?: string | undefined;
  /** Writes bytes holding `events` whole events; `false` when not accepted (closed, or dropped by its slow-consumer policy). */
  write(chunk: Uint8Array, events?: number): boolean;
  /** Resolves once more bytes can be taken without queueing (or it closed). */
  drained(): Promise<void>;
  /** Ends it gracefully (what is queued is still sent). */
  close(reason?: EndReason): void;
  /** Cuts it now. */
  destroy(reason?: EndReason): void;
  /** Calls `listener` once, with the reason, when it has ended for whatever cause. */
  once(event: 'close', listener: (reason: EndReason) => void): unknown;
  /** The same, for a listener that stays registered (an outlet ends only once). */
  on(event: 'close', listener: (reason: EndReason) => void): unknown;
}
