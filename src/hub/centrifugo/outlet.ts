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
 * Server text frames (RFC 6455 §5.2: FIN, opcode 1, no mask) by the bytes they carry. A fan-out
 * hands every subscriber of a batch the same bytes, so the frame is made once and written whole
 * to each socket (one write, as SSE's chunk-framed bytes are), instead of a header and the payload
 * corked per socket by the `ws` library. Keyed weakly: a frame lives as long as its bytes.
 */
const frames = new WeakMap<Uint8Array, Buffer>();

/** The text frame of `chunk`, without its last byte when that is a newline (the SDKs split messages on newlines). */
export function textFrame(chunk: Uint8Array): Buffer {
  let frame = frames.get(chunk);
  if (frame !== undefined) return frame;
  const length = chunk.byteLength > 0 && chunk[chunk.byteLength - 1] === 0x0a ? chunk.byteLength - 1 : chunk.byteLength;
  const head = length < 126 ? 2 : length < 65_536 ? 4 : 10;
  frame = Buffer.allocUnsafe(head + length);
  frame[0] = 0x81;
  if (head === 2) frame[1] = length;
  else if (head === 4) {
    frame[1] = 126;
    frame.writeUInt16BE(length, 2);
  } else {
    frame[1] = 127;
    frame.writeBigUInt64BE(BigInt(length), 2);
  }
  frame.set(chunk.subarray(0, length), head);
  frames.set(chunk, frame);
  return frame;
}

/**
 * A WebSocket as a sink: each write is one text message (lines, without the last line's newline:
 * the SDKs split messages on newlines), written as a whole frame straight to the socket (see
 * textFrame; `ws` keeps the reading side, control frames and the close); backpressure is the
 * socket's. The Stream's first write (an SSE comment) is dropped. Ending sends a close frame with
 * the disconnect advice.
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
    // Without permessage-deflate (refused at the handshake) `ws` writes every frame as it is
    // asked, never queueing, so a whole frame written here never lands inside one of its own.
    this.#socket.write(textFrame(chunk));
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
