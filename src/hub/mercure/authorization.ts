/**
 * Authorization: where a request's token is looked for, and one `authenticate` that every route
 * calls to turn it into a Grant. A draft-07 request's token is in the `Authorization` header, the
 * `authorization` query parameter or the `--cookie-name` cookie; a Mercure 1.0 request's in the
 * header or the `--access-token-cookie` cookie, never in the URL (RFC 9700). Either kind of token
 * is accepted in either kind of request. Verifying the token and reading its claims is the
 * core's (core/tokens.ts), shared with every front-end.
 */
import type { NodeRequest } from '../../server/adapters/node.js';
import { InvalidTokenError } from '../core/errors.js';
import type { Grant } from '../core/grant.js';
import { type Verifier, isAccessToken } from '../core/tokens.js';
import type { HubContext } from './context.js';
import { HttpError, bearerChallenge } from './errors.js';
import { audiencesOf, isV1 } from './oauth.js';

export { type Grant, grantMatchers } from '../core/grant.js';
export { ALGORITHMS, type Algorithm, Verifier, readGrant } from '../core/tokens.js';

/** Where a token was found; cookie-borne tokens need a CSRF check on POST. */
export type TokenSource = 'header' | 'query' | 'cookie';

/**
 * Finds the token: `Authorization: Bearer`, else the `authorization` query parameter (unless
 * `v1Cookie` is given alone: a 1.0 request), else a cookie (`cookieName`, then `v1Cookie`).
 */
export function findToken(req: NodeRequest, query: URLSearchParams, cookieName: string | undefined, v1Cookie?: string): { token: string; source: TokenSource } | undefined {
  const header = req.headers.authorization;
  if (header !== undefined) {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (match === null) throw new HttpError(cookieName === undefined ? 400 : 401, 'invalid-token', 'the Authorization header must be "Bearer <token>"', bearerChallenge('invalid_request'));
    return { token: match[1] as string, source: 'header' };
  }
  if (cookieName !== undefined) {
    const fromQuery = query.get('authorization');
    if (fromQuery !== null) return { token: fromQuery, source: 'query' };
  }
  for (const name of [cookieName, v1Cookie]) {
    const cookie = name === undefined ? undefined : readCookie(req.headers.cookie, name);
    if (cookie !== undefined) return { token: cookie, source: 'cookie' };
  }
  return undefined;
}

function readCookie(header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq !== -1 && part.slice(0, eq).trim() === name) {
      const raw = part.slice(eq + 1).trim();
      try {
        return decodeURIComponent(raw);
      } catch {
        return raw;
      }
    }
  }
  return undefined;
}

/** `true` when the request presents an access token (`typ: at+jwt`, Mercure 1.0), before it is verified. */
export function presentsAccessToken(ctx: HubContext, req: NodeRequest, query: URLSearchParams): boolean {
  try {
    const found = findToken(req, query, ctx.hub.config.cookieName, ctx.hub.config.accessTokenCookie);
    return found !== undefined && isAccessToken(found.token);
  } catch {
    return false;
  }
}

/** Who a request speaks as: its verified grant and where its token was. */
export interface Authenticated {
  grant: Grant;
  source: TokenSource;
}

/** What a route asks of `authenticate`. */
export interface AuthenticateOptions {
  /** Whose key verifies the token: publishers', subscribers' (the dashboard takes either). */
  role: 'publisher' | 'subscriber' | 'ui';
  /** Without a token: the message of the 401 (with a `Bearer` challenge unless `challenge` is false), or `false` to go on anonymously. */
  missing: string | false;
  /** Whether a 401 for a missing token carries `WWW-Authenticate`. Default true. */
  challenge?: boolean;
  /** Look everywhere either generation may put a token (a publish, whose generation its token tells), even in a 1.0 request. */
  anyPlace?: boolean;
}

/**
 * The one place a request's token is found and verified. Resolves with the grant, `undefined` for
 * an anonymous request a route allows; rejects with a 401 (HttpError, or the core's
 * InvalidTokenError that routes answer as 401).
 */
export async function authenticate(ctx: HubContext, req: NodeRequest, query: URLSearchParams, options: AuthenticateOptions & { missing: string }): Promise<Authenticated>;
export async function authenticate(ctx: HubContext, req: NodeRequest, query: URLSearchParams, options: AuthenticateOptions): Promise<Authenticated | undefined>;
export async function authenticate(ctx: HubContext, req: NodeRequest, query: URLSearchParams, options: AuthenticateOptions): Promise<Authenticated | undefined> {
  const config = ctx.hub.config;
  // A 1.0 request looks in the header and its own cookie only; others where draft-07 looks, then the 1.0 cookie.
  const found = isV1(req) && options.anyPlace !== true ? findToken(req, query, undefined, config.accessTokenCookie) : findToken(req, query, config.cookieName, config.accessTokenCookie);
  if (found === undefined) {
    if (options.missing === false) return undefined;
    throw new HttpError(401, 'missing-token', options.missing, options.challenge === false ? {} : bearerChallenge());
  }
  const verifier: Verifier | undefined = options.role === 'publisher' ? ctx.publisherVerifier : options.role === 'subscriber' ? ctx.subscriberVerifier : (ctx.subscriberVerifier ?? ctx.publisherVerifier);
  if (verifier === undefined) {
    if (options.missing === false) throw new InvalidTokenError('invalid-token', 'this hub has no subscriber key configured, so it cannot accept subscriber tokens');
    throw new HttpError(401, 'missing-token', options.missing, options.challenge === false ? {} : bearerChallenge());
  }
  const grant = await verifier.verify(found.token, { audiences: audiencesOf(ctx, req) });
  if (grant.tokenType === 'at+jwt' && found.source === 'query') {
    throw new HttpError(400, 'token-in-url', 'an access token (typ at+jwt) is not accepted in the URL: send it in an "Authorization: Bearer" header or the cookie', bearerChallenge('invalid_request'));
  }
  return { grant, source: found.source };
}
