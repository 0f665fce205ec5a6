/**
 * What the core refuses, as typed errors. The core never knows which protocol asked: each
 * front-end maps these to its wire (an HTTP status and message for Mercure, a protocol error code
 * for the next ones). `reason` is a short label for metrics and logs; the message says what was
 * wrong in words a user can act on.
 */

/** Base of the core's refusals. */
export abstract class HubError extends Error {
  /** A short label for metrics and logs (`invalid-id`, `over-capacity`, …). */
  readonly reason: string;
  constructor(reason: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.reason = reason;
  }
}

/** An update that cannot be stored or sent: `field` names the part that is wrong. */
export class InvalidUpdateError extends HubError {
  override readonly name = 'InvalidUpdateError';
  readonly field: string;
  constructor(field: string, reason: string, message: string) {
    super(reason, message);
    this.field = field;
  }
}

/** A topic selector that cannot be compiled (a malformed URI template). */
export class InvalidSelectorError extends HubError {
  override readonly name = 'InvalidSelectorError';
  readonly selector: string;
  constructor(selector: string, message: string) {
    super('invalid-selector', message);
    this.selector = selector;
  }
}

/** A subscription that cannot be served as asked (no topic, too many). */
export class InvalidSubscriptionError extends HubError {
  override readonly name = 'InvalidSubscriptionError';
}

/** A token that cannot be trusted or read: `invalid-token` (signature, expiry, form) or `invalid-claim` (a claim of the wrong shape). */
export class InvalidTokenError extends HubError {
  override readonly name = 'InvalidTokenError';
  declare readonly reason: 'missing-token' | 'invalid-token' | 'invalid-claim';
  constructor(reason: 'missing-token' | 'invalid-token' | 'invalid-claim', message: string) {
    super(reason, message);
  }
}

/** A valid token that does not allow what was asked (publishing to a topic, reading the dashboard). */
export class NotAllowedError extends HubError {
  override readonly name = 'NotAllowedError';
}

/** An update ID that is already in history: a second one would make resume ambiguous. */
export class DuplicateIdError extends HubError {
  override readonly name = 'DuplicateIdError';
  constructor(message: string) {
    super('duplicate-id', message);
  }
}

/** The transport could not store or read an update. */
export class TransportUnavailableError extends HubError {
  override readonly name = 'TransportUnavailableError';
  constructor(message: string, options?: ErrorOptions) {
    super('transport-unavailable', message, options);
  }
}

/** The hub is shutting down and takes no new connections. */
export class DrainingError extends HubError {
  override readonly name = 'DrainingError';
  constructor() {
    super('draining', 'the hub is shutting down; reconnect (to another node)');
  }
}

/** A connection over a limit: this process's (`node`) or one client address's (`address`). */
export class OverCapacityError extends HubError {
  override readonly name = 'OverCapacityError';
  readonly scope: 'node' | 'address';
  /** Seconds a client should wait before trying again. */
  readonly retryAfter: number;
  constructor(scope: 'node' | 'address', message: string, retryAfter: number) {
    super(scope === 'node' ? 'over-capacity' : 'too-many-connections', message);
    this.scope = scope;
    this.retryAfter = retryAfter;
  }
}

/** Too many publishes for one token subject or address. */
export class RateLimitedError extends HubError {
  override readonly name = 'RateLimitedError';
  /** Seconds until one more would be allowed. */
  readonly retryAfter: number;
  constructor(retryAfter: number) {
    super('rate-limited', `publish rate limit exceeded (--publish-rate); retry in ${retryAfter}s`);
    this.retryAfter = retryAfter;
  }
}
