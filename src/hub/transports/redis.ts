/**
 * `redis://[USER:PASSWORD@]HOST:PORT[/DB][?OPTIONS]` (`rediss://` for TLS): Redis Streams, so that
 * several hub nodes share one history and every node sees every update.
 *
 * Options (query string):
 * - `key=PREFIX` — prefix of the two keys used, `{PREFIX}:updates` (the stream) and `{PREFIX}:ids`
 *   (a hash from update ID to stream entry ID); default `ssehub`. The braces are a hash tag, so
 *   both keys live in one slot. Every node of one hub must use the same prefix and limits.
 * - `maxlen=N` — updates kept, instead of `--history-size` (0: no history, live delivery only).
 * - `maxage=DURATION` — how long an update is kept (`90s`, `7d`…), instead of `--history-ttl` (0: no limit).
 * - `timeout=DURATION` — how long a command may take before the publish answers 503 and the
 *   connection is treated as dead (default `1s`).
 *
 * How it works:
 * - Publishing runs one Lua script (atomic on the server, so two nodes publishing the same ID at
 *   once cannot both succeed): it drops entries past `maxage`, refuses an ID whose entry is still
 *   in the stream, XADDs the update, records ID → entry ID in the hash, and trims the stream to
 *   `maxlen` exactly, forgetting the IDs of the entries it drops. A trimmed ID is therefore unknown.
 * - `seq` is derived from the entry ID `MS-N` as `MS × 2³² + N`: the server's order, the same on
 *   every node. Ages are measured on the server's clock (entry IDs and TIME), not the hub's.
 * - A second connection reads the stream with a blocking XREAD from the last entry it delivered,
 *   so listeners get every entry once, in stream order, and resume where they were after a
 *   reconnect. `dispatch` resolves once this node's listeners have been given the update (or after
 *   `timeout` if the reader is behind), like the in-process transports.
 * - `history` reads the newest entry (its `head`) and the resume ID's entry in one script, then
 *   pages through XRANGE up to `head`; each page starts at the previous page's last entry and
 *   checks it is still there, so a trim that overtakes the read turns into `found: false` rather
 *   than a silent gap.
 * - Commands are never queued while disconnected: a publish fails at once with 503, `ready()` is
 *   false, and the client reconnects with a capped exponential backoff.
 */
import { createHash } from 'node:crypto';
import { Redis, type RedisOptions } from 'ioredis';
import { parseDuration } from '../config.js';
import { DuplicateIdError, TransportUnavailableError } from '../errors.js';
import type { Update } from '../update.js';
import { type HistoryLimits, type HistoryResult, type PoisonEntry, PoisonListeners, type Transport } from './transport.js';

/** Entries per XREAD and per XRANGE page. */
const PAGE = 1000;
/** How long one XREAD blocks; a dead reader connection is noticed within this plus the timeout. */
const BLOCK_MS = 5000;
/** Entries kept when history is off (`maxlen=0`): the stream still carries live updates between nodes. */
const LIVE_WINDOW = 1000;
/** Interval of the background age trim and health check. */
const MAINTENANCE_MS = 5000;
/** Longest pause between reconnection attempts. */
const MAX_BACKOFF_MS = 2000;
const DUPLICATE = 'SSEHUB_DUPLICATE';
const OPTIONS = new Set(['key', 'maxlen', 'maxage', 'timeout']);

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

interface Script {
  lua: string;
  sha: string;
}

function script(lua: string): Script {
  return { lua, sha: createHash('sha1').update(lua).digest('hex') };
}

const PUBLISH = script(PUBLISH_LUA);
const TRIM = script(TRIM_LUA);
const LOCATE = script(LOCATE_LUA);

type Entry = [id: string, fields: string[]];

/** `seq` of a stream entry ID `MS-N`: `MS × 2³² + N`, so it orders like the IDs. */
export function seqOfEntryId(entryId: string): bigint {
  const dash = entryId.indexOf('-');
  return (BigInt(entryId.slice(0, dash)) << 32n) + BigInt(entryId.slice(dash + 1));
}

/** The first entry ID at or after `ms` on the server's clock. */
function entryIdAt(ms: number): string {
  return `${Math.max(ms, 0)}-0`;
}

function isEntries(value: unknown): value is Entry[] {
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

function isUpdate(decoded: Update | { ref: string; reason: string }): decoded is Update {
  return 'topics' in decoded;
}

function fieldsOf(update: Update, publishedAt: number): string[] {
  const fields = ['id', update.id, 'topics', JSON.stringify(update.topics), 'data', update.data, 'private', update.private ? '1' : '0', 'at', String(publishedAt)];
  if (update.type !== undefined) fields.push('type', update.type);
  if (update.retry !== undefined) fields.push('retry', String(update.retry));
  return fields;
}

/** What a `redis://` URL configures. */
export interface RedisSettings {
  /** Connection options shared by both connections. */
  connection: RedisOptions;
  /** The URL without credentials, for messages. */
  label: string;
  /** Stream key and ID hash key. */
  stream: string;
  ids: string;
  /** Updates kept (0: none) and their maximum age in ms (0: no limit). */
  size: number;
  ttl: number;
  /** Command timeout in ms. */
  timeout: number;
}

/** Reads a `redis://` or `rediss://` URL and its options; throws with a message naming a bad part. */
export function parseRedisUrl(spec: string, limits: HistoryLimits): RedisSettings {
  let url: URL;
  try {
    url = new URL(spec);
  } catch {
    throw new Error(`"${spec}" is not a valid redis:// URL`);
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') throw new Error(`expected a redis:// or rediss:// URL, got "${url.protocol}"`);
  const label = `${url.protocol}//${url.host}${url.pathname === '/' ? '' : url.pathname}`;
  const path = url.pathname.replace(/^\//, '');
  if (path !== '' && !/^\d{1,5}$/.test(path)) throw new Error(`${label}: the path must be a database number, got "/${path}"`);
  for (const name of url.searchParams.keys()) {
    if (!OPTIONS.has(name)) throw new Error(`${label}: unknown option "${name}" (known: ${[...OPTIONS].join(', ')})`);
  }
  const q = url.searchParams;
  const key = q.get('key') ?? 'ssehub';
  if (key === '' || /[{}]/.test(key)) throw new Error(`${label}: option "key" must be non-empty and hold no braces, got "${key}"`);
  const option = (name: string, parse: (v: string) => number, fallback: number): number => {
    const raw = q.get(name);
    if (raw === null) return fallback;
    try {
      return parse(raw);
    } catch (error) {
      throw new Error(`${label}: option "${name}": ${(error as Error).message}`, { cause: error });
    }
  };
  const count = (v: string): number => {
    if (!/^\d+$/.test(v) || !Number.isSafeInteger(Number(v))) throw new Error(`expected a whole number, got "${v}"`);
    return Number(v);
  };
  const size = option('maxlen', count, limits.size);
  const ttl = option('maxage', parseDuration, limits.ttl);
  const timeout = option('timeout', parseDuration, 1000);
  if (timeout <= 0) throw new Error(`${label}: option "timeout" must be above 0`);
  const tls = url.protocol === 'rediss:';
  const host = url.hostname.replace(/^\[|\]$/g, '');
  return {
    connection: {
      host,
      port: url.port === '' ? 6379 : Number(url.port),
      db: path === '' ? 0 : Number(path),
      username: url.username === '' ? undefined : decodeURIComponent(url.username),
      password: url.password === '' ? undefined : decodeURIComponent(url.password),
      tls: tls ? { servername: host } : undefined,
      // RESP2 keeps XREAD's reply an array of [key, entries].
      protocol: 2,
      lazyConnect: true,
      // Fail fast instead of queueing: a publish must answer 503 now, not succeed minutes later.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      connectTimeout: Math.max(timeout, 1000),
      // How long close() lets a socket end cleanly before destroying it (the default 2 s keeps a
      // process alive that long after closing a transport whose server stopped answering).
      disconnectTimeout: 200,
      retryStrategy: (times: number) => Math.min(50 * 2 ** Math.min(times - 1, 10), MAX_BACKOFF_MS) + Math.floor(Math.random() * 100),
    },
    label,
    stream: `{${key}}:updates`,
    ids: `{${key}}:ids`,
    size,
    ttl,
    timeout,
  };
}

/** Redis Streams transport. */
export class RedisTransport implements Transport {
  #settings: RedisSettings;
  /** Commands: publish, history, trim. */
  #cmd: Redis;
  /** The blocking XREAD loop. */
  #reader: Redis;
  #listeners = new Set<(u: Update) => void>();
  #poison = new PoisonListeners();
  /** Entry ID of the last entry given to the listeners, and its seq. */
  #lastSeen = '0-0';
  #lastSeenSeq = 0n;
  /** Dispatches waiting for the reader to pass their entry. */
  #waiters: Waiter[] = [];
  #loop: Promise<void> = Promise.resolve();
  #timer: NodeJS.Timeout | undefined;
  #wakeReader: (() => void) | undefined;
  #lastError = '';
  /** The first error either connection reported, for the message of a failed start. */
  #firstError: Error | undefined;
  #closed = false;

  /** Connects to the server named by `url` (see the file comment for its options). */
  static async connect(url: string, limits: HistoryLimits): Promise<Transport> {
    const transport = new RedisTransport(parseRedisUrl(url, limits));
    try {
      await transport.#start();
    } catch (error) {
      await transport.close();
      // ioredis rejects with "Connection is closed." whatever happened; what did is in the first error event.
      const reason = transport.#firstError ?? (error as Error);
      throw new Error(`cannot connect to ${transport.#settings.label}: ${describeConnectError(reason, transport.#settings)}`, { cause: error });
    }
    return transport;
  }

  private constructor(settings: RedisSettings) {
    this.#settings = settings;
    const { connection, timeout } = settings;
    this.#cmd = new Redis({ ...connection, connectionName: 'ssehub', commandTimeout: timeout, socketTimeout: timeout * 2 });
    // No command timeout on the reader (XREAD blocks on purpose); a socket silent for longer than
    // one block plus the timeout is dead.
    this.#reader = new Redis({ ...connection, connectionName: 'ssehub-reader', socketTimeout: BLOCK_MS + timeout * 2 });
    for (const client of [this.#cmd, this.#reader]) {
      client.on('error', (error: Error) => {
        this.#firstError ??= error;
        this.#lastError = error.message;
      });
    }
  }

  async #start(): Promise<void> {
    await Promise.all([this.#cmd.connect(), this.#reader.connect()]);
    // Listeners start after the newest entry that exists now.
    const newest = await this.#cmd.call('XREVRANGE', this.#settings.stream, '+', '-', 'COUNT', 1);
    if (isEntries(newest) && newest[0] !== undefined) this.#advance(newest[0][0]);
    this.#loop = this.#readLoop();
    this.#timer = setInterval(() => void this.#maintain(), MAINTENANCE_MS);
    this.#timer.unref();
  }

  async dispatch(update: Update): Promise<void> {
    if (this.#closed) throw new TransportUnavailableError('the redis transport is closed');
    const { stream, ids, size, ttl } = this.#settings;
    let entryId: string;
    try {
      entryId = String(await this.#eval(PUBLISH, [stream, ids], [update.id, size, ttl, LIVE_WINDOW, ...fieldsOf(update, update.publishedAt ?? Date.now())]));
    } catch (error) {
      if ((error as Error).message.includes(DUPLICATE)) throw new DuplicateIdError(`an update with id "${update.id}" is already in history`);
      throw this.#unavailable(error);
    }
    update.seq = seqOfEntryId(entryId);
    await this.#delivered(update.seq);
  }

  subscribe(listener: (u: Update) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  onPoison(listener: (entry: PoisonEntry) => void): () => void {
    return this.#poison.add(listener);
  }

  /** The entry's update, or `undefined` (reported to the poison listeners) when it is not one. */
  #decode(entry: Entry): Update | undefined {
    const decoded = decodeEntry(entry);
    if (isUpdate(decoded)) return decoded;
    this.#poison.report(decoded.ref, decoded.reason);
    return undefined;
  }

  async history(lastEventId: string, filter: (u: Update) => boolean): Promise<HistoryResult> {
    if (this.#closed) throw new TransportUnavailableError('the redis transport is closed');
    try {
      return await this.#history(lastEventId, filter);
    } catch (error) {
      throw error instanceof TransportUnavailableError ? error : this.#unavailable(error);
    }
  }

  async lastId(): Promise<string | undefined> {
    if (this.#closed) throw new TransportUnavailableError('the redis transport is closed');
    let snapshot: Snapshot;
    try {
      snapshot = await this.#locate('');
    } catch (error) {
      throw this.#unavailable(error);
    }
    if (this.#settings.size === 0 || snapshot.head === '' || seqOfEntryId(snapshot.head) < snapshot.minSeq) return undefined;
    return snapshot.headUpdate === '' ? undefined : snapshot.headUpdate;
  }

  ready(): boolean {
    return !this.#closed && this.#cmd.status === 'ready' && this.#reader.status === 'ready';
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    this.#wakeReader?.();
    for (const waiter of this.#waiters.splice(0)) waiter.done();
    this.#listeners.clear();
    this.#cmd.disconnect();
    this.#reader.disconnect();
    await this.#loop;
  }

  async #history(lastEventId: string, filter: (u: Update) => boolean): Promise<HistoryResult> {
    const earliest = lastEventId === 'earliest';
    const snapshot = await this.#locate(earliest ? '' : lastEventId);
    if (this.#settings.size === 0) return { updates: [], found: earliest, head: 0n };
    if (snapshot.head === '') return { updates: [], found: earliest, head: 0n };
    const head = seqOfEntryId(snapshot.head);
    if (!earliest && snapshot.at !== '' && seqOfEntryId(snapshot.at) >= snapshot.minSeq) {
      const updates = await this.#read(snapshot, filter, snapshot.at);
      if (updates !== undefined) return { updates, found: true, head };
    }
    return { updates: (await this.#read(snapshot, filter, undefined)) ?? [], found: earliest, head };
  }

  /**
   * Reads the entries after `from` (or every kept entry) up to the snapshot's head. Each page
   * starts at the last entry of the one before and checks it is still there: trimming removes the
   * oldest entries first, so as long as it is, nothing after it is missing. A resume point that
   * disappears mid-read gives `undefined`, which the caller answers as an unknown ID.
   */
  async #read(snapshot: Snapshot, filter: (u: Update) => boolean, from: string | undefined): Promise<Update[] | undefined> {
    const updates: Update[] = [];
    let cursor = from ?? (snapshot.minSeq > 0n ? entryIdAt(Number(snapshot.minSeq >> 32n)) : '-');
    let anchored = from !== undefined;
    while (true) {
      const page = await this.#cmd.call('XRANGE', this.#settings.stream, cursor, snapshot.head, 'COUNT', PAGE);
      if (!isEntries(page)) throw new Error('unexpected XRANGE reply');
      let entries: Entry[] = page;
      if (anchored) {
        if (page[0]?.[0] === cursor) entries = page.slice(1);
        else if (from !== undefined) return undefined;
      }
      for (const entry of entries) {
        if (seqOfEntryId(entry[0]) < snapshot.minSeq) continue;
        const update = this.#decode(entry);
        if (update !== undefined && filter(update)) updates.push(update);
      }
      const last = page[page.length - 1];
      if (page.length < PAGE || last === undefined) return updates;
      cursor = last[0];
      anchored = true;
    }
  }

  async #locate(updateId: string): Promise<Snapshot> {
    const reply = await this.#eval(LOCATE, [this.#settings.stream, this.#settings.ids], [updateId]);
    if (!Array.isArray(reply) || reply.length !== 5) throw new Error('unexpected reply to the history script');
    const [head, headUpdate, at, seconds, micros] = reply.map(String) as [string, string, string, string, string];
    const now = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
    const minSeq = this.#settings.ttl > 0 ? BigInt(Math.max(now - this.#settings.ttl, 0)) << 32n : 0n;
    return { head, headUpdate, at, minSeq };
  }

  /** Feeds the listeners from the stream, in order, from the last entry they got, across reconnects. */
  async #readLoop(): Promise<void> {
    while (!this.#closed) {
      let reply: unknown;
      try {
        reply = await this.#reader.call('XREAD', 'COUNT', PAGE, 'BLOCK', BLOCK_MS, 'STREAMS', this.#settings.stream, this.#lastSeen);
      } catch {
        if (this.#closed) return;
        await this.#pause();
        continue;
      }
      // RESP2: null on timeout, else [[key, entries]].
      const entries = Array.isArray(reply) && Array.isArray(reply[0]) ? (reply[0] as unknown[])[1] : undefined;
      if (!isEntries(entries)) continue;
      for (const entry of entries) {
        if (this.#closed) return;
        this.#advance(entry[0]);
        const update = this.#decode(entry);
        if (update === undefined) continue;
        for (const listener of this.#listeners) {
          try {
            listener(update);
          } catch (error) {
            process.emitWarning(`a listener of the redis transport threw: ${(error as Error).stack ?? String(error)}`);
          }
        }
      }
      this.#release();
    }
  }

  #advance(entryId: string): void {
    this.#lastSeen = entryId;
    this.#lastSeenSeq = seqOfEntryId(entryId);
  }

  /** Waits until the reader is ready again (or a short while, for an error the connection survived). */
  #pause(): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#reader.off('ready', done);
        this.#wakeReader = undefined;
        resolve();
      };
      const timer = setTimeout(done, 500);
      this.#reader.once('ready', done);
      this.#wakeReader = done;
    });
  }

  /** Resolves once the reader has delivered `seq` here, or after the timeout (the update is stored either way). */
  #delivered(seq: bigint): Promise<void> {
    if (this.#lastSeenSeq >= seq || this.#closed) return Promise.resolve();
    return new Promise((resolve) => {
      const waiter = {
        seq,
        done: () => {
          clearTimeout(timer);
          resolve();
        },
      };
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w !== waiter);
        resolve();
      }, this.#settings.timeout);
      this.#waiters.push(waiter);
    });
  }

  #release(): void {
    if (this.#waiters.length === 0) return;
    const waiting: Waiter[] = [];
    for (const waiter of this.#waiters) {
      if (waiter.seq <= this.#lastSeenSeq) waiter.done();
      else waiting.push(waiter);
    }
    this.#waiters = waiting;
  }

  /** Background work: drops expired entries even when nobody publishes, and keeps an idle connection checked. */
  async #maintain(): Promise<void> {
    if (this.#closed || this.#cmd.status !== 'ready') return;
    try {
      if (this.#settings.ttl > 0) await this.#eval(TRIM, [this.#settings.stream, this.#settings.ids], [this.#settings.ttl]);
      else await this.#cmd.call('PING');
    } catch {
      // A dead connection is closed by its socket timeout and reconnected; nothing to do here.
    }
  }

  /** Runs a script by its SHA, loading it when the server does not know it (first use, or after a restart). */
  async #eval(s: Script, keys: string[], args: (string | number)[]): Promise<unknown> {
    try {
      return await this.#cmd.call('EVALSHA', s.sha, keys.length, ...keys, ...args);
    } catch (error) {
      if (!(error as Error).message.startsWith('NOSCRIPT')) throw error;
      return this.#cmd.call('EVAL', s.lua, keys.length, ...keys, ...args);
    }
  }

  #unavailable(error: unknown): TransportUnavailableError {
    const message = (error as Error).message;
    // ioredis' wording for "not connected" (offline queue off, connection lost mid-command).
    if (/isn't writeable|Connection is closed|MaxRetriesPerRequest/i.test(message)) {
      return new TransportUnavailableError(`${this.#settings.label} is not reachable${this.#lastError === '' ? '' : ` (${this.#lastError})`}`);
    }
    return new TransportUnavailableError(`${this.#settings.label}: ${message}`);
  }
}

/** What went wrong when connecting, in words an operator can act on. */
export function describeConnectError(error: Error, settings: Pick<RedisSettings, 'connection' | 'timeout'>): string {
  const code = (error as NodeJS.ErrnoException).code;
  const { host, port } = settings.connection;
  const message = error.message;
  if (code === 'ECONNREFUSED') return `connection refused by ${host}:${port} (is redis-server running there, on that port?)`;
  if (code === 'ETIMEDOUT' || /ETIMEDOUT/.test(message)) return `timed out after ${settings.connection.connectTimeout ?? settings.timeout} ms (a firewall dropping packets, a wrong host, or a TLS URL, rediss://, for a server without TLS?)`;
  if (/Socket timeout/i.test(message)) return `${host}:${port} accepted the connection but did not answer within ${settings.timeout * 2} ms (not a Redis server, or one too busy to answer?)`;
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return `host "${host}" not found (DNS: ${code})`;
  if (code === 'ENETUNREACH' || code === 'EHOSTUNREACH') return `${host} is unreachable from here (${code})`;
  if (/WRONGPASS|NOAUTH|invalid password|invalid username-password/i.test(message)) return `authentication failed: ${message} (check the user and password in the URL)`;
  if (/NOPERM/.test(message)) return `the user may not run the commands the hub needs: ${message}`;
  if (/Unknown RESP type|Protocol error/i.test(message)) return `the server at ${host}:${port} does not speak the Redis protocol (${message})`;
  if (/SSL|TLS|certificate|handshake|EPROTO/i.test(message) || code === 'EPROTO') return `TLS failed: ${message}`;
  return code === undefined ? message : `${message} (${code})`;
}

interface Waiter {
  seq: bigint;
  done: () => void;
}

interface Snapshot {
  /** Newest entry ID ('' when the stream is empty) and the update ID it holds. */
  head: string;
  headUpdate: string;
  /** Entry ID of the requested update, '' when it is not in the stream. */
  at: string;
  /** Entries with a lower seq are past the maximum age. */
  minSeq: bigint;
}
