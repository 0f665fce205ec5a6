/**
 * POST /.well-known/mercure: publish an update. Both generations of Mercure post the same form
 * fields (`topic`, repeatable, `data`, `private`, `id`, `type`, `retry`); the publisher's token
 * tells which one it speaks. With an access token (Mercure 1.0) the form is held to 1.0's rules —
 * no control or invisible formatting characters in topics, `id` or `type`, no `*` topic, no `id`
 * starting with `#`, the reserved namespace a 400, too many topics a 413 — and errors are RFC 6750
 * challenges; with a draft-07 token it is read as before. The event type `mercure` is reserved
 * for the hub's own events whichever token asks, since 1.0 subscribers on this hub listen for it.
 * Everything is checked before anything is stored: a rejected request changes nothing.
 */
import type { NodeRequest, NodeResponse } from '../../server/adapters/node.js';
import { RateLimitedError, TransportUnavailableError } from '../core/errors.js';
import { assertMayPublish } from '../core/grant.js';
import { matcherValueProblem } from '../core/access-token.js';
import { DEFAULT_PATTERN_BASE } from '../core/selector.js';
import { MAX_TOPICS, type Update, newUpdateId, toUpdate } from '../core/update.js';
import { authenticate, presentsAccessToken } from './authorization.js';
import { readBody } from './body.js';
import type { HubContext } from './context.js';
import { HttpError } from './errors.js';
import { parseForm } from './matchers.js';
import { markV1, patternBaseOf } from './oauth.js';
import { HUB_PATH } from './paths.js';
import { MERCURE_EVENT_TYPE } from './subscriptions-v1.js';

export { MAX_TOPICS };
const RESERVED = /^(?:[a-z][a-z0-9+.-]*:\/\/[^/?#]*)?\/\.well-known\/mercure(?:[/?#]|$)/i;

/**
 * `true` for a topic inside the hub's own URL space, which only the hub may publish to: by its
 * text, or once resolved against the hub's URL with dot-segments removed and percent-encoded
 * unreserved characters decoded, whatever its scheme and host (so `/x/../.well-known/%6Dercure/…`
 * cannot forge a subscription event either).
 */
export function isReservedTopic(topic: string, base: string = DEFAULT_PATTERN_BASE): boolean {
  if (RESERVED.test(topic)) return true;
  let path: string;
  try {
    path = new URL(topic, base).pathname;
  } catch {
    return false;
  }
  const decoded = path.replace(/%([0-9A-Fa-f]{2})/g, (encoded, hex: string) => {
    const c = String.fromCharCode(Number.parseInt(hex, 16));
    return /[A-Za-z0-9\-._~]/.test(c) ? c : encoded;
  });
  // Decoding can reveal dot-segments (%2E%2E): resolve once more.
  const normal = decoded === path ? path : new URL(decoded, 'https://ssehub.invalid').pathname;
  return normal === HUB_PATH || normal.startsWith(`${HUB_PATH}/`);
}

/** Checks the Origin (or Referer) of a cookie-authenticated publish against `--publish-origins`. */
function checkCsrf(req: NodeRequest, allowed: string[]): void {
  let origin = req.headers.origin;
  if (origin === undefined && req.headers.referer !== undefined) {
    try {
      origin = new URL(req.headers.referer).origin;
    } catch {
      origin = undefined;
    }
  }
  if (origin === undefined) throw new HttpError(403, 'csrf', 'a publish authenticated by cookie must carry an Origin or Referer header (CSRF protection)');
  if (!allowed.includes('*') && !allowed.includes(origin)) {
    throw new HttpError(403, 'csrf', `origin ${origin} may not publish with a cookie; add it to --publish-origins`);
  }
}

/** Reads and validates the form into an update (no side effects); throws HttpError or the core's InvalidUpdateError. */
export function parseUpdate(form: URLSearchParams): Update {
  const topics = form.getAll('topic');
  // Checked before the reserved topics, so that a missing or empty topic is a 400 whatever else is wrong.
  if (topics.length === 0) throw new HttpError(400, 'missing-topic', 'the "topic" field is required');
  if (topics.length > MAX_TOPICS) throw new HttpError(400, 'too-many-topics', `an update may have at most ${MAX_TOPICS} topics, got ${topics.length}`);
  if (topics.includes('')) throw new HttpError(400, 'empty-topic', 'a "topic" field is empty');
  const reserved = topics.find((t) => isReservedTopic(t));
  if (reserved !== undefined) throw new HttpError(403, 'reserved-topic', `topic "${reserved}" is inside /.well-known/mercure, which is reserved for the hub`);
  if (form.get('type') === MERCURE_EVENT_TYPE) throw new HttpError(400, 'reserved-type', 'the event type "mercure" is reserved for the events the hub generates (Mercure 1.0 subscribers listen for it)');
  const retryField = form.get('retry');
  let retry: number | undefined;
  if (retryField !== null) {
    if (!/^\d{1,15}$/.test(retryField)) throw new HttpError(400, 'invalid-retry', `the "retry" field must be a non-negative integer of milliseconds, got "${retryField}"`);
    retry = Number(retryField);
  }
  return toUpdate({ id: form.get('id') ?? newUpdateId(), topics, data: form.get('data') ?? '', private: form.has('private'), type: form.get('type') ?? undefined, retry });
}

/** Reads and validates a Mercure 1.0 publish form into an update (no side effects); throws HttpError or the core's InvalidUpdateError. */
export function parseUpdateV1(body: string, base: string = DEFAULT_PATTERN_BASE): Update {
  const fields = parseForm(body, 'body');
  const get = (name: string) => fields.find(([n]) => n === name)?.[1];
  const topics = fields.filter(([n]) => n === 'topic').map(([, v]) => v);
  if (topics.length === 0) throw new HttpError(400, 'missing-topic', 'the "topic" field is required');
  if (topics.length > MAX_TOPICS) throw new HttpError(413, 'too-many-topics', `an update may have at most ${MAX_TOPICS} topics, got ${topics.length}`);
  for (const topic of topics) {
    const problem = matcherValueProblem(topic);
    if (problem !== undefined) throw new HttpError(400, topic === '' ? 'empty-topic' : 'invalid-topic', `a "topic" field ${problem}`);
    if (topic === '*') throw new HttpError(400, 'wildcard-topic', 'the topic "*" is reserved: it matches every topic, so no subscriber could select it alone');
    if (isReservedTopic(topic, base)) throw new HttpError(400, 'reserved-topic', `topic "${topic}" is inside ${HUB_PATH}, which is reserved for the hub`);
  }
  const id = get('id');
  if (id !== undefined) {
    if (id.startsWith('#')) throw new HttpError(400, 'invalid-id', 'the "id" field must not start with "#" (the hub\'s own IDs may)');
    const problem = matcherValueProblem(id);
    if (problem !== undefined && id !== '') throw new HttpError(400, 'invalid-id', `the "id" field ${problem}: clients send it back in the Last-Event-ID header`);
  }
  const type = get('type');
  if (type !== undefined) {
    if (type === MERCURE_EVENT_TYPE) throw new HttpError(400, 'reserved-type', 'the event type "mercure" is reserved for the events the hub generates');
    const problem = matcherValueProblem(type);
    if (problem !== undefined && type !== '') throw new HttpError(400, 'invalid-type', `the "type" field ${problem}`);
  }
  const retryField = get('retry');
  if (retryField !== undefined && !/^\d{1,15}$/.test(retryField)) throw new HttpError(400, 'invalid-retry', `the "retry" field must be ASCII digits (milliseconds), got "${retryField}"`);
  return toUpdate({ id: id ?? newUpdateId(), topics, data: get('data') ?? '', private: fields.some(([n]) => n === 'private'), type: type === '' ? undefined : type, retry: retryField === undefined ? undefined : Number(retryField) });
}

/** Handles a publish request. */
export async function handlePublish(ctx: HubContext, req: NodeRequest, res: NodeResponse, query: URLSearchParams): Promise<void> {
  const { hub } = ctx;
  const config = hub.config;
  // The token's kind tells the generation, before it is verified: a 1.0 publisher's errors are RFC 6750's.
  if (presentsAccessToken(ctx, req, query)) markV1(req);
  const { grant, source } = await authenticate(ctx, req, query, {
    role: 'publisher',
    anyPlace: true,
    missing: 'publishing needs a token with a "mercure.publish" claim (Authorization: Bearer, authorization query parameter, or cookie), or a Mercure 1.0 access token whose authorization_details grant "publish" (Authorization: Bearer, or the access-token cookie)',
  });
  const v1 = grant.tokenType === 'at+jwt';
  if (source === 'cookie') checkCsrf(req, config.publishOrigins);
  assertMayPublish(grant, []);

  if (ctx.rateLimiter !== undefined) {
    const key = grant.subject !== undefined ? `sub:${grant.subject}` : `addr:${req.socket.remoteAddress ?? ''}`;
    const decision = ctx.rateLimiter.take(key);
    if (!decision.allowed) throw new RateLimitedError(decision.retryAfter);
  }

  const contentType = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
  if (contentType !== 'application/x-www-form-urlencoded') {
    throw new HttpError(415, 'bad-content-type', `the body must be application/x-www-form-urlencoded, got ${contentType === '' ? 'no Content-Type' : contentType}`);
  }
  const body = await readBody(req, res, config.maxBody);
  const update = v1 ? parseUpdateV1(body.toString('utf8'), patternBaseOf(ctx.hub.config)) : parseUpdate(new URLSearchParams(body.toString('utf8')));

  assertMayPublish(grant, update.topics);

  const trace = hub.tracing?.publish(req.headers);
  const started = performance.now();
  let stored: Update;
  try {
    stored = await hub.publish(update);
    trace?.done(stored, performance.now() - started);
  } catch (error) {
    trace?.done(update, performance.now() - started, error);
    // What a 503 means for a publish: it may have been stored all the same.
    if (error instanceof TransportUnavailableError) throw new HttpError(503, error.reason, `the update may not have been stored (retry with the same id: a 409 then means it was): ${error.message}`, { 'retry-after': '1' });
    throw error;
  }
  res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' }).end(stored.id);
}
