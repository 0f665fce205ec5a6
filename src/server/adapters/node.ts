/** Streams over node:http and node:http2 (compatibility API) requests and responses. */
import { type IncomingMessage, type OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { EventEmitter } from 'node:events';
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
 *
 * Once the head is out, the connection is also taken out of node:http (see `detach`), as an upgrade
 * hands its socket over: the request, the response, the parser and node:http's per-connection
 * state are then garbage, about 5 KiB per idle stream, which at 20,000 streams per process is the
 * difference between the stream and the bare socket. Node's bookkeeping is not needed any more: the
 * request is complete, the body is written here, and the stream sees the socket's own events. A
 * graceful end writes the last chunk and hands the connection back to the server for its next
 * request (keep-alive), as `res.end()` would have, unless the request asked for the connection to
 * close; handed back, it is a new connection to the server (`headersTimeout` applies until its
 * next request comes, instead of `keepAliveTimeout`).
 */
class SocketSink implements Sink {
  ondrain: (() => void) | null = null;
  onclose: ((error?: Error) => void) | null = null;
  #socket: HttpSocket;
  #chunked: boolean;
  /** Until the connection is taken out of node:http: the request and response, and the sink's listeners on the latter. */
  #req: IncomingMessage | undefined;
  #res: ServerResponse | undefined;
  #resListeners: { close: () => void; error: (error: Error) => void } | undefined;
  /** Whether the connection may serve another request after the stream (Node decided it from the request; read at detach). */
  #keepAlive = false;
  #ended = false;

  constructor(req: IncomingMessage, res: ServerResponse, socket: Socket, detach: boolean) {
    const s = socket as HttpSocket;
    this.#req = req;
    this.#res = res;
    this.#socket = s;
    this.#chunked = res.chunkedEncoding;
    // Listeners shared by every stream, which find the sink on the socket: a few closures per stream
    // are a few hundred bytes per idle connection.
    s[SINK] = this;
    s.on('drain', onSocketDrain);
    s.on('close', onSocketClose);
    const listeners = {
      close: () => {
        s.off('drain', onSocketDrain);
        s.off('close', onSocketClose);
        this.onclose?.();
      },
      error: (error: Error) => this.onclose?.(error),
    };
    this.#resListeners = listeners;
    res.on('close', listeners.close);
    res.on('error', listeners.error);
    // Not now: a handler may be running inside the parser's callback (its stack must unwind first),
    // and may still add its own listeners to the request or the response.
    if (detach) setImmediate(() => this.#detach());
  }

  write(chunk: Uint8Array): boolean {
    return this.#socket.write(this.#chunked ? framed(chunk) : chunk);
  }

  alive(): boolean {
    return !this.#socket.destroyed;
  }

  end(): void {
    const res = this.#res;
    // Node writes the last chunk (`0\r\n\r\n`) and hands the connection back for keep-alive.
    if (res !== undefined) {
      res.end();
      return;
    }
    if (this.#ended) return;
    this.#ended = true;
    const socket = this.#socket;
    // HTTP/1.0: the body ends with the connection.
    if (!this.#chunked) {
      socket.end();
      return;
    }
    socket.off('drain', onSocketDrain);
    socket.off('close', onSocketClose);
    socket.off('error', onSocketError);
    socket.off('end', onSocketEnd);
    socket[SINK] = undefined;
    if (socket.server !== undefined) detachedBy.get(socket.server)?.delete(socket);
    // As `res.end()` does: the stream is over once the last chunk is out (or the connection failed).
    socket.write(LAST_CHUNK, (error) => this.onclose?.(error ?? undefined));
    // Handed back at once, before any byte of a next request can be read (and lost).
    if (this.#keepAlive && !socket.destroyed && reattach(socket)) return;
    socket.on('error', ignore);
    socket.end();
  }

  destroy(): void {
    if (this.#res !== undefined) this.#res.destroy();
    else this.#socket.destroy();
  }

  /** Takes the connection out of node:http (see the class comment); stays on Node's path when it cannot. */
  #detach(): void {
    const req = this.#req;
    const res = this.#res;
    const listeners = this.#resListeners;
    const socket = this.#socket;
    if (req === undefined || res === undefined || listeners === undefined || socket.destroyed || res.writableEnded) return;
    // Kept for another request unless node:http would close it after the response, or the client
    // asked for the connection to close (the stream's `Connection: keep-alive` hides that from Node).
    const keepAlive = !(res as ServerResponse & { _last?: boolean })._last && req.httpVersionMinor >= 1 && !/(^|,)\s*close\s*(,|$)/i.test(req.headers.connection ?? '');
    const own = (listener: unknown): boolean => listener === listeners.close || listener === listeners.error;
    // The sink takes over what node:http did for the stream: errors, and the client's end.
    const adopt = (): void => {
      socket.on('error', onSocketError);
      socket.on('end', onSocketEnd);
    };
    if (!detach(req, res, socket, own, adopt)) return;
    res.off('close', listeners.close);
    res.off('error', listeners.error);
    this.#req = undefined;
    this.#res = undefined;
    this.#resListeners = undefined;
    this.#keepAlive = keepAlive;
  }
}

/** Where a socket's SocketSink is found by the shared listeners. */
const SINK = Symbol('ssehub.sink');

function onSocketDrain(this: HttpSocket): void {
  this[SINK]?.ondrain?.();
}

function onSocketClose(this: HttpSocket): void {
  if (this.server !== undefined) detachedBy.get(this.server)?.delete(this);
  this[SINK]?.onclose?.();
}

function onSocketError(this: HttpSocket, error: Error): void {
  this[SINK]?.onclose?.(error);
}

/** The client half-closed: node:http ends such a connection too, and nobody reads a stream any more. */
function onSocketEnd(this: HttpSocket): void {
  this.destroy();
}

const LAST_CHUNK = Buffer.from('0\r\n\r\n', 'latin1');
const ignore = (): void => {};

/** The listeners node:http puts on a connection's socket, by event, named as Node 20 to 24 name them. */
const SERVER_LISTENERS: [event: string, name: string][] = [
  ['data', 'bound socketOnData'],
  ['end', 'bound socketOnEnd'],
  ['close', 'bound socketOnClose'],
  ['drain', 'bound socketOnDrain'],
  ['error', 'socketOnError'],
  ['timeout', 'socketOnTimeout'],
  ['resume', 'onSocketResume'],
  ['pause', 'onSocketPause'],
];
/** node:http's listener on a response's 'finish' (its keep-alive hand-over), which goes with the response. */
const RES_ON_FINISH = 'bound resOnFinish';

/** The parts of node:http's HTTP parser (per connection) that `detach` touches. */
interface ParserLike {
  incoming: unknown;
  socket: unknown;
  onIncoming: unknown;
  _consumed?: boolean;
  unconsume?(): void;
  remove?(): void;
  close?(): void;
}
type HttpSocket = Socket & { parser?: ParserLike | null; _httpMessage?: unknown; server?: EventEmitter; encrypted?: boolean; _handle?: { _consumed?: boolean } | null; [SINK]?: SocketSink | undefined };

/**
 * Takes an HTTP/1.x connection whose response is a stream out of node:http's bookkeeping, as Node
 * itself does for an upgrade: node:http's listeners leave the socket (after the sink's took their
 * place), the parser is freed and leaves the server's connection list (its request is complete:
 * there is nothing left to time out), and the response lets go of the socket. Returns `false`, and
 * changes nothing, unless it all looks exactly as expected: the request complete and the last one
 * read, no socket timeout (`server.timeout` stays in node:http's hands), and nobody but Node and
 * the sink listening to the request or the response (a framework waiting for their 'close' or
 * 'finish', an access log, keeps Node's path).
 */
function detach(req: IncomingMessage, res: ServerResponse, socket: HttpSocket, own: (listener: unknown) => boolean, adopt: () => void): boolean {
  const parser = socket.parser;
  if (parser === null || parser === undefined || parser.incoming !== req || !req.complete || socket._httpMessage !== res) return false;
  if (socket.timeout !== undefined && socket.timeout > 0) return false;
  for (const emitter of [req, res] as EventEmitter[]) {
    for (const event of emitter.eventNames()) {
      for (const listener of emitter.rawListeners(event)) if (!own(listener) && !(event === 'finish' && listener.name === RES_ON_FINISH)) return false;
    }
  }
  const found: [string, (...args: unknown[]) => void][] = [];
  for (const [event, name] of SERVER_LISTENERS) {
    const matches = socket.rawListeners(event).filter((l) => l.name === name);
    if (matches.length !== 1) return false;
    found.push([event, matches[0] as (...args: unknown[]) => void]);
  }
  if (typeof parser.remove !== 'function' || typeof parser.close !== 'function') return false;

  // node:http replaced these on the socket (to notice a 'data' listener): the prototype's are back,
  // assigned rather than deleted (a delete would turn the socket's properties into a dictionary).
  const methods = socket as unknown as Record<string, unknown>;
  const prototype = Object.getPrototypeOf(socket) as Record<string, unknown>;
  for (const key of ['on', 'addListener', 'prependListener', 'setEncoding']) if (Object.hasOwn(socket, key)) methods[key] = prototype[key];
  // The sink's listeners first, so that an error never finds the socket without one.
  adopt();
  for (const [event, listener] of found) socket.removeListener(event, listener);
  if (parser._consumed === true) parser.unconsume?.();
  parser._consumed = false;
  if (socket._handle) socket._handle._consumed = false;
  parser.incoming = null;
  parser.socket = null;
  parser.onIncoming = null;
  socket.parser = null;
  parser.remove();
  parser.close();
  res.detachSocket(socket);
  // Keep reading (into nothing): that is how the client's FIN or reset is seen.
  socket.resume();
  if (socket.server !== undefined) detachedOf(socket.server).add(socket);
  return true;
}

/**
 * The connections `detach` took out of each server. `server.closeAllConnections()` walks the
 * server's connection list, which they left with their parser; it is extended, once per server,
 * to destroy them too, so that it still closes every connection. (`closeIdleConnections()`, which
 * `server.close()` calls, never closed a stream, and still does not.)
 */
const detachedBy = new WeakMap<EventEmitter, Set<Socket>>();

function detachedOf(server: EventEmitter): Set<Socket> {
  let sockets = detachedBy.get(server);
  if (sockets !== undefined) return sockets;
  const set = new Set<Socket>();
  detachedBy.set(server, set);
  const s = server as EventEmitter & { closeAllConnections?: () => void };
  const closeAll = s.closeAllConnections;
  if (typeof closeAll === 'function') {
    s.closeAllConnections = function closeAllConnections(this: unknown): void {
      for (const socket of set) socket.destroy();
      set.clear();
      closeAll.call(this);
    };
  }
  sockets = set;
  return sockets;
}

/** Hands a connection taken out by `detach` back to its server for the next request, as a new connection would be. */
function reattach(socket: HttpSocket): boolean {
  const server = socket.server;
  if (server === undefined) return false;
  const listener = server.listeners(socket.encrypted === true ? 'secureConnection' : 'connection').find((l) => l.name === 'connectionListener');
  if (listener === undefined) return false;
  listener.call(server, socket);
  return true;
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

/** Options of `createStream` beyond the stream's own. */
export interface NodeStreamOptions {
  /** `false`: every write goes through `res.write` (HTTP/1.1 streams otherwise write to the socket). Default `true`. */
  directWrites?: boolean;
  /**
   * `false`: the connection stays in node:http's bookkeeping for the stream's life. By default an
   * HTTP/1.x stream that nothing else listens to (its request nor its response) is taken out of it
   * once its head is out, which saves about 5 KiB per open stream.
   */
  detach?: boolean;
}

/**
 * Starts an SSE stream on a node:http or node:http2 response: sends the headers and a first
 * comment at once, and returns the Stream. Works for Express too (its req/res are Node's).
 */
export function createStream(req: NodeRequest, res: NodeResponse, options: StreamOptions & NodeStreamOptions = {}): Stream {
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
    return new Stream(new SocketSink(req as IncomingMessage, res as ServerResponse, socket, options.detach !== false), { ...options, lastEventId });
  }
  const sink = new NodeSink(response, http1 ? (req as IncomingMessage).socket : undefined, () => !alreadyClosed(req, res));
  return new Stream(sink, { ...options, lastEventId });
}

function closedSink(): Sink {
  return { ondrain: null, onclose: null, write: () => false, end: () => {}, destroy: () => {} };
}
