// The Redis transport on a Redis Cluster (`redis+cluster://`), against real redis-server
// processes joined into one: its URL, what a failed start says, its keys in one slot, two hubs,
// a resharding that moves the hub's slot while updates are published, and the failover of the
// slot's master. The Transport contract it shares with the others is
// test/hub/transport-contract.test.ts.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { TransportUnavailableError } from '../../src/hub/errors.js';
import type { HistoryLimits, Transport } from '../../src/hub/transports/index.js';
import { RedisTransport, parseRedisUrl } from '../../src/hub/transports/redis/index.js';
import type { Update } from '../../src/hub/core/update.js';
import { type TestHub, startTestHub } from '../helpers/hub.js';
import { freePort } from '../helpers/ports.js';
import { type ClusterNode, type RedisCluster, startRedisCluster } from '../helpers/redis-cluster.js';
import { startRedisServer } from '../helpers/redis-server.js';
import { type SseRecorder, openSse } from '../helpers/sse-client.js';

const T = { timeout: 30_000 };
const NO_LIMITS: HistoryLimits = { size: 100_000, ttl: 0 };

function update(id: string): Update {
  return { id, topics: [`https://example.com/${id}`], data: `data of ${id}`, private: false };
}

const all = () => true;
const ids = (updates: Update[]) => updates.map((u) => u.id);

/** Polls `check` (a safety-net deadline, not an assertion on time). */
async function until(check: () => boolean | Promise<boolean>, what: string, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Records what a transport's listener receives. */
function record(transport: Transport): Update[] {
  const seen: Update[] = [];
  transport.subscribe((u) => seen.push(u));
  return seen;
}

describe('redis+cluster: the URL', () => {
  it('names the nodes to start from, and takes the options of redis://', () => {
    const s = parseRedisUrl('redis+cluster://u:pw@10.0.0.1:7000,10.0.0.2?key=k&maxage=1h', NO_LIMITS);
    assert.equal(s.mode, 'cluster');
    assert.deepEqual(s.nodes, [
      { host: '10.0.0.1', port: 7000 },
      { host: '10.0.0.2', port: 6379 },
    ]);
    assert.deepEqual([s.connection.username, s.connection.password], ['u', 'pw']);
    assert.deepEqual([s.stream, s.ids, s.ttl, s.replicas], ['{k}:updates', '{k}:ids', 3_600_000, 1]);
    assert.equal(s.label, 'redis+cluster://10.0.0.1:7000,10.0.0.2');
  });

  it('refuses a database number: a cluster has only one', () => {
    assert.throws(() => parseRedisUrl('redis+cluster://h:7000/0', NO_LIMITS), /a Redis Cluster has no database numbers or names/);
  });
});

describe('redis+cluster: a start that fails says what failed', () => {
  it('names nodes where nothing answers', T, async () => {
    const [a, b] = [await freePort(), await freePort()];
    await assert.rejects(RedisTransport.connect(`redis+cluster://127.0.0.1:${a},127.0.0.1:${b}`, NO_LIMITS), (error: Error) => {
      assert.equal(error.message, `cannot connect to redis+cluster://127.0.0.1:${a},127.0.0.1:${b}: no node of the cluster answered (127.0.0.1:${a}, 127.0.0.1:${b}; is redis-server running there, on those ports, with cluster-enabled yes?)`);
      return true;
    });
  });

  it('names a server that is not a cluster node', T, async () => {
    const single = await startRedisServer();
    after(() => single.stop());
    await assert.rejects(RedisTransport.connect(`redis+cluster://127.0.0.1:${single.port}`, NO_LIMITS), /127\.0\.0\.1:\d+: not a Redis Cluster node \(cluster support is disabled there/);
  });
});

describe('redis+cluster: three masters, one replica each', () => {
  let cluster: RedisCluster;
  const opened: Transport[] = [];
  before(async () => {
    cluster = await startRedisCluster({ masters: 3, replicasPerMaster: 1 });
  });
  after(async () => {
    await Promise.all(opened.map((t) => t.close()));
    await cluster.stop();
  });
  const open = async (key = `test-${randomUUID()}`, query = '') => {
    const t = await RedisTransport.connect(`${cluster.url}?key=${key}${query}`, NO_LIMITS);
    opened.push(t);
    return t;
  };

  it('keeps the stream and its ID index in one slot, on the master serving it', T, async () => {
    const key = `test-${randomUUID()}`;
    const t = await open(key);
    await t.dispatch(update('a'));
    const stream = await cluster.owner(`{${key}}:updates`);
    const index = await cluster.owner(`{${key}}:ids`);
    assert.equal(stream.slot, index.slot, 'one slot');
    assert.equal(await cluster.ask(stream.node, 'EXISTS', `{${key}}:updates`, `{${key}}:ids`), 2, 'on the master serving it');
    const inSlot = (await cluster.ask(stream.node, 'CLUSTER', 'GETKEYSINSLOT', stream.slot, 100)) as string[];
    assert.deepEqual(inSlot.filter((k) => !k.startsWith(`{${key}}:`)), [], 'nothing else of the hub elsewhere: every key it made carries its hash tag');
  });

  it('waits for the slot master\'s replica (replicas=1 by default): publishes are answered and read back', T, async () => {
    const t = await open();
    const seen = record(t);
    for (const id of ['a', 'b', 'c']) await t.dispatch(update(id));
    assert.deepEqual(ids(seen), ['a', 'b', 'c']);
    const result = await t.history('a', all);
    assert.equal(result.found, true);
    assert.deepEqual(ids(result.updates), ['b', 'c']);
  });

  it('refuses, naming the option, when the slot master has no replica to acknowledge', T, async () => {
    const key = `test-${randomUUID()}`;
    const t = await open(key, '&replicas=2');
    await assert.rejects(t.dispatch(update('a')), (error: Error) => {
      assert.ok(error instanceof TransportUnavailableError, String(error));
      // "the update is stored on the primary, but only 1 of …", or, when the node did not know the publish script yet, "refused" without storing it.
      assert.match(error.message, /only 1 of the 2 replicas required acknowledged .* within 1000 ms.*\(option replicas=2\)/);
      return true;
    });
  });

  it('two hubs: an update published on hub A reaches hub B\'s subscriber, and a client resumes on hub B from hub A\'s ID', T, async () => {
    const url = `${cluster.url}?key=test-${randomUUID()}`;
    const hubA = await startTestHub(['--transport', url]);
    after(() => hubA.close());
    const hubB = await startTestHub(['--transport', url]);
    after(() => hubB.close());
    const topic = 'https://example.com/books/1';
    const subscribe = (hub: TestHub, headers: Record<string, string> = {}) => openSse(`${hub.hubUrl}?topic=${encodeURIComponent(topic)}`, { authorization: `Bearer ${hub.adminToken}`, ...headers });
    const onB = await subscribe(hubB);
    after(() => onB.close());
    for (const id of ['r1', 'r2', 'r3']) assert.equal((await hubA.publish({ topic, data: `data ${id}`, id })).status, 200);
    await onB.events_(3);
    assert.deepEqual(onB.events.map((e) => e.lastEventId), ['r1', 'r2', 'r3']);

    const resumed = await subscribe(hubB, { 'last-event-id': 'r1' });
    after(() => resumed.close());
    assert.equal(resumed.headers['last-event-id'], 'r1');
    await resumed.events_(2);
    assert.equal((await hubA.publish({ topic, data: 'data r4', id: 'r4' })).status, 200);
    await resumed.events_(3);
    assert.deepEqual(resumed.events.map((e) => e.lastEventId), ['r2', 'r3', 'r4']);
  });

  it('follows its slot to another master (resharding) while two nodes publish: every update answered is delivered to both, once, in one order, and kept', T, async (t) => {
    const key = `test-${randomUUID()}`;
    const a = await open(key);
    const b = await open(key);
    const seenA = record(a);
    const seenB = record(b);
    const { slot, node: from } = await cluster.owner(`{${key}}:updates`);
    const to = cluster.masters.find((m) => m !== from) as ClusterNode;

    const answered: string[] = [];
    let refused = 0;
    let stop = false;
    // However the test ends, its publishers stop (a loop left running would keep this process alive).
    t.after(() => {
      stop = true;
    });
    const publishers = [a, b].map(async (node, n) => {
      for (let i = 0; !stop; i++) {
        const id = `n${n}-${i}`;
        try {
          await node.dispatch(update(id));
          answered.push(id);
        } catch (error) {
          assert.ok(error instanceof TransportUnavailableError, String(error));
          refused++;
        }
      }
    });
    await until(() => answered.length >= 50, '50 updates answered before the move');
    await cluster.moveSlot(slot, from, to);
    const atMove = answered.length;
    await until(() => answered.length >= atMove + 50, '50 more updates answered after the move');
    stop = true;
    await Promise.all(publishers);
    t.diagnostic(`${answered.length} publishes answered, ${refused} refused (503) during the move`);

    assert.equal((await cluster.owner(`{${key}}:updates`)).node, to, 'the slot moved');
    assert.equal(await cluster.ask(to, 'EXISTS', `{${key}}:updates`, `{${key}}:ids`), 2, 'both keys moved with it');
    const history = ids((await a.history('earliest', all)).updates);
    assert.deepEqual(answered.filter((id) => !history.includes(id)), [], 'every update answered is in history');
    await until(() => seenA.length >= history.length && seenB.length >= history.length, 'both nodes to read every update');
    assert.deepEqual(ids(seenA), history, 'node A read the stream in order, once, across the move');
    assert.deepEqual(ids(seenB), history, 'node B too');
  });

  it('survives the death of its slot\'s master: its replica takes over, publishes answer 503 meanwhile and 200 after, and nothing answered 200 is lost', { timeout: 60_000 }, async (t) => {
    const key = `test-${randomUUID()}`;
    const a = await open(key);
    const b = await open(key);
    const seenB = record(b);
    const answered: string[] = [];
    let refused = 0;
    let stop = false;
    // However the test ends, its publishers stop (a loop left running would keep this process alive).
    t.after(() => {
      stop = true;
    });
    let slowest = 0;
    const publisher = (async () => {
      for (let i = 0; !stop; i++) {
        const started = Date.now();
        try {
          await a.dispatch(update(`u${i}`)).finally(() => (slowest = Math.max(slowest, Date.now() - started)));
          answered.push(`u${i}`);
        } catch (error) {
          assert.ok(error instanceof TransportUnavailableError, String(error));
          refused++;
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      }
    })();
    await until(() => answered.length >= 20, '20 updates answered');
    const { node: master } = await cluster.owner(`{${key}}:updates`);
    await master.server.kill();
    const killedAt = Date.now();
    // Back as a replica of the master that replaced it, so that publishes have a replica again.
    await until(async () => (await cluster.owner(`{${key}}:updates`).catch(() => ({ node: master }))).node !== master, 'a replica to take over the slot', 30_000);
    const tookOverAt = Date.now();
    await master.server.start();
    const atTakeover = answered.length;
    await until(() => answered.length >= atTakeover + 20, '20 updates answered after the takeover', 30_000);
    stop = true;
    await publisher;
    t.diagnostic(`master killed; its replica took the slot over after ${tookOverAt - killedAt} ms; ${answered.length} publishes answered 200, ${refused} answered 503, the slowest answer took ${slowest} ms`);

    const history = ids((await b.history('earliest', all)).updates);
    assert.deepEqual(answered.filter((id) => !history.includes(id)), [], 'every update answered 200 is in history');
    await until(() => answered.every((id) => seenB.some((u) => u.id === id)), 'the other node to read every update answered 200');
    assert.equal(new Set(ids(seenB)).size, seenB.length, 'nothing read twice');
  });
});

describe('redis+cluster: a subscriber on a hub whose cluster has no replicas (replicas=0)', () => {
  let cluster: RedisCluster;
  before(async () => {
    cluster = await startRedisCluster({ masters: 3 });
  });
  after(() => cluster.stop());

  it('the default replicas=1 refuses publishes with a message naming the option; replicas=0 publishes', T, async () => {
    const topic = 'https://example.com/no-replicas';
    const strict = await startTestHub(['--transport', `${cluster.url}?key=test-${randomUUID()}`]);
    after(() => strict.close());
    const refused = await strict.publish({ topic, data: 'd', id: 'x' });
    assert.equal(refused.status, 503);
    assert.match(refused.body, /only 0 of the 1 replica required acknowledged .*\(option replicas=1\)/);

    const hub = await startTestHub(['--transport', `${cluster.url}?key=test-${randomUUID()}&replicas=0`]);
    after(() => hub.close());
    const sub: SseRecorder = await openSse(`${hub.hubUrl}?topic=${encodeURIComponent(topic)}`, { authorization: `Bearer ${hub.adminToken}` });
    after(() => sub.close());
    assert.equal((await hub.publish({ topic, data: 'd', id: 'y' })).status, 200);
    await sub.events_(1);
    assert.equal(sub.events[0]?.lastEventId, 'y');
  });
});
