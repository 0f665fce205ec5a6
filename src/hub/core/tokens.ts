/**
 * Tokens: how a JWT is verified and what its claims grant, for every front-end (the same token
 * means the same over each protocol). Where a token is found in a request is the front-end's
 * business; this is what happens to it next.
 *
 * The accepted algorithm is fixed by configuration and passed to the verifier, so a token cannot
 * choose it: `alg: none` and HS/RS key confusion (an RSA public key used as an HMAC secret) fail
 * signature verification like any forgery.
 */
import { type JWTPayload, type JWTVerifyGetKey, createRemoteJWKSet, decodeProtectedHeader, errors, importSPKI, importX509, jwtVerify } from 'jose';
import { readAuthorizationDetails } from './access-token.js';
import { InvalidTokenError } from './errors.js';
import type { Grant } from './grant.js';

export type { Grant } from './grant.js';

/** Symmetric and asymmetric algorithms a hub may be configured with. */
export const ALGORITHMS = ['HS256', 'HS384', 'HS512', 'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'] as const;
/** One of ALGORITHMS. */
export type Algorithm = (typeof ALGORITHMS)[number];

/** The longest token read at all (a larger one is refused before any signature check). */
const MAX_TOKEN_LENGTH = 16 * 1024;

/** Verified tokens remembered per verifier, and for how long at most. */
const CACHE_SIZE = 10_000;
const CACHE_TTL_MS = 60_000;

/** What a caller knows when it verifies a token: the audiences an access token may name (the hub's resource identifiers). */
export interface VerifyContext {
  audiences?: readonly string[] | undefined;
}

/** `true` for the media type of an OAuth 2.0 JWT access token (RFC 9068): `at+jwt`, `application/at+jwt`, any case. */
export function isAccessTokenType(typ: unknown): boolean {
  return typeof typ === 'string' && typ.toLowerCase().replace(/^application\//, '') === 'at+jwt';
}

/** `true` when a token's header says it is an access token (`typ: at+jwt`); `false` for any other or an unreadable one. */
export function isAccessToken(token: string): boolean {
  try {
    return isAccessTokenType(decodeProtectedHeader(token).typ);
  } catch {
    return false;
  }
}

/**
 * Verifies tokens for one role (publisher or subscriber) with one key or key set. Two kinds of
 * token are accepted: draft-07 tokens (a `mercure` claim), and OAuth 2.0 access tokens (header
 * `typ: at+jwt`, Mercure 1.0), which must also name a trusted issuer (`iss`), the hub (`aud`) and
 * an expiry (`exp`), and whose `authorization_details` say what they grant.
 */
export class Verifier {
  #key: Promise<Uint8Array | Awaited<ReturnType<typeof importSPKI>> | JWTVerifyGetKey>;
  #alg: Algorithm;
  #role: string;
  #issuers: string[];
  #patternBase: string | undefined;
  /**
   * Tokens verified lately, and until when their grant holds: a publisher sends the same token with
   * every publish, and a signature check costs more than the rest of the publish. An entry lasts
   * at most CACHE_TTL_MS (so a key removed from a JWKS stops being honoured soon) and never past
   * the token's `exp`. Only successes are kept; a bad token is checked, and refused, every time.
   */
  #cache = new Map<string, { grant: Grant; until: number }>();

  /** `key`: an HMAC secret, or a PEM public key / certificate for RS*, PS*, ES*, EdDSA; or `jwksUrl`. */
  /** `issuers`: the `iss` values of access tokens trusted (none: access tokens are refused); `patternBase` resolves their relative URL patterns. */
  constructor(role: string, options: { key?: string | undefined; alg: Algorithm; jwksUrl?: string | undefined; issuers?: readonly string[] | undefined; patternBase?: string | undefined }) {
    this.#role = role;
    this.#alg = options.alg;
    this.#issuers = [...(options.issuers ?? [])];
    this.#patternBase = options.patternBase;
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

  /**
   * Verifies a token and reads its grant; throws InvalidTokenError saying what was wrong. An
   * access token must name one of `context.audiences` in its `aud`.
   */
  async verify(token: string, context: VerifyContext = {}): Promise<Grant> {
    let grant: Grant;
    const cached = this.#cache.get(token);
    if (cached !== undefined && Date.now() < cached.until) {
      grant = cached.grant;
    } else {
      if (cached !== undefined) this.#cache.delete(token);
      grant = await this.#verify(token);
      if (this.#cache.size >= CACHE_SIZE) this.#cache.delete(this.#cache.keys().next().value as string);
      this.#cache.set(token, { grant, until: Math.min(Date.now() + CACHE_TTL_MS, grant.expiresAt ?? Number.POSITIVE_INFINITY) });
    }
    // The audience depends on where the token was presented, so it is checked on every use.
    if (grant.tokenType === 'at+jwt') {
      const audiences = context.audiences ?? [];
      if (!(grant.audience ?? []).some((a) => audiences.includes(a))) {
        throw new InvalidTokenError('invalid-token', `invalid ${this.#role} access token: its "aud" (${JSON.stringify(grant.audience)}) does not name this hub${audiences.length > 0 ? ` (${audiences.map((a) => JSON.stringify(a)).join(' or ')}; --token-audience)` : ''}`);
      }
    }
    return grant;
  }

  async #verify(token: string): Promise<Grant> {
    if (token.length > MAX_TOKEN_LENGTH) throw new InvalidTokenError('invalid-token', `the ${this.#role} token is longer than ${MAX_TOKEN_LENGTH} bytes`);
    // An unreadable header is refused by the verification below, with the reason it gives.
    const accessToken = isAccessToken(token);
    if (accessToken && this.#issuers.length === 0) {
      throw new InvalidTokenError('invalid-token', `invalid ${this.#role} access token: this hub trusts no issuer of access tokens (--token-issuers)`);
    }
    let payload: JWTPayload;
    try {
      const key = await this.#key;
      const options = accessToken ? { algorithms: [this.#alg], issuer: this.#issuers, requiredClaims: ['iss', 'aud', 'exp'] } : { algorithms: [this.#alg] };
      const result = typeof key === 'function' ? await jwtVerify(token, key, options) : await jwtVerify(token, key, options);
      payload = result.payload;
    } catch (error) {
      throw new InvalidTokenError('invalid-token', `invalid ${this.#role} ${accessToken ? 'access ' : ''}token: ${describe(error)}`);
    }
    return accessToken ? readAccessTokenGrant(payload, this.#patternBase) : readGrant(payload, this.#role);
  }
}

/** Reads a verified access token (Mercure 1.0): `authorization_details`, `aud`, `exp`, `sub`. */
export function readAccessTokenGrant(payload: JWTPayload, patternBase?: string): Grant {
  const aud = payload.aud;
  return {
    ...readAuthorizationDetails(payload.authorization_details, patternBase),
    payload: undefined,
    expiresAt: typeof payload.exp === 'number' ? payload.exp * 1000 : undefined,
    subject: typeof payload.sub === 'string' ? payload.sub : undefined,
    ui: typeof payload.ssehub === 'object' && payload.ssehub !== null && (payload.ssehub as Record<string, unknown>).ui === true,
    tokenType: 'at+jwt',
    audience: typeof aud === 'string' ? [aud] : Array.isArray(aud) ? aud.filter((a): a is string => typeof a === 'string') : [],
  };
}

function describe(error: unknown): string {
  if (error instanceof errors.JWTExpired) return 'it has expired ("exp" is in the past)';
  if (error instanceof errors.JWTClaimValidationFailed) {
    if (error.reason === 'missing') return `claim "${error.claim}" is missing (an access token must carry "iss", "aud" and "exp")`;
    if (error.claim === 'iss') return `its issuer ("iss") is not one this hub trusts (--token-issuers)`;
    return `claim "${error.claim}" ${error.reason === 'check_failed' ? 'is not valid now' : 'is invalid'} (${error.message})`;
  }
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
    throw new InvalidTokenError('invalid-claim', `invalid ${role} token: claim "${claim}" must be an array of strings`);
  }
  return value;
}

/** Reads the `mercure` claim of a verified payload; throws InvalidTokenError when it has the wrong shape. */
export function readGrant(payload: JWTPayload, role = 'subscriber'): Grant {
  const mercure = payload.mercure;
  if (mercure !== undefined && (typeof mercure !== 'object' || mercure === null || Array.isArray(mercure))) {
    throw new InvalidTokenError('invalid-claim', `invalid ${role} token: claim "mercure" must be an object`);
  }
  const m = (mercure ?? {}) as Record<string, unknown>;
  return {
    publish: selectorList(m.publish, 'mercure.publish', role),
    subscribe: selectorList(m.subscribe, 'mercure.subscribe', role),
    payload: m.payload,
    expiresAt: typeof payload.exp === 'number' ? payload.exp * 1000 : undefined,
    subject: typeof payload.sub === 'string' ? payload.sub : undefined,
    ui: typeof payload.ssehub === 'object' && payload.ssehub !== null && (payload.ssehub as Record<string, unknown>).ui === true,
    tokenType: 'jwt',
  };
}
