/**
 * An Update: what a publisher sends, stored in history and dispatched to subscribers.
 *
 * Every update is checked here, where it enters the hub, whoever hands it over (the Mercure
 * front-end, an embedder's `hub.publish`, a future protocol): an `id` or `type` holding CR, LF or
 * NUL would end its SSE field early and inject events into every subscriber's stream, so the
 * encoder refuses it, and a refusal during fan-out, after the update was stored, would take the
 * process down. The same check runs on updates read back from a transport, which may hold entries
 * written by another version or by hand.
 */
import { randomBytes } from 'node:crypto';
import { encodeEvent } from '../../protocol/index.js';
import { InvalidUpdateError } from './errors.js';

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

/** What a caller of `Hub.publish` gives: an update whose `id` (a fresh `urn:uuid:`), `data` ('') and `private` (false) may be left out. */
export interface UpdateInput {
  id?: string | undefined;
  topics: string[];
  data?: string | undefined;
  private?: boolean | undefined;
  type?: string | undefined;
  retry?: number | undefined;
}

/** The most topics one update or one subscription may name. */
export const MAX_TOPICS = 1000;

// eslint-disable-next-line no-control-regex
const CONTROL = /[\x00-\x08\x0a-\x1f\x7f]/;
const LINE_BREAK_OR_NUL = /[\r\n\0]/;

/**
 * Why `update` cannot be stored or sent, as an InvalidUpdateError, or `undefined` when it can.
 * Pure: no I/O, no clock.
 */
export function updateProblem(update: unknown): InvalidUpdateError | undefined {
  if (typeof update !== 'object' || update === null || Array.isArray(update)) return new InvalidUpdateError('update', 'invalid-update', 'an update must be an object with "topics" and "data"');
  const u = update as Record<string, unknown>;
  const topics = u.topics;
  if (!Array.isArray(topics)) return new InvalidUpdateError('topics', 'missing-topic', 'the "topic" field is required');
  if (topics.length === 0) return new InvalidUpdateError('topics', 'missing-topic', 'the "topic" field is required');
  if (topics.length > MAX_TOPICS) return new InvalidUpdateError('topics', 'too-many-topics', `an update may have at most ${MAX_TOPICS} topics, got ${topics.length}`);
  if (!topics.every((t) => typeof t === 'string')) return new InvalidUpdateError('topics', 'invalid-topic', 'every topic must be a string');
  if (topics.some((t) => t === '')) return new InvalidUpdateError('topics', 'empty-topic', 'a "topic" field is empty');
  const id = u.id;
  if (typeof id !== 'string') return new InvalidUpdateError('id', 'invalid-id', 'the "id" field must be a string');
  if (LINE_BREAK_OR_NUL.test(id)) return new InvalidUpdateError('id', 'invalid-id', 'the "id" field must not contain CR, LF or NUL');
  if (CONTROL.test(id)) return new InvalidUpdateError('id', 'invalid-id', 'the "id" field must not contain control characters: clients send it back in the Last-Event-ID header, where they are not allowed');
  if (id === '' || id === 'earliest') return new InvalidUpdateError('id', 'invalid-id', `the "id" field must not be ${id === '' ? 'empty' : '"earliest" (reserved for resuming from the start)'}`);
  if (typeof u.data !== 'string') return new InvalidUpdateError('data', 'invalid-data', 'the "data" field must be a string');
  if (typeof u.private !== 'boolean') return new InvalidUpdateError('private', 'invalid-private', 'the "private" field must be true or false');
  if (u.type !== undefined) {
    if (typeof u.type !== 'string') return new InvalidUpdateError('type', 'invalid-type', 'the "type" field must be a string');
    if (LINE_BREAK_OR_NUL.test(u.type)) return new InvalidUpdateError('type', 'invalid-type', 'the "type" field must not contain CR, LF or NUL');
  }
  if (u.retry !== undefined && (typeof u.retry !== 'number' || !Number.isSafeInteger(u.retry) || u.retry < 0)) {
    return new InvalidUpdateError('retry', 'invalid-retry', `the "retry" field must be a non-negative integer of milliseconds, got "${String(u.retry)}"`);
  }
  return undefined;
}

/** A complete, checked update from what a caller gave; throws InvalidUpdateError naming the bad field. */
export function toUpdate(input: UpdateInput): Update {
  const filled = typeof input === 'object' && input !== null && !Array.isArray(input) ? { ...input, id: input.id ?? newUpdateId(), data: input.data ?? '', private: input.private ?? false } : input;
  const problem = updateProblem(filled);
  if (problem !== undefined) throw problem;
  const u = filled as UpdateInput & { id: string; data: string; private: boolean };
  // A copy with only the known fields: the caller's object is not changed, and nothing else is stored.
  const update: Update = { id: u.id, topics: [...u.topics], data: u.data, private: u.private };
  if (u.type !== undefined) update.type = u.type;
  if (u.retry !== undefined) update.retry = u.retry;
  return update;
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
