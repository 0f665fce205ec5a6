/**
 * An Encoder: how a subscriber's wire format turns updates into bytes. The core's fan-out writes
 * what an encoder makes: each update is encoded once per encoder (the encoder caches it), and a
 * fan-out pass joins its batch once per encoder (`Batch.bytes`), so every subscriber that shares
 * an encoder gets the very same buffer. SSE (`SSE_ENCODER`, the Mercure front-end's) is the
 * default; the Centrifugo front-end has one per channel and client framing, since its
 * publication pushes name their channel.
 */
import { type Update, eventBytes } from './update.js';

/** A wire format for updates. */
export interface Encoder {
  /** The update's bytes in this format; the encoder caches them per update. */
  encode(update: Update): Buffer;
  /** Several updates' bytes as one buffer, in order; without it, their encodings concatenated. */
  join?(updates: readonly Update[]): Buffer;
}

/** SSE events (`eventBytes`): the default encoder, and the one the fan-out's fast path knows. */
export const SSE_ENCODER: Encoder = { encode: eventBytes };

/** `updates` encoded by `encoder` as one buffer. */
export function joinEncoded(encoder: Encoder, updates: readonly Update[]): Buffer {
  if (encoder.join !== undefined) return encoder.join(updates);
  return updates.length === 1 ? encoder.encode(updates[0] as Update) : Buffer.concat(updates.map((u) => encoder.encode(u)));
}
