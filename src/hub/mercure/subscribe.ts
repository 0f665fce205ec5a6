/**
 * GET /.well-known/mercure: subscribe (Mercure draft-07). The request is read here — topics, the
 * token, the last event ID — and the core's join does the rest; this file only opens the SSE
 * stream once the core knows whether history covered the resume.
 */
import { RESYNC_EVENT } from '../../protocol/index.js';
import type { NodeRequest, NodeResponse } from '../../server/adapters/node.js';
import { createStream, lastEventIdOf, textToHeader } from '../../server/index.js';
import { DrainingError } from '../core/errors.js';
import { checkSelectors } from '../core/join.js';
import { authenticate } from './authorization.js';
import type { HubContext } from './context.js';

export { RESYNC_EVENT };

const HUB_CACHE_CONTROL = 'private, no-cache, no-store, must-revalidate, max-age=0, no-transform';

/** Handles a subscribe request. */
export async function handleSubscribe(ctx: HubContext, req: NodeRequest, res: NodeResponse, query: URLSearchParams): Promise<void> {
  const { hub } = ctx;
  const config = hub.config;
  if (hub.draining) throw new DrainingError();
  const selectors = query.getAll('topic');
  checkSelectors(selectors);
  const auth = await authenticate(ctx, req, query, {
    role: 'subscriber',
    missing: config.anonymous ? false : 'a subscriber token is required (Authorization: Bearer, authorization query parameter or cookie); this hub does not allow anonymous subscribers',
  });
  const lastEventId = lastEventIdOf(req);
  await hub.join({
    selectors,
    grant: auth?.grant,
    address: req.socket.remoteAddress ?? 'unknown',
    protocol: 'sse',
    lastEventId,
    open: (resume) => {
      const headers: Record<string, string> = { 'cache-control': HUB_CACHE_CONTROL };
      // Only an ID found in history is echoed, and stored IDs never hold CR, LF or NUL.
      if (resume.covered !== undefined) headers['last-event-id'] = resume.covered && lastEventId !== 'earliest' ? textToHeader(lastEventId as string) : 'earliest';
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
