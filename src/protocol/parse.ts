/**
 * The incremental SSE parser, after WHATWG HTML §9.2.6 "Interpreting an event stream".
 *
 * Pure: text or bytes in, callbacks out, no I/O. Chunks may split the stream anywhere, including
 * inside a UTF-8 sequence or between the CR and LF of a CRLF. Used by the client and the doctor.
 */

/** A dispatched event, as the client hands it to the application. */
export interface ParsedEvent {
  /** Event type: the last `event:` field, or `message` when there was none. */
  type: string;
  /** The `data:` lines joined with LF. */
  data: string;
  /** The last event ID at the time of dispatch (it persists across events until an `id:` changes it). */
  lastEventId: string;
}

/** What the parser reports. Every callback is optional. */
export interface ParserCallbacks {
  /**
   * A complete event (a blank line ended it and it carried at least one `data:` line).
   * `hasId` tells whether the event itself carried an `id:` field (its `lastEventId` may be inherited).
   */
  onEvent?(event: ParsedEvent, hasId: boolean): void;
  /** A valid `retry:` field: the new reconnection time in milliseconds. */
  onRetry?(ms: number): void;
  /** A comment line, without its leading colon. */
  onComment?(text: string): void;
  /** Any field line, after the one leading space was removed (for tools that inspect streams). */
  onField?(name: string, value: string): void;
}

const LF = 10;
const CR = 13;
const DIGITS = /^[0-9]+$/;

/** Incremental parser for one `text/event-stream` after another (call `reset()` between connections). */
export class EventStreamParser {
  #callbacks: ParserCallbacks;
  #decoder = new TextDecoder('utf-8', { ignoreBOM: true });
  #pending = '';
  #atStart = true;
  #skipLF = false;
  #data = '';
  #hasData = false;
  #type = '';
  #idInBlock = false;
  #idBuffer: string;
  #lastEventId: string;

  /** `lastEventId` seeds the ID buffer, as a reconnecting client carries its last ID over. */
  constructor(callbacks: ParserCallbacks, options: { lastEventId?: string } = {}) {
    this.#callbacks = callbacks;
    this.#idBuffer = options.lastEventId ?? '';
    this.#lastEventId = this.#idBuffer;
  }

  /** The last event ID as of the last blank line (what a client sends as `Last-Event-ID`). */
  get lastEventId(): string {
    return this.#lastEventId;
  }

  /** Feeds a chunk of the stream: bytes (decoded as UTF-8, split sequences included) or already decoded text. */
  feed(chunk: Uint8Array | string): void {
    const text = typeof chunk === 'string' ? chunk : this.#decoder.decode(chunk, { stream: true });
    if (text.length > 0) this.#process(text);
  }

  /**
   * The stream ended. Whatever was not closed by a blank line is discarded: an event cut off by a
   * dropped connection is never dispatched. The parser is then ready for the next connection.
   */
  end(): void {
    const rest = this.#decoder.decode();
    if (rest.length > 0) this.#process(rest);
    this.reset();
  }

  /** Discards any partial line and event and starts a new stream (a new leading BOM is stripped); the last event ID is kept. */
  reset(): void {
    this.#decoder = new TextDecoder('utf-8', { ignoreBOM: true });
    this.#pending = '';
    this.#atStart = true;
    this.#skipLF = false;
    this.#data = '';
    this.#hasData = false;
    this.#type = '';
    this.#idInBlock = false;
    this.#idBuffer = this.#lastEventId;
  }

  #process(chunk: string): void {
    let text = chunk;
    if (this.#atStart) {
      this.#atStart = false;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    }
    let pos = 0;
    if (this.#skipLF) {
      this.#skipLF = false;
      if (text.charCodeAt(0) === LF) pos = 1;
    }
    const buf = this.#pending === '' ? text : this.#pending + text;
    if (this.#pending !== '') pos = 0;
    const len = buf.length;
    let cr = buf.indexOf('\r', pos);
    let lf = buf.indexOf('\n', pos);
    while (pos < len) {
      if (cr !== -1 && cr < pos) cr = buf.indexOf('\r', pos);
      if (lf !== -1 && lf < pos) lf = buf.indexOf('\n', pos);
      const end = cr === -1 ? lf : lf === -1 ? cr : Math.min(cr, lf);
      if (end === -1) break;
      this.#line(buf.slice(pos, end));
      if (buf.charCodeAt(end) === CR) {
        if (end + 1 === len) {
          this.#skipLF = true;
          pos = len;
        } else {
          pos = buf.charCodeAt(end + 1) === LF ? end + 2 : end + 1;
        }
      } else {
        pos = end + 1;
      }
    }
    this.#pending = pos >= len ? '' : buf.slice(pos);
  }

  #line(line: string): void {
    if (line === '') {
      this.#dispatch();
      return;
    }
    const colon = line.indexOf(':');
    if (colon === 0) {
      this.#callbacks.onComment?.(line.slice(1));
      return;
    }
    let name: string;
    let value: string;
    if (colon === -1) {
      name = line;
      value = '';
    } else {
      name = line.slice(0, colon);
      value = line.charCodeAt(colon + 1) === 0x20 ? line.slice(colon + 2) : line.slice(colon + 1);
    }
    this.#callbacks.onField?.(name, value);
    switch (name) {
      case 'data':
        this.#data = this.#hasData ? `${this.#data}\n${value}` : value;
        this.#hasData = true;
        break;
      case 'event':
        this.#type = value;
        break;
      case 'id':
        if (!value.includes('\0')) {
          this.#idBuffer = value;
          this.#idInBlock = true;
        }
        break;
      case 'retry':
        if (DIGITS.test(value)) this.#callbacks.onRetry?.(Number.parseInt(value, 10));
        break;
      default:
        // Unknown fields are ignored, as the standard requires.
        break;
    }
  }

  #dispatch(): void {
    this.#lastEventId = this.#idBuffer;
    const hasId = this.#idInBlock;
    this.#idInBlock = false;
    if (!this.#hasData) {
      this.#type = '';
      return;
    }
    const event: ParsedEvent = { type: this.#type === '' ? 'message' : this.#type, data: this.#data, lastEventId: this.#lastEventId };
    this.#data = '';
    this.#hasData = false;
    this.#type = '';
    this.#callbacks.onEvent?.(event, hasId);
  }
}

/** Parses a complete stream held in memory; returns the events it dispatches. */
export function parseEventStream(input: Uint8Array | string, options: { lastEventId?: string } = {}): ParsedEvent[] {
  const events: ParsedEvent[] = [];
  const parser = new EventStreamParser({ onEvent: (e) => events.push(e) }, options);
  parser.feed(input);
  parser.end();
  return events;
}
