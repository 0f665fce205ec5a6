/**
 * POST /.well-known/mercure: publish an update (Mercure draft-07 form fields).
 * Everything is checked before anything is stored: a rejected request changes nothing.
 */
import type { NodeRequest, NodeResponse } from '../../server/adapters/node.js';
import { RateLimitedError, TransportUnavailableError } from '../core/errors.js';
import { assertMayPublish } from '../core/grant.js';
import { MAX_TOPICS, type Update, newUpdateId, toUpdate } from '../core/update.js';
import { authenticate } from './authorization.js';
import { readBody } from './body.js';
import type { HubContext } from './context.js';
import { HttpError } from './errors.js';

export { MAX_TOPICS };
const RESERVED = /^(?:[a-z][a-z0-9+.-]*:\/\/[^/?#]*)?\/\.well-known\/mercure(?:[/?#]|$)/i;

/** `true` for a topic inside the hub's own URL space, which only the hub may publish to. */
export function isReservedTopic(topic: string): boolean {
  return RESERVED.test(topic);
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
  const reserved = topics.find(isReservedTopic);
  if (reserved !== undefined) throw new HttpError(403, 'reserved-topic', `topic "${reserved}" is inside /.well-known/mercure, which is reserved for the hub`);
  const retryField = form.get('retry');
  let retry: number | undefined;
  if (retryField !== null) {
    if (!/^\d{1,15}$/.test(retryField)) throw new HttpError(400, 'invalid-retry', `the "retry" field must be a non-negative integer of milliseconds, got "${retryField}"`);
    retry = Number(retryField);
  }
  return toUpdate({ id: form.get('id') ?? newUpdateId(), topics, data: form.get('data') ?? '', private: form.has('private'), type: form.get('type') ?? undefined, retry });
}

/** Handles a publish request. */
export async function handlePublish(ctx: HubContext, req: NodeRequest, res: NodeResponse, query: URLSearchParams): Promise<void> {
  const { hub } = ctx;
  const config = hub.config;
  const { grant, source } = await authenticate(ctx, req, query, {
    role: 'publisher',
    missing: 'publishing needs a token with a "mercure.publish" claim (Authorization: Bearer, authorization query parameter, or cookie)',
  });
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
  const update = parseUpdate(new URLSearchParams(body.toString('utf8')));

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
