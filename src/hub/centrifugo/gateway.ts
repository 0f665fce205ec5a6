/**
 * The Centrifugo front-end: its routes on the hub's HTTP server, and what they share. It speaks
 * the Centrifugo client protocol v2 (JSON) over WebSocket (`/connection/websocket`), bidirectional
 * SSE (`/connection/sse`) and HTTP streaming (`/connection/http_stream`, commands by
 * `POST /emulation`), and the server HTTP API (`/api/…`), over the same core as the Mercure
 * front-end: the same topics, history, tokens and cluster. See docs/websocket.md.
 */
import { readFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { NodeRequest, NodeResponse } from '../../server/adapters/node.js';
import type { HubContext } from '../mercure/context.js';
import { HttpError, toHttpError } from '../mercure/errors.js';
import { sendText } from '../ops/health.js';
import { API_PATH, handleApi } from './api.js';
import { Cluster } from './cluster.js';
import { type GatewayContext, Sessions } from './context.js';
import { EMULATION_PATH, HTTP_STREAM_PATH, SSE_PATH, handleEmulation, handleHttpStream, handleSse } from './emulation.js';
import { Positions } from './positions.js';
import { Encoders } from './publication.js';
import { WEBSOCKET_PATH, WebSocketEndpoint, refuseUpgrade } from './websocket.js';

const { version } = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };

/** What the hub's server hands the front-end. */
export interface Gateway {
  readonly context: GatewayContext;
  readonly cluster: Cluster;
  /** Handles a request of the front-end's paths; `false` for any other path (the Mercure front-end's). */
  handle(req: NodeRequest, res: NodeResponse): boolean;
  /** Handles an HTTP upgrade request (WebSocket); any other path is refused with 404. */
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void;
  /** Resolves once this node receives what other nodes send it. */
  ready(): Promise<void>;
  /** Stops taking WebSocket upgrades and signals (connections are drained by the hub). */
  close(): void;
}

/** Starts the front-end over a hub's context. */
export function startGateway(hubContext: HubContext): Gateway {
  const { hub } = hubContext;
  const positions = new Positions(hub.transport, hub.config.historySize);
  const ctx: GatewayContext = { ...hubContext, positions, encoders: new Encoders(positions), sessions: new Sessions(), version };
  const cluster = new Cluster(ctx);
  const websocket = new WebSocketEndpoint(ctx);
  const clients = hub.config.centrifugo;

  const route = async (req: NodeRequest, res: NodeResponse, path: string, query: URLSearchParams): Promise<void> => {
    if (path === API_PATH || path.startsWith(`${API_PATH}/`)) return handleApi(ctx, cluster, req, res, path);
    if (!clients) throw new HttpError(404, 'centrifugo-off', 'the Centrifugo client protocol is off (--centrifugo)');
    if (cors(ctx, req, res) && req.method === 'OPTIONS') {
      res.writeHead(204, { 'access-control-allow-methods': 'GET, POST, OPTIONS', 'access-control-allow-headers': 'content-type, authorization', 'access-control-max-age': '600' }).end();
      return;
    }
    if (path === WEBSOCKET_PATH) {
      // The upgrade handler takes WebSocket requests; this one came without `Upgrade: websocket`.
      throw new HttpError(400, 'no-upgrade', 'expected a WebSocket upgrade, but the request has no "Upgrade: websocket" header: something between the client and the hub dropped it. nginx needs, in this location: proxy_http_version 1.1; proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection $connection_upgrade; (see deploy/nginx.conf). Clients that cannot use WebSocket fall back to /connection/sse or /connection/http_stream.', { 'x-ssehub-upgrade': 'missing' });
    }
    if (hub.draining) throw new HttpError(503, 'draining', 'the hub is shutting down; reconnect (to another node)', { 'retry-after': '1' });
    if (path === SSE_PATH) return handleSse(ctx, req, res, query);
    if (path === HTTP_STREAM_PATH) return handleHttpStream(ctx, req, res);
    return handleEmulation(ctx, cluster, req, res);
  };

  return {
    context: ctx,
    cluster,
    handle(req, res) {
      const url = req.url ?? '/';
      const q = url.indexOf('?');
      const path = q === -1 ? url : url.slice(0, q);
      if (!isGatewayPath(path)) return false;
      route(req, res, path, new URLSearchParams(q === -1 ? '' : url.slice(q + 1))).catch((error: unknown) => fail(ctx, req, res, error));
      return true;
    },
    upgrade(req, socket, head) {
      const url = req.url ?? '/';
      const path = url.split('?')[0];
      // A socket error (a reset) must not be an uncaught exception; the socket is then gone.
      socket.on('error', () => socket.destroy());
      if (path !== WEBSOCKET_PATH || !clients) {
        hub.metrics.rejected.inc({ status: '404', reason: 'not-found' });
        refuseUpgrade(socket, 404, path === WEBSOCKET_PATH ? 'the Centrifugo client protocol is off (--centrifugo)' : `no WebSocket endpoint at ${path}; the Centrifugo protocol is at ${WEBSOCKET_PATH}`);
        return;
      }
      try {
        websocket.upgrade(req, socket, head);
      } catch (error) {
        hub.log.error({ err: error instanceof Error ? error.message : String(error) }, 'centrifugo: an upgrade failed');
        refuseUpgrade(socket, 503, 'internal error');
      }
    },
    ready: () => cluster.ready(),
    close() {
      websocket.close();
      cluster.close();
    },
  };
}

/** The paths this front-end serves. */
function isGatewayPath(path: string): boolean {
  return path === WEBSOCKET_PATH || path === SSE_PATH || path === HTTP_STREAM_PATH || path === EMULATION_PATH || path === API_PATH || path.startsWith(`${API_PATH}/`);
}

/** CORS by --cors-origins, as the Mercure front-end allows it (credentials for a listed origin, never `*` with them). */
function cors(ctx: GatewayContext, req: NodeRequest, res: NodeResponse): boolean {
  const origin = req.headers.origin;
  const allowed = ctx.hub.config.corsOrigins;
  if (origin === undefined || allowed.length === 0) return false;
  if (allowed.includes('*')) {
    res.setHeader('access-control-allow-origin', '*');
    return true;
  }
  if (!allowed.includes(origin)) return false;
  res.setHeader('access-control-allow-origin', origin);
  res.setHeader('access-control-allow-credentials', 'true');
  res.setHeader('vary', 'Origin');
  return true;
}

/** Answers an error of a route: the core's and HTTP errors by their status, anything else 500 (logged). */
function fail(ctx: GatewayContext, req: NodeRequest, res: NodeResponse, error: unknown): void {
  const answer = toHttpError(error);
  if (answer === undefined) ctx.hub.log.error({ err: error instanceof Error ? { message: error.message, stack: error.stack } : String(error), url: req.url }, 'centrifugo: request failed');
  const status = answer?.status ?? 500;
  ctx.hub.metrics.rejected.inc({ status: String(status), reason: answer?.reason ?? 'internal' });
  if (res.headersSent || res.destroyed) {
    res.destroy();
    return;
  }
  sendText(res, status, answer?.message ?? 'internal error', answer?.headers ?? {});
}
