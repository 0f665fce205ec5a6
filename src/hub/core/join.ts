/**
 * The join: how a subscriber comes in, the same for every front-end. Capacity is checked (for a
 * subscriber that brings its own connection), the subscriber is registered (buffering live
 * updates) before history is read, the front-end opens its outlet knowing whether history covered
 * the resume, history is written at the client's pace, then the buffer — skipping what the replay
 * covered — and the subscriber is live: neither a gap nor a duplicate, even when the history read
 * is asynchronous (Redis, NATS).
 *
 * A subscriber joins with a connection of its own (an SSE stream: admitted here, ended with its
 * subscriber) or onto a connection the front-end already admitted (a Centrifugo connection's
 * channel subscription: its outlet is the connection's, and `Subscription.end` ends it alone).
 */
import { randomUUID } from 'node:crypto';
import type { ClientTransport, Connection } from './connection.js';
import type { Encoder } from './encoder.js';
import { InvalidSubscriptionError, TransportUnavailableError } from './errors.js';
import type { Grant } from './grant.js';
import { grantMatchers } from './grant.js';
import type { Hub } from './hub.js';
import type { EndReason, Outlet } from './outlet.js';
import { type SelectorLike, compile } from './selector.js';
import { Subscriber } from './subscriber.js';
import { MAX_TOPICS, type Update } from './update.js';

/** Live updates a subscriber may buffer while its history is replayed; past it, it is a slow consumer. */
const MAX_PENDING = 10_000;

/** History is written in chunks of about this many bytes (whole events), waiting for the client between them. */
const REPLAY_CHUNK = 64 * 1024;

/** Whether, and how, a join resumed. */
export interface Resume {
  /** The position the client asked to resume after (`earliest`: all history), or `undefined`. */
  lastEventId: string | undefined;
  /**
   * `true` when history covered the resume, `false` when the position is not in history
   * (trimmed, or never seen: the client must be told it may have missed updates), `undefined`
   * without a resume.
   */
  covered: boolean | undefined;
  /**
   * The transport position the subscriber starts after: updates after it reach it (from history
   * or live), those at or before it do not. -1 when it was not read (a join without a resume
   * that did not ask for it).
   */
  head: bigint;
  /** The history read for the resume, which the core replays unless the request says `replay: false`. */
  updates: readonly Update[];
}

/** What a front-end asks of `Hub.join`. */
export interface JoinRequest {
  /** Topic selectors of the subscription (strings are read as draft-07 reads them). */
  selectors: SelectorLike[];
  /** A front-end's own filter on what this subscriber receives (on top of its selectors and grant). */
  accepts?: ((update: Update) => boolean) | undefined;
  /** What the client's token grants (`undefined`: anonymous, public updates only). */
  grant: Grant | undefined;
  /** The client's address, for per-address limits and logs. */
  address: string;
  /** The wire protocol it came with, for logs and metrics (`sse` for the Mercure front-end). */
  protocol?: string;
  /** How the client's bytes travel (default `sse`). */
  transport?: ClientTransport;
  /** How its updates are written (default: SSE events). */
  encoder?: Encoder;
  /**
   * The connection it joins onto, already admitted by `Hub.connect` and attached to its outlet;
   * without one, the join admits a connection of its own, which ends with this subscriber.
   */
  connection?: Connection | undefined;
  /** The position to resume after, if any (an update ID, or `earliest`). */
  lastEventId: string | undefined;
  /** Resume after a transport position instead (`seq`, e.g. a Centrifugo offset), when no `lastEventId` is given. */
  afterSeq?: bigint | undefined;
  /** Read the transport's head even without a resume, so that the front-end can tell the client where it starts. */
  wantsHead?: boolean | undefined;
  /** `false`: the front-end sends `resume.updates` itself from `open` (in a reply); the core does not replay them. */
  replay?: boolean | undefined;
  /**
   * Opens the client's outlet once history has been read (an SSE response's headers say whether
   * it covered the resume). Throwing aborts the join, which then holds nothing. A subscriber
   * joining onto a connection returns that connection's outlet.
   */
  open(resume: Resume): Outlet;
}

/** A subscriber that joined: replayed, then live until its outlet ends (or, on a shared connection, until `end`). */
export interface Subscription {
  subscriber: Subscriber;
  outlet: Outlet;
  resume: Resume;
  /** Events written from history. */
  replayed: number;
  /** Ends this subscriber alone (an unsubscribe); its connection stays open. Safe to call twice. */
  end(reason: EndReason): void;
}

/** A subscriber ID: an IRI unique to this connection (not an update ID). */
export function newSubscriberId(): string {
  // Copied into one flat string: randomUUID() builds its text from a dozen pieces, and the tree of
  // those pieces, kept for as long as the subscriber, would cost about 400 bytes per connection.
  return Buffer.from(`urn:uuid:${randomUUID()}`, 'latin1').toString('latin1');
}

/** Checks a subscription's selectors (count, and each one compiles); throws InvalidSubscriptionError or InvalidSelectorError. */
export function checkSelectors(selectors: readonly SelectorLike[]): void {
  if (selectors.length === 0) throw new InvalidSubscriptionError('missing-topic', 'at least one "topic" query parameter is required');
  if (selectors.length > MAX_TOPICS) throw new InvalidSubscriptionError('too-many-topics', `a subscription may have at most ${MAX_TOPICS} topics, got ${selectors.length}`);
  for (const s of selectors) compile(s);
}

/** See the file comment; `Hub.join` calls this. */
export async function join(hub: Hub, request: JoinRequest): Promise<Subscription> {
  checkSelectors(request.selectors);
  const privateMatchers = grantMatchers(request.grant?.subscribe, 'mercure.subscribe');
  const id = newSubscriberId();
  const protocol = request.protocol ?? 'sse';
  const transport = request.transport ?? request.connection?.transport ?? 'sse';
  // A connection of its own is admitted here (capacity); a shared one was, when it came.
  const own = request.connection === undefined;
  const connection = request.connection ?? hub.connect({ id, address: request.address, protocol, transport });
  const subscriber = new Subscriber({ id, selectors: request.selectors, privateMatchers, address: request.address, payload: request.grant?.payload, maxPending: MAX_PENDING, protocol, transport, encoder: request.encoder, grant: request.grant, accepts: request.accepts, subject: request.grant?.subject });
  subscriber.connection = connection;
  hub.admit(subscriber);

  const { lastEventId, afterSeq } = request;
  const byId = lastEventId !== undefined && lastEventId !== '';
  const resuming = byId || afterSeq !== undefined;
  let outlet: Outlet;
  const resume: Resume = { lastEventId: byId ? lastEventId : undefined, covered: undefined, head: -1n, updates: [] };
  try {
    if (!own && !connection.open) throw new TransportUnavailableError('the connection closed while subscribing');
    try {
      if (byId) {
        const history = await hub.history(lastEventId, (u) => subscriber.canReceive(u));
        resume.covered = lastEventId === 'earliest' || history.found;
        resume.updates = history.updates;
        resume.head = history.head;
      } else if (afterSeq !== undefined) {
        const history = await hub.historyAfter(afterSeq, (u) => subscriber.canReceive(u));
        resume.covered = history.found;
        resume.updates = history.updates;
        resume.head = history.head;
      } else if (request.wantsHead === true) {
        resume.head = await hub.head();
      }
    } catch (error) {
      throw new TransportUnavailableError(`history could not be read: ${(error as Error).message}`, { cause: error });
    }
    // A shared connection may have ended during the read: nothing to open then.
    if (!own && !connection.open) throw new TransportUnavailableError('the connection closed while subscribing');
    outlet = request.open(resume);
  } catch (error) {
    // No outlet, so no end will release the subscriber: release it here.
    hub.release(subscriber);
    if (own) connection.abandon();
    throw error;
  }

  subscriber.outlet = outlet;
  subscriber.trace = hub.tracing?.connection({ 'ssehub.subscriber.id': subscriber.id, 'ssehub.topics.count': request.selectors.length, 'client.address': request.address, 'ssehub.client.transport': transport, 'ssehub.protocol': protocol });
  subscriber.trace?.event('connected');
  connection.subscribers.add(subscriber);
  if (own) connection.attach(outlet);
  hub.joined(subscriber);

  let expiry: NodeJS.Timeout | undefined;
  const expiresAt = request.grant?.expiresAt;
  if (own && expiresAt !== undefined) {
    // Capped so that a far-future exp does not overflow the timer (which would fire at once).
    // Not unref()'d: an unref'd timer with its own duration leaves Node's timer list for that
    // duration behind until it would have fired, here up to the token's exp.
    // (A shared connection's token is the front-end's: it may be refreshed.)
    expiry = setTimeout(() => outlet.close('token-expired'), Math.min(Math.max(expiresAt - Date.now(), 0), 2 ** 31 - 1));
    outlet.once('close', () => clearTimeout(expiry));
  }

  let written = 0;
  if (resuming) {
    if (resume.covered === false) hub.metrics.resyncs.inc();
    if (request.replay !== false) written = await replay(outlet, subscriber, resume.updates);
    else written = outlet.open ? resume.updates.length : 0;
    hub.metrics.replayed.inc(written);
    subscriber.trace?.event('replayed', { count: written });
  }
  const subscription: Subscription = { subscriber, outlet, resume, replayed: written, end: (reason) => hub.leave(subscriber, reason) };
  if (!outlet.open || !hub.subscribers.has(subscriber)) return subscription;
  written += subscriber.goLive(resume.head);
  hub.metrics.deliveries.inc(written);
  if (outlet.open && hub.subscribers.has(subscriber)) hub.emit('subscribed', subscriber);
  return subscription;
}

/**
 * Writes history in chunks of whole events, waiting for the client to drain between chunks: a
 * backlog of thousands of updates must reach a slow client at its pace, not overflow the queue
 * that protects the hub from slow clients. Live updates meanwhile wait in the subscriber's buffer.
 * Returns how many events were written.
 */
async function replay(outlet: Outlet, subscriber: Subscriber, updates: readonly Update[]): Promise<number> {
  let batch: Buffer[] = [];
  let bytes = 0;
  let written = 0;
  const flush = async () => {
    if (batch.length === 0) return;
    if (outlet.write(batch.length === 1 ? (batch[0] as Buffer) : Buffer.concat(batch, bytes), batch.length)) written += batch.length;
    batch = [];
    bytes = 0;
    await outlet.drained();
  };
  for (const update of updates) {
    if (!outlet.open) break;
    const event = subscriber.encoder.encode(update);
    batch.push(event);
    bytes += event.length;
    if (bytes >= REPLAY_CHUNK || batch.length >= 512) await flush();
  }
  if (outlet.open) await flush();
  return written;
}
