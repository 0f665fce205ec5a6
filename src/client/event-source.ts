/**
 * `EventSource`: a drop-in for the WHATWG interface that follows its processing model (HTML
 * §9.2), for browsers and Node ≥ 20, with what the native one lacks in production: request
 * headers (an Authorization token), a custom method/body/fetch, jittered exponential backoff on
 * top of the server's `retry`, detection of a connection a proxy silently stopped forwarding
 * (`heartbeatTimeout`), de-duplication by event ID, a `resync` event when the hub says history
 * could not cover a resume, an async iterator, and an AbortSignal.
 *
 * Only web-standard globals are used (fetch, EventTarget, MessageEvent, TextDecoder), no Node
 * built-ins, so the same code runs in a browser.
 */
import { EventStreamParser, RESYNC_EVENT } from '../protocol/index.js';
import { type ReconnectPolicy, type ResolvedPolicy, reconnectDelay, resolvePolicy } from './backoff.js';

type HeadersLike = Record<string, string> | [string, string][] | Headers;

/** Options of an EventSource; only `withCredentials` is standard. */
export interface EventSourceInit {
  /** Send cookies on cross-origin requests (browsers). */
  withCredentials?: boolean;
  /** Extra request headers, or a function returning them, called before every (re)connection (to refresh a token). */
  headers?: HeadersLike | (() => HeadersLike | Promise<HeadersLike>);
  /** HTTP method. Default `GET`. */
  method?: string;
  /** Request body, for methods that take one. */
  body?: string | URLSearchParams | Uint8Array | null;
  /** The fetch to use. Default: the global one. */
  fetch?: typeof fetch;
  /** Reconnection policy; `false` never reconnects (a dropped stream closes the source). */
  reconnect?: ReconnectPolicy | false;
  /** No byte for this long (ms) means the connection is dead: drop it and reconnect. Set it above the server's heartbeat. Default: off. */
  heartbeatTimeout?: number;
  /** Remember this many recent event IDs and skip events that repeat one; `false` disables. Default 1000. */
  dedupe?: number | false;
  /** Closes the source when aborted. */
  signal?: AbortSignal;
  /** Resume after this ID from the first connection (sent as `Last-Event-ID`). */
  lastEventId?: string;
  /** Reconnection time until the server sends `retry:`. Default 3000 ms. */
  initialRetry?: number;
}

/** The `error` event, with details the standard one lacks. */
export class EventSourceErrorEvent extends Event {
  /** What went wrong, in words (for a refused stream, with the start of the server's explanation). */
  readonly message: string;
  /** HTTP status when a response was refused (the connection then fails for good). */
  readonly status: number | undefined;
  /** The start of a refused response's body (at most 512 bytes, trimmed): where a server says why. `undefined` when no response was refused. */
  readonly body: string | undefined;
  /** `true` when the source will reconnect (readyState is CONNECTING), `false` when it is now CLOSED. */
  readonly willRetry: boolean;
  /** Milliseconds until the next attempt, when `willRetry`. */
  readonly delay: number | undefined;
  constructor(init: { message: string; status?: number; body?: string; willRetry: boolean; delay?: number }) {
    super('error');
    this.message = init.message;
    this.status = init.status;
    this.body = init.body;
    this.willRetry = init.willRetry;
    this.delay = init.delay;
  }
}

/** Why a source closed for good, as the async iterator throws it: the same `message`, `status` and `body` as the last `error` event. */
export class EventSourceError extends Error {
  override readonly name = 'EventSourceError';
  /** HTTP status when a response was refused. */
  readonly status: number | undefined;
  /** The start of a refused response's body, as in `EventSourceErrorEvent.body`. */
  readonly body: string | undefined;
  constructor(message: string, status?: number, body?: string) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

/**
 * A `message`, typed or `resync` event of this source: `data` is always text.
 * (The global `MessageEvent` is generic in lib.dom but not in @types/node, so `MessageEvent<string>`
 * would not compile for Node-only users; this interface reads the same in both.)
 */
export interface EventSourceMessageEvent extends MessageEvent {
  readonly data: string;
}

/** The event type each listener receives, as lib.dom's `EventSourceEventMap`; any other type is a message event. */
export interface EventSourceEventMap {
  open: Event;
  message: EventSourceMessageEvent;
  error: EventSourceErrorEvent;
  resync: EventSourceMessageEvent;
}

/** The listener and options types of the platform's EventTarget (lib.dom's and @types/node's differ; `AddEventListenerOptions` is not global in the latter). */
type Listener = Parameters<EventTarget['addEventListener']>[1];
type AddOptions = Parameters<EventTarget['addEventListener']>[2];
type RemoveOptions = Parameters<EventTarget['removeEventListener']>[2];
type Handler<E> = ((this: EventSource, ev: E) => unknown) | null;
type Timer = ReturnType<typeof setTimeout>;

/** How much of a refused response's body is read for the error, and how long the rest may take to come. */
const REFUSAL_BODY_BYTES = 512;
const REFUSAL_BODY_WAIT = 1000;

const CONNECTING = 0;
const OPEN = 1;
const CLOSED = 2;

/** A resilient, standard-compatible EventSource. */
export class EventSource extends EventTarget {
  static readonly CONNECTING = CONNECTING;
  static readonly OPEN = OPEN;
  static readonly CLOSED = CLOSED;
  readonly CONNECTING = CONNECTING;
  readonly OPEN = OPEN;
  readonly CLOSED = CLOSED;
  /** The resolved URL. */
  readonly url: string;
  readonly withCredentials: boolean;

  #state = CONNECTING;
  #init: EventSourceInit;
  #fetch: typeof fetch;
  #policy: ResolvedPolicy | undefined;
  #retry: number;
  #failures = 0;
  #parser: EventStreamParser;
  #origin = '';
  #controller: AbortController | undefined;
  #reconnectTimer: Timer | undefined;
  #heartbeatTimer: Timer | undefined;
  #openedAt: number | undefined;
  #deliveredSinceOpen = false;
  #seen = new Set<string>();
  #handlers = new Map<string, { handler: NonNullable<Handler<never>>; listener: (ev: Event) => void }>();
  #iterators = new Set<{ queue: EventSourceMessageEvent[]; wake: (() => void) | undefined }>();
  #failure: EventSourceError | undefined;
  #onAbort = (): void => this.close();

  constructor(url: string | URL, init: EventSourceInit = {}) {
    super();
    const base = (globalThis as { location?: { href: string } }).location?.href;
    try {
      this.url = new URL(String(url), base).href;
    } catch {
      throw new DOMException(`invalid EventSource URL: ${String(url)}`, 'SyntaxError');
    }
    this.withCredentials = init.withCredentials === true;
    this.#init = init;
    this.#fetch = init.fetch ?? globalThis.fetch.bind(globalThis);
    this.#policy = init.reconnect === false ? undefined : resolvePolicy(init.reconnect);
    this.#retry = init.initialRetry ?? 3000;
    this.#parser = new EventStreamParser(
      {
        onEvent: (event, hasId) => this.#dispatch(event.type, event.data, event.lastEventId, hasId),
        onRetry: (ms) => {
          this.#retry = ms;
        },
      },
      { lastEventId: init.lastEventId ?? '' },
    );
    if (init.signal?.aborted) {
      this.#state = CLOSED;
      return;
    }
    init.signal?.addEventListener('abort', this.#onAbort, { once: true });
    // Connect after the constructor returns, so listeners added right after it see `open`.
    setTimeout(() => void this.#connect(), 0);
  }

  /** CONNECTING (0), OPEN (1) or CLOSED (2). */
  get readyState(): number {
    return this.#state;
  }

  /** The last event ID: what is sent as `Last-Event-ID` on the next connection. */
  get lastEventId(): string {
    return this.#parser.lastEventId;
  }

  /** The current reconnection time (the server's last `retry:`, else `initialRetry`). */
  get reconnectionTime(): number {
    return this.#retry;
  }

  get onopen(): Handler<Event> {
    return this.#handler('open');
  }
  set onopen(handler: Handler<Event>) {
    this.#setHandler('open', handler);
  }
  get onmessage(): Handler<EventSourceMessageEvent> {
    return this.#handler('message');
  }
  set onmessage(handler: Handler<EventSourceMessageEvent>) {
    this.#setHandler('message', handler);
  }
  get onerror(): Handler<EventSourceErrorEvent> {
    return this.#handler('error');
  }
  set onerror(handler: Handler<EventSourceErrorEvent>) {
    this.#setHandler('error', handler);
  }

  /** Listens for `open`, `message`, `error`, `resync` or a typed event, the listener typed after the event (as lib.dom types EventSource). */
  override addEventListener<K extends keyof EventSourceEventMap>(type: K, listener: (this: EventSource, ev: EventSourceEventMap[K]) => unknown, options?: AddOptions): void;
  override addEventListener(type: string, listener: (this: EventSource, ev: EventSourceMessageEvent) => unknown, options?: AddOptions): void;
  override addEventListener(type: string, listener: Listener, options?: AddOptions): void;
  override addEventListener(type: string, listener: Listener | ((this: EventSource, ev: never) => unknown), options?: AddOptions): void {
    super.addEventListener(type, listener as Listener, options);
  }

  /** Removes a listener added with `addEventListener`. */
  override removeEventListener<K extends keyof EventSourceEventMap>(type: K, listener: (this: EventSource, ev: EventSourceEventMap[K]) => unknown, options?: RemoveOptions): void;
  override removeEventListener(type: string, listener: (this: EventSource, ev: EventSourceMessageEvent) => unknown, options?: RemoveOptions): void;
  override removeEventListener(type: string, listener: Listener, options?: RemoveOptions): void;
  override removeEventListener(type: string, listener: Listener | ((this: EventSource, ev: never) => unknown), options?: RemoveOptions): void {
    super.removeEventListener(type, listener as Listener, options);
  }

  /** Closes the connection for good; no further events. */
  close(): void {
    if (this.#state === CLOSED) return;
    this.#state = CLOSED;
    this.#stop();
    this.#init.signal?.removeEventListener('abort', this.#onAbort);
    this.#wakeIterators();
  }

  /**
   * Iterates over every event (messages, typed events and `resync`) from now until the source
   * closes; breaking out of the loop closes it. Throws if the connection failed for good.
   */
  [Symbol.asyncIterator](): AsyncIterator<EventSourceMessageEvent> {
    const it: { queue: EventSourceMessageEvent[]; wake: (() => void) | undefined } = { queue: [], wake: undefined };
    this.#iterators.add(it);
    const finish = (): IteratorResult<EventSourceMessageEvent> => {
      this.#iterators.delete(it);
      return { done: true, value: undefined };
    };
    return {
      next: async () => {
        while (true) {
          const event = it.queue.shift();
          if (event !== undefined) return { done: false, value: event };
          if (this.#state === CLOSED) {
            this.#iterators.delete(it);
            if (this.#failure !== undefined) throw this.#failure;
            return { done: true, value: undefined };
          }
          await new Promise<void>((resolve) => (it.wake = resolve));
          it.wake = undefined;
        }
      },
      return: async () => {
        this.close();
        return finish();
      },
    };
  }

  #handler<E>(type: string): Handler<E> {
    return (this.#handlers.get(type)?.handler as Handler<E> | undefined) ?? null;
  }

  #setHandler<E>(type: string, handler: Handler<E>): void {
    const old = this.#handlers.get(type);
    if (old !== undefined) this.removeEventListener(type, old.listener);
    this.#handlers.delete(type);
    if (typeof handler !== 'function') return;
    const listener = (ev: Event) => {
      handler.call(this, ev as E);
    };
    this.#handlers.set(type, { handler, listener });
    this.addEventListener(type, listener);
  }

  async #connect(): Promise<void> {
    if (this.#state === CLOSED) return;
    const controller = new AbortController();
    this.#controller = controller;
    this.#openedAt = undefined;
    this.#deliveredSinceOpen = false;
    let response: Response;
    try {
      const extra = typeof this.#init.headers === 'function' ? await this.#init.headers() : this.#init.headers;
      const headers = new Headers(extra);
      headers.set('accept', 'text/event-stream');
      if (this.#parser.lastEventId !== '') headers.set('last-event-id', utf8ByteString(this.#parser.lastEventId));
      if (this.#state === CLOSED) return;
      this.#armHeartbeat(controller);
      // `cache` is standard but missing from Node's RequestInit type.
      const request = {
        method: this.#init.method ?? 'GET',
        body: this.#init.body ?? null,
        headers,
        cache: 'no-store',
        credentials: this.withCredentials ? 'include' : 'same-origin',
        redirect: 'follow',
        signal: controller.signal,
      } as RequestInit;
      response = await this.#fetch(this.url, request);
    } catch (error) {
      if (this.#state !== CLOSED) this.#reestablish(`connection failed: ${describe(error)}`);
      return;
    }
    if (this.#state === CLOSED) {
      void response.body?.cancel().catch(() => {});
      return;
    }
    // The response headers are bytes too: the silence is measured from them, not from the request.
    this.#armHeartbeat(controller);
    const type = (response.headers.get('content-type') ?? '').split(';')[0]?.trim().toLowerCase();
    if (response.status !== 200 || type !== 'text/event-stream' || response.body === null) {
      const body = await readStart(response.body);
      if (this.#state === CLOSED) return;
      const what = response.status !== 200 ? `HTTP status ${response.status}` : `content type "${type ?? ''}" is not text/event-stream`;
      this.#fail(`the server refused the stream: ${what}${body === '' ? '' : `: ${body}`}`, response.status, body);
      return;
    }
    this.#origin = new URL(response.url || this.url).origin;
    this.#state = OPEN;
    this.#openedAt = Date.now();
    this.#parser.reset();
    this.dispatchEvent(new Event('open'));

    const reader = response.body.getReader();
    try {
      while (true) {
        const { done, value } = await reader.read();
        if (this.#state === CLOSED) return;
        if (done) break;
        this.#armHeartbeat(controller);
        this.#parser.feed(value);
      }
      this.#parser.end();
      this.#reestablish('the server ended the stream');
    } catch (error) {
      this.#parser.end();
      if (this.#state !== CLOSED) this.#reestablish(controller.signal.aborted ? describe(controller.signal.reason) : `the stream broke: ${describe(error)}`);
    } finally {
      reader.releaseLock();
    }
  }

  #dispatch(type: string, data: string, lastEventId: string, hasId: boolean): void {
    if (this.#state !== OPEN) return;
    const window = this.#init.dedupe ?? 1000;
    if (hasId && lastEventId !== '' && window !== false && window > 0) {
      if (this.#seen.has(lastEventId)) return;
      this.#seen.add(lastEventId);
      if (this.#seen.size > window) this.#seen.delete(this.#seen.values().next().value as string);
    }
    this.#deliveredSinceOpen = true;
    const event = new MessageEvent(type === RESYNC_EVENT ? 'resync' : type, { data, lastEventId, origin: this.#origin }) as EventSourceMessageEvent;
    this.dispatchEvent(event);
    for (const it of this.#iterators) {
      it.queue.push(event);
      it.wake?.();
    }
  }

  /** Waits and reconnects (the standard's "reestablish the connection"), with backoff. */
  #reestablish(message: string): void {
    this.#stop();
    if (this.#state === CLOSED) return;
    // A stream that opened and carried an event, or stayed open for `resetAfter`, was healthy: the
    // next wait is the server's retry, as the standard says. Backoff is for repeated failures.
    const healthy = this.#openedAt !== undefined && (this.#deliveredSinceOpen || Date.now() - this.#openedAt >= (this.#policy?.resetAfter ?? 0));
    this.#failures = healthy ? 0 : this.#failures + 1;
    if (this.#policy === undefined || this.#failures >= this.#policy.maxAttempts) {
      this.#fail(this.#policy === undefined ? `${message}; reconnecting is off` : `${message}; gave up after ${this.#failures} failed attempts`);
      return;
    }
    const delay = reconnectDelay(this.#failures, this.#retry, this.#policy);
    this.#state = CONNECTING;
    this.dispatchEvent(new EventSourceErrorEvent({ message, willRetry: true, delay }));
    if (this.#state !== CONNECTING) return;
    this.#reconnectTimer = setTimeout(() => void this.#connect(), delay);
  }

  /** Fails the connection: CLOSED for good, with an error event. */
  #fail(message: string, status?: number, body?: string): void {
    this.#stop();
    if (this.#state === CLOSED) return;
    this.#state = CLOSED;
    this.#init.signal?.removeEventListener('abort', this.#onAbort);
    this.#failure = new EventSourceError(message, status, body);
    this.dispatchEvent(new EventSourceErrorEvent({ message, status, body, willRetry: false }));
    this.#wakeIterators();
  }

  #armHeartbeat(controller: AbortController): void {
    const timeout = this.#init.heartbeatTimeout;
    if (timeout === undefined || timeout <= 0) return;
    clearTimeout(this.#heartbeatTimer);
    this.#heartbeatTimer = setTimeout(() => controller.abort(new Error(`no data for ${timeout} ms (heartbeatTimeout): the connection looks dead`)), timeout);
  }

  #stop(): void {
    clearTimeout(this.#reconnectTimer);
    clearTimeout(this.#heartbeatTimer);
    this.#reconnectTimer = undefined;
    this.#heartbeatTimer = undefined;
    this.#controller?.abort();
    this.#controller = undefined;
  }

  #wakeIterators(): void {
    for (const it of this.#iterators) it.wake?.();
  }
}

/**
 * A header value is a byte string: fetch throws a TypeError on any character above U+00FF, so a
 * non-Latin-1 event ID made every reconnection fail before it was sent. The standard sends the
 * UTF-8 bytes of the ID, and fetch puts each character of a byte string on the wire as one byte.
 */
function utf8ByteString(text: string): string {
  // eslint-disable-next-line no-control-regex
  if (/^[\x00-\x7f]*$/.test(text)) return text;
  let bytes = '';
  for (const byte of new TextEncoder().encode(text)) bytes += String.fromCharCode(byte);
  return bytes;
}

/**
 * The start of a refused response's body, where a server says why (a missing token, a wrong
 * topic): at most REFUSAL_BODY_BYTES, decoded as UTF-8 (a character cut at the bound is left out),
 * trimmed. The rest is cancelled, and a body that trickles does not hold the error back longer
 * than REFUSAL_BODY_WAIT.
 */
async function readStart(body: ReadableStream<Uint8Array> | null): Promise<string> {
  if (body === null) return '';
  const reader = body.getReader();
  const bytes = new Uint8Array(REFUSAL_BODY_BYTES);
  let size = 0;
  let timer: Timer | undefined;
  const late = new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), REFUSAL_BODY_WAIT)));
  try {
    while (size < bytes.length) {
      const chunk = await Promise.race([reader.read(), late]);
      if (chunk === undefined || chunk.done) break;
      const part = chunk.value.subarray(0, bytes.length - size);
      bytes.set(part, size);
      size += part.length;
    }
  } catch {
    // The body broke (or the source was closed meanwhile): what came before is still the explanation.
  } finally {
    clearTimeout(timer);
    reader.cancel().catch(() => {});
  }
  return new TextDecoder().decode(bytes.subarray(0, size), { stream: true }).trim();
}

function describe(error: unknown): string {
  if (error instanceof Error) {
    const cause = (error as { cause?: unknown }).cause;
    return cause instanceof Error ? `${error.message} (${cause.message})` : error.message;
  }
  return String(error);
}
