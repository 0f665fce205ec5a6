/**
 * The Mercure front-end's answers: an HTTP status, headers and a message. The core's typed errors
 * become statuses here, and nowhere else: for a draft-07 request as draft-07 hubs answer, for a
 * Mercure 1.0 request with the RFC 6750 challenge its status calls for (`invalid_request`,
 * `invalid_token`, `insufficient_scope`, or a bare one when no token was presented).
 */
import {
  DrainingError,
  DuplicateIdError,
  HubError,
  InvalidSelectorError,
  InvalidSubscriptionError,
  InvalidTokenError,
  InvalidUpdateError,
  NotAllowedError,
  OverCapacityError,
  RateLimitedError,
  TransportUnavailableError,
} from '../core/errors.js';
import { bearerChallengeV1 } from './oauth.js';

/** An error answered as an HTTP response. `reason` is a short label for metrics and logs. */
export class HttpError extends Error {
  override readonly name = 'HttpError';
  readonly status: number;
  readonly reason: string;
  readonly headers: Record<string, string>;
  constructor(status: number, reason: string, message: string, headers: Record<string, string> = {}) {
    super(message);
    this.status = status;
    this.reason = reason;
    this.headers = headers;
  }
}

/** The RFC 6750 challenge of a 401. */
export function bearerChallenge(error?: string): Record<string, string> {
  return { 'www-authenticate': error === undefined ? 'Bearer realm="ssehub"' : `Bearer realm="ssehub", error="${error}"` };
}

/** How a Mercure 1.0 answer points to the hub's protected-resource metadata. */
export interface V1Answer {
  resourceMetadata: string;
}

/**
 * The HTTP answer to an error of the core (or an HttpError as it is); `undefined` for anything
 * else, a bug. With `v1`, the answer of a Mercure 1.0 request (RFC 6750).
 */
export function toHttpError(error: unknown, v1?: V1Answer): HttpError | undefined {
  const answer = toDraft07(error);
  if (v1 === undefined || answer === undefined || answer.headers['www-authenticate']?.includes('resource_metadata') === true) return answer;
  const challenge = (code?: 'invalid_request' | 'invalid_token' | 'insufficient_scope') => bearerChallengeV1(v1.resourceMetadata, code, code === undefined ? undefined : answer.message);
  const { 'www-authenticate': _old, ...headers } = answer.headers;
  if (answer.status === 401) return new HttpError(401, answer.reason, answer.message, { ...headers, ...challenge(answer.reason === 'missing-token' ? undefined : 'invalid_token') });
  if (answer.status === 403 && (error instanceof NotAllowedError || answer.reason === 'topic-not-allowed')) return new HttpError(403, answer.reason, answer.message, { ...headers, ...challenge('insufficient_scope') });
  if (answer.status === 400) return new HttpError(400, answer.reason, answer.message, { ...headers, ...challenge('invalid_request') });
  return answer;
}

function toDraft07(error: unknown): HttpError | undefined {
  if (error instanceof HttpError) return error;
  if (!(error instanceof HubError)) return undefined;
  if (error instanceof InvalidUpdateError || error instanceof InvalidSelectorError || error instanceof InvalidSubscriptionError) return new HttpError(400, error.reason, error.message);
  if (error instanceof InvalidTokenError) return new HttpError(401, error.reason, error.message, bearerChallenge(error.reason === 'missing-token' ? undefined : 'invalid_token'));
  if (error instanceof NotAllowedError) return new HttpError(403, error.reason, error.message);
  if (error instanceof DuplicateIdError) return new HttpError(409, error.reason, `${error.message}; IDs must be unique so that Last-Event-ID resumes at one place`);
  if (error instanceof RateLimitedError) return new HttpError(429, error.reason, error.message, { 'retry-after': String(error.retryAfter) });
  if (error instanceof OverCapacityError) return new HttpError(error.scope === 'node' ? 503 : 429, error.reason, error.message, { 'retry-after': String(error.retryAfter) });
  if (error instanceof DrainingError) return new HttpError(503, error.reason, error.message, { 'retry-after': '1' });
  if (error instanceof TransportUnavailableError) return new HttpError(503, error.reason, error.message, { 'retry-after': '1' });
  return new HttpError(500, error.reason, error.message);
}
