/** What the HTTP handlers share: the hub, the token verifiers and the limiters. */
import type { Verifier } from './authorization.js';
import type { Hub } from './hub.js';
import type { RateLimiter } from './rate-limit.js';

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
