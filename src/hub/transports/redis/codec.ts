/**
 * How an update is stored in a stream entry, and read back. Entry fields start with `id`, so an
 * entry trimmed by a script still names its update. `seq` comes from the entry ID, the server's
 * order, the same on every node.
 */
import type { Update } from '../../core/update.js';

/** A stream entry as XRANGE and XREAD return it. */
export type Entry = [id: string, fields: string[]];

/** `seq` of a stream entry ID `MS-N`: `MS × 2³² + N`, so it orders like the IDs. */
export function seqOfEntryId(entryId: string): bigint {
  const dash = entryId.indexOf('-');
  return (BigInt(entryId.slice(0, dash)) << 32n) + BigInt(entryId.slice(dash + 1));
}

/** The first entry ID at or after `ms` on the server's clock. */
export function entryIdAt(ms: number): string {
  return `${Math.max(ms, 0)}-0`;
}

/** Whether a reply is a list of entries. */
export function isEntries(value: unknown): value is Entry[] {
  return Array.isArray(value) && value.every((e) => Array.isArray(e) && typeof e[0] === 'string' && Array.isArray(e[1]));
}

/**
 * The update stored in an entry, or why the entry is not one (written by hand, or by another
 * version). Never throws: one bad entry must not stop the reader or a history read. Whether the
 * update's fields are valid is the hub's check; this only reads the entry's shape.
 */
export function decodeEntry([entryId, fields]: Entry): Update | { ref: string; reason: string } {
  const f = new Map<string, string>();
  for (let i = 0; i + 1 < fields.length; i += 2) f.set(fields[i] as string, fields[i + 1] as string);
  const id = f.get('id');
  const ref = id ?? `entry ${entryId}`;
  const rawTopics = f.get('topics');
  if (id === undefined || rawTopics === undefined) return { ref, reason: `the stream entry ${entryId} has no ${id === undefined ? '"id"' : '"topics"'} field` };
  let topics: unknown;
  try {
    topics = JSON.parse(rawTopics);
  } catch {
    return { ref, reason: `the "topics" field of stream entry ${entryId} is not JSON` };
  }
  if (!Array.isArray(topics)) return { ref, reason: `the "topics" field of stream entry ${entryId} is not a JSON array` };
  const type = f.get('type');
  const retry = f.get('retry');
  return {
    id,
    topics: topics as string[],
    data: f.get('data') ?? '',
    private: f.get('private') === '1',
    type,
    retry: retry === undefined ? undefined : /^\d{1,15}$/.test(retry) ? Number(retry) : Number.NaN,
    seq: seqOfEntryId(entryId),
    publishedAt: Number(f.get('at') ?? 0),
  };
}

/** Whether `decodeEntry` read an update. */
export function isUpdate(decoded: Update | { ref: string; reason: string }): decoded is Update {
  return 'topics' in decoded;
}

/** The fields of the entry that stores `update`. */
export function fieldsOf(update: Update, publishedAt: number): string[] {
  const fields = ['id', update.id, 'topics', JSON.stringify(update.topics), 'data', update.data, 'private', update.private ? '1' : '0', 'at', String(publishedAt)];
  if (update.type !== undefined) fields.push('type', update.type);
  if (update.retry !== undefined) fields.push('retry', String(update.retry));
  return fields;
}

