/** Encode once, write the same bytes to every stream. */
import { type EventFields, encodeEvent } from '../protocol/index.js';
import type { Stream } from './stream.js';

/** An event as fields, as encoded text, or as encoded bytes. */
export type Broadcastable = EventFields | string | Uint8Array;

/** Turns an event into the bytes every stream is sent. */
export function toEventBytes(event: Broadcastable): Uint8Array {
  if (event instanceof Uint8Array) return event;
  return Buffer.from(typeof event === 'string' ? event : encodeEvent(event));
}

/** Sends one event to every stream, encoding it once. Returns how many streams accepted it. */
export function broadcast(streams: Iterable<Stream>, event: Broadcastable): number {
  const bytes = toEventBytes(event);
  let accepted = 0;
  for (const stream of streams) if (stream.write(bytes)) accepted++;
  return accepted;
}
