/** Streams over node:http and node:http2 (compatibility API) requests and responses. */
import { type IncomingMessage, type OutgoingHttpHeaders, ServerResponse } from 'node:http';
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

/**
 * HTTP/1.1 fast path: the stream's bytes go straight to the socket, framed as chunks here. Node's
 * `res.write` costs a cork, four socket writes and an uncork per call; in a fan-out that runs once
 * per subscriber per batch, so the fan-out's user CPU is mostly that. A shared buffer (a batch
 * written to every subscriber, the heartbeat) is framed once. Used only for a plain
 * ServerResponse whose `write` nobody wrapped (compression middleware does), attached to its socket
 * (not a pipelined response waiting for its turn), after the headers went out through Node.
 */
class SocketSink implements Sink {
  ondrain: (() => void) | null = null;
  onclose: ((error?: Error) => void) | null = null;
  #res: ServerResponse;
  #socket: Socket;
  #chunked: boolean;
  #onDrain = () => this.ondrain?.();
  #onClose = () => this.onclose?.();

  constructor(res: ServerResponse, socket: Socket) {
    this.#res = res;
    this.#socket = socket;
    this.#chunked = res.chunkedEncoding;
    socket.on('drain', this.#onDrain);
    socket.once('close', this.#onClose);
    res.on('close', () => {
      socket.off('drain', this.#onDrain);
      socket.off('close', this.#onClose);
      this.onclose?.();
    });
    res.on('error', (error) => this.onclose?.(error));
  }

  write(chunk: Uint8Array): boolean {
    return this.#socket.write(this.#chunked ? framed(chunk) : chunk);
  }

  alive(): boolean {
    return !this.#socket.destroyed;
  }

  end(): void {
    // Node writes the last chunk (`0\r\n\r\n`) and hands the connection back for keep-alive.
    this.#res.end();
  }

  destroy(): void {
    this.#res.destroy();
  }
}

const frames = new WeakMap<Uint8Array, Buffer>();
const CRLF = Buffer.from('\r\n');

/** `chunk` as one HTTP/1.1 chunk; cached per buffer, so a buffer shared by many streams is framed once. */
function framed(chunk: Uint8Array): Buffer {
  let frame = frames.get(chunk);
  if (frame === undefined) {
    frame = Buffer.concat([Buffer.from(`${chunk.byteLength.toString(16)}\r\n`, 'latin1'), chunk, CRLF]);
    frames.set(chunk, frame);
  }
  return frame;
}

/** Whether the fast path applies (see SocketSink). */
function directSocket(req: NodeRequest, res: NodeResponse): Socket | undefined {
  if (req.httpVersionMajor !== 1 || req.method === 'HEAD' || !(res instanceof ServerResponse)) return undefined;
  if (res.write !== ServerResponse.prototype.write || res.end !== ServerResponse.prototype.end) return undefined;
  const socket = res.socket;
  if (socket === null || (socket as Socket & { _httpMessage?: unknown })._httpMessage !== res) return undefined;
  return socket;
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
export function createStream(req: NodeRequest, res: NodeResponse, options: StreamOptions & { directWrites?: boolean } = {}): Stream {
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
  const socket = options.directWrites === false ? undefined : directSocket(req, res);
  if (socket !== undefined) {
    // Not flushHeaders(): on Node 20 it puts the header block on the wire as UTF-8, so a header
    // value already turned into bytes (textToHeader: a non-ASCII Last-Event-ID) is encoded twice.
    // An empty write sends the block as Latin-1, one byte per character, as every other write does.
    (res as ServerResponse).write('', 'latin1');
    return new Stream(new SocketSink(res as ServerResponse, socket), { ...options, lastEventId });
  }
  const sink = new NodeSink(response, http1 ? (req as IncomingMessage).socket : undefined, () => !alreadyClosed(req, res));
  return new Stream(sink, { ...options, lastEventId });
}

function closedSink(): Sink {
  return { ondrain: null, onclose: null, write: () => false, end: () => {}, destroy: () => {} };
}
