/**
 * The hub's HTTP surface: routing, CORS, and turning every error into a precise status with a
 * message (the core's typed errors through toHttpError). No input reaches an unhandled throw: a
 * handler's failure is answered (or, if the response already started, the connection is closed)
 * and counted. Health, metrics and the dashboard are the ops routes beside Mercure's.
 */
import type { NodeRequest, NodeResponse } from '../../server/adapters/node.js';
import { handleOps, sendText } from '../ops/health.js';
import { handleUi, uiEnabled } from '../ops/ui.js';
import type { HubContext } from './context.js';
import { HttpError, toHttpError } from './errors.js';
import { HUB_PATH, SUBSCRIPTIONS_PATH } from './paths.js';
import { handlePublish } from './publish.js';
import { handleSubscribe } from './subscribe.js';
import { handleSubscriptionsApi } from './subscriptions.js';
import { handleSubscriptionsApiV1 } from './subscriptions-v1.js';
import { RESOURCE_METADATA_PATH, handleResourceMetadata, isV1, resourceMetadataUrl } from './oauth.js';
import { presentsAccessToken } from './authorization.js';

export { HUB_PATH };
const MAX_URL_LENGTH = 64 * 1024;

function cors(ctx: HubContext, req: NodeRequest, res: NodeResponse): boolean {
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
  // What a fetch()-based client reads: the resume cursor, the subscription API's Link, the challenge.
  res.setHeader('access-control-expose-headers', 'Mercure-Last-Event-ID, Last-Event-ID, Link, WWW-Authenticate');
  return true;
}

/** Answers an error: the status, its headers, and the message as plain text. */
function fail(ctx: HubContext, req: NodeRequest, res: NodeResponse, error: unknown): void {
  const httpError = toHttpError(error, isV1(req) ? { resourceMetadata: resourceMetadataUrl(ctx, req) } : undefined);
  if (httpError === undefined) ctx.hub.log.error({ err: error instanceof Error ? { message: error.message, stack: error.stack } : String(error), url: req.url }, 'request failed');
  const status = httpError?.status ?? 500;
  // Already answered (408) and counted by the server: the handler only saw its body cut off.
  if (ctx.answered.has(req.socket)) {
    res.destroy();
    return;
  }
  ctx.hub.metrics.rejected.inc({ status: String(status), reason: httpError?.reason ?? 'internal' });
  if (res.headersSent || res.destroyed) {
    res.destroy();
    return;
  }
  const headers = { ...(httpError?.headers ?? {}) };
  // After a refused body the rest of it may still be in flight: close rather than read it. (HTTP/2
  // forbids the header, and there the stream alone is reset: the connection carries other streams.)
  const http1 = req.httpVersionMajor < 2;
  if (status === 413 && http1) headers.connection = 'close';
  sendText(res, status, httpError?.message ?? 'internal error', headers);
  if (status === 413 && http1) res.once('finish', () => req.socket.destroySoon());
}

/** Routes one request. Never throws. */
export function handleRequest(ctx: HubContext, req: NodeRequest, res: NodeResponse): void {
  route(ctx, req, res).catch((error: unknown) => fail(ctx, req, res, error));
}

async function route(ctx: HubContext, req: NodeRequest, res: NodeResponse): Promise<void> {
  const rawUrl = req.url ?? '/';
  if (rawUrl.length > MAX_URL_LENGTH) throw new HttpError(414, 'uri-too-long', `the URL is longer than ${MAX_URL_LENGTH} characters`);
  const q = rawUrl.indexOf('?');
  const path = q === -1 ? rawUrl : rawUrl.slice(0, q);
  const query = new URLSearchParams(q === -1 ? '' : rawUrl.slice(q + 1));
  const method = req.method ?? 'GET';

  if (path === HUB_PATH || path.startsWith(`${HUB_PATH}/`)) {
    const corsOk = cors(ctx, req, res);
    if (method === 'OPTIONS') {
      if (!corsOk) throw new HttpError(403, 'cors', `origin ${req.headers.origin ?? '(none)'} is not allowed (--cors-origins)`);
      res.writeHead(204, {
        'access-control-allow-methods': 'GET, POST, QUERY, OPTIONS',
        'access-control-allow-headers': 'authorization, content-type, last-event-id, cache-control',
        'access-control-max-age': '600',
      });
      res.end();
      return;
    }
    if (path === HUB_PATH) {
      if (method === 'GET' || method === 'QUERY') return handleSubscribe(ctx, req, res, query, q === -1 ? '' : rawUrl.slice(q + 1));
      if (method === 'POST') return handlePublish(ctx, req, res, query);
      // The answer a draft-07 client has always been given; the message adds QUERY for 1.0 clients.
      throw new HttpError(405, 'method-not-allowed', `${method} is not supported here: GET subscribes, POST publishes (and QUERY subscribes, Mercure 1.0)`, { allow: 'GET, POST, OPTIONS' });
    }
    if (path === SUBSCRIPTIONS_PATH || path.startsWith(`${SUBSCRIPTIONS_PATH}/`)) {
      if (!ctx.hub.config.subscriptions) throw new HttpError(404, 'not-found', 'the subscriptions API is off (--subscriptions)');
      if (method !== 'GET') throw new HttpError(405, 'method-not-allowed', `${method} is not supported here`, { allow: 'GET, OPTIONS' });
      // The 1.0 form for a 1.0 path ({match_type}/{match}/{subscriber}) or an access token; else draft-07's.
      const segments = path.slice(SUBSCRIPTIONS_PATH.length).split('/').filter((p) => p !== '').length;
      if (segments === 3 || (segments !== 1 && presentsAccessToken(ctx, req, query))) return handleSubscriptionsApiV1(ctx, req, res, path);
      return handleSubscriptionsApi(ctx, req, res, path, query);
    }
    throw new HttpError(404, 'not-found', `no such resource: ${path}`);
  }

  if (path === RESOURCE_METADATA_PATH) {
    if (method === 'OPTIONS') {
      res.writeHead(204, { 'access-control-allow-origin': '*', 'access-control-allow-methods': 'GET, HEAD, OPTIONS', 'access-control-max-age': '600' }).end();
      return;
    }
    if (method !== 'GET' && method !== 'HEAD') throw new HttpError(405, 'method-not-allowed', `${method} is not supported on ${path}`, { allow: 'GET, HEAD, OPTIONS' });
    handleResourceMetadata(ctx, req, res);
    return;
  }
  if ((path === '/ui' || path.startsWith('/ui/')) && uiEnabled(ctx)) return handleUi(ctx, req, res, path, query);
  if (method !== 'GET' && method !== 'HEAD') throw new HttpError(405, 'method-not-allowed', `${method} is not supported on ${path}`, { allow: 'GET' });
  if (path === '/') {
    sendText(res, 200, `ssehub: subscribe with GET ${HUB_PATH}?match=… (Mercure 1.0) or ?topic=… (draft-07), publish with POST ${HUB_PATH}`);
    return;
  }
  if (await handleOps(ctx.hub, path, res)) return;
  throw new HttpError(404, 'not-found', `no such resource: ${path}`);
}
