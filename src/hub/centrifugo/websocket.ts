/**
 * `/connection/websocket`: the Centrifugo client protocol over WebSocket (the `ws` library, on the
 * hub's own HTTP server). Capacity is checked before the upgrade, as for an SSE stream: a hub
 * that is draining or full answers the upgrade request 503 (429 for one address over its limit)
 * with Retry-After, and the SDK tries again. Messages are text (JSON); a binary message is the
 * Protobuf protocol, which this hub does not speak. A message larger than
 * `--centrifugo-max-message` is refused by `ws` with close code 1009, which the SDKs report as
 * "message size limit exceeded".
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import { type WebSocket, WebSocketServer } from 'ws';
import { DrainingError, OverCapacityError } from '../core/errors.js';
import { audiencesOf } from '../mercure/oauth.js';
import type { GatewayContext } from './context.js';
import { ClientStream, WebSocketSink } from './outlet.js';
import { Session, newClientId } from './session.js';

/** The path of the WebSocket endpoint. */
export const WEBSOCKET_PATH = '/connection/websocket';

/** Answers an upgrade request with an HTTP error and closes the socket. */
export function refuseUpgrade(socket: Duplex, status: number, message: string, headers: Record<string, string> = {}): void {
  const reason = { 400: 'Bad Request', 404: 'Not Found', 429: 'Too Many Requests', 503: 'Service Unavailable' }[status] ?? 'Error';
  const body = `${message}\n`;
  const extra = Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`).join('');
  if (socket.writable) socket.end(`HTTP/1.1 ${status} ${reason}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n${extra}\r\n${body}`);
  else socket.destroy();
}

/** The WebSocket endpoint of one hub. */
export class WebSocketEndpoint {
  readonly #ctx: GatewayContext;
  readonly #wss: WebSocketServer;

  constructor(ctx: GatewayContext) {
    this.#ctx = ctx;
    this.#wss = new WebSocketServer({ noServer: true, maxPayload: ctx.hub.config.centrifugoMaxMessage, perMessageDeflate: false, clientTracking: false });
  }

  /** Takes over an upgrade request of WEBSOCKET_PATH. */
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const { hub } = this.#ctx;
    const protocols = String(req.headers['sec-websocket-protocol'] ?? '');
    if (/\bcentrifuge-protobuf\b/.test(protocols)) {
      hub.metrics.rejected.inc({ status: '400', reason: 'protobuf' });
      refuseUpgrade(socket, 400, 'this hub speaks the JSON protocol only: use the SDK\'s JSON build (not centrifuge/build/protobuf)');
      return;
    }
    const address = (socket as Socket).remoteAddress ?? 'unknown';
    let connection;
    try {
      connection = hub.connect({ id: newClientId(), address, protocol: 'centrifugo', transport: 'websocket' });
    } catch (error) {
      if (error instanceof DrainingError || error instanceof OverCapacityError) {
        const status = error instanceof OverCapacityError && error.scope === 'address' ? 429 : 503;
        hub.metrics.rejected.inc({ status: String(status), reason: error.reason });
        refuseUpgrade(socket, status, error.message, { 'retry-after': String(error instanceof OverCapacityError ? error.retryAfter : 1) });
        return;
      }
      throw error;
    }
    let upgraded = false;
    // A handshake `ws` refuses (no Sec-WebSocket-Key, a bad version) never reaches the callback.
    socket.once('close', () => {
      if (!upgraded) connection.abandon();
    });
    this.#wss.handleUpgrade(req, socket, head, (ws: WebSocket) => {
      upgraded = true;
      this.#open(ws, socket as Socket, connection, req);
    });
  }

  #open(ws: WebSocket, socket: Socket, connection: ReturnType<GatewayContext['hub']['connect']>, req: IncomingMessage): void {
    const ctx = this.#ctx;
    const config = ctx.hub.config;
    const opened: { outlet?: ClientStream } = {};
    // Before the sink's own listener: a message over the limit is the client's fault, not an error of ours.
    ws.on('error', (error: Error & { code?: string }) => {
      // WS_ERR_*: a message over the limit, invalid UTF-8, a broken frame; `ws` closes with the RFC 6455 code.
      if (error.code?.startsWith('WS_ERR_') === true) opened.outlet?.destroy('bad-request');
    });
    socket.setNoDelay(true);
    const sink = new WebSocketSink(ws, socket);
    const outlet = new ClientStream(sink, { lifetime: config.writeTimeout > 0 ? config.writeTimeout : undefined, lifetimeJitter: 0.2 });
    opened.outlet = outlet;
    connection.attach(outlet);
    const session = new Session(ctx, { connection, outlet, framing: 'lines', webSocket: sink, audiences: audiencesOf(ctx, req) });
    ws.on('message', (data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean) => {
      if (isBinary) {
        ctx.hub.log.info({ conn: session.id }, 'centrifugo: a binary (Protobuf) message; disconnected (bad request)');
        session.disconnect('bad-request');
        return;
      }
      session.receive(Buffer.isBuffer(data) ? data.toString('utf8') : Array.isArray(data) ? Buffer.concat(data).toString('utf8') : Buffer.from(data).toString('utf8'));
    });
  }

  /** Stops taking upgrades (the connections are drained by the hub). */
  close(): void {
    this.#wss.close();
  }
}
