/** Signing tokens (`ssehub token`, and the printed tokens of `--dev`). */
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
