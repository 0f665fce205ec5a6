/**
 * One data model for both protocols (docs/websocket.md, "One data model"):
 * - an update becomes a publication of each of its topics: its `data` as it is when it is valid
 *   JSON, else as a JSON string; its position as `offset`; its ID (and event type, if any) in
 *   `tags` — `{"id": …, "type": …}` — so that a client can switch to SSE and resume with
 *   `Last-Event-ID`;
 * - a publication from a Centrifugo client or backend becomes an update on the channel (the
 *   topic) whose `data` is the publication's JSON text.
 *
 * Encoding once per update per wire format: a publication's JSON is made once per update (its
 * channel aside), and its push once per channel and framing, by an encoder the fan-out shares
 * between every subscriber of that channel on that framing.
 */
import type { Encoder } from '../core/encoder.js';
import type { Update } from '../core/update.js';
import { jsonValueOf, pushJson } from './codec.js';
import type { Positions } from './positions.js';

/** How a client transport frames lines: one per line (WebSocket, HTTP streaming), or one SSE event each. */
export type Framing = 'lines' | 'sse';

const published = new WeakMap<Update, string>();

/** The publication of an update, as JSON (without a channel: pushes name it). */
export function publicationJson(update: Update, positions: Positions): string {
  let json = published.get(update);
  if (json === undefined) {
    const tags = update.type === undefined ? `{"id":${JSON.stringify(update.id)}}` : `{"id":${JSON.stringify(update.id)},"type":${JSON.stringify(update.type)}}`;
    const offset = positions.offsetOf(update.seq);
    json = `{"data":${jsonValueOf(update.data)}${offset > 0 ? `,"offset":${offset}` : ''},"tags":${tags}}`;
    published.set(update, json);
  }
  return json;
}

/** Lines (replies, pushes) as the bytes of one write in `framing`. */
export function framed(lines: readonly string[], framing: Framing): Buffer {
  if (framing === 'sse') return Buffer.from(lines.map((line) => `data: ${line}\n\n`).join(''));
  return Buffer.from(`${lines.join('\n')}\n`);
}

/** The publication pushes of one channel in one framing (see the file comment). */
class ChannelEncoder implements Encoder {
  readonly #prefix: string;
  readonly #framing: Framing;
  readonly #positions: Positions;
  readonly #cache = new WeakMap<Update, Buffer>();

  constructor(channel: string, framing: Framing, positions: Positions) {
    // `{"push":{"channel":"…","pub":` — what the push of this channel starts with.
    this.#prefix = pushJson(channel, 'pub', { x: 0 }).slice(0, -'{"x":0}}}'.length);
    this.#framing = framing;
    this.#positions = positions;
  }

  encode(update: Update): Buffer {
    let bytes = this.#cache.get(update);
    if (bytes === undefined) {
      const line = `${this.#prefix}${publicationJson(update, this.#positions)}}}`;
      bytes = Buffer.from(this.#framing === 'sse' ? `data: ${line}\n\n` : `${line}\n`);
      this.#cache.set(update, bytes);
    }
    return bytes;
  }
}

/** The encoders of the channels subscribed on this node, shared by their subscribers, forgotten with the last. */
export class Encoders {
  readonly #positions: Positions;
  readonly #byKey = new Map<string, { encoder: ChannelEncoder; users: number }>();

  constructor(positions: Positions) {
    this.#positions = positions;
  }

  /** The encoder of `channel` in `framing`, for one more subscriber (give it back with `release`). */
  acquire(channel: string, framing: Framing): Encoder {
    const key = `${framing}\n${channel}`;
    let entry = this.#byKey.get(key);
    if (entry === undefined) this.#byKey.set(key, (entry = { encoder: new ChannelEncoder(channel, framing, this.#positions), users: 0 }));
    entry.users++;
    return entry.encoder;
  }

  release(channel: string, framing: Framing): void {
    const key = `${framing}\n${channel}`;
    const entry = this.#byKey.get(key);
    if (entry === undefined) return;
    if (--entry.users <= 0) this.#byKey.delete(key);
  }

  /** Channels with an encoder now (for tests). */
  get size(): number {
    return this.#byKey.size;
  }
}

/** The `data` of the update a publication becomes: its JSON text. */
export function dataOfPublication(data: unknown): string {
  return JSON.stringify(data) ?? 'null';
}
