/**
 * A Grant: what a verified token lets its holder do, whatever protocol it came with. Every
 * front-end reads its tokens into one, so the same token means the same thing over each of them;
 * and a Mercure 1.0 access token (`authorization_details`) and a draft-07 token (the `mercure`
 * claim) that allow the same topics make the same Grant, so a private update published with one
 * reaches the holders of the other exactly as it would its own.
 */
import { InvalidTokenError, NotAllowedError } from './errors.js';
import { type Matcher, type Selector, type SelectorLike, compile } from './selector.js';

/** The payload of one Mercure 1.0 `subscribe` authorization detail, and the selectors it applies to. */
export interface DetailPayload {
  selectors: readonly SelectorLike[];
  payload: unknown;
}

/** What a verified token grants. */
export interface Grant {
  /** Selectors of topics the holder may publish to (`mercure.publish`, or the `publish` details); `undefined` when absent. */
  publish: readonly SelectorLike[] | undefined;
  /** Selectors of private updates the holder may receive (`mercure.subscribe`, or the `subscribe` details). */
  subscribe: readonly SelectorLike[] | undefined;
  /** `mercure.payload`, echoed in subscription events. */
  payload: unknown;
  /** The payloads of `subscribe` details (Mercure 1.0), in the token's order. */
  payloads?: readonly DetailPayload[] | undefined;
  /** Expiry (ms since the epoch), if the token has one. */
  expiresAt: number | undefined;
  /** The `sub` claim, if any (used as the rate-limit key). */
  subject: string | undefined;
  /** `ssehub.ui: true`: the holder may read the `/ui` dashboard. */
  ui: boolean;
  /** `jwt`: a draft-07 token (the `mercure` claim); `at+jwt`: an OAuth 2.0 access token (Mercure 1.0). */
  tokenType?: 'jwt' | 'at+jwt' | undefined;
  /** `aud` of an access token, as a list. */
  audience?: readonly string[] | undefined;
}

/** Compiles a grant's selectors; a malformed one makes the token invalid (its claim is wrong), not the request. */
export function grantMatchers(selectors: readonly SelectorLike[] | undefined, claim: string): Matcher[] {
  if (selectors === undefined) return [];
  try {
    return selectors.map(compile);
  } catch (error) {
    throw new InvalidTokenError('invalid-claim', `invalid token: ${claim}: ${(error as Error).message}`);
  }
}

/** How a message names where a grant's publish selectors come from. */
function publishClaim(grant: Grant): string {
  return grant.tokenType === 'at+jwt' ? 'authorization_details "publish" action' : '"mercure.publish" claim';
}

/** Throws NotAllowedError unless `grant` may publish to every one of `topics`. */
export function assertMayPublish(grant: Grant, topics: readonly string[]): void {
  if (grant.publish === undefined) {
    throw new NotAllowedError('no-publish-claim', grant.tokenType === 'at+jwt' ? 'the access token has no authorization detail with the "publish" action, so it may not publish' : 'the token has no "mercure.publish" claim, so it may not publish');
  }
  const allowed = grantMatchers(grant.publish, grant.tokenType === 'at+jwt' ? 'authorization_details' : 'mercure.publish');
  const refused = topics.find((t) => !allowed.some((m) => m(t)));
  if (refused !== undefined) throw new NotAllowedError('topic-not-allowed', `the token's ${publishClaim(grant)} does not allow topic "${refused}"`);
}

/**
 * The payload a subscription carries in subscription events: that of the first `subscribe`
 * detail whose selectors match the subscription's own matcher taken as a topic (Mercure 1.0),
 * else the token's `mercure.payload`.
 */
export function payloadOf(grant: Grant | undefined, selector: Selector): unknown {
  if (grant === undefined) return undefined;
  for (const detail of grant.payloads ?? []) {
    if (grantMatchers(detail.selectors, 'authorization_details').some((m) => m(selector.value))) return detail.payload;
  }
  return grant.payload;
}
