/**
 * The Outlet of a Centrifugo connection, over any of its client transports. It is the server
 * layer's Stream — the same bounded queue in bytes and messages, the same slow-consumer policy,
 * lifetime and graceful close — over a sink for the client transport: a WebSocket, or an HTTP
 * response carrying SSE events or newline-delimited replies. What differs is how a connection
 * ends: the client is told why with Centrifugo's disconnect advice (a WebSocket close code and
 * reason; a Disconnect push over emulation), which tells the SDK whether to reconnect.
 */
import type { Socket } from 'node:net';
import type { WebSocket } from 'ws';
import type { EndReason, Outlet } from '../core/outlet.js';
import type { NodeResponse } from '../../server/adapters/node.js';
import { type CloseReason, type Sink, Stream, type StreamOptions } from '../../server/index.js';
import { type Disconnect, disconnectOf } from './errors.js';

/** What the owner of a ClientStream does as it begins to end: tell the client why. */
export type EndingHook = (reason: EndReason, graceful: boolean) => void;

/**
 * A Stream whose end is announced first (see EndingHook). It ends with the core's reasons, which
 * the server layer's Stream carries through unchanged.
 */
export class ClientStream extends Stream implements Outlet {
  #ending: EndingHook | undefined;

  constructor(sink: Sink, options: StreamOptions) {
    // The Stream's own heartbeat comment and retry hint are SSE's: this protocol pings itself.
    super(sink, { ...options, heartbeat: false, retry: false });
  }

  /** Sets what is done as the stream begins to end. */
  onEnding(hook: EndingHook): void {
    this.#ending = hook;
  }

  override close(reason: EndReason = 'server-closed'): void {
    if (!this.open) return;
    this.#ending?.(reason, true);
    super.close(reason as CloseReason, { retry: false });
  }

  override destroy(reason: EndReason = 'server-closed', error?: Error): void {
    // Only the first end is announced (a close's timeout destroys a stream already ending).
    if (this.open) this.#ending?.(reason, false);
    super.destroy(reason as CloseReason, error);
  }
}

/**
 * A WebSocket as a sink: each write is one text message (lines, without the last line's newline:
 * the SDKs split messages on newlines); backpressure is the socket's. The Stream's first write (an
 * SSE comment) is dropped. Ending sends a close frame with the disconnect advice.
 */
export class WebSocketSink implements Sink {
  ondrain: (() => void) | null = null;
  onclose: ((error?: Error) => void) | null = null;
  /** The advice of the close frame. */
  disconnect: Disconnect = disconnectOf('server-closed');
  readonly #ws: WebSocket;
  readonly #socket: Socket;
  #preamble = true;
  #cut: NodeJS.Timeout | undefined;

  constructor(ws: WebSocket, socket: Socket) {
    this.#ws = ws;
    this.#socket = socket;
    socket.on('drain', () => this.ondrain?.());
    ws.once('close', () => {
      clearTimeout(this.#cut);
      this.onclose?.();
    });
    ws.on('error', (error) => this.onclose?.(error));
  }

  write(chunk: Uint8Array): boolean {
    if (this.#preamble) {
      this.#preamble = false;
      return true;
    }
    if (this.#ws.readyState !== this.#ws.OPEN) return false;
    const last = chunk.byteLength - 1;
    const message = chunk[last] === 0x0a ? Buffer.from(chunk.buffer, chunk.byteOffset, last) : chunk;
    this.#ws.send(message, { binary: false, compress: false });
    return !this.#socket.writableNeedDrain;
  }

  alive(): boolean {
    return this.#ws.readyState === this.#ws.OPEN;
  }

  end(): void {
    this.#close();
  }

  /** Cut now, but with the advice if the socket still takes it: the client learns why (e.g. `slow`). */
  destroy(): void {
    this.#close();
    this.#cut ??= setTimeout(() => this.#ws.terminate(), 1000);
    this.#cut.unref();
  }

  #close(): void {
    if (this.#ws.readyState !== this.#ws.OPEN) return;
    // A close reason is at most 123 bytes.
    this.#ws.close(this.disconnect.code, Buffer.from(this.disconnect.reason).subarray(0, 123).toString());
  }
}

/**
 * An HTTP response as a sink (bidirectional emulation: SSE events, or HTTP streaming's lines).
 * `skipPreamble`: drop the Stream's first write (an SSE comment), which is not a line of replies.
 */
export class ResponseSink implements Sink {
  ondrain: (() => void) | null = null;
  onclose: ((error?: Error) => void) | null = null;
  readonly #res: NodeResponse;
  #preamble: boolean;

  constructor(res: NodeResponse, skipPreamble: boolean) {
    this.#res = res;
    this.#preamble = skipPreamble;
    res.on('drain', () => this.ondrain?.());
    res.on('close', () => this.onclose?.());
    res.on('error', (error: Error) => this.onclose?.(error));
  }

  write(chunk: Uint8Array): boolean {
    if (this.#preamble) {
      this.#preamble = false;
      return true;
    }
    return (this.#res as { write(chunk: Uint8Array): boolean }).write(chunk);
  }

  alive(): boolean {
    return !this.#res.destroyed;
  }

  end(): void {
    this.#res.end();
  }

  destroy(): void {
    this.#res.destroy();
  }
}
