/**
 * Tokens: how a JWT is verified and what its claims grant, for every front-end (the same token
 * means the same over each protocol). Where a token is found in a request is the front-end's
 * business; this is what happens to it next.
 *
 * The accepted algorithm is fixed by configuration and passed to the verifier, so a token cannot
 * choose it: `alg: none` and HS/RS key confusion (an RSA public key used as an HMAC secret) fail
 * signature verification like any forgery.
 */
import { type JWTPayload, type JWTVerifyGetKey, createRemoteJWKSet, errors, importSPKI, importX509, jwtVerify } from 'jose';
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

  /** Verifies a token and reads its grant; throws InvalidTokenError saying what was wrong. */
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
    if (token.length > MAX_TOKEN_LENGTH) throw new InvalidTokenError('invalid-token', `the ${this.#role} token is longer than ${MAX_TOKEN_LENGTH} bytes`);
    let payload: JWTPayload;
    try {
      const key = await this.#key;
      const result = typeof key === 'function' ? await jwtVerify(token, key, { algorithms: [this.#alg] }) : await jwtVerify(token, key, { algorithms: [this.#alg] });
      payload = result.payload;
    } catch (error) {
      throw new InvalidTokenError('invalid-token', `invalid ${this.#role} token: ${describe(error)}`);
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
  };
}
