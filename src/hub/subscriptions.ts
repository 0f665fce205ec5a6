/**
 * Subscriptions (optional, `--subscriptions`): each subscription of a connecting or leaving
 * client is published as a private update on `/.well-known/mercure/subscriptions/{topic}/{subscriber}`
 * with a JSON-LD body, and `GET /.well-known/mercure/subscriptions[/{topic}[/{subscriber}]]` lists
 * the active ones of this hub process.
 */
import type { NodeRequest, NodeResponse } from '../server/adapters/node.js';
import { findToken, grantMatchers } from './authorization.js';
import type { HubContext } from './context.js';
import { HttpError } from './errors.js';
import type { Subscriber } from './subscriber.js';
import { newUpdateId } from './update.js';

const BASE = '/.well-known/mercure/subscriptions';

/** The topic (and JSON-LD id) of one subscription. */
export function subscriptionTopic(selector: string, subscriberId: string): string {
  return `${BASE}/${encodeURIComponent(selector)}/${encodeURIComponent(subscriberId)}`;
}

function describe(subscriber: Subscriber, selector: string, active: boolean): Record<string, unknown> {
  const doc: Record<string, unknown> = { id: subscriptionTopic(selector, subscriber.id), type: 'Subscription', topic: selector, subscriber: subscriber.id, active };
  if (subscriber.payload !== undefined) doc.payload = subscriber.payload;
  return doc;
}

/** Publishes one subscription event per selector of the subscriber. */
export function publishSubscriptionEvents(ctx: HubContext, subscriber: Subscriber, active: boolean): void {
  for (const selector of subscriber.selectors) {
    const doc = { '@context': 'https://mercure.rocks/', ...describe(subscriber, selector, active) };
    const topic = subscriptionTopic(selector, subscriber.id);
    ctx.hub.publish({ id: newUpdateId(), topics: [topic], data: JSON.stringify(doc), private: true }).catch((error: Error) => {
      ctx.hub.log.warn({ err: error.message, topic }, 'subscription event not published');
    });
  }
}

/** Handles `GET /.well-known/mercure/subscriptions[/{topic}[/{subscriber}]]`. */
export async function handleSubscriptionsApi(ctx: HubContext, req: NodeRequest, res: NodeResponse, path: string, query: URLSearchParams): Promise<void> {
  const rest = path.slice(BASE.length).split('/').filter((p) => p !== '');
  if (rest.length > 2) throw new HttpError(404, 'not-found', `no such resource: ${path}`);
  let topic: string | undefined;
  let subscriberId: string | undefined;
  try {
    topic = rest[0] === undefined ? undefined : decodeURIComponent(rest[0]);
    subscriberId = rest[1] === undefined ? undefined : decodeURIComponent(rest[1]);
  } catch {
    throw new HttpError(400, 'bad-path', 'the path holds malformed percent-encoding');
  }
  const found = findToken(req, query, ctx.hub.config.cookieName);
  if (found === undefined || ctx.subscriberVerifier === undefined) throw new HttpError(401, 'missing-token', 'the subscriptions API needs a subscriber token whose "mercure.subscribe" claim matches the requested URL');
  const grant = await ctx.subscriberVerifier.verify(found.token);
  const matchers = grantMatchers(grant.subscribe, 'mercure.subscribe');
  if (!matchers.some((m) => m(path))) throw new HttpError(403, 'topic-not-allowed', `the token's "mercure.subscribe" claim does not match ${path}`);

  const subscriptions: Record<string, unknown>[] = [];
  for (const s of ctx.hub.subscribers) {
    if (subscriberId !== undefined && s.id !== subscriberId) continue;
    for (const selector of s.selectors) if (topic === undefined || selector === topic) subscriptions.push(describe(s, selector, true));
  }
  const lastEventID = (await ctx.hub.transport.lastId()) ?? 'earliest';
  let body: Record<string, unknown>;
  if (subscriberId !== undefined) {
    const one = subscriptions[0];
    if (one === undefined) throw new HttpError(404, 'not-found', `no active subscription ${path}`);
    body = { '@context': 'https://mercure.rocks/', ...one, lastEventID };
  } else {
    body = { '@context': 'https://mercure.rocks/', id: path, type: 'Subscriptions', lastEventID, subscriptions };
  }
  res.writeHead(200, { 'content-type': 'application/ld+json', 'cache-control': 'no-store' }).end(JSON.stringify(body));
}
