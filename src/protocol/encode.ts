/**
 * The SSE encoder (WHATWG HTML §9.2.5, "Authoring notes" and the event stream grammar).
 *
 * An event is encoded once, as a string, and the caller turns it into bytes once and writes
 * those same bytes to every subscriber. `id` and `event` are validated rather than escaped: a
 * CR or LF in them would end the field early and let whoever controls the value inject fields
 * or whole events into every subscriber's stream (CWE-93); NUL in an `id` would make browsers
 * ignore it and break resume.
 */

/** One event as a server sends it. `data` may hold any string; line ends in it become separate `data:` lines. */
export interface EventFields {
  /** Event type; the client dispatches it under this name (default `message`). */
  event?: string | undefined;
  /** Event ID; the client sends it back as `Last-Event-ID` when it reconnects. */
  id?: string | undefined;
  /** Reconnection time in milliseconds, a non-negative integer. */
  retry?: number | undefined;
  /** Payload. Absent means no `data:` line, so the client updates its last ID but dispatches nothing. */
  data?: string | undefined;
}

/** Thrown when a field cannot be encoded safely; `field` names it, the message says why. */
export class InvalidEventError extends Error {
  override readonly name = 'InvalidEventError';
  /** The field that was refused: `id`, `event`, `retry` or `comment`. */
  readonly field: string;
  constructor(field: string, message: string) {
    super(message);
    this.field = field;
  }
}

const LINE_BREAK = /\r\n|\r|\n/;
const HAS_LINE_BREAK = /[\r\n]/;
const HAS_LINE_BREAK_OR_NUL = /[\r\n\0]/;

/** Throws InvalidEventError unless `value` is usable as an `id` (no CR, LF or NUL). */
export function assertValidId(value: string): void {
  if (HAS_LINE_BREAK_OR_NUL.test(value)) {
    throw new InvalidEventError('id', 'an event id must not contain CR, LF or NUL');
  }
}

/** Throws InvalidEventError unless `value` is usable as an event type (no CR, LF or NUL). */
export function assertValidEventType(value: string): void {
  if (HAS_LINE_BREAK_OR_NUL.test(value)) {
    throw new InvalidEventError('event', 'an event type must not contain CR, LF or NUL');
  }
}

/** Throws InvalidEventError unless `value` is a valid `retry` (a non-negative integer of milliseconds). */
export function assertValidRetry(value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new InvalidEventError('retry', `retry must be a non-negative integer of milliseconds, got ${String(value)}`);
  }
}

/** Encodes one event, terminated by the blank line that makes the client dispatch it. */
export function encodeEvent(fields: EventFields): string {
  let out = '';
  if (fields.event !== undefined) {
    assertValidEventType(fields.event);
    out += `event: ${fields.event}\n`;
  }
  if (fields.retry !== undefined) {
    assertValidRetry(fields.retry);
    out += `retry: ${fields.retry}\n`;
  }
  if (fields.id !== undefined) {
    assertValidId(fields.id);
    out += `id: ${fields.id}\n`;
  }
  if (fields.data !== undefined) out += encodeData(fields.data);
  return out + '\n';
}

/**
 * `data:` lines for a payload. The space after the colon is always written, so a payload that
 * itself starts with a space survives (the parser removes exactly one).
 */
function encodeData(data: string): string {
  if (!HAS_LINE_BREAK.test(data)) return `data: ${data}\n`;
  let out = '';
  for (const line of data.split(LINE_BREAK)) out += `data: ${line}\n`;
  return out;
}

/** Encodes a comment (ignored by clients; used for heartbeats and the opening line), one `:` line per text line. */
export function encodeComment(text = ''): string {
  if (text === '') return ':\n\n';
  let out = '';
  for (const line of text.split(LINE_BREAK)) out += line === '' ? ':\n' : `: ${line}\n`;
  return out + '\n';
}

/** Encodes a lone `retry:` hint. */
export function encodeRetry(ms: number): string {
  assertValidRetry(ms);
  return `retry: ${ms}\n\n`;
}
