/**
 * Positions on Redis (the Centrifugo front-end's offsets and epochs, see docs/scaling.md):
 *
 * - `seq` is `MS × 2³² + N` (the entry ID `MS-N`), too large for a JavaScript number. An offset is
 *   its projection `(MS − T0) × 4096 + N + 1`, where T0 starts the epoch: a safe integer for 2⁴¹ ms
 *   (69 years) after T0, the same on every node, increasing with `seq`, and reversible (offset →
 *   entry ID) for history reads; 0 is the start of the epoch. It assumes fewer than 4,096 entries
 *   in one millisecond, which a Redis running the publish script does not reach.
 * - The epoch is a key beside the stream, `{PREFIX}:epoch`, made when missing (SET NX, in a
 *   script, so the first node wins): T0, a dash and a random part. A Redis that lost its data has
 *   lost the key too, so the next node to look makes a new epoch. T0 is never later than the
 *   oldest entry the stream still has, so no offset is negative.
 * - History after a position is complete when the entry at that position is still in the stream
 *   (the transport trims only the oldest entries, so everything after it is there too), or, for
 *   position 0, when the stream has never dropped an entry (entries-added equals its length).
 */
import { script } from './scripts.js';

/** Entries one millisecond may hold in the projection. */
const PER_MS = 4096n;

/**
 * KEYS: epoch, stream. ARGV: a random part. The epoch, made when missing: `T0-random`, T0 the
 * server's time or the oldest entry's, whichever is earlier.
 */
export const EPOCH = script(`
local epoch = redis.call('GET', KEYS[1])
if epoch then return epoch end
local t = redis.call('TIME')
local t0 = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local oldest = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
if #oldest > 0 then
  local id = oldest[1][1]
  local ms = tonumber(string.sub(id, 1, string.find(id, '-', 1, true) - 1))
  if ms < t0 then t0 = ms end
end
redis.call('SET', KEYS[1], string.format('%.0f', t0) .. '-' .. ARGV[1], 'NX')
return redis.call('GET', KEYS[1])
`);

/**
 * KEYS: stream. ARGV: an entry ID or ''. One snapshot of the stream's positions: the last entry
 * ID ever generated ('' when the stream does not exist), entries ever added, its length, whether
 * the given entry is still there (1 or 0), its first entry ID, and the server's TIME.
 */
export const POSITION = script(`
local t = redis.call('TIME')
if redis.call('EXISTS', KEYS[1]) == 0 then return {'', 0, 0, 0, '', t[1], t[2]} end
local info = redis.call('XINFO', 'STREAM', KEYS[1])
local last, added = '', 0
for i = 1, #info, 2 do
  if info[i] == 'last-generated-id' then last = info[i + 1] end
  if info[i] == 'entries-added' then added = info[i + 1] end
end
local at = 0
if ARGV[1] ~= '' and #redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1]) > 0 then at = 1 end
local first = ''
local oldest = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)
if #oldest > 0 then first = oldest[1][1] end
return {last, added, redis.call('XLEN', KEYS[1]), at, first, t[1], t[2]}
`);

/** The epoch's start (T0, ms) in an epoch `T0-random`. */
export function epochStart(epoch: string): number {
  return Number(epoch.slice(0, epoch.indexOf('-')));
}

/** The offset of `seq` in the epoch starting at `t0` (0 for seq 0, the epoch's start). */
export function offsetOfSeq(seq: bigint, t0: number): number {
  if (seq <= 0n) return 0;
  const ms = seq >> 32n;
  const n = seq & 0xffff_ffffn;
  const relative = ms - BigInt(t0);
  // Never below 1 (an entry older than the epoch cannot be: T0 is the oldest entry's time at most).
  if (relative < 0n) return 1;
  return Number(relative * PER_MS + (n < PER_MS ? n : PER_MS - 1n) + 1n);
}

/** The `seq` of an offset in the epoch starting at `t0`. */
export function seqOfOffset(offset: number, t0: number): bigint {
  if (!(offset > 0)) return 0n;
  const k = BigInt(Math.floor(offset)) - 1n;
  return ((BigInt(t0) + k / PER_MS) << 32n) + (k % PER_MS);
}

/** The entry ID of a `seq`. */
export function entryIdOfSeq(seq: bigint): string {
  return `${seq >> 32n}-${seq & 0xffff_ffffn}`;
}
