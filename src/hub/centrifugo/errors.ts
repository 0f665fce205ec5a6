/**
 * The Centrifugo front-end's answers: error codes in replies, disconnect codes (a WebSocket close
 * code, or a Disconnect push over emulation), and the one function that turns the core's typed
 * errors into them. The codes are Centrifugo's (github:centrifugal/centrifuge, errors.go and
 * disconnect.go): the SDKs act on them — an error below 100, marked temporary, or 109 is retried;
 * a disconnect code from 3500 to 3999 is final, the others reconnect.
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
import type { EndReason } from '../core/outlet.js';

/** An error in a reply. */
export interface ProtocolError {
  code: number;
  message: string;
  temporary?: boolean | undefined;
}

/** Centrifugo's client error codes. */
export const ERRORS = {
  internal: { code: 100, message: 'internal server error', temporary: true },
  unauthorized: { code: 101, message: 'unauthorized' },
  unknownChannel: { code: 102, message: 'unknown channel' },
  permissionDenied: { code: 103, message: 'permission denied' },
  methodNotFound: { code: 104, message: 'method not found' },
  alreadySubscribed: { code: 105, message: 'already subscribed' },
  limitExceeded: { code: 106, message: 'limit exceeded' },
  badRequest: { code: 107, message: 'bad request' },
  notAvailable: { code: 108, message: 'not available' },
  tokenExpired: { code: 109, message: 'token expired' },
  expired: { code: 110, message: 'expired' },
  tooManyRequests: { code: 111, message: 'too many requests', temporary: true },
  unrecoverablePosition: { code: 112, message: 'unrecoverable position' },
} as const satisfies Record<string, ProtocolError>;

/** Every client error code, for metrics initialised at 0. */
export const ERROR_CODES: readonly number[] = Object.values(ERRORS).map((e) => e.code);

/** One of ERRORS with a message saying what exactly was wrong (Centrifugo's message, then ours). */
export function protocolError(kind: keyof typeof ERRORS, detail?: string): ProtocolError {
  const base: ProtocolError = ERRORS[kind];
  return { code: base.code, message: detail === undefined ? base.message : `${base.message}: ${detail}`, temporary: base.temporary };
}

/** A refusal a front-end handler throws, answered as its error reply. */
export class CentrifugoError extends Error {
  override readonly name = 'CentrifugoError';
  readonly error: ProtocolError;
  constructor(kind: keyof typeof ERRORS, detail?: string) {
    const error = protocolError(kind, detail);
    super(error.message);
    this.error = error;
  }
}

/**
 * The error reply for anything a command's handling threw: the core's typed errors by what they
 * mean, a CentrifugoError as it is, anything else (a bug) as an internal error. The only place
 * the core's errors become codes.
 */
export function toProtocolError(error: unknown): ProtocolError {
  if (error instanceof CentrifugoError) return error.error;
  if (!(error instanceof HubError)) return protocolError('internal');
  if (error instanceof InvalidUpdateError || error instanceof InvalidSelectorError || error instanceof InvalidSubscriptionError) return protocolError('badRequest', error.message);
  if (error instanceof InvalidTokenError) return protocolError(error.reason === 'missing-token' ? 'unauthorized' : 'permissionDenied', error.message);
  if (error instanceof NotAllowedError) return protocolError('permissionDenied', error.message);
  if (error instanceof DuplicateIdError) return protocolError('badRequest', error.message);
  if (error instanceof RateLimitedError) return protocolError('tooManyRequests', error.message);
  if (error instanceof OverCapacityError) return protocolError('limitExceeded', error.message);
  if (error instanceof DrainingError || error instanceof TransportUnavailableError) return protocolError('internal', error.message);
  return protocolError('internal', error.message);
}

/** Advice sent when the server ends a connection. */
export interface Disconnect {
  code: number;
  reason: string;
}

/** Whether a client reconnects after `code` (protocol v2: 3500–3999 and 4500–4999 are final). */
export function reconnects(code: number): boolean {
  return !((code >= 3500 && code < 4000) || (code >= 4500 && code < 5000));
}

/** Centrifugo's disconnect codes. */
export const DISCONNECTS = {
  connectionClosed: { code: 3000, reason: 'connection closed' },
  shutdown: { code: 3001, reason: 'shutdown' },
  serverError: { code: 3004, reason: 'internal server error' },
  expired: { code: 3005, reason: 'connection expired' },
  subscriptionExpired: { code: 3006, reason: 'subscription expired' },
  slow: { code: 3008, reason: 'slow' },
  writeError: { code: 3009, reason: 'write error' },
  insufficientState: { code: 3010, reason: 'insufficient state' },
  forceReconnect: { code: 3011, reason: 'force reconnect' },
  noPong: { code: 3012, reason: 'no pong' },
  tooManyRequests: { code: 3013, reason: 'too many requests' },
  invalidToken: { code: 3500, reason: 'invalid token' },
  badRequest: { code: 3501, reason: 'bad request' },
  stale: { code: 3502, reason: 'stale' },
  forceNoReconnect: { code: 3503, reason: 'force disconnect' },
  connectionLimit: { code: 3504, reason: 'connection limit' },
} as const satisfies Record<string, Disconnect>;

/** The advice a connection ending for `reason` is sent (`lifetime`: reconnect, the client resumes). */
export function disconnectOf(reason: EndReason): Disconnect {
  switch (reason) {
    case 'shutdown':
      return DISCONNECTS.shutdown;
    case 'slow-consumer':
      return DISCONNECTS.slow;
    case 'token-expired':
      return DISCONNECTS.expired;
    case 'no-pong':
      return DISCONNECTS.noPong;
    case 'bad-request':
      return DISCONNECTS.badRequest;
    case 'unauthorized':
      return DISCONNECTS.invalidToken;
    case 'too-many-requests':
      return DISCONNECTS.tooManyRequests;
    case 'disconnected':
      return DISCONNECTS.forceNoReconnect;
    case 'stale':
      return DISCONNECTS.stale;
    case 'error':
      return DISCONNECTS.serverError;
    case 'client-closed':
      return DISCONNECTS.connectionClosed;
    default:
      // lifetime, server-closed, unsubscribed: go and come back (and resume).
      return DISCONNECTS.forceReconnect;
  }
}
