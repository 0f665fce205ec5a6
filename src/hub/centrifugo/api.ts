/**
 * The Centrifugo server HTTP API, for backends: `POST /api/<method>` with a JSON body, authorised
 * by `--api-key` (`X-API-Key: KEY` or `Authorization: apikey KEY`), answered 200 with
 * `{"result": …}` or `{"error": {"code", "message"}}` as Centrifugo answers by default (401 for a
 * missing or wrong key, 400 for a body that is not a JSON object, 404 for a method it does not
 * have), so that backends on Centrifugo's server libraries switch unchanged.
 *
 * A publication becomes an update on the channel (the topic) with the publication's JSON text as
 * `data`, through Hub.publish, stored in the one history every front-end reads. Extensions:
 * `private: true` (only subscribers whose token allows the channel receive it, as for a Mercure
 * private update) and `type` (the SSE event type its Mercure subscribers see).
 */
import { timingSafeEqual } from 'node:crypto';
import { DuplicateIdError, HubError, InvalidUpdateError, TransportUnavailableError } from '../core/errors.js';
import { MAX_TOPICS } from '../core/update.js';
import type { NodeRequest, NodeResponse } from '../../server/adapters/node.js';
import { isReservedTopic } from '../mercure/publish.js';
import { HttpError } from '../mercure/errors.js';
import { toJson } from './codec.js';
import type { Cluster } from './cluster.js';
import type { GatewayContext } from './context.js';
import { CentrifugoError, DISCONNECTS, type ProtocolError } from './errors.js';
import { readLimited } from './emulation.js';
import { dataOfPublication } from './publication.js';
import { historyOf, presenceOf } from './session.js';

/** Where the API is served. */
export const API_PATH = '/api';

/** Centrifugo's server API errors (its own list: apiproto/errors.go). */
const API_ERRORS = {
  internal: 100,
  badRequest: 107,
  notAvailable: 108,
  unrecoverablePosition: 112,
} as const;

/** Methods Centrifugo's API has that this hub answers "not available" (108), and why. */
const NOT_AVAILABLE: Record<string, string> = {
  subscribe: 'server-side subscriptions are not supported: clients subscribe themselves',
  refresh: 'connections are refreshed by their clients (refresh command) with a new token',
  history_remove: 'history is one stream for every channel: it is trimmed by --history-size and --history-ttl',
  rpc: 'ssehub has no RPC handler',
  connections: 'not supported (see /api/presence)',
};

type Handler = (ctx: GatewayContext, cluster: Cluster, body: Record<string, unknown>) => Promise<unknown>;

/** An API method's error reply. */
class ApiError extends Error {
  readonly code: number;
  constructor(code: number, message: string) {
    super(message);
    this.code = code;
  }
}

/** Whether a request carries the API key (compared in constant time). */
function authorised(req: NodeRequest, key: string): boolean {
  const header = req.headers['x-api-key'];
  const fromAuthorization = /^apikey\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '')?.[1];
  const given = (Array.isArray(header) ? header[0] : header) ?? fromAuthorization;
  if (given === undefined) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(key);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Handles `/api/<method>`. */
export async function handleApi(ctx: GatewayContext, cluster: Cluster, req: NodeRequest, res: NodeResponse, path: string): Promise<void> {
  const { hub } = ctx;
  const key = hub.config.apiKey;
  if (key === undefined) throw new HttpError(404, 'api-off', 'the server API is off: start the hub with --api-key');
  if (req.method !== 'POST') throw new HttpError(405, 'method-not-allowed', `${req.method ?? ''} is not supported on ${path}: POST a JSON body`, { allow: 'POST' });
  if (!authorised(req, key)) throw new HttpError(401, 'api-key', 'the server API needs the key of --api-key, as "X-API-Key: KEY" or "Authorization: apikey KEY"');
  const method = path.slice(API_PATH.length + 1);
  const handler = HANDLERS[method];
  if (handler === undefined && NOT_AVAILABLE[method] === undefined) throw new HttpError(404, 'unknown-api-method', `no API method "${method}"`);
  const raw = await readLimited(req, Math.max(hub.config.maxBody, hub.config.centrifugoMaxMessage));
  let body: unknown;
  try {
    body = raw.length === 0 ? {} : JSON.parse(raw.toString('utf8'));
  } catch {
    throw new HttpError(400, 'bad-json', 'the body must be a JSON object');
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new HttpError(400, 'bad-json', 'the body must be a JSON object');
  const reply = await call(ctx, cluster, method, body as Record<string, unknown>);
  hub.metrics.centrifugoApi.inc({ method: HANDLERS[method] !== undefined ? method : 'unknown', result: 'error' in reply ? 'error' : 'ok' });
  res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(toJson(reply));
}

/** One method's reply: `{result}` or `{error}`. */
async function call(ctx: GatewayContext, cluster: Cluster, method: string, body: Record<string, unknown>): Promise<{ result: unknown } | { error: ProtocolError }> {
  const unavailable = NOT_AVAILABLE[method];
  if (unavailable !== undefined) return { error: { code: API_ERRORS.notAvailable, message: `not available: ${unavailable}` } };
  try {
    return { result: await (HANDLERS[method] as Handler)(ctx, cluster, body) };
  } catch (error) {
    return { error: apiError(ctx, error) };
  }
}

/** The API error of what a method threw (its own, the core's, or the client protocol's). */
function apiError(ctx: GatewayContext, error: unknown): ProtocolError {
  if (error instanceof ApiError) return { code: error.code, message: error.message };
  if (error instanceof CentrifugoError) return { code: error.error.code === 112 ? 112 : error.error.code === 100 ? 100 : API_ERRORS.badRequest, message: error.message };
  if (error instanceof InvalidUpdateError) return { code: API_ERRORS.badRequest, message: `bad request: ${error.message}` };
  if (error instanceof TransportUnavailableError) return { code: API_ERRORS.internal, message: `internal server error: ${error.message}` };
  if (error instanceof HubError) return { code: API_ERRORS.badRequest, message: `bad request: ${error.message}` };
  ctx.hub.log.error({ err: error instanceof Error ? { message: error.message, stack: error.stack } : String(error) }, 'centrifugo API: a method failed');
  return { code: API_ERRORS.internal, message: 'internal server error' };
}

function stringOf(body: Record<string, unknown>, name: string, required = true): string | undefined {
  const value = body[name];
  if (value === undefined || value === null || value === '') {
    if (required) throw new ApiError(API_ERRORS.badRequest, `bad request: "${name}" is required`);
    return undefined;
  }
  if (typeof value !== 'string') throw new ApiError(API_ERRORS.badRequest, `bad request: "${name}" must be a string`);
  return value;
}

/** What a publish or broadcast stores: the update of `channels` its body describes. */
async function publishTo(ctx: GatewayContext, channels: string[], body: Record<string, unknown>): Promise<{ offset: number | undefined; epoch: string }> {
  if (body.b64data !== undefined && body.b64data !== '') throw new ApiError(API_ERRORS.badRequest, 'bad request: "b64data" (binary data) is not supported: an update\'s data is text; send JSON in "data"');
  if (!('data' in body) || body.data === undefined) throw new ApiError(API_ERRORS.badRequest, 'bad request: "data" is required');
  for (const channel of channels) if (isReservedTopic(channel)) throw new ApiError(API_ERRORS.badRequest, `bad request: channel "${channel}" is inside /.well-known/mercure, which is reserved for the hub`);
  const key = stringOf(body, 'idempotency_key', false);
  const type = stringOf(body, 'type', false);
  if (body.private !== undefined && typeof body.private !== 'boolean') throw new ApiError(API_ERRORS.badRequest, 'bad request: "private" must be true or false');
  const data = dataOfPublication(body.data);
  if (Buffer.byteLength(data) > ctx.hub.config.maxBody) throw new ApiError(API_ERRORS.badRequest, `bad request: data larger than ${ctx.hub.config.maxBody} bytes (--max-body)`);
  const epoch = await ctx.positions.epoch();
  try {
    const update = await ctx.hub.publish({ id: key, topics: channels, data, private: body.private === true, type });
    return { offset: ctx.positions.offsetOf(update.seq) || undefined, epoch };
  } catch (error) {
    // The same idempotency key again: it was published already (its offset is not looked up).
    if (error instanceof DuplicateIdError && key !== undefined) return { offset: undefined, epoch };
    throw error;
  }
}

const HANDLERS: Record<string, Handler> = {
  async publish(ctx, _cluster, body) {
    return publishTo(ctx, [stringOf(body, 'channel') as string], body);
  },

  async broadcast(ctx, _cluster, body) {
    const channels = body.channels;
    if (!Array.isArray(channels) || channels.length === 0 || !channels.every((c) => typeof c === 'string' && c !== '')) throw new ApiError(API_ERRORS.badRequest, 'bad request: "channels" must be a non-empty array of channel names');
    const distinct = [...new Set(channels as string[])];
    if (distinct.length > MAX_TOPICS) throw new ApiError(API_ERRORS.badRequest, `bad request: at most ${MAX_TOPICS} channels`);
    // One update on every channel: one offset, and a Mercure subscriber of several of them gets it once.
    try {
      const result = await publishTo(ctx, distinct, body);
      return { responses: (channels as string[]).map(() => ({ result })) };
    } catch (error) {
      if (error instanceof ApiError && error.code === API_ERRORS.badRequest) throw error;
      const reply = apiError(ctx, error);
      return { responses: (channels as string[]).map(() => ({ error: reply })) };
    }
  },

  async history(ctx, _cluster, body) {
    const channel = stringOf(body, 'channel') as string;
    return historyOf(ctx, channel, body, (u) => u.topics.includes(channel));
  },

  async presence(ctx, _cluster, body) {
    return presenceOf(ctx, stringOf(body, 'channel') as string, false);
  },

  async presence_stats(ctx, _cluster, body) {
    return presenceOf(ctx, stringOf(body, 'channel') as string, true);
  },

  async unsubscribe(_ctx, cluster, body) {
    const channel = stringOf(body, 'channel') as string;
    await cluster.unsubscribe({ user: stringOf(body, 'user', false) ?? '', client: stringOf(body, 'client', false), session: stringOf(body, 'session', false) }, channel);
    return {};
  },

  async disconnect(_ctx, cluster, body) {
    const user = stringOf(body, 'user', false) ?? '';
    const whitelist = body.whitelist;
    if (whitelist !== undefined && (!Array.isArray(whitelist) || !whitelist.every((w) => typeof w === 'string'))) throw new ApiError(API_ERRORS.badRequest, 'bad request: "whitelist" must be an array of client IDs');
    let advice: { code: number; reason: string } = DISCONNECTS.forceNoReconnect;
    const given = body.disconnect;
    if (given !== undefined && given !== null) {
      const { code, reason } = given as Record<string, unknown>;
      if (typeof code !== 'number' || !Number.isInteger(code) || code < 3000 || code > 4999) throw new ApiError(API_ERRORS.badRequest, 'bad request: "disconnect.code" must be from 3000 to 4999 (3500–3999 and 4500–4999: no reconnect)');
      advice = { code, reason: typeof reason === 'string' ? reason : '' };
    }
    await cluster.disconnect({ user, client: stringOf(body, 'client', false), session: stringOf(body, 'session', false), whitelist: whitelist as string[] | undefined }, advice);
    return {};
  },

  async info(_ctx, cluster) {
    return { nodes: cluster.nodes() };
  },

  async channels(ctx, _cluster, body) {
    const pattern = stringOf(body, 'pattern', false);
    // Centrifugo's pattern: `*` matches any run of characters.
    const re = pattern === undefined ? undefined : new RegExp(`^${pattern.split('*').map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
    const clients = new Map<string, Set<string>>();
    for (const e of await ctx.hub.listSubscriptions()) {
      if (re !== undefined && !re.test(e.topic)) continue;
      const set = clients.get(e.topic) ?? new Set<string>();
      set.add(e.connection ?? e.subscriber);
      clients.set(e.topic, set);
    }
    return { channels: Object.fromEntries([...clients].map(([channel, set]) => [channel, { num_clients: set.size }])) };
  },

  async batch(ctx, cluster, body) {
    const commands = body.commands;
    if (!Array.isArray(commands)) throw new ApiError(API_ERRORS.badRequest, 'bad request: "commands" must be an array');
    const replies: unknown[] = [];
    for (const command of commands) {
      const entries = typeof command === 'object' && command !== null ? Object.entries(command as Record<string, unknown>).filter(([, v]) => typeof v === 'object' && v !== null) : [];
      const [name, params] = entries[0] ?? ['', {}];
      if (name === 'batch' || (HANDLERS[name] === undefined && NOT_AVAILABLE[name] === undefined)) {
        replies.push({ error: { code: 104, message: `method not found: ${JSON.stringify(name)}` } });
        continue;
      }
      const reply = await call(ctx, cluster, name, params as Record<string, unknown>);
      replies.push('error' in reply ? reply : { [name]: reply.result });
    }
    return { replies };
  },
};
