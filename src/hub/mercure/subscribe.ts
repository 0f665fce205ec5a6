/**
 * Subscribing: `GET /.well-known/mercure` for both generations of Mercure, `QUERY` for 1.0. The
 * request's parameters tell which generation it speaks — `topic` (draft-07: URI templates,
 * `lastEventID`, the `Last-Event-ID` response header) or `match`/`match_urlpattern` (1.0: URL
 * Patterns, `last_event_id`, `Mercure-Last-Event-ID`, RFC 6750 errors) — and both join the same
 * core, so they receive the same updates. This file reads the request and opens the SSE stream
 * once the core knows whether history covered the resume.
 */
import { RESYNC_EVENT } from '../../protocol/index.js';
import type { NodeRequest, NodeResponse } from '../../server/adapters/node.js';
import { createStream, headerToText, lastEventIdOf, textToHeader } from '../../server/index.js';
import { DrainingError } from '../core/errors.js';
import type { Grant } from '../core/grant.js';
import { type Resume, checkSelectors } from '../core/join.js';
import type { SelectorLike } from '../core/selector.js';
import type { Update } from '../core/update.js';
import { authenticate } from './authorization.js';
import { readBody } from './body.js';
import type { HubContext } from './context.js';
import { HttpError } from './errors.js';
import { generationOf, parseForm, readV1Subscription } from './matchers.js';
import { markV1, patternBaseOf } from './oauth.js';
import { isDraft07SubscriptionEvent, isV1SubscriptionEvent } from './subscriptions-v1.js';

export { RESYNC_EVENT };

const HUB_CACHE_CONTROL = 'private, no-cache, no-store, must-revalidate, max-age=0, no-transform';

/** Handles a subscribe request (`GET`, or `QUERY` with a form body); `rawQuery` is the URL's query component. */
export async function handleSubscribe(ctx: HubContext, req: NodeRequest, res: NodeResponse, query: URLSearchParams, rawQuery = query.toString()): Promise<void> {
  if (ctx.hub.draining) throw new DrainingError();
  if (req.method === 'QUERY') {
    markV1(req);
    const contentType = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
    if (contentType !== 'application/x-www-form-urlencoded') {
      throw new HttpError(415, 'bad-content-type', `a QUERY subscription carries its matchers as application/x-www-form-urlencoded, got ${contentType === '' ? 'no Content-Type' : contentType}`);
    }
    const body = parseForm((await readBody(req, res, ctx.hub.config.maxBody)).toString('utf8'), 'body');
    if (generationOf([...query, ...body]) === '0.x') throw new HttpError(400, 'topic-in-query-method', 'QUERY is a Mercure 1.0 method: give "match" or "match_urlpattern" parameters, not "topic"');
    return subscribeV1(ctx, req, res, rawQuery, body);
  }
  if (generationOf([...query]) === '1.0') {
    markV1(req);
    return subscribeV1(ctx, req, res, rawQuery, []);
  }
  return subscribeDraft07(ctx, req, res, query);
}

/** Mercure draft-07: `topic` selectors, a token also in the URL, `lastEventID`, `Last-Event-ID` in the response. */
async function subscribeDraft07(ctx: HubContext, req: NodeRequest, res: NodeResponse, query: URLSearchParams): Promise<void> {
  const config = ctx.hub.config;
  const selectors = query.getAll('topic');
  checkSelectors(selectors);
  const auth = await authenticate(ctx, req, query, {
    role: 'subscriber',
    missing: config.anonymous ? false : 'a subscriber token is required (Authorization: Bearer, authorization query parameter or cookie); this hub does not allow anonymous subscribers',
  });
  // The draft-07 form of subscription events is theirs, the 1.0 form is not.
  const accepts = config.subscriptions ? (update: Update) => !isV1SubscriptionEvent(update) : undefined;
  await join(ctx, req, res, { selectors, grant: auth?.grant, lastEventId: lastEventIdOf(req), accepts, cursorHeader: 'last-event-id' });
}

/** Mercure 1.0: `match`/`match_urlpattern` matchers, a token in the header or cookie, `last_event_id`, `Mercure-Last-Event-ID`. */
async function subscribeV1(ctx: HubContext, req: NodeRequest, res: NodeResponse, rawQuery: string, body: [string, string][]): Promise<void> {
  const config = ctx.hub.config;
  const { selectors, lastEventId } = readV1Subscription(parseForm(rawQuery, 'query'), body, patternBaseOf(ctx.hub.config));
  checkSelectors(selectors);
  const auth = await authenticate(ctx, req, new URLSearchParams(), {
    role: 'subscriber',
    missing: config.anonymous ? false : `a subscriber token is required: an "Authorization: Bearer" header, or the ${config.accessTokenCookie} cookie; this hub does not allow anonymous subscribers`,
  });
  const raw = req.headers['last-event-id'];
  const header = Array.isArray(raw) ? raw[0] : raw;
  const accepts = config.subscriptions ? (update: Update) => !isDraft07SubscriptionEvent(update) : undefined;
  await join(ctx, req, res, { selectors, grant: auth?.grant, lastEventId: header !== undefined ? headerToText(header) : lastEventId, accepts, cursorHeader: 'mercure-last-event-id' });
}

/** What both generations hand the core's join. */
interface JoinOptions {
  selectors: SelectorLike[];
  grant: Grant | undefined;
  lastEventId: string | undefined;
  accepts: ((update: Update) => boolean) | undefined;
  /** The response header that tells where the stream resumed. */
  cursorHeader: 'last-event-id' | 'mercure-last-event-id';
}

async function join(ctx: HubContext, req: NodeRequest, res: NodeResponse, options: JoinOptions): Promise<void> {
  const config = ctx.hub.config;
  const { lastEventId } = options;
  await ctx.hub.join({
    selectors: options.selectors,
    grant: options.grant,
    address: req.socket.remoteAddress ?? 'unknown',
    protocol: 'sse',
    lastEventId,
    accepts: options.accepts,
    open: (resume: Resume) => {
      const headers: Record<string, string> = { 'cache-control': HUB_CACHE_CONTROL };
      // Only an ID found in history is echoed, and stored IDs never hold CR, LF or NUL.
      if (resume.covered !== undefined) headers[options.cursorHeader] = resume.covered && lastEventId !== 'earliest' ? textToHeader(lastEventId as string) : 'earliest';
      const stream = createStream(req, res, {
        heartbeat: config.heartbeat > 0 ? config.heartbeat : false,
        retry: config.retry,
        lifetime: config.writeTimeout > 0 ? config.writeTimeout : undefined,
        lifetimeJitter: 0.2,
        headers,
        lastEventId,
      });
      // History could not cover the resume: say so before replaying what is kept.
      if (resume.covered === false) stream.send({ event: RESYNC_EVENT, data: JSON.stringify({ lastEventId, reason: 'unknown-id' }) });
      return stream;
    },
  });
}
