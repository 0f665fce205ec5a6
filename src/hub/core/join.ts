/**
 * The join: how a subscriber comes in, the same for every front-end. Capacity is checked, the
 * subscriber is registered (buffering live updates) before history is read, the front-end opens
 * its outlet knowing whether history covered the resume, history is written at the client's pace,
 * then the buffer — skipping what the replay covered — and the subscriber is live: neither a gap
 * nor a duplicate, even when the history read is asynchronous (Redis, NATS).
 */
import { randomUUID } from 'node:crypto';
import { InvalidSubscriptionError, TransportUnavailableError } from './errors.js';
import type { Grant } from './grant.js';
import { grantMatchers } from './grant.js';
import type { Hub } from './hub.js';
import type { Outlet } from './outlet.js';
import { type SelectorLike, compile } from './selector.js';
import { Subscriber } from './subscriber.js';
import { MAX_TOPICS, type Update, eventBytes } from './update.js';

/** Live updates a subscriber may buffer while its history is replayed; past it, it is a slow consumer. */
const MAX_PENDING = 10_000;

/** History is written in chunks of about this many bytes (whole events), waiting for the client between them. */
const REPLAY_CHUNK = 64 * 1024;

/** Whether, and how, a join resumed. */
export interface Resume {
  /** The position the client asked to resume after (`earliest`: all history), or `undefined`. */
  lastEventId: string | undefined;
  /**
   * `true` when history covered the resume, `false` when the ID is not in history (trimmed, or
   * never seen: the client must be told it may have missed updates), `undefined` without a resume.
   */
  covered: boolean | undefined;
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
  /** The position to resume after, if any. */
  lastEventId: string | undefined;
  /**
   * Opens the client's outlet once history has been read (an SSE response's headers say whether
   * it covered the resume). Throwing aborts the join, which then holds nothing.
   */
  open(resume: Resume): Outlet;
}

/** A subscriber that joined: replayed, then live until its outlet ends. */
export interface Subscription {
  subscriber: Subscriber;
  outlet: Outlet;
  resume: Resume;
  /** Events written from history. */
  replayed: number;
}

/** A subscriber ID: an IRI unique to this connection (not an update ID). */
export function newSubscriberId(): string {
  return `urn:uuid:${randomUUID()}`;
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
  const releaseSlot = hub.admitConnection(request.address);
  const subscriber = new Subscriber({ id: newSubscriberId(), selectors: request.selectors, privateMatchers, address: request.address, payload: request.grant?.payload, maxPending: MAX_PENDING, protocol: request.protocol, grant: request.grant, accepts: request.accepts, subject: request.grant?.subject });
  hub.admit(subscriber);

  const { lastEventId } = request;
  const resuming = lastEventId !== undefined && lastEventId !== '';
  let outlet: Outlet;
  let updates: readonly Update[] = [];
  let head = -1n;
  const resume: Resume = { lastEventId: resuming ? lastEventId : undefined, covered: undefined };
  try {
    if (resuming) {
      let history;
      try {
        history = await hub.history(lastEventId, (u) => subscriber.canReceive(u));
      } catch (error) {
        throw new TransportUnavailableError(`history could not be read: ${(error as Error).message}`, { cause: error });
      }
      resume.covered = lastEventId === 'earliest' || history.found;
      updates = history.updates;
      head = history.head;
    }
    outlet = request.open(resume);
  } catch (error) {
    // No outlet, so no end will release the subscriber: release it here.
    hub.release(subscriber);
    releaseSlot();
    throw error;
  }

  subscriber.outlet = outlet;
  subscriber.trace = hub.tracing?.connection({ 'ssehub.subscriber.id': subscriber.id, 'ssehub.topics.count': request.selectors.length, 'client.address': request.address });
  subscriber.trace?.event('connected');
  hub.opened(subscriber, outlet);

  let expiry: NodeJS.Timeout | undefined;
  const expiresAt = request.grant?.expiresAt;
  if (expiresAt !== undefined) {
    // Capped so that a far-future exp does not overflow the timer (which would fire at once).
    // Not unref()'d: an unref'd timer with its own duration leaves Node's timer list for that
    // duration behind until it would have fired, here up to the token's exp.
    expiry = setTimeout(() => outlet.close('token-expired'), Math.min(Math.max(expiresAt - Date.now(), 0), 2 ** 31 - 1));
  }
  outlet.once('close', (reason) => {
    clearTimeout(expiry);
    releaseSlot();
    subscriber.trace?.end(reason);
    hub.ended(subscriber, reason, { bytes: outlet.bytesWritten, events: outlet.eventsWritten, openedAt: outlet.openedAt });
  });

  let written = 0;
  if (resuming) {
    if (resume.covered === false) hub.metrics.resyncs.inc();
    written = await replay(outlet, updates);
    hub.metrics.replayed.inc(written);
    subscriber.trace?.event('replayed', { count: written });
  }
  const subscription: Subscription = { subscriber, outlet, resume, replayed: written };
  if (!outlet.open) return subscription;
  written += subscriber.goLive(head);
  hub.metrics.deliveries.inc(written);
  if (outlet.open) hub.emit('subscribed', subscriber);
  return subscription;
}

/**
 * Writes history in chunks of whole events, waiting for the client to drain between chunks: a
 * backlog of thousands of updates must reach a slow client at its pace, not overflow the queue
 * that protects the hub from slow clients. Live updates meanwhile wait in the subscriber's buffer.
 * Returns how many events were written.
 */
async function replay(outlet: Outlet, updates: readonly Update[]): Promise<number> {
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
    const event = eventBytes(update);
    batch.push(event);
    bytes += event.length;
    if (bytes >= REPLAY_CHUNK || batch.length >= 512) await flush();
  }
  if (outlet.open) await flush();
  return written;
}
