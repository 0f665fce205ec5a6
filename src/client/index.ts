/** `ssehub/client`: a drop-in EventSource for browsers and Node, with headers, backoff and loss-free resume. */
export {
  EventSource,
  EventSourceError,
  EventSourceErrorEvent,
  type EventSourceEventMap,
  type EventSourceInit,
  type EventSourceMessageEvent,
} from './event-source.js';
export { type ReconnectPolicy, type ResolvedPolicy, reconnectDelay, resolvePolicy } from './backoff.js';
export { type Discovery, type MatchOptions, type Matchers, type SubscribeUrlOptions, discoverFromHeaders, discoverHub, mercureMatchUrl, mercureQueryBody, mercureSubscribeUrl, parseLinkHeader } from './mercure.js';
export { RESYNC_EVENT } from '../protocol/index.js';
