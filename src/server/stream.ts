/**
 * A Stream: one SSE response, from its first byte to its clean-up.
 *
 * What it guarantees, whatever the framework underneath (SPEC §2):
 * - every write is a whole event, so a stream that ends for any reason never cuts one in half;
 * - memory per stream is bounded: when the client reads slower than events arrive, events wait
 *   in a queue bounded in bytes and in events, and past that bound the slow-consumer policy
 *   applies (default: disconnect, so the client resumes with Last-Event-ID and loses nothing);
 * - an optional maximum lifetime ends the stream between events, after a jittered `retry:` hint,
 *   instead of the silent mid-event truncation a request timeout causes;
 * - clean-up (heartbeat membership, timers, queue, listeners) runs exactly once, and `close` is
 *   emitted exactly once with the reason.
 */
import { EventEmitter } from 'node:events';
import { type EventFields, encodeComment, encodeEvent, encodeRetry } from '../protocol/index.js';
import { type Heartbeat, sharedHeartbeat } from './heartbeat.js';
import type { Sink } from './sink.js';

/** Why a stream ended; logged and counted by the hub. */
export type CloseReason =
  | 'client-closed'
  | 'slow-consumer'
  | 'lifetime'
  | 'token-expired'
  | 'shutdown'
  | 'server-closed'
  | 'error';

/** What to do with a subscriber whose queue is full. */
export type SlowConsumerPolicy = 'disconnect' | 'drop';

/** Options of a stream. All durations are in milliseconds. */
export interface StreamOptions {
  /** `retry:` hint sent on connect and used as the base of jittered hints at close. Default 3000; `false` sends none. */
  retry?: number | false;
  /** Heartbeat comment interval, or `false` for none. Default 15000 (below nginx's 60 s `proxy_read_timeout`). */
  heartbeat?: number | false;
  /** Maximum lifetime; the stream ends between events after 80–100 % of it (see `lifetimeJitter`). Default: none. */
  lifetime?: number;
  /** Fraction of `lifetime` removed at random so streams opened together do not end together. Default 0.2. */
  lifetimeJitter?: number;
  /** Queue bound in bytes while the client is not keeping up. Default 512 KiB. */
  maxQueueBytes?: number;
  /** Queue bound in events. Default 1024. */
  maxQueueEvents?: number;
  /** `disconnect` (default): end the stream with reason `slow-consumer`; `drop`: discard the events that do not fit. */
  slowConsumer?: SlowConsumerPolicy;
  /** How long a graceful close may take to flush before the connection is cut. Default 5000. */
  closeTimeout?: number;
  /** Text of the comment sent first, so the client (and any proxy) sees the stream open at once. Default `ok`. */
  firstComment?: string;
  /** Extra response headers. */
  headers?: Record<string, string>;
  /** The client's last event ID; adapters fill it from the `Last-Event-ID` header or query. */
  lastEventId?: string | undefined;
}

/** Options of a graceful close. */
export interface CloseOptions {
  /** The `retry:` hint to send before closing; default: the stream's retry, jittered to 1–2×. */
  retry?: number | false;
}

const HEARTBEAT = Buffer.from(encodeComment());
const DEFAULT_RETRY = 3000;

/** Returns a reconnection delay uniformly spread over [base, 2·base), so clients told to come back do not all come back at once. */
export function jitter(base: number, random: () => number = Math.random): number {
  return base + Math.floor(random() * base);
}

/** Events of a stream. */
export interface StreamEvents {
  close: [reason: CloseReason, error?: Error];
}

/** One SSE response. Create it with an adapter (`createStream`, `expressStream`, `fastifyStream`, `koaStream`, `fetchStream`). */
export class Stream extends EventEmitter<StreamEvents> {
  /** The client's last event ID (header or query), or `undefined`. */
  readonly lastEventId: string | undefined;
  /** When the stream was opened (ms since the epoch). */
  readonly openedAt = Date.now();
  /** Bytes handed to the sink. */
  bytesWritten = 0;
  /** Events handed to the sink. */
  eventsWritten = 0;
  /** Events discarded by the `drop` policy. */
  eventsDropped = 0;

  #sink: Sink;
  #state: 'open' | 'closing' | 'closed' = 'open';
  #reason: CloseReason | undefined;
  #blocked = false;
  /** Bytes waiting while the client is behind (made on first use: most streams never need one). */
  #queue: Uint8Array[] | undefined;
  #queuedBytes = 0;
  #queuedEvents = 0;
  #maxQueueBytes: number;
  #maxQueueEvents: number;
  #policy: SlowConsumerPolicy;
  #retry: number | false;
  #closeTimeout: number;
  #heartbeat: Heartbeat | undefined;
  /** The last heartbeat tick the stream saw, and the one during which it last wrote. */
  #tick = 0;
  #activeTick = 0;
  #lifetimeTimer: NodeJS.Timeout | undefined;
  #closeTimer: NodeJS.Timeout | undefined;
  #drainWaiters: (() => void)[] | undefined;

  /** Wraps a sink whose headers were already sent; adapters call this. */
  constructor(sink: Sink, options: StreamOptions = {}) {
    super();
    this.#sink = sink;
    this.lastEventId = options.lastEventId;
    this.#maxQueueBytes = options.maxQueueBytes ?? 512 * 1024;
    this.#maxQueueEvents = options.maxQueueEvents ?? 1024;
    this.#policy = options.slowConsumer ?? 'disconnect';
    this.#retry = options.retry ?? DEFAULT_RETRY;
    this.#closeTimeout = options.closeTimeout ?? 5000;
    sink.ondrain = () => this.#drained();
    sink.onclose = (error) => this.#sinkClosed(error);

    let preamble = encodeComment(options.firstComment ?? 'ok');
    if (this.#retry !== false) preamble += encodeRetry(this.#retry);
    this.#writeOut(Buffer.from(preamble), 0);

    const heartbeat = options.heartbeat ?? 15_000;
    if (heartbeat !== false && this.#state === 'open') {
      this.#heartbeat = sharedHeartbeat(heartbeat);
      this.#heartbeat.add(this);
      this.#tick = this.#activeTick = this.#heartbeat.ticks;
    }
    if (options.lifetime !== undefined && this.#state === 'open') {
      const spread = Math.min(Math.max(options.lifetimeJitter ?? 0.2, 0), 1);
      const delay = options.lifetime * (1 - spread * Math.random());
      // Not unref()'d, on purpose: Node keeps a timer list per distinct duration, and drops the
      // list of an unref'd timer only when that duration has run out, not when the timer is
      // cleared. Every stream has its own jittered duration, so each closed stream would leave an
      // empty list behind for up to a lifetime: about 70 bytes per reconnect, 7 MiB in the
      // 10-minute soak. The open socket keeps the process alive anyway.
      this.#lifetimeTimer = setTimeout(() => this.close('lifetime'), delay);
    }
  }

  /** `true` until a close has begun. */
  get open(): boolean {
    return this.#state === 'open';
  }

  /** Why the stream ended (or is ending); `undefined` while open. */
  get closeReason(): CloseReason | undefined {
    return this.#reason;
  }

  /** `true` while the sink's buffer is full: further writes queue (and count against the bounds). */
  get blocked(): boolean {
    return this.#blocked;
  }

  /**
   * Resolves once the sink can take more bytes (at once if it can now), or the stream closed.
   * For producers with a large backlog, such as a history replay, that should pace themselves
   * instead of filling the queue.
   */
  drained(): Promise<void> {
    if (!this.#blocked || this.#state !== 'open') return Promise.resolve();
    return new Promise((resolve) => (this.#drainWaiters ??= []).push(resolve));
  }

  /** Bytes waiting for the client to catch up. */
  get queuedBytes(): number {
    return this.#queuedBytes;
  }

  /** Encodes and sends one event. Returns `false` if it was not accepted (stream closed, or dropped by the policy). */
  send(event: EventFields): boolean {
    return this.write(Buffer.from(encodeEvent(event)));
  }

  /** Sends a comment (ignored by clients). */
  comment(text: string): boolean {
    return this.write(Buffer.from(encodeComment(text)), 0);
  }

  /**
   * Sends already encoded bytes holding `events` whole events (pass the same buffer to many
   * streams to encode once). Returns `false` if they were not accepted.
   */
  write(chunk: Uint8Array, events = 1): boolean {
    if (this.#state !== 'open') return false;
    if (!this.#blocked) {
      this.#writeOut(chunk, events);
      return this.#state === 'open';
    }
    if (this.#queuedBytes + chunk.byteLength > this.#maxQueueBytes || this.#queuedEvents + events > this.#maxQueueEvents) {
      if (this.#policy === 'drop') {
        this.eventsDropped += events;
        return false;
      }
      this.destroy('slow-consumer');
      return false;
    }
    (this.#queue ??= []).push(chunk);
    this.#queuedBytes += chunk.byteLength;
    this.#queuedEvents += events;
    return true;
  }

  /**
   * Called by the shared heartbeat timer every half interval. Skipped when the stream wrote during
   * this tick or the one before (events keep the connection alive as well as comments do, and the
   * comment would only cost a write), and while the client is behind: queued bytes reach it first.
   */
  heartbeat(tick: number): void {
    if (this.#state !== 'open') return;
    if (this.#sink.alive?.() === false) {
      this.destroy('client-closed');
      return;
    }
    this.#tick = tick;
    if (this.#activeTick >= tick - 1) return;
    if (!this.#blocked) this.#writeOut(HEARTBEAT, 0);
  }

  /**
   * Ends the stream gracefully: queued events are sent, then a `retry:` hint, then the response
   * ends. If the client does not take the bytes within `closeTimeout`, the connection is cut.
   */
  close(reason: CloseReason = 'server-closed', options: CloseOptions = {}): void {
    if (this.#state !== 'open') return;
    this.#state = 'closing';
    this.#reason = reason;
    this.#stopTimers();
    const retry = options.retry ?? (this.#retry === false ? false : jitter(this.#retry));
    const hint = retry === false ? [] : [Buffer.from(encodeRetry(retry))];
    const tail = [...(this.#queue ?? []), ...hint];
    this.#clearQueue();
    // Past the queue bound is fine here: this is the last write, and the close timer bounds its life.
    if (tail.length > 0) this.#sink.write(tail.length === 1 ? (tail[0] as Uint8Array) : Buffer.concat(tail));
    this.#sink.end();
    this.#closeTimer = setTimeout(() => this.destroy(reason), this.#closeTimeout);
    this.#closeTimer.unref();
  }

  /** Cuts the connection now and cleans up. */
  destroy(reason: CloseReason = 'server-closed', error?: Error): void {
    if (this.#state === 'closed') return;
    this.#reason ??= reason;
    this.#sink.ondrain = null;
    this.#sink.onclose = null;
    this.#sink.destroy();
    this.#finish(error);
  }

  #writeOut(chunk: Uint8Array, events: number): void {
    this.#activeTick = this.#tick;
    this.bytesWritten += chunk.byteLength;
    this.eventsWritten += events;
    if (!this.#sink.write(chunk)) this.#blocked = true;
  }

  #drained(): void {
    if (!this.#blocked || this.#state !== 'open') return;
    this.#blocked = false;
    const queue = this.#queue;
    if (queue === undefined || queue.length === 0) {
      this.#wakeDrainWaiters();
      return;
    }
    // Everything that piled up goes out in one write: fewer, larger writes are what a socket likes.
    const chunk = queue.length === 1 ? (queue[0] as Uint8Array) : Buffer.concat(queue, this.#queuedBytes);
    const events = this.#queuedEvents;
    this.#clearQueue();
    this.#writeOut(chunk, events);
    if (!this.#blocked) this.#wakeDrainWaiters();
  }

  #wakeDrainWaiters(): void {
    const waiters = this.#drainWaiters;
    if (waiters === undefined) return;
    this.#drainWaiters = undefined;
    for (const wake of waiters) wake();
  }

  #sinkClosed(error?: Error): void {
    if (this.#state === 'closed') return;
    const reset = error === undefined || ['ECONNRESET', 'EPIPE', 'ERR_STREAM_PREMATURE_CLOSE'].includes((error as NodeJS.ErrnoException).code ?? '');
    this.#reason ??= reset ? 'client-closed' : 'error';
    this.#finish(reset ? undefined : error);
  }

  #finish(error?: Error): void {
    this.#state = 'closed';
    this.#stopTimers();
    clearTimeout(this.#closeTimer);
    this.#clearQueue();
    this.#sink.ondrain = null;
    this.#sink.onclose = null;
    const reason = this.#reason ?? 'server-closed';
    this.#wakeDrainWaiters();
    this.emit('close', reason, error);
    this.removeAllListeners();
  }

  #stopTimers(): void {
    this.#heartbeat?.delete(this);
    this.#heartbeat = undefined;
    clearTimeout(this.#lifetimeTimer);
    this.#lifetimeTimer = undefined;
  }

  #clearQueue(): void {
    this.#queue = undefined;
    this.#queuedBytes = 0;
    this.#queuedEvents = 0;
  }
}
