/** `ssehub/protocol`: the SSE wire format, pure (no I/O, no Node built-ins), shared by server, client and doctor. */
export {
  type EventFields,
  InvalidEventError,
  assertValidEventType,
  assertValidId,
  assertValidRetry,
  encodeComment,
  encodeEvent,
  encodeRetry,
} from './encode.js';
export { EventStreamParser, type ParsedEvent, type ParserCallbacks, parseEventStream } from './parse.js';
