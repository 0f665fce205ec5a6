/** Signing tokens (`ssehub token`, and the printed tokens of `--dev`): draft-07 tokens and Mercure 1.0 access tokens. */
import { randomUUID } from 'node:crypto';
import { SignJWT } from 'jose';
import type { Algorithm } from '../core/tokens.js';

/** What a token should grant. */
export interface TokenClaims {
  publish?: string[];
  subscribe?: string[];
  payload?: unknown;
  subject?: string;
  /** Lifetime in ms; omitted: no `exp`. */
  expiresIn?: number;
  /** Lets the holder read the `/ui` dashboard (claim `ssehub.ui`). */
  ui?: boolean;
}

/** Signs a token with an HMAC secret. */
export async function signToken(secret: string, claims: TokenClaims, alg: Algorithm = 'HS256'): Promise<string> {
  if (!alg.startsWith('HS')) throw new Error(`ssehub token signs with an HMAC secret (HS256/384/512), not ${alg}; sign ${alg} tokens with your identity provider`);
  const mercure: Record<string, unknown> = {};
  if (claims.publish !== undefined) mercure.publish = claims.publish;
  if (claims.subscribe !== undefined) mercure.subscribe = claims.subscribe;
  if (claims.payload !== undefined) mercure.payload = claims.payload;
  const jwt = new SignJWT({ mercure, ...(claims.ui === true ? { ssehub: { ui: true } } : {}) }).setProtectedHeader({ alg, typ: 'JWT' }).setIssuedAt();
  if (claims.subject !== undefined) jwt.setSubject(claims.subject);
  if (claims.expiresIn !== undefined) jwt.setExpirationTime(Math.floor((Date.now() + claims.expiresIn) / 1000));
  return jwt.sign(new TextEncoder().encode(secret));
}

/** One topic matcher of an authorization detail (Mercure 1.0): `match_type` defaults to `exact`; `*` is every topic. */
export interface TopicMatcher {
  match: string;
  match_type?: 'exact' | 'urlpattern';
}

/** What a Mercure 1.0 access token should say. */
export interface AccessTokenClaims {
  /** `iss`: one of the hub's `--token-issuers`. */
  issuer: string;
  /** `aud`: the hub's resource identifier (its URL of /.well-known/mercure, or `--token-audience`). */
  audience: string;
  /** Topics the `publish` detail covers (none: no such detail). */
  publish?: TopicMatcher[];
  /** Topics the `subscribe` detail covers. */
  subscribe?: TopicMatcher[];
  /** The `subscribe` detail's payload (a JSON object), shown in subscription events. */
  payload?: Record<string, unknown>;
  /** `sub` (default: a fresh `urn:uuid:`). */
  subject?: string;
  /** Lifetime in ms (an access token must expire; default one hour). */
  expiresIn?: number;
  /** Lets the holder read the `/ui` dashboard (claim `ssehub.ui`). */
  ui?: boolean;
}

/** The `type` of a Mercure authorization detail. */
const DETAIL_TYPE = 'https://mercure.rocks/authorization-detail';

/**
 * Signs a Mercure 1.0 access token (RFC 9068: `typ: at+jwt`, `iss`, `aud`, `sub`, `client_id`,
 * `iat`, `exp`, `jti`, and `authorization_details`) with an HMAC secret.
 */
export async function signAccessToken(secret: string, claims: AccessTokenClaims, alg: Algorithm = 'HS256'): Promise<string> {
  if (!alg.startsWith('HS')) throw new Error(`ssehub token signs with an HMAC secret (HS256/384/512), not ${alg}; sign ${alg} tokens with your identity provider`);
  const details: Record<string, unknown>[] = [];
  if (claims.publish !== undefined && claims.publish.length > 0) details.push({ type: DETAIL_TYPE, actions: ['publish'], topics: claims.publish });
  if (claims.subscribe !== undefined && claims.subscribe.length > 0) details.push({ type: DETAIL_TYPE, actions: ['subscribe'], topics: claims.subscribe, ...(claims.payload !== undefined ? { payload: claims.payload } : {}) });
  const jwt = new SignJWT({ authorization_details: details, client_id: claims.issuer, ...(claims.ui === true ? { ssehub: { ui: true } } : {}) })
    .setProtectedHeader({ alg, typ: 'at+jwt' })
    .setIssuer(claims.issuer)
    .setAudience(claims.audience)
    .setSubject(claims.subject ?? `urn:uuid:${randomUUID()}`)
    .setJti(`urn:uuid:${randomUUID()}`)
    .setIssuedAt()
    .setExpirationTime(Math.floor((Date.now() + (claims.expiresIn ?? 3_600_000)) / 1000));
  return jwt.sign(new TextEncoder().encode(secret));
}
