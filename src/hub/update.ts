/** An Update: what a publisher sends, stored in history and dispatched to subscribers. */
import { randomBytes } from 'node:crypto';
import { encodeEvent } from '../protocol/index.js';

/** One update. `topics[0]` is canonical, the rest are alternates. */
export interface Update {
  id: string;
  topics: string[];
  data: string;
  private: boolean;
  type?: string | undefined;
  retry?: number | undefined;
  /** Position in the transport's history, increasing in dispatch order; set by the transport. */
  seq?: bigint;
  /** When the hub accepted it (ms since the epoch), for delivery latency. */
  publishedAt?: number;
}

const encoded = new WeakMap<Update, Buffer>();

/** The update's SSE event, encoded once per update and shared by every subscriber. */
export function eventBytes(update: Update): Buffer {
  let bytes = encoded.get(update);
  if (bytes === undefined) {
    bytes = Buffer.from(encodeEvent({ event: update.type, retry: update.retry, id: update.id, data: update.data }));
    encoded.set(update, bytes);
  }
  return bytes;
}

/** A new update ID: `urn:uuid:` and a UUIDv7 (time-ordered, so IDs sort roughly by publication). */
export function newUpdateId(now = Date.now()): string {
  const b = randomBytes(16);
  b.writeUIntBE(now, 0, 6);
  b[6] = ((b[6] as number) & 0x0f) | 0x70;
  b[8] = ((b[8] as number) & 0x3f) | 0x80;
  const h = b.toString('hex');
  return `urn:uuid:${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
