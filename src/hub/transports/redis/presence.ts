/**
 * Presence in Redis: per-node leases in a sorted set (scored by expiry on the server's clock),
 * each node's entries in a hash of its own, per-topic counts by node, and each topic's occupancy.
 * Every key carries the `{PREFIX}` hash tag, so all of it lives in one slot (Redis Cluster) and
 * every script is atomic. A lost node is claimed by the one script call that removes its lease.
 */
import type { Cluster, Redis } from 'ioredis';
import type { LostNode, Occupancy, PresenceEntry, PresenceStore } from '../../core/presence.js';
import { type Script, script } from './scripts.js';

/** Lost nodes claimed per heartbeat at most (the next heartbeat takes the rest). */
const CLAIM_PER_BEAT = 16;

/** Entries removed by one script call at most (a call holds Redis up for as long as it runs). */
const REMOVE_PER_CALL = 2000;

const COMMON = `
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
`;

/** KEYS: nodes, node entries, node topics. ARGV: prefix, node, ttl ms, then (field, entry JSON, topic) triples. */
const ADD = script(`${COMMON}
local prefix, node, ttl = ARGV[1], ARGV[2], tonumber(ARGV[3])
redis.call('ZADD', KEYS[1], now_ms() + ttl, node)
for i = 4, #ARGV, 3 do
  local fresh = redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
  if fresh == 1 then
    redis.call('HINCRBY', prefix .. ':presence:topic:' .. ARGV[i + 2], node, 1)
    redis.call('SADD', KEYS[3], ARGV[i + 2])
  end
end
return 1
`);

/** KEYS: node entries, node topics. ARGV: prefix, node, then (field, topic) pairs. */
const REMOVE = script(`
local prefix, node = ARGV[1], ARGV[2]
for i = 3, #ARGV, 2 do
  if redis.call('HDEL', KEYS[1], ARGV[i]) == 1 then
    local key = prefix .. ':presence:topic:' .. ARGV[i + 1]
    if redis.call('HINCRBY', key, node, -1) <= 0 then
      redis.call('HDEL', key, node)
      redis.call('SREM', KEYS[2], ARGV[i + 1])
    end
  end
end
return 1
`);

/** KEYS: nodes, topic counts. Live subscriptions of the topic: the counts of nodes whose lease holds. */
const COUNT = script(`${COMMON}
local now = now_ms()
local counts = redis.call('HGETALL', KEYS[2])
local total = 0
for i = 1, #counts, 2 do
  local lease = redis.call('ZSCORE', KEYS[1], counts[i])
  if lease and tonumber(lease) >= now then total = total + tonumber(counts[i + 1]) end
end
return total
`);

/** KEYS: state. ARGV: from, to. A missing state is 'vacated'. */
const TRANSITION = script(`
local state = redis.call('GET', KEYS[1]) or 'vacated'
if state ~= ARGV[1] then return 0 end
if ARGV[2] == 'vacated' then redis.call('DEL', KEYS[1]) else redis.call('SET', KEYS[1], ARGV[2]) end
return 1
`);

/**
 * KEYS: nodes. ARGV: prefix, node, ttl ms, claim limit. Renews this node's lease (1 if it was
 * still held), then claims up to `limit` nodes whose lease ran out: removes each lease, its
 * entries and its topic counts, and returns {renewed, node, entries..., node, entries...}.
 */
const HEARTBEAT = script(`${COMMON}
local prefix, node, ttl, limit = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local now = now_ms()
local held = redis.call('ZSCORE', KEYS[1], node)
local renewed = 0
if held and tonumber(held) >= now then renewed = 1 end
redis.call('ZADD', KEYS[1], now + ttl, node)
local out = {renewed}
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. now, 'LIMIT', 0, limit)
for _, lost in ipairs(dead) do
  if lost ~= node and redis.call('ZREM', KEYS[1], lost) == 1 then
    local entries_key = prefix .. ':presence:node:' .. lost
    local topics_key = prefix .. ':presence:topics:' .. lost
    local entries = redis.call('HVALS', entries_key)
    for _, topic in ipairs(redis.call('SMEMBERS', topics_key)) do
      redis.call('HDEL', prefix .. ':presence:topic:' .. topic, lost)
    end
    redis.call('DEL', entries_key, topics_key)
    table.insert(out, lost)
    table.insert(out, entries)
  end
end
return out
`);

/** KEYS: nodes. ARGV: prefix, node. Removes this node's lease, entries and counts. */
const LEAVE = script(`
local prefix, node = ARGV[1], ARGV[2]
redis.call('ZREM', KEYS[1], node)
local topics_key = prefix .. ':presence:topics:' .. node
for _, topic in ipairs(redis.call('SMEMBERS', topics_key)) do
  redis.call('HDEL', prefix .. ':presence:topic:' .. topic, node)
end
redis.call('DEL', prefix .. ':presence:node:' .. node, topics_key)
return 1
`);

/** KEYS: nodes. The live nodes (lease not run out). */
const LIVE = script(`${COMMON}
return redis.call('ZRANGEBYSCORE', KEYS[1], now_ms(), '+inf')
`);

/** What a script call needs of the transport's command connection. */
export type Eval = (s: Script, keys: string[], args: (string | number)[]) => Promise<unknown>;

function field(subscriber: string, topic: string): string {
  return `${subscriber}\n${topic}`;
}

function parseEntries(values: unknown): PresenceEntry[] {
  if (!Array.isArray(values)) return [];
  const entries: PresenceEntry[] = [];
  for (const value of values) {
    try {
      entries.push(JSON.parse(String(value)) as PresenceEntry);
    } catch {
      // An entry that is not ours (written by hand): not presence.
    }
  }
  return entries;
}

/** The presence store of one node, over the transport's command connection. */
export class RedisPresenceStore implements PresenceStore {
  readonly #eval: Eval;
  readonly #cmd: Redis | Cluster;
  readonly #prefix: string;
  readonly #node: string;
  readonly #ttl: number;
  /** (field, topic) pairs of the removes asked for during this turn of the event loop, and the promise of their script call. */
  #removing: string[] = [];
  #removed: Promise<void> | undefined;

  /** `prefix` is the hash-tagged key prefix (`{ssehub}`), shared with the transport's keys. */
  constructor(options: { eval: Eval; cmd: Redis | Cluster; prefix: string; node: string; ttl: number }) {
    this.#eval = options.eval;
    this.#cmd = options.cmd;
    this.#prefix = options.prefix;
    this.#node = options.node;
    this.#ttl = options.ttl;
  }

  get #nodes(): string {
    return `${this.#prefix}:presence:nodes`;
  }

  #nodeKeys(node: string): [string, string] {
    return [`${this.#prefix}:presence:node:${node}`, `${this.#prefix}:presence:topics:${node}`];
  }

  async add(entries: readonly PresenceEntry[]): Promise<void> {
    if (entries.length === 0) return;
    const args: string[] = [];
    for (const e of entries) args.push(field(e.subscriber, e.topic), JSON.stringify(e), e.topic);
    await this.#eval(ADD, [this.#nodes, ...this.#nodeKeys(this.#node)], [this.#prefix, this.#node, this.#ttl, ...args]);
  }

  /** Removes asked for in the same turn of the event loop (a batch of leaves) go in one script call. */
  remove(subscriber: string, topics: readonly string[]): Promise<void> {
    if (topics.length === 0) return Promise.resolve();
    for (const topic of new Set(topics)) this.#removing.push(field(subscriber, topic), topic);
    this.#removed ??= Promise.resolve().then(() => {
      const args = this.#removing;
      this.#removing = [];
      this.#removed = undefined;
      const calls: Promise<unknown>[] = [];
      for (let i = 0; i < args.length; i += 2 * REMOVE_PER_CALL) calls.push(this.#eval(REMOVE, this.#nodeKeys(this.#node), [this.#prefix, this.#node, ...args.slice(i, i + 2 * REMOVE_PER_CALL)]));
      return Promise.all(calls).then(() => undefined);
    });
    return this.#removed;
  }

  async list(filter: { topic?: string; subscriber?: string } = {}): Promise<PresenceEntry[]> {
    const live = await this.#eval(LIVE, [this.#nodes], []);
    if (!Array.isArray(live) || live.length === 0) return [];
    const pipeline = this.#cmd.pipeline();
    for (const node of live) pipeline.hvals(this.#nodeKeys(String(node))[0]);
    const replies = (await pipeline.exec()) ?? [];
    const all: PresenceEntry[] = [];
    for (const [error, values] of replies) {
      if (error !== null) throw error;
      all.push(...parseEntries(values));
    }
    return all.filter((e) => (filter.topic === undefined || e.topic === filter.topic) && (filter.subscriber === undefined || e.subscriber === filter.subscriber));
  }

  async count(topic: string): Promise<number> {
    return Number(await this.#eval(COUNT, [this.#nodes, `${this.#prefix}:presence:topic:${topic}`], []));
  }

  async transition(topic: string, from: Occupancy, to: Occupancy): Promise<boolean> {
    return Number(await this.#eval(TRANSITION, [`${this.#prefix}:presence:state:${topic}`], [from, to])) === 1;
  }

  async heartbeat(): Promise<{ renewed: boolean; lost: LostNode[] }> {
    const reply = await this.#eval(HEARTBEAT, [this.#nodes], [this.#prefix, this.#node, this.#ttl, CLAIM_PER_BEAT]);
    if (!Array.isArray(reply)) throw new Error('unexpected reply to the presence heartbeat');
    const lost: LostNode[] = [];
    for (let i = 1; i + 1 < reply.length; i += 2) lost.push({ node: String(reply[i]), entries: parseEntries(reply[i + 1]) });
    return { renewed: Number(reply[0]) === 1, lost };
  }

  async close(): Promise<void> {
    await this.#eval(LEAVE, [this.#nodes], [this.#prefix, this.#node]);
  }
}
