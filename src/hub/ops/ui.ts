/**
 * The `/ui` dashboard (`--ui`, always on with `--dev`): a page shipped as a string (no build step,
 * no CDN), the browser bundle of ssehub/client for its live tail, a JSON state the page polls, and
 * in dev mode a token generator. Reading the state needs a token with `ssehub.ui: true` unless in
 * `--dev`; the page itself holds no data.
 */
import { readFile } from 'node:fs/promises';
import type { NodeRequest, NodeResponse } from '../../server/adapters/node.js';
import { DEV_TOKEN_ISSUER } from '../config.js';
import { NotAllowedError } from '../core/errors.js';
import { authenticate } from '../mercure/authorization.js';
import { readBody } from '../mercure/body.js';
import type { HubContext } from '../mercure/context.js';
import { HttpError } from '../mercure/errors.js';
import { HUB_PATH } from '../mercure/paths.js';
import { resourceOf } from '../mercure/oauth.js';
import { signAccessToken, signToken } from '../mercure/token.js';
import { totalOf } from './metrics.js';
import { UI_PAGE } from './ui-page.js';

/** The browser bundle, built by `npm run build` into dist/browser (src/hub/ops and dist/hub/ops both sit three levels below the package). */
const CLIENT_BUNDLE = new URL('../../../dist/browser/ssehub-client.js', import.meta.url);
let bundle: Promise<Buffer> | undefined;

const NO_STORE = { 'cache-control': 'no-store' };

/** The families the dashboard's counts come from (only these are gathered from the workers on each poll). */
const GROUP_COUNTS = ['ssehub_connections', 'ssehub_subscriptions', 'ssehub_updates_published_total', 'ssehub_deliveries_total'];

/** `true` when `/ui` is served. */
export function uiEnabled(ctx: HubContext): boolean {
  return ctx.hub.config.ui || ctx.hub.config.dev;
}

/** Serves `/ui` and below. */
export async function handleUi(ctx: HubContext, req: NodeRequest, res: NodeResponse, path: string, query: URLSearchParams): Promise<void> {
  const method = req.method ?? 'GET';
  if (path === '/ui' || path === '/ui/') {
    if (method !== 'GET' && method !== 'HEAD') throw new HttpError(405, 'method-not-allowed', `${method} is not supported on ${path}`, { allow: 'GET' });
    // The page runs its own inline script and nothing from elsewhere.
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', ...NO_STORE, 'content-security-policy': "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' data:", 'x-content-type-options': 'nosniff' }).end(UI_PAGE);
    return;
  }
  if (path === '/ui/client.js') {
    bundle ??= readFile(CLIENT_BUNDLE).catch((error: unknown) => {
      bundle = undefined;
      throw new HttpError(404, 'not-found', `the browser bundle is missing (run npm run build): ${(error as Error).message}`);
    });
    res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8', 'cache-control': 'max-age=300' }).end(await bundle);
    return;
  }
  if (path === '/ui/api/state') {
    if (method !== 'GET') throw new HttpError(405, 'method-not-allowed', `${method} is not supported on ${path}`, { allow: 'GET' });
    await authorize(ctx, req, query);
    const { hub } = ctx;
    const value = async (metric: { get(): Promise<{ values: { value: number }[] }> }) => (await metric.get()).values.reduce((n, v) => n + v.value, 0);
    const { topics, templateSubscribers } = hub.topicCounts();
    // Under --workers the counts are the whole group's, gathered like /metrics; the topics and
    // recent ends stay this worker's (they are not metrics).
    const group = hub.metrics.group === undefined ? undefined : await hub.metrics.group(GROUP_COUNTS);
    const state = {
      dev: hub.config.dev,
      hubPath: HUB_PATH,
      connections: group === undefined ? hub.connections.size : totalOf(group, 'ssehub_connections'),
      subscriptions: group === undefined ? await value(hub.metrics.subscriptions) : totalOf(group, 'ssehub_subscriptions'),
      updatesPublished: group === undefined ? await value(hub.metrics.updatesPublished) : totalOf(group, 'ssehub_updates_published_total'),
      deliveries: group === undefined ? await value(hub.metrics.deliveries) : totalOf(group, 'ssehub_deliveries_total'),
      ...(group !== undefined && { workers: totalOf(group, 'ssehub_workers'), workersReporting: totalOf(group, 'ssehub_workers_reporting') }),
      topics: topics.slice(0, 200),
      templateSubscribers,
      cluster: await clusterPresence(ctx),
      recentEnds: [...hub.recentEnds].reverse(),
      uptimeMs: Date.now() - hub.startedAt,
      now: Date.now(),
    };
    res.writeHead(200, { 'content-type': 'application/json', ...NO_STORE }).end(JSON.stringify(state));
    return;
  }
  if (path === '/ui/api/token' && ctx.hub.config.dev) {
    if (method !== 'POST') throw new HttpError(405, 'method-not-allowed', `${method} is not supported on ${path}`, { allow: 'POST' });
    const body = (await readBody(req, res, 64 * 1024)).toString('utf8');
    let claims: { kind?: unknown; publish?: unknown; subscribe?: unknown; publishUrlpattern?: unknown; subscribeUrlpattern?: unknown; ui?: unknown };
    try {
      claims = body.trim() === '' ? {} : (JSON.parse(body) as typeof claims);
      if (typeof claims !== 'object' || claims === null || Array.isArray(claims)) throw new Error('not an object');
    } catch (error) {
      throw new HttpError(400, 'bad-request', `expected a JSON object such as {"publish":["*"],"subscribe":["*"],"ui":true}: ${(error as Error).message}`);
    }
    const list = (v: unknown, name: string): string[] | undefined => {
      if (v === undefined) return undefined;
      if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) throw new HttpError(400, 'bad-request', `"${name}" must be an array of strings`);
      return v as string[];
    };
    const key = ctx.hub.config.jwtKey as string;
    if (claims.kind !== undefined && claims.kind !== 'jwt' && claims.kind !== 'access-token') throw new HttpError(400, 'bad-request', '"kind" must be "jwt" (draft-07) or "access-token" (Mercure 1.0)');
    let token: string;
    if (claims.kind === 'access-token') {
      // Issued by the first trusted issuer, for the hub as this browser reaches it.
      const matchers = (exact: string[] | undefined, patterns: string[] | undefined) => [...(exact ?? []).map((match) => ({ match })), ...(patterns ?? []).map((match) => ({ match, match_type: 'urlpattern' as const }))];
      const issuer = ctx.hub.config.tokenIssuers[0] ?? DEV_TOKEN_ISSUER;
      token = await signAccessToken(key, { issuer, audience: resourceOf(ctx, req), publish: matchers(list(claims.publish, 'publish'), list(claims.publishUrlpattern, 'publishUrlpattern')), subscribe: matchers(list(claims.subscribe, 'subscribe'), list(claims.subscribeUrlpattern, 'subscribeUrlpattern')), ui: claims.ui === true, expiresIn: 24 * 3_600_000 }, ctx.hub.config.jwtAlg);
    } else {
      token = await signToken(key, { publish: list(claims.publish, 'publish'), subscribe: list(claims.subscribe, 'subscribe'), ui: claims.ui === true }, ctx.hub.config.jwtAlg);
    }
    res.writeHead(200, { 'content-type': 'application/json', ...NO_STORE }).end(JSON.stringify({ token }));
    return;
  }
  throw new HttpError(404, 'not-found', `no such resource: ${path}`);
}

/**
 * Presence across the cluster, per selector: subscribers and the nodes holding them, the 200
 * largest; and every node that holds any. On one node, the same figures for it alone.
 */
async function clusterPresence(ctx: HubContext): Promise<{ nodes: string[]; topics: { topic: string; subscribers: number; nodes: number }[] }> {
  const byTopic = new Map<string, { subscribers: number; nodes: Set<string> }>();
  const nodes = new Set<string>();
  for (const entry of await ctx.hub.listSubscriptions()) {
    nodes.add(entry.node);
    const t = byTopic.get(entry.topic) ?? { subscribers: 0, nodes: new Set<string>() };
    t.subscribers++;
    t.nodes.add(entry.node);
    byTopic.set(entry.topic, t);
  }
  const topics = [...byTopic].map(([topic, t]) => ({ topic, subscribers: t.subscribers, nodes: t.nodes.size }));
  topics.sort((a, b) => b.subscribers - a.subscribers || a.topic.localeCompare(b.topic));
  return { nodes: [...nodes].sort(), topics: topics.slice(0, 200) };
}

/** The dashboard's data needs a token with `ssehub.ui: true`, except in `--dev`. */
async function authorize(ctx: HubContext, req: NodeRequest, query: URLSearchParams): Promise<void> {
  if (ctx.hub.config.dev) return;
  const { grant } = await authenticate(ctx, req, query, { role: 'ui', missing: 'the dashboard needs a token with the claim "ssehub.ui": true (ssehub token --ui)' });
  if (!grant.ui) throw new NotAllowedError('no-ui-claim', 'the token has no "ssehub.ui": true claim, so it may not read the dashboard');
}
