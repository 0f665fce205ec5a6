/**
 * Authorization, Mercure draft-07: where a request's token is looked for (the `Authorization`
 * header, the `authorization` query parameter, the cookie), and one `authenticate` that every
 * route calls to turn it into a Grant. Verifying the token and reading its claims is the core's
 * (core/tokens.ts), shared with every front-end.
 */
import type { NodeRequest } from '../../server/adapters/node.js';
import { InvalidTokenError } from '../core/errors.js';
import type { Grant } from '../core/grant.js';
import type { Verifier } from '../core/tokens.js';
import type { HubContext } from './context.js';
import { HttpError, bearerChallenge } from './errors.js';

export { type Grant, grantMatchers } from '../core/grant.js';
export { ALGORITHMS, type Algorithm, Verifier, readGrant } from '../core/tokens.js';

/** Where a token was found; cookie-borne tokens need a CSRF check on POST. */
export type TokenSource = 'header' | 'query' | 'cookie';

/** Finds the token: `Authorization: Bearer`, else the `authorization` query parameter, else the cookie. */
export function findToken(req: NodeRequest, query: URLSearchParams, cookieName: string): { token: string; source: TokenSource } | undefined {
  const header = req.headers.authorization;
  if (header !== undefined) {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (match === null) throw new HttpError(401, 'invalid-token', 'the Authorization header must be "Bearer <token>"', bearerChallenge('invalid_request'));
    return { token: match[1] as string, source: 'header' };
  }
  const fromQuery = query.get('authorization');
  if (fromQuery !== null) return { token: fromQuery, source: 'query' };
  const cookie = readCookie(req.headers.cookie, cookieName);
  if (cookie !== undefined) return { token: cookie, source: 'cookie' };
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
}

/**
 * The one place a request's token is found and verified. Resolves with the grant, `undefined` for
 * an anonymous request a route allows; rejects with a 401 (HttpError, or the core's
 * InvalidTokenError that routes answer as 401).
 */
export async function authenticate(ctx: HubContext, req: NodeRequest, query: URLSearchParams, options: AuthenticateOptions & { missing: string }): Promise<Authenticated>;
export async function authenticate(ctx: HubContext, req: NodeRequest, query: URLSearchParams, options: AuthenticateOptions): Promise<Authenticated | undefined>;
export async function authenticate(ctx: HubContext, req: NodeRequest, query: URLSearchParams, options: AuthenticateOptions): Promise<Authenticated | undefined> {
  const found = findToken(req, query, ctx.hub.config.cookieName);
  if (found === undefined) {
    if (options.missing === false) return undefined;
    throw new HttpError(401, 'missing-token', options.missing, options.challenge === false ? {} : bearerChallenge());
  }
  const verifier: Verifier | undefined = options.role === 'publisher' ? ctx.publisherVerifier : options.role === 'subscriber' ? ctx.subscriberVerifier : (ctx.subscriberVerifier ?? ctx.publisherVerifier);
  if (verifier === undefined) {
    if (options.missing === false) throw new InvalidTokenError('invalid-token', 'this hub has no subscriber key configured, so it cannot accept subscriber tokens');
    throw new HttpError(401, 'missing-token', options.missing, options.challenge === false ? {} : bearerChallenge());
  }
  return { grant: await verifier.verify(found.token), source: found.source };
}
