/** What the Mercure front-end's handlers share: the core, the token verifiers and the limiters. */
import type { Hub } from '../core/hub.js';
import type { RateLimiter } from '../core/rate-limit.js';
import type { Verifier } from '../core/tokens.js';

/** Shared by the request handlers of one hub. */
export interface HubContext {
  hub: Hub;
  publisherVerifier: Verifier;
  /** `undefined` when no subscriber key is configured (then only anonymous subscribers). */
  subscriberVerifier: Verifier | undefined;
  rateLimiter: RateLimiter | undefined;
  /**
   * Connections the server itself answered and closed (a request that timed out, a malformed
   * one): the handler of a request cut that way sees it aborted, and must not count it again.
   */
  answered: WeakSet<object>;
}
