/**
 * The Lua scripts of the Redis transport: each one runs atomically on the server, so the
 * duplicate check, the XADD, the ID index and trimming can never be seen half done (two nodes
 * publishing one ID at once get exactly one success). How they work: see docs/scaling.md.
 */
import { createHash } from 'node:crypto';

/** The error a publish of a known ID ends with. */
export const DUPLICATE = 'SSEHUB_DUPLICATE';

/** Helpers shared by the scripts. Entry fields start with `id`, so a dropped entry names its update. */
const LUA_COMMON = `
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function entry_ms(entry_id)
  return tonumber(string.sub(entry_id, 1, string.find(entry_id, '-', 1, true) - 1))
end
local function forget(ids, entry)
  local fields = entry[2]
  if fields[1] == 'id' and redis.call('HGET', ids, fields[2]) == entry[1] then redis.call('HDEL', ids, fields[2]) end
end
-- Drops entries older than min_ms, at most 1000 per call (the next call goes on).
local function trim_age(stream, ids, min_ms)
  local old = redis.call('XRANGE', stream, '-', '(' .. string.format('%.0f', min_ms) .. '-0', 'COUNT', 1000)
  if #old == 0 then return 0 end
  for i = 1, #old do forget(ids, old[i]) end
  local last = old[#old][1]
  local dash = string.find(last, '-', 1, true)
  redis.call('XTRIM', stream, 'MINID', string.sub(last, 1, dash - 1) .. '-' .. string.format('%.0f', tonumber(string.sub(last, dash + 1)) + 1))
  return #old
end
`;

/** KEYS: stream, ids. ARGV: update ID, maxlen, maxage ms, live window, then the entry's field/value pairs. Returns the entry ID. */
const PUBLISH_LUA = `${LUA_COMMON}
local stream, ids, id = KEYS[1], KEYS[2], ARGV[1]
local size, ttl = tonumber(ARGV[2]), tonumber(ARGV[3])
local min_ms = 0
if ttl > 0 then
  min_ms = now_ms() - ttl
  trim_age(stream, ids, min_ms)
end
if size == 0 then
  return redis.call('XADD', stream, 'MAXLEN', '~', ARGV[4], '*', unpack(ARGV, 5))
end
local known = redis.call('HGET', ids, id)
if known and entry_ms(known) >= min_ms and #redis.call('XRANGE', stream, known, known) > 0 then
  return redis.error_reply('${DUPLICATE} an update with this id is already in history')
end
local entry = redis.call('XADD', stream, '*', unpack(ARGV, 5))
redis.call('HSET', ids, id, entry)
local excess = redis.call('XLEN', stream) - size
if excess > 0 then
  local old = redis.call('XRANGE', stream, '-', '+', 'COUNT', excess)
  for i = 1, #old do forget(ids, old[i]) end
  redis.call('XTRIM', stream, 'MAXLEN', size)
end
return entry
`;

/** KEYS: stream, ids. ARGV: maxage ms. Drops expired entries; returns how many. */
const TRIM_LUA = `${LUA_COMMON}
return trim_age(KEYS[1], KEYS[2], now_ms() - tonumber(ARGV[1]))
`;

/**
 * KEYS: stream, ids. ARGV: an update ID or ''. One consistent snapshot for a history read:
 * the newest entry ID and its update ID, the entry ID of the given update if it is still in the
 * stream, and the server's TIME (seconds, microseconds).
 */
const LOCATE_LUA = `
local newest = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local head, head_update = '', ''
if #newest > 0 then
  head = newest[1][1]
  if newest[1][2][1] == 'id' then head_update = newest[1][2][2] end
end
local at = ''
if ARGV[1] ~= '' then
  local e = redis.call('HGET', KEYS[2], ARGV[1])
  if e and #redis.call('XRANGE', KEYS[1], e, e) > 0 then at = e end
end
local t = redis.call('TIME')
return {head, head_update, at, t[1], t[2]}
`;

/** A script and its SHA1, for EVALSHA. */
export interface Script {
  lua: string;
  sha: string;
}

/** A script with its SHA1. */
export function script(lua: string): Script {
  return { lua, sha: createHash('sha1').update(lua).digest('hex') };
}

export const PUBLISH = script(PUBLISH_LUA);
export const TRIM = script(TRIM_LUA);
export const LOCATE = script(LOCATE_LUA);
