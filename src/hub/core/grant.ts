/**
 * A Grant: what a verified token lets its holder do, whatever protocol it came with. Every
 * front-end reads its tokens into one, so the same token means the same thing over each of them.
 */
import { InvalidTokenError, NotAllowedError } from './errors.js';
import { type Matcher, compileSelector } from './selector.js';

/** What a verified token grants. */
export interface Grant {
  /** Selectors of topics the holder may publish to (`mercure.publish`); `undefined` when absent. */
  publish: string[] | undefined;
  /** Selectors of private updates the holder may receive (`mercure.subscribe`). */
  subscribe: string[] | undefined;
  /** `mercure.payload`, echoed in subscription events. */
  payload: unknown;
  /** Expiry (ms since the epoch), if the token has one. */
  expiresAt: number | undefined;
  /** The `sub` claim, if any (used as the rate-limit key). */
  subject: string | undefined;
  /** `ssehub.ui: true`: the holder may read the `/ui` dashboard. */
  ui: boolean;
}

/** Compiles a grant's selectors; a malformed template makes the token invalid (its claim is wrong), not the request. */
export function grantMatchers(selectors: string[] | undefined, claim: string): Matcher[] {
  if (selectors === undefined) return [];
  try {
    return selectors.map(compileSelector);
  } catch (error) {
    throw new InvalidTokenError('invalid-claim', `invalid token: ${claim}: ${(error as Error).message}`);
  }
}

/** Throws NotAllowedError unless `grant` may publish to every one of `topics` (the token's `mercure.publish`). */
export function assertMayPublish(grant: Grant, topics: readonly string[]): void {
  if (grant.publish === undefined) throw new NotAllowedError('no-publish-claim', 'the token has no "mercure.publish" claim, so it may not publish');
  const allowed = grantMatchers(grant.publish, 'mercure.publish');
  const refused = topics.find((t) => !allowed.some((m) => m(t)));
  if (refused !== undefined) throw new NotAllowedError('topic-not-allowed', `the token's "mercure.publish" claim does not allow topic "${refused}"`);
}
