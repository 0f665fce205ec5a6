/**
 * Active subscriptions in the Mercure 1.0 form, beside the draft-07 form of subscriptions.ts and
 * from the same subscriptions: each one is published as a private update of type `mercure` on
 * `/.well-known/mercure/subscriptions/{match_type}/{match}/{subscriber}` (a JSON document), and
 * `GET /.well-known/mercure/subscriptions[/{match_type}/{match}[/{subscriber}]]` answers in that
 * form to 1.0 requests. A 1.0 subscriber receives only this form, a draft-07 one only the other
 * (subscribe.ts gives each its filter). A draft-07 URI-template subscription, which 1.0 has no
 * matcher type for, is described with the match type `uritemplate`.
 */
import type { NodeRequest, NodeResponse } from '../../server/adapters/node.js';
import { NotAllowedError } from '../core/errors.js';
import { grantMatchers, payloadOf } from '../core/grant.js';
import type { Hub } from '../core/hub.js';
import type { PresenceEntry } from '../core/presence.js';
import { type Selector, draft07Selector } from '../core/selector.js';
import type { Subscriber } from '../core/subscriber.js';
import { type Update, newUpdateId } from '../core/update.js';
import { authenticate } from './authorization.js';
import type { HubContext } from './context.js';
import { HttpError } from './errors.js';
import { markV1, resourceOf } from './oauth.js';
import { SUBSCRIPTIONS_PATH } from './paths.js';

/** The SSE event type of the events the hub generates itself (publishers may not use it). */
export const MERCURE_EVENT_TYPE = 'mercure';

/** The match types subscription documents name: 1.0's two, and draft-07's URI templates. */
const MATCH_TYPES = ['exact', 'urlpattern', 'uritemplate'] as const;
type MatchType = (typeof MATCH_TYPES)[number];

const PREFIX = `${SUBSCRIPTIONS_PATH}/`;

/** `true` for a subscription event in the 1.0 form. */
export function isV1SubscriptionEvent(update: Update): boolean {
  return update.type === MERCURE_EVENT_TYPE && (update.topics[0] ?? '').startsWith(PREFIX);
}

/** `true` for a subscription event in the draft-07 form (the hub's own update in its namespace, without the `mercure` type). */
export function isDraft07SubscriptionEvent(update: Update): boolean {
  return update.private && update.type !== MERCURE_EVENT_TYPE && (update.topics[0] ?? '').startsWith(PREFIX);
}

/** The match type a selector is described with. */
export function matchTypeOf(selector: Selector): MatchType {
  return selector.kind === 'urlpattern' ? 'urlpattern' : selector.kind === 'template' ? 'uritemplate' : 'exact';
}

/** RFC 6570 simple expansion of one value: everything but unreserved characters percent-encoded, once. */
function expand(value: string): string {
  return encodeURIComponent(value).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/** The topic (and `id`) of one subscription in the 1.0 form. */
export function subscriptionTopicV1(matchType: string, match: string, subscriber: string): string {
  return `${PREFIX}${expand(matchType)}/${expand(match)}/${expand(subscriber)}`;
}

/** One subscription: a subscriber, one of its selectors, the payload its token attaches. */
interface Described {
  subscriber: string;
  selector: Selector;
  payload: unknown;
}

function describe(s: Described, active: boolean): Record<string, unknown> {
  const matchType = matchTypeOf(s.selector);
  const doc: Record<string, unknown> = { id: subscriptionTopicV1(matchType, s.selector.value, s.subscriber), type: 'subscription', match_type: matchType, match: s.selector.value, subscriber: s.subscriber, active };
  if (s.payload !== undefined) doc.payload = s.payload;
  return doc;
}

function publishEvents(hub: Hub, subscriptions: readonly Described[], active: boolean): void {
  for (const s of subscriptions) {
    const doc = describe(s, active);
    const topic = doc.id as string;
    hub.publish({ id: newUpdateId(), topics: [topic], data: JSON.stringify(doc), private: true, type: MERCURE_EVENT_TYPE }).catch((error: Error) => {
      hub.log.warn({ err: error.message, topic }, 'subscription event not published');
    });
  }
}

function subscriptionsOf(subscriber: Subscriber): Described[] {
  return subscriber.typedSelectors.map((selector) => ({ subscriber: subscriber.id, selector, payload: payloadOf(subscriber.grant, selector) }));
}

/** With `--subscriptions`: publishes the 1.0 subscription events of every subscriber that joins or leaves, and of a dead node's. */
export function publishV1SubscriptionEventsOf(hub: Hub): void {
  hub.on('subscribed', (subscriber) => publishEvents(hub, subscriptionsOf(subscriber), true));
  hub.on('unsubscribed', (subscriber) => publishEvents(hub, subscriptionsOf(subscriber), false));
  hub.presence?.on('lost', (lost) => publishEvents(hub, lost.entries.map((e) => ({ subscriber: e.subscriber, selector: selectorOf(e), payload: e.payload })), false));
}

/** The selector of a presence entry: typed as it was subscribed, or (an entry written without its kind) as draft-07 reads the text. */
function selectorOf(entry: PresenceEntry): Selector {
  return entry.kind === undefined ? draft07Selector(entry.topic) : { kind: entry.kind, value: entry.topic };
}

/** An RFC 8288 quoted string. */
function quoted(value: string): string {
  return `"${value.replace(/["\\]/g, (c) => `\\${c}`)}"`;
}

/** Handles `GET /.well-known/mercure/subscriptions[/{match_type}/{match}[/{subscriber}]]` for a Mercure 1.0 request. */
export async function handleSubscriptionsApiV1(ctx: HubContext, req: NodeRequest, res: NodeResponse, path: string): Promise<void> {
  markV1(req);
  const rest = path.slice(SUBSCRIPTIONS_PATH.length).split('/').filter((p) => p !== '');
  if (rest.length === 1 || rest.length > 3) throw new HttpError(404, 'not-found', `no such resource: ${path} (the 1.0 subscription API has ${SUBSCRIPTIONS_PATH}[/{match_type}/{match}[/{subscriber}]])`);
  let segments: string[];
  try {
    segments = rest.map((p) => decodeURIComponent(p));
  } catch {
    throw new HttpError(400, 'bad-path', 'the path holds malformed percent-encoding');
  }
  const [matchType, match, subscriberId] = segments;
  if (matchType !== undefined && !(MATCH_TYPES as readonly string[]).includes(matchType)) throw new HttpError(404, 'not-found', `no such match type "${matchType}" (exact, urlpattern, or uritemplate for draft-07 subscriptions)`);
  const { grant } = await authenticate(ctx, req, new URLSearchParams(), {
    role: 'subscriber',
    missing: 'the subscription API needs a subscriber token that grants "subscribe" on the requested URL',
  });
  if (!grantMatchers(grant.subscribe, 'authorization_details').some((m) => m(path))) throw new NotAllowedError('topic-not-allowed', `the token does not grant "subscribe" on ${path}`);

  // The whole cluster's: this node's subscribers with their typed selectors, the others' from presence.
  const local = new Map<string, Subscriber>();
  for (const s of ctx.hub.subscribers) local.set(s.id, s);
  const subscriptions: Record<string, unknown>[] = [];
  for (const entry of await ctx.hub.listSubscriptions({ subscriber: subscriberId })) {
    const subscriber = local.get(entry.subscriber);
    const selector = subscriber?.typedSelectors.find((s) => s.value === entry.topic) ?? selectorOf(entry);
    if (matchType !== undefined && (matchTypeOf(selector) !== matchType || selector.value !== match)) continue;
    subscriptions.push(describe({ subscriber: entry.subscriber, selector, payload: subscriber !== undefined ? payloadOf(subscriber.grant, selector) : entry.payload }, true));
  }
  const lastEventId = (await ctx.hub.transport.lastId?.()) ?? 'earliest';
  let body: Record<string, unknown>;
  if (subscriberId !== undefined) {
    const one = subscriptions[0];
    if (one === undefined) throw new HttpError(404, 'not-found', `no active subscription ${path}`);
    body = one;
  } else {
    body = { id: path, type: 'subscriptions', subscriptions };
  }
  res
    .writeHead(200, {
      'content-type': 'application/json',
      'cache-control': 'no-store',
      link: `<${resourceOf(ctx, req)}>; rel="mercure"; last-event-id=${quoted(lastEventId)}; type="mercure"; content-type="application/json"`,
    })
    .end(JSON.stringify(body));
}
