/**
 * JWT authorization, Mercure draft-07: where the token is looked for, how it is verified, and
 * what its `mercure` claim grants.
 *
 * The accepted algorithm is fixed by configuration and passed to the verifier, so a token cannot
 * choose it: `alg: none` and HS/RS key confusion (an RSA public key used as an HMAC secret) fail
 * signature verification like any forgery.
 */
import type { NodeRequest } from '../server/adapters/node.js';
import { type JWTPayload, type JWTVerifyGetKey, createRemoteJWKSet, errors, importSPKI, importX509, jwtVerify } from 'jose';
import { HttpError } from './errors.js';
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

/** Where a token was found; cookie-borne tokens need a CSRF check on POST. */
export type TokenSource = 'header' | 'query' | 'cookie';

/** Symmetric and asymmetric algorithms a hub may be configured with. */
export const ALGORITHMS = ['HS256', 'HS384', 'HS512', 'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'] as const;
/** One of ALGORITHMS. */
export type Algorithm = (typeof ALGORITHMS)[number];

const MAX_TOKEN_LENGTH = 16 * 1024;

/** Finds the token: `Authorization: Bearer`, else the `authorization` query parameter, else the cookie. */
export function findToken(req: NodeRequest, query: URLSearchParams, cookieName: string): { token: string; source: TokenSource } | undefined {
  const header = req.headers.authorization;
  if (header !== undefined) {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (match === null) throw new HttpError(401, 'invalid-token', 'the Authorization header must be "Bearer <token>"', wwwAuthenticate('invalid_request'));
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

function wwwAuthenticate(error: string): Record<string, string> {
  return { 'www-authenticate': `Bearer realm="ssehub", error="${error}"` };
}

/** Verified tokens remembered per verifier, and for how long at most. */
const CACHE_SIZE = 10_000;
const CACHE_TTL_MS = 60_000;

/** Verifies tokens for one role (publisher or subscriber) with one key or key set. */
export class Verifier {
  #key: Promise<Uint8Array | Awaited<ReturnType<typeof importSPKI>> | JWTVerifyGetKey>;
  #alg: Algorithm;
  #role: string;
  /**
   * Tokens verified lately, and until when their grant holds: a publisher sends the same token with
   * every publish, and a signature check costs more than the rest of the publish. An entry lasts
   * at most CACHE_TTL_MS (so a key removed from a JWKS stops being honoured soon) and never past
   * the token's `exp`. Only successes are kept; a bad token is checked, and refused, every time.
   */
  #cache = new Map<string, { grant: Grant; until: number }>();

  /** `key`: an HMAC secret, or a PEM public key / certificate for RS*, PS*, ES*, EdDSA; or `jwksUrl`. */
  constructor(role: string, options: { key?: string | undefined; alg: Algorithm; jwksUrl?: string | undefined }) {
    this.#role = role;
    this.#alg = options.alg;
    if (options.jwksUrl !== undefined) {
      this.#key = Promise.resolve(createRemoteJWKSet(new URL(options.jwksUrl)));
    } else if (options.key === undefined) {
      throw new Error(`no key for ${role} tokens`);
    } else if (options.alg.startsWith('HS')) {
      this.#key = Promise.resolve(new TextEncoder().encode(options.key));
    } else {
      const pem = options.key.replace(/\\n/g, '\n');
      this.#key = pem.includes('BEGIN CERTIFICATE') ? importX509(pem, options.alg) : importSPKI(pem, options.alg);
    }
  }

  /** Resolves once the key is usable (rejects with the reason a PEM key cannot be read). */
  async ready(): Promise<void> {
    await this.#key;
  }

  /** Verifies a token and reads its grant; throws HttpError 401 with what was wrong. */
  async verify(token: string): Promise<Grant> {
    const cached = this.#cache.get(token);
    if (cached !== undefined) {
      if (Date.now() < cached.until) return cached.grant;
      this.#cache.delete(token);
    }
    const grant = await this.#verify(token);
    if (this.#cache.size >= CACHE_SIZE) this.#cache.delete(this.#cache.keys().next().value as string);
    this.#cache.set(token, { grant, until: Math.min(Date.now() + CACHE_TTL_MS, grant.expiresAt ?? Number.POSITIVE_INFINITY) });
    return grant;
  }

  async #verify(token: string): Promise<Grant> {
    if (token.length > MAX_TOKEN_LENGTH) throw new HttpError(401, 'invalid-token', `the ${this.#role} token is longer than ${MAX_TOKEN_LENGTH} bytes`, wwwAuthenticate('invalid_token'));
    let payload: JWTPayload;
    try {
      const key = await this.#key;
      const result = typeof key === 'function' ? await jwtVerify(token, key, { algorithms: [this.#alg] }) : await jwtVerify(token, key, { algorithms: [this.#alg] });
      payload = result.payload;
    } catch (error) {
      throw new HttpError(401, 'invalid-token', `invalid ${this.#role} token: ${describe(error)}`, wwwAuthenticate('invalid_token'));
    }
    return readGrant(payload, this.#role);
  }
}

function describe(error: unknown): string {
  if (error instanceof errors.JWTExpired) return 'it has expired ("exp" is in the past)';
  if (error instanceof errors.JWTClaimValidationFailed) return `claim "${error.claim}" ${error.reason === 'check_failed' ? 'is not valid now' : 'is invalid'} (${error.message})`;
  if (error instanceof errors.JOSEAlgNotAllowed) return `its algorithm is not the configured one (${error.message})`;
  if (error instanceof errors.JWSSignatureVerificationFailed) return 'its signature does not match the configured key';
  if (error instanceof errors.JWSInvalid || error instanceof errors.JWTInvalid) return `it is malformed (${error.message})`;
  if (error instanceof errors.JWKSNoMatchingKey) return 'no key of the JWKS matches it';
  if (error instanceof Error) return error.message;
  return String(error);
}

function selectorList(value: unknown, claim: string, role: string): string[] | undefined {
  if (value === undefined) return undefined;
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) {
    throw new HttpError(401, 'invalid-claim', `invalid ${role} token: claim "${claim}" must be an array of strings`, wwwAuthenticate('invalid_token'));
  }
  return value;
}

/** Reads the `mercure` claim of a verified payload; throws HttpError 401 when it has the wrong shape. */
export function readGrant(payload: JWTPayload, role = 'subscriber'): Grant {
  const mercure = payload.mercure;
  if (mercure !== undefined && (typeof mercure !== 'object' || mercure === null || Array.isArray(mercure))) {
    throw new HttpError(401, 'invalid-claim', `invalid ${role} token: claim "mercure" must be an object`, wwwAuthenticate('invalid_token'));
  }
  const m = (mercure ?? {}) as Record<string, unknown>;
  return {
    publish: selectorList(m.publish, 'mercure.publish', role),
    subscribe: selectorList(m.subscribe, 'mercure.subscribe', role),
    payload: m.payload,
    expiresAt: typeof payload.exp === 'number' ? payload.exp * 1000 : undefined,
    subject: typeof payload.sub === 'string' ? payload.sub : undefined,
    ui: typeof payload.ssehub === 'object' && payload.ssehub !== null && (payload.ssehub as Record<string, unknown>).ui === true,
  };
}

/** Compiles a grant's selectors, turning a malformed template into a 401 for the token rather than a 400 for the request. */
export function grantMatchers(selectors: string[] | undefined, claim: string): Matcher[] {
  if (selectors === undefined) return [];
  try {
    return selectors.map(compileSelector);
  } catch (error) {
    throw new HttpError(401, 'invalid-claim', `invalid token: ${claim}: ${(error as Error).message}`, wwwAuthenticate('invalid_token'));
  }
}
