// Mercure 1.0 access tokens for tests: signed with the test key, as a trusted issuer, for a hub.
import { SignJWT } from 'jose';
import { TEST_KEY } from './hub.js';

/** The issuer the tests' hubs trust (`--token-issuers`). */
export const ISSUER = 'https://issuer.example';

/** The `type` of a Mercure authorization detail. */
export const DETAIL = 'https://mercure.rocks/authorization-detail';

/** One authorization detail: `actions` over `topics` (a string is an exact topic; `{ urlpattern }` a URL pattern). */
export function detail(actions: string[], topics: (string | { urlpattern: string })[], payload?: Record<string, unknown>): Record<string, unknown> {
  return { type: DETAIL, actions, topics: topics.map((t) => (typeof t === 'string' ? { match: t } : { match: t.urlpattern, match_type: 'urlpattern' })), ...(payload === undefined ? {} : { payload }) };
}

/** What to change of a well-formed token. */
export interface AccessTokenOptions {
  typ?: string;
  iss?: string | undefined;
  aud?: string | string[] | undefined;
  /** Seconds from now (negative: expired); `undefined`: no `exp`. */
  exp?: number | undefined;
  nbf?: number;
  extra?: Record<string, unknown>;
  key?: string;
}

/** Signs an access token for the hub at `hubUrl` (its `/.well-known/mercure` URL, the default audience). */
export function accessToken(hubUrl: string, details: unknown, options: AccessTokenOptions = {}): Promise<string> {
  const claims: Record<string, unknown> = { authorization_details: details, sub: 'urn:uuid:test', client_id: ISSUER, jti: `urn:uuid:${Math.random()}`, ...options.extra };
  const jwt = new SignJWT(claims).setProtectedHeader({ alg: 'HS256', typ: options.typ ?? 'at+jwt' }).setIssuedAt();
  const iss = 'iss' in options ? options.iss : ISSUER;
  if (iss !== undefined) jwt.setIssuer(iss);
  const aud = 'aud' in options ? options.aud : hubUrl;
  if (aud !== undefined) jwt.setAudience(aud);
  const exp = 'exp' in options ? options.exp : 3600;
  if (exp !== undefined) jwt.setExpirationTime(Math.floor(Date.now() / 1000) + exp);
  if (options.nbf !== undefined) jwt.setNotBefore(Math.floor(Date.now() / 1000) + options.nbf);
  return jwt.sign(new TextEncoder().encode(options.key ?? TEST_KEY));
}
