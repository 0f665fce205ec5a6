/** Streams over node:http and node:http2 (compatibility API) requests and responses. */
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import { lastEventIdFrom, streamHeaders } from '../headers.js';
import type { Sink } from '../sink.js';
import { Stream, type StreamOptions } from '../stream.js';

/** A request from node:http or node:http2. */
export type NodeRequest = IncomingMessage | Http2ServerRequest;
/** A response from node:http or node:http2. */
export type NodeResponse = ServerResponse | Http2ServerResponse;

/** The part of both response classes a stream uses (it also fits wrappers such as compression middleware). */
interface ResponseLike {
  writeHead(status: number, headers: OutgoingHttpHeaders): unknown;
  removeHeader(name: string): void;
  write(chunk: Uint8Array): boolean;
  end(): unknown;
  destroy(error?: Error): unknown;
  on(event: 'drain' | 'close', listener: () => void): unknown;
  on(event: 'error', listener: (error: Error) => void): unknown;
  readonly writableEnded: boolean;
  readonly headersSent: boolean;
}

class NodeSink implements Sink {
  ondrain: (() => void) | null = null;
  onclose: ((error?: Error) => void) | null = null;
  #res: ResponseLike;
  #alive: () => boolean;

  constructor(res: ResponseLike, socket: Socket | undefined, alive: () => boolean) {
    this.#res = res;
    this.#alive = alive;
    res.on('drain', () => this.ondrain?.());
    res.on('close', () => this.onclose?.());
    if (socket !== undefined) {
      // A response to a pipelined request waits for the one before it and is not attached to the
      // socket yet: if the client goes away meanwhile, node:http never emits its 'close'. Listening
      // on the socket too means such a stream is still cleaned up (and cannot be leaked on purpose).
      const onSocketClose = () => this.onclose?.();
      socket.once('close', onSocketClose);
      res.on('close', () => socket.off('close', onSocketClose));
    }
    // An error listener also keeps a socket error from becoming an uncaught exception.
    res.on('error', (error) => this.onclose?.(error));
  }

  write(chunk: Uint8Array): boolean {
    return this.#res.write(chunk);
  }

  alive(): boolean {
    return this.#alive();
  }

  end(): void {
    this.#res.end();
  }

  destroy(): void {
    this.#res.destroy();
  }
}

/** `true` when the client went away before the stream started. */
function alreadyClosed(req: NodeRequest, res: NodeResponse): boolean {
  if (res.writableEnded) return true;
  if ('stream' in res) return res.stream.destroyed || res.stream.closed;
  return req.socket.destroyed;
}

/** The client's last event ID from a Node request (header, else `lastEventID` / `lastEventId` query). */
export function lastEventIdOf(req: NodeRequest): string | undefined {
  const url = req.url ?? '';
  const q = url.indexOf('?');
  return lastEventIdFrom(req.headers['last-event-id'], new URLSearchParams(q === -1 ? '' : url.slice(q + 1)));
}

/**
 * Starts an SSE stream on a node:http or node:http2 response: sends the headers and a first
 * comment at once, and returns the Stream. Works for Express too (its req/res are Node's).
 */
export function createStream(req: NodeRequest, res: NodeResponse, options: StreamOptions = {}): Stream {
  const http1 = req.httpVersionMajor < 2;
  const response = res as unknown as ResponseLike;
  const lastEventId = options.lastEventId ?? lastEventIdOf(req);
  if (alreadyClosed(req, res)) {
    const stream = new Stream(closedSink(), { ...options, lastEventId, heartbeat: false, lifetime: undefined });
    process.nextTick(() => stream.destroy('client-closed'));
    return stream;
  }
  if (http1) (res as ServerResponse).socket?.setNoDelay(true);
  if (!response.headersSent) {
    response.removeHeader('content-length');
    response.removeHeader('content-encoding');
    response.writeHead(200, streamHeaders(http1, options.headers));
  }
  const sink = new NodeSink(response, http1 ? (req as IncomingMessage).socket : undefined, () => !alreadyClosed(req, res));
  return new Stream(sink, { ...options, lastEventId });
}

function closedSink(): Sink {
  return { ondrain: null, onclose: null, write: () => false, end: () => {}, destroy: () => {} };
}
