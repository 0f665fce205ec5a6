/**
 * Subscriptions (optional, `--subscriptions`): each subscription of a connecting or leaving
 * client is published as a private update on `/.well-known/mercure/subscriptions/{topic}/{subscriber}`
 * with a JSON-LD body, and `GET /.well-known/mercure/subscriptions[/{topic}[/{subscriber}]]` lists
 * the active ones of this hub process.
 */
import type { NodeRequest, NodeResponse } from '../../server/adapters/node.js';
import { grantMatchers, payloadOf } from '../core/grant.js';
import type { Hub } from '../core/hub.js';
import type { Subscriber } from '../core/subscriber.js';
import { newUpdateId } from '../core/update.js';
import { authenticate } from './authorization.js';
import type { HubContext } from './context.js';
import { HttpError } from './errors.js';
import { SUBSCRIPTIONS_PATH } from './paths.js';

const BASE = SUBSCRIPTIONS_PATH;

/** The topic (and JSON-LD id) of one subscription. */
export function subscriptionTopic(selector: string, subscriberId: string): string {
  return `${BASE}/${encodeURIComponent(selector)}/${encodeURIComponent(subscriberId)}`;
}

/** One subscription as the documents describe it: a subscriber, one of its selectors, its token's payload. */
interface Described {
  subscriber: string;
  topic: string;
  payload?: unknown;
}

function describe(s: Described, active: boolean): Record<string, unknown> {
  const doc: Record<string, unknown> = { id: subscriptionTopic(s.topic, s.subscriber), type: 'Subscription', topic: s.topic, subscriber: s.subscriber, active };
  if (s.payload !== undefined) doc.payload = s.payload;
  return doc;
}

/** Publishes one subscription event per subscription. */
function publishEvents(hub: Hub, subscriptions: readonly Described[], active: boolean): void {
  for (const s of subscriptions) {
    const doc = { '@context': 'https://mercure.rocks/', ...describe(s, active) };
    const topic = subscriptionTopic(s.topic, s.subscriber);
    hub.publish({ id: newUpdateId(), topics: [topic], data: JSON.stringify(doc), private: true }).catch((error: Error) => {
      hub.log.warn({ err: error.message, topic }, 'subscription event not published');
    });
  }
}

/** Publishes one subscription event per selector of the subscriber. */
export function publishSubscriptionEvents(hub: Hub, subscriber: Subscriber, active: boolean): void {
  publishEvents(
    hub,
    // The payload of each subscription: a 1.0 token's per matcher, a draft-07 token's mercure.payload.
    subscriber.typedSelectors.map((selector) => ({ subscriber: subscriber.id, topic: selector.value, payload: payloadOf(subscriber.grant, selector) ?? subscriber.payload })),
    active,
  );
}

/**
 * With `--subscriptions`: publishes the subscription events of every subscriber that joins or
 * leaves the core, and, for the subscribers of a node that died, the inactive events it could not
 * send (by the one node that claimed it).
 */
export function publishSubscriptionEventsOf(hub: Hub): void {
  hub.on('subscribed', (subscriber) => publishSubscriptionEvents(hub, subscriber, true));
  hub.on('unsubscribed', (subscriber) => publishSubscriptionEvents(hub, subscriber, false));
  hub.presence?.on('lost', (lost) => publishEvents(hub, lost.entries, false));
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
  const { grant } = await authenticate(ctx, req, query, {
    role: 'subscriber',
    missing: 'the subscriptions API needs a subscriber token whose "mercure.subscribe" claim matches the requested URL',
    challenge: false,
  });
  const matchers = grantMatchers(grant.subscribe, 'mercure.subscribe');
  if (!matchers.some((m) => m(path))) throw new HttpError(403, 'topic-not-allowed', `the token's "mercure.subscribe" claim does not match ${path}`);

  // The whole cluster's, from any node.
  const subscriptions = (await ctx.hub.listSubscriptions({ topic, subscriber: subscriberId })).map((s) => describe(s, true));
  const lastEventID = (await ctx.hub.transport.lastId?.()) ?? 'earliest';
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
