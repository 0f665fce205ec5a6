/**
 * How an update is stored in a JetStream message (JSON), and on which subject: one per update
 * ID, `PREFIX.updates.<base64url(sha256(id))>`, which is what makes a duplicate ID detectable by
 * the server in the same step as the write.
 */
import { createHash } from 'node:crypto';
import type { Update } from '../../core/update.js';

/** What is stored as a message's payload. */
interface StoredUpdate {
  id: string;
  topics: string[];
  data: string;
  private: boolean;
  type?: string;
  retry?: number;
  publishedAt?: number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The message payload that stores `u`. */
export function encode(u: Update): Uint8Array {
  const stored: StoredUpdate = { id: u.id, topics: u.topics, data: u.data, private: u.private, type: u.type, retry: u.retry, publishedAt: u.publishedAt };
  return encoder.encode(JSON.stringify(stored));
}

/**
 * The update in a message, or why the payload is not one (written by another program or version).
 * Never throws. Whether the update's fields are valid is the hub's check; this reads the shape.
 */
export function decode(data: Uint8Array, seq: number): Update | { ref: string; reason: string } {
  let v: Partial<StoredUpdate> | null;
  try {
    v = JSON.parse(decoder.decode(data)) as Partial<StoredUpdate> | null;
  } catch {
    return { ref: `sequence ${seq}`, reason: `message ${seq} of the stream is not JSON` };
  }
  if (typeof v !== 'object' || v === null) return { ref: `sequence ${seq}`, reason: `message ${seq} of the stream is not a JSON object` };
  const ref = typeof v.id === 'string' ? v.id : `sequence ${seq}`;
  if (typeof v.id !== 'string' || !Array.isArray(v.topics) || typeof v.data !== 'string') return { ref, reason: `message ${seq} of the stream lacks "id", "topics" or "data"` };
  return { id: v.id, topics: v.topics, data: v.data, private: v.private === true, type: v.type ?? undefined, retry: v.retry ?? undefined, publishedAt: v.publishedAt, seq: BigInt(seq) };
}

/** Whether `decode` read an update. */
export function isUpdate(decoded: Update | { ref: string; reason: string }): decoded is Update {
  return 'topics' in decoded;
}

/** The subject token of an ID: fixed length and always a valid token, whatever the ID holds. */
export function idToken(id: string): string {
  return createHash('sha256').update(id).digest('base64url');
}

