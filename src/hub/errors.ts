/** Errors the hub answers with: an HTTP status and a message a user can act on. */

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

/** A setting with a bad value, found at start-up; the message names the setting. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  /** The setting, as its command-line flag (e.g. `--heartbeat`). */
  readonly setting: string;
  constructor(setting: string, message: string) {
    super(`${setting}: ${message}`);
    this.setting = setting;
  }
}

/** The transport could not store or read an update (answered 503). */
export class TransportUnavailableError extends Error {
  override readonly name = 'TransportUnavailableError';
}

/** An update ID that is already in history (answered 409: a second one would make resume ambiguous). */
export class DuplicateIdError extends Error {
  override readonly name = 'DuplicateIdError';
}

/**
 * An update that cannot be stored or sent: `field` names the part that is wrong, `reason` is a
 * short label for metrics and logs (`invalid-id`, `too-many-topics`, …), the message says why.
 */
export class InvalidUpdateError extends Error {
  override readonly name = 'InvalidUpdateError';
  readonly field: string;
  readonly reason: string;
  constructor(field: string, reason: string, message: string) {
    super(message);
    this.field = field;
    this.reason = reason;
  }
}
