/**
 * GET /.well-known/mercure: subscribe. Checks, then history, then live: the subscriber is
 * registered (buffering live updates) before history is read, and history is written before the
 * buffer, so a resuming client gets every update once.
 */
import type { NodeRequest, NodeResponse } from '../server/adapters/node.js';
import { RESYNC_EVENT } from '../protocol/index.js';
import { type Stream, createStream, lastEventIdOf, textToHeader } from '../server/index.js';
import { type Grant, findToken, grantMatchers } from './authorization.js';
import type { HubContext } from './context.js';
import { HttpError } from './errors.js';
import { MAX_TOPICS } from './publish.js';
import { compileSelector } from './selector.js';
import { Subscriber } from './subscriber.js';
import { publishSubscriptionEvents } from './subscriptions.js';
import type { HistoryResult } from './transports/index.js';
import { type Update, eventBytes, newUpdateId } from './update.js';

export { RESYNC_EVENT };

const HUB_CACHE_CONTROL = 'private, no-cache, no-store, must-revalidate, max-age=0, no-transform';

const REPLAY_CHUNK = 64 * 1024;

/**
 * Writes history in chunks of whole events, waiting for the socket to drain between chunks: a
 * backlog of thousands of updates must reach a slow client at its pace, not overflow the queue
 * that protects the hub from slow clients. Live updates meanwhile wait in the subscriber's buffer.
 * Returns how many events were written.
 */
async function replay(stream: Stream, updates: readonly Update[]): Promise<number> {
  let batch: Buffer[] = [];
  let bytes = 0;
  let written = 0;
  const flush = async () => {
    if (batch.length === 0) return;
    if (stream.write(batch.length === 1 ? (batch[0] as Buffer) : Buffer.concat(batch, bytes), batch.length)) written += batch.length;
    batch = [];
    bytes = 0;
    await stream.drained();
  };
  for (const update of updates) {
    if (!stream.open) break;
    const event = eventBytes(update);
    batch.push(event);
    bytes += event.length;
    if (bytes >= REPLAY_CHUNK || batch.length >= 512) await flush();
  }
  if (stream.open) await flush();
  return written;
}

/** Handles a subscribe request. */
export async function handleSubscribe(ctx: HubContext, req: NodeRequest, res: NodeResponse, query: URLSearchParams): Promise<void> {
  const { hub } = ctx;
  const config = hub.config;
  if (hub.draining) throw new HttpError(503, 'draining', 'the hub is shutting down; reconnect (to another node)', { 'retry-after': '1' });

  const selectors = query.getAll('topic');
  if (selectors.length === 0) throw new HttpError(400, 'missing-topic', 'at least one "topic" query parameter is required');
  if (selectors.length > MAX_TOPICS) throw new HttpError(400, 'too-many-topics', `a subscription may have at most ${MAX_TOPICS} topics, got ${selectors.length}`);
  for (const s of selectors) compileSelector(s);

  const found = findToken(req, query, config.cookieName);
  let grant: Grant | undefined;
  if (found !== undefined) {
    if (ctx.subscriberVerifier === undefined) throw new HttpError(401, 'invalid-token', 'this hub has no subscriber key configured, so it cannot accept subscriber tokens');
    grant = await ctx.subscriberVerifier.verify(found.token);
  } else if (!config.anonymous) {
    throw new HttpError(401, 'missing-token', 'a subscriber token is required (Authorization: Bearer, authorization query parameter or cookie); this hub does not allow anonymous subscribers', { 'www-authenticate': 'Bearer realm="ssehub"' });
  }

  if (config.maxConnections > 0 && hub.streams.size >= config.maxConnections) {
    throw new HttpError(503, 'over-capacity', `this hub process serves at most ${config.maxConnections} streams (--max-connections)`, { 'retry-after': String(5 + Math.floor(Math.random() * 10)) });
  }
  const address = req.socket.remoteAddress ?? 'unknown';
  if (config.maxConnectionsPerIp > 0) {
    const n = hub.perAddress.get(address) ?? 0;
    if (n >= config.maxConnectionsPerIp) throw new HttpError(429, 'too-many-connections', `address ${address} already has ${n} streams open (--max-connections-per-ip)`, { 'retry-after': '10' });
  }

  const subscriber = new Subscriber({
    id: newUpdateId(),
    selectors,
    privateMatchers: grantMatchers(grant?.subscribe, 'mercure.subscribe'),
    address,
    payload: grant?.payload,
    maxPending: 10_000,
  });
  hub.admit(subscriber);

  const lastEventId = lastEventIdOf(req);
  let history: HistoryResult | undefined;
  let stream: Stream;
  try {
    if (lastEventId !== undefined && lastEventId !== '') {
      try {
        history = await hub.history(lastEventId, (u) => subscriber.canReceive(u));
      } catch (error) {
        throw new HttpError(503, 'transport-unavailable', `history could not be read: ${(error as Error).message}`, { 'retry-after': '1' });
      }
    }
    const headers: Record<string, string> = { 'cache-control': HUB_CACHE_CONTROL };
    // Only an ID found in history is echoed, and stored IDs never hold CR, LF or NUL.
    if (history !== undefined) headers['last-event-id'] = history.found && lastEventId !== 'earliest' ? textToHeader(lastEventId as string) : 'earliest';
    stream = createStream(req, res, {
      heartbeat: config.heartbeat > 0 ? config.heartbeat : false,
      retry: config.retry,
      lifetime: config.writeTimeout > 0 ? config.writeTimeout : undefined,
      lifetimeJitter: 0.2,
      headers,
      lastEventId,
    });
  } catch (error) {
    // No stream, so no close event will release the subscriber: release it here.
    hub.release(subscriber);
    throw error;
  }
  subscriber.stream = stream;
  subscriber.trace = hub.tracing?.connection({ 'ssehub.subscriber.id': subscriber.id, 'ssehub.topics.count': selectors.length, 'client.address': address });
  subscriber.trace?.event('connected');
  hub.streams.add(stream);
  hub.metrics.connections.inc();
  hub.metrics.subscriptions.inc(selectors.length);

  let expiry: NodeJS.Timeout | undefined;
  if (grant?.expiresAt !== undefined) {
    // Capped so that a far-future exp does not overflow the timer (which would fire at once).
    // Not unref()'d: see the lifetime timer in Stream (an unref'd timer with its own duration leaves
    // Node's list for that duration behind until it would have fired, here up to the token's exp).
    expiry = setTimeout(() => stream.close('token-expired'), Math.min(Math.max(grant.expiresAt - Date.now(), 0), 2 ** 31 - 1));
  }
  stream.once('close', (reason) => {
    clearTimeout(expiry);
    subscriber.trace?.end(reason);
    hub.streamClosed(subscriber, reason, { bytes: stream.bytesWritten, events: stream.eventsWritten, openedAt: stream.openedAt });
    if (config.subscriptions) publishSubscriptionEvents(ctx, subscriber, false);
  });

  let written = 0;
  if (history !== undefined) {
    if (!history.found && lastEventId !== 'earliest') {
      hub.metrics.resyncs.inc();
      stream.send({ event: RESYNC_EVENT, data: JSON.stringify({ lastEventId, reason: 'unknown-id' }) });
    }
    written = await replay(stream, history.updates);
    hub.metrics.replayed.inc(written);
    subscriber.trace?.event('replayed', { count: written });
  }
  if (!stream.open) return;
  written += subscriber.goLive(history?.head ?? -1n);
  hub.metrics.deliveries.inc(written);
  if (config.subscriptions && stream.open) publishSubscriptionEvents(ctx, subscriber, true);
}
