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

/**
 * Event type of the extension event an ssehub hub sends first when a client resumes from an ID
 * that history no longer (or never) held: events were missed and the app must resynchronise.
 */
export const RESYNC_EVENT = 'ssehub-resync';
