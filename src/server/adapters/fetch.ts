/**
 * Streams as a Fetch `Response` (Hono, and any runtime whose handlers return a Response).
 * Backpressure comes from the body's queue: when the reader falls behind, `desiredSize` drops to
 * zero and the stream queues, then applies its slow-consumer policy, as over node:http.
 */
import { lastEventIdFrom, streamHeaders } from '../headers.js';
import type { Sink } from '../sink.js';
import { Stream, type StreamOptions } from '../stream.js';

/** Options of a Fetch stream: those of every stream, plus the body's buffer size. */
export interface FetchStreamOptions extends StreamOptions {
  /** Bytes the Response body may hold before the stream counts as blocked. Default 64 KiB. */
  highWaterMark?: number;
}

class WebSink implements Sink {
  ondrain: (() => void) | null = null;
  onclose: ((error?: Error) => void) | null = null;
  readonly readable: ReadableStream<Uint8Array>;
  #controller!: ReadableStreamDefaultController<Uint8Array>;
  #done = false;

  constructor(highWaterMark: number) {
    this.readable = new ReadableStream<Uint8Array>(
      {
        start: (controller) => {
          this.#controller = controller;
        },
        pull: () => this.ondrain?.(),
        cancel: () => this.#closed(),
      },
      { highWaterMark, size: (chunk) => chunk.byteLength },
    );
  }

  write(chunk: Uint8Array): boolean {
    if (this.#done) return false;
    this.#controller.enqueue(chunk);
    return (this.#controller.desiredSize ?? 0) > 0;
  }

  end(): void {
    if (this.#done) return;
    this.#controller.close();
    // The body now drains on its own; there is no later signal that it was fully read.
    queueMicrotask(() => this.#closed());
  }

  destroy(): void {
    if (this.#done) return;
    this.#controller.error(new Error('stream closed by the server'));
    this.#closed();
  }

  /**
   * The client went away (the request was aborted): report the close but leave the body alone.
   * Erroring it here would make the server runtime log an error for an ordinary disconnect; the
   * runtime cancels the body itself.
   */
  clientGone(): void {
    this.#closed();
  }

  #closed(): void {
    if (this.#done) return;
    this.#done = true;
    this.onclose?.();
  }
}

/**
 * Starts an SSE stream for a Fetch `Request`; return `response` from the handler and send events
 * on `stream`. The client going away cancels the body (or aborts `request.signal`), which closes the stream.
 */
export function fetchStream(request: Request, options: FetchStreamOptions = {}): { stream: Stream; response: Response } {
  const sink = new WebSink(options.highWaterMark ?? 64 * 1024);
  const url = new URL(request.url);
  const lastEventId = options.lastEventId ?? lastEventIdFrom(request.headers.get('last-event-id'), url.searchParams);
  const response = new Response(sink.readable, { status: 200, headers: streamHeaders(false, options.headers) });
  const stream = new Stream(sink, { ...options, lastEventId });
  if (request.signal.aborted) stream.destroy('client-closed');
  else request.signal.addEventListener('abort', () => sink.clientGone(), { once: true });
  return { stream, response };
}

/** The part of a Hono context the adapter uses. */
export interface HonoContextLike {
  req: { raw: Request };
  /** On @hono/node-server, `{ incoming, outgoing }`: the Node request tells HTTP/1.x from HTTP/2. */
  env?: unknown;
}

/** Starts an SSE stream in a Hono handler: `const { stream, response } = honoStream(c); …; return response`. */
export function honoStream(c: HonoContextLike, options: FetchStreamOptions = {}): { stream: Stream; response: Response } {
  const result = fetchStream(c.req.raw, options);
  // A Fetch Request does not say its HTTP version; on @hono/node-server the Node request does, and
  // HTTP/1.x streams get `Connection: keep-alive` as with every other adapter.
  const incoming = (c.env as { incoming?: { httpVersionMajor?: unknown } } | null | undefined)?.incoming;
  if (incoming?.httpVersionMajor === 1 && !result.response.headers.has('connection')) {
    result.response.headers.set('connection', 'keep-alive');
  }
  return result;
}
