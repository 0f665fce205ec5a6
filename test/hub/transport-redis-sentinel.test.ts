// The Redis transport through Redis Sentinel (`redis+sentinel://`), against real redis-server
// and redis-sentinel processes: its URL, what a failed start says, WAIT for a replica before a
// 200, and a failover of the primary while two hubs publish and serve subscribers. The Transport
// contract it shares with the others is test/hub/transport-contract.test.ts.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { TransportUnavailableError } from '../../src/hub/errors.js';
import type { HistoryLimits, Transport } from '../../src/hub/transports/index.js';
import { RedisTransport, parseRedisUrl } from '../../src/hub/transports/redis/index.js';
import type { Update } from '../../src/hub/core/update.js';
import { type TestHub, startTestHub } from '../helpers/hub.js';
import { freePort } from '../helpers/ports.js';
import { type SentinelGroup, startSentinelGroup } from '../helpers/redis-sentinel.js';
import { type SseRecorder, openSse } from '../helpers/sse-client.js';

const T = { timeout: 30_000 };
const NO_LIMITS: HistoryLimits = { size: 100_000, ttl: 0 };

function update(id: string): Update {
  return { id, topics: [`https://example.com/${id}`], data: `data of ${id}`, private: false };
}

/** Polls `check` (a safety-net deadline, not an assertion on time). */
async function until(check: () => boolean | Promise<boolean>, what: string, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** One command to the group's first Sentinel. */
async function askSentinel(group: SentinelGroup, ...args: string[]): Promise<unknown> {
  const client = new Redis({ port: (group.sentinels[0] as { port: number }).port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0 });
  client.on('error', () => {});
  try {
    await client.connect();
    return await client.call(args[0] as string, ...args.slice(1));
  } finally {
    client.disconnect();
  }
}

describe('redis+sentinel: the URL', () => {
  it('names the Sentinels, the primary, a database, and takes the options of redis://', () => {
    const s = parseRedisUrl('redis+sentinel://user:p%40ss@10.0.0.1:26380,10.0.0.2,[::1]:26381/mymaster/2?key=k&maxlen=10&timeout=2s&replicas=2', NO_LIMITS);
    assert.equal(s.mode, 'sentinel');
    assert.deepEqual(s.connection.sentinels, [
      { host: '10.0.0.1', port: 26380 },
      { host: '10.0.0.2', port: 26379 },
      { host: '::1', port: 26381 },
    ]);
    assert.equal(s.connection.name, 'mymaster');
    assert.equal(s.connection.db, 2);
    assert.equal(s.connection.username, 'user');
    assert.equal(s.connection.password, 'p@ss');
    assert.deepEqual([s.stream, s.ids, s.size, s.timeout, s.replicas], ['{k}:updates', '{k}:ids', 10, 2000, 2]);
    assert.equal(s.label, 'redis+sentinel://10.0.0.1:26380,10.0.0.2,[::1]:26381/mymaster/2', 'no credentials in messages');
  });

  it('waits for one replica by default; replicas=0 answers as soon as the primary has the update', () => {
    assert.equal(parseRedisUrl('redis+sentinel://h/m', NO_LIMITS).replicas, 1);
    assert.equal(parseRedisUrl('redis+sentinel://h/m?replicas=0', NO_LIMITS).replicas, 0);
    assert.equal(parseRedisUrl('redis://h', NO_LIMITS).replicas, 0, 'one server: no replica to wait for unless asked');
  });

  it('refuses a URL without the primary name, or with a bad host, naming the part', () => {
    assert.throws(() => parseRedisUrl('redis+sentinel://h:26379', NO_LIMITS), /the path must be the primary's name/);
    assert.throws(() => parseRedisUrl('redis+sentinel://h:26379/m/x', NO_LIMITS), /the path must be the primary's name/);
    assert.throws(() => parseRedisUrl('redis+sentinel://h:99999/m', NO_LIMITS), /expected HOST:PORT, got "h:99999"/);
    assert.throws(() => parseRedisUrl('redis+sentinel://h/m?stream=x', NO_LIMITS), /unknown option "stream"/);
    assert.throws(() => parseRedisUrl('rediss+sentinel://h/m', NO_LIMITS), /expected redis\+sentinel:\/\//);
  });
});

describe('redis+sentinel: one primary, one replica, one Sentinel', () => {
  let group: SentinelGroup;
  const opened: Transport[] = [];
  before(async () => {
    group = await startSentinelGroup({ replicas: 1, sentinels: 1 });
  });
  after(async () => {
    await Promise.all(opened.map((t) => t.close()));
    await group.stop();
  });
  const open = async (query = '') => {
    const t = await RedisTransport.connect(`${group.url}?key=test-${randomUUID()}${query}`, NO_LIMITS);
    opened.push(t);
    return t;
  };

  it('names a primary the Sentinels do not know', T, async () => {
    await assert.rejects(RedisTransport.connect(group.url.replace(/\/[^/]+$/, '/nope'), NO_LIMITS), (error: Error) => {
      assert.match(error.message, /^cannot connect to redis\+sentinel:\/\/.*\/nope: no Sentinel knows a primary named "nope"/);
      return true;
    });
  });

  it('names Sentinels that do not answer', T, async () => {
    const [a, b] = [await freePort(), await freePort()];
    await assert.rejects(RedisTransport.connect(`redis+sentinel://127.0.0.1:${a},127.0.0.1:${b}/x`, NO_LIMITS), (error: Error) => {
      assert.equal(error.message, `cannot connect to redis+sentinel://127.0.0.1:${a},127.0.0.1:${b}/x: none of the Sentinels answered (127.0.0.1:${a}, 127.0.0.1:${b}; are redis-sentinel processes running there, on those ports?)`);
      return true;
    });
  });

  it('names a Redis server given as a Sentinel', T, async () => {
    const port = (group.servers[0] as { port: number }).port;
    await assert.rejects(RedisTransport.connect(`redis+sentinel://127.0.0.1:${port}/x`, NO_LIMITS), /127\.0\.0\.1:\d+: not a Sentinel/);
  });

  it('answers 503 for a publish no replica acknowledged, refuses the next ones at once, and takes them again once a replica is back', T, async () => {
    const t = await open();
    await t.dispatch(update('replicated'));
    const replica = group.servers[1] as (typeof group.servers)[number];
    await replica.kill();
    await assert.rejects(t.dispatch(update('unreplicated')), (error: Error) => {
      assert.ok(error instanceof TransportUnavailableError, String(error));
      assert.match(error.message, /the update is stored on the primary, but only 0 of the 1 replica required acknowledged it within 1000 ms, so a failover could lose it \(option replicas=1\)/);
      return true;
    });
    await assert.rejects(t.dispatch(update('refused')), /publishes are refused until a replica is back \(option replicas=1\)/);
    assert.equal(t.ready(), true, 'subscribers are still served: history and live delivery work without replicas');

    await replica.start();
    await group.replicasOnline(await group.primaryPort(), 1);
    await until(async () => {
      try {
        await t.dispatch(update(`back-${randomUUID()}`));
        return true;
      } catch (error) {
        if (!(error instanceof TransportUnavailableError)) throw error;
        return false;
      }
    }, 'a publish answered again');
    const stored = (await t.history('earliest', () => true)).updates.map((u) => u.id);
    assert.deepEqual(stored.slice(0, 2), ['replicated', 'unreplicated'], 'the 503 of an unreplicated update does not take it back');
    assert.ok(!stored.includes('refused'), 'a refused publish is not stored');
  });

  it('with replicas=0, answers as soon as the primary has the update, replica or not', T, async () => {
    const t = await open('&replicas=0');
    const replica = group.servers[1] as (typeof group.servers)[number];
    await replica.kill();
    after(async () => {
      if (!replica.running) await replica.start();
    });
    await t.dispatch(update('alone'));
    assert.deepEqual((await t.history('earliest', () => true)).updates.map((u) => u.id), ['alone']);
  });

  // Last of this group: it swaps the primary and the replica.
  it('goes through a planned failover (SENTINEL FAILOVER) while a node publishes with replicas= the number of replicas: nothing answered 200 is lost, and its listener gets every update once, in order', T, async (t) => {
    const key = `test-${randomUUID()}`;
    const [publisher, reader] = [await RedisTransport.connect(`${group.url}?key=${key}`, NO_LIMITS), await RedisTransport.connect(`${group.url}?key=${key}`, NO_LIMITS)];
    opened.push(publisher, reader);
    const seen: string[] = [];
    reader.subscribe((u) => seen.push(u.id));
    const answered: string[] = [];
    let refused = 0;
    let stop = false;
    // However the test ends, its publishers stop (a loop left running would keep this process alive).
    t.after(() => {
      stop = true;
    });
    let failoverAt = 0;
    let firstOkAfter = 0;
    const publishing = (async () => {
      for (let i = 0; !stop; i++) {
        try {
          await publisher.dispatch(update(`u${i}`));
          answered.push(`u${i}`);
          if (failoverAt !== 0 && firstOkAfter === 0) firstOkAfter = Date.now();
        } catch (error) {
          assert.ok(error instanceof TransportUnavailableError, String(error));
          refused++;
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      }
    })();
    await until(() => answered.length >= 20, '20 updates answered');
    const before = await group.primaryPort();
    // Refused (NOGOODSLAVE) until the Sentinel sees the replica, restarted by the tests above, healthy again.
    await until(async () => (await askSentinel(group, 'SENTINEL', 'FAILOVER', group.name).catch(() => undefined)) === 'OK', 'the Sentinel to start the failover');
    failoverAt = Date.now();
    await group.failedOver(before, 1);
    const switchedAt = Date.now();
    const atSwitch = answered.length;
    await until(() => answered.length >= atSwitch + 20, '20 updates answered on the new primary');
    stop = true;
    await publishing;
    t.diagnostic(`the Sentinel named the new primary ${switchedAt - failoverAt} ms after SENTINEL FAILOVER, with its replica online; the first publish answered 200 after ${firstOkAfter - failoverAt} ms; ${answered.length} publishes answered 200, ${refused} answered 503`);

    const history = (await reader.history('earliest', () => true)).updates.map((u) => u.id);
    assert.deepEqual(answered.filter((id) => !history.includes(id)), [], 'every update answered 200 is in history');
    await until(() => history.every((id) => seen.includes(id)), 'the listener to get all of history');
    assert.deepEqual(seen.filter((id) => history.includes(id)), history, 'in history order, once');
  });
});

describe('redis+sentinel: a failover of the primary while two hubs publish', () => {
  let group: SentinelGroup;
  before(async () => {
    // Two replicas, so that the new primary still has one to acknowledge publishes (replicas=1).
    group = await startSentinelGroup({ replicas: 2, sentinels: 3, downAfterMs: 1000 });
  });
  after(() => group.stop());

  it('loses no update answered 200; subscribers stay connected and get every one, and a resume on the other hub gets the rest', { timeout: 90_000 }, async (t) => {
    const topic = 'https://example.com/failover';
    const url = `${group.url}?key=test-${randomUUID()}`;
    const hubs: TestHub[] = [await startTestHub(['--transport', url]), await startTestHub(['--transport', url])];
    const subscribers: SseRecorder[] = [];
    after(async () => {
      for (const s of subscribers) s.close();
      await Promise.all(hubs.map((h) => h.close()));
    });
    const [hubA, hubB] = hubs as [TestHub, TestHub];
    const subscribe = async (hub: TestHub, headers: Record<string, string> = {}) => {
      const sub = await openSse(`${hub.hubUrl}?topic=${encodeURIComponent(topic)}`, { authorization: `Bearer ${hub.adminToken}`, ...headers });
      subscribers.push(sub);
      assert.equal(sub.status, 200);
      return sub;
    };
    const live = [await subscribe(hubA), await subscribe(hubB)];
    const early = await subscribe(hubA);

    // One publisher per hub, each publishing its updates one after the other.
    const outcomes = new Map<string, number>();
    const reasons = new Map<string, number>();
    const ok = (prefix: string) => [...outcomes].filter(([id, status]) => id.startsWith(prefix) && status === 200).length;
    let stop = false;
    // However the test ends, its publishers stop (a loop left running would keep this process alive).
    t.after(() => {
      stop = true;
    });
    let killedAt = 0;
    let firstOkAfterKill = 0;
    const publishers = hubs.map(async (hub, n) => {
      for (let i = 0; !stop; i++) {
        const id = `${n === 0 ? 'a' : 'b'}-${i}`;
        const { status, body } = await hub.publish({ topic, id, data: `data ${id}` });
        outcomes.set(id, status);
        if (status !== 200) {
          // Why, without the changing parts (addresses, numbers), for the diagnostic.
          const why = body.replace(/redis\+sentinel:\/\/\S+/g, 'URL').replace(/\d+/g, 'N');
          reasons.set(why, (reasons.get(why) ?? 0) + 1);
        }
        if (status === 200 && killedAt !== 0 && firstOkAfterKill === 0) firstOkAfterKill = Date.now();
        if (status !== 200) await new Promise((resolve) => setTimeout(resolve, 20));
      }
    });

    await until(() => ok('a-') >= 20 && ok('b-') >= 20, '20 updates answered 200 per hub');
    await early.until((r) => r.events.length >= 10, '10 events before the failover');
    const resumeFrom = early.events[9]?.lastEventId as string;
    early.close();

    const old = await group.primary();
    await old.kill();
    killedAt = Date.now();
    const newPort = await group.failedOver(old.port, 1);
    const switchedAt = Date.now();
    const [a0, b0] = [ok('a-'), ok('b-')];
    await until(() => ok('a-') >= a0 + 20 && ok('b-') >= b0 + 20, '20 more updates answered 200 per hub after the failover', 30_000);
    stop = true;
    await Promise.all(publishers);

    const statuses = new Set(outcomes.values());
    assert.deepEqual([...statuses].filter((s) => s !== 200 && s !== 503), [], 'every publish is answered 200 or 503');
    const answered200 = [...outcomes].filter(([, status]) => status === 200).map(([id]) => id);
    const refused = outcomes.size - answered200.length;
    t.diagnostic(`primary ${old.port} killed; Sentinels named ${newPort} after ${switchedAt - killedAt} ms; first 200 after the kill ${firstOkAfterKill - killedAt} ms after it; ${answered200.length} publishes answered 200, ${refused} answered 503: ${[...reasons].map(([why, n]) => `${n} × ${why}`).join('; ')}`);

    // History on the new primary: every update answered 200, once.
    const all = await subscribe(hubB, { 'last-event-id': 'earliest' });
    await all.until((r) => answered200.every((id) => r.events.some((e) => e.lastEventId === id)), 'history to hold every update answered 200');
    const historyIds = all.events.map((e) => e.lastEventId);
    assert.equal(new Set(historyIds).size, historyIds.length, 'no update twice in history');

    for (const [i, sub] of live.entries()) {
      await sub.until((r) => answered200.every((id) => r.events.some((e) => e.lastEventId === id)), `live subscriber ${i} to get every update answered 200`);
      const got = sub.events.map((e) => e.lastEventId);
      assert.equal(new Set(got).size, got.length, `live subscriber ${i}: no update twice`);
      assert.equal(sub.ended, false, `live subscriber ${i} stayed connected through the failover`);
      for (const prefix of ['a-', 'b-']) {
        const mine = got.filter((id) => id.startsWith(prefix)).map((id) => Number(id.slice(2)));
        assert.deepEqual(mine, [...mine].sort((x, y) => x - y), `live subscriber ${i}: ${prefix} updates in publish order`);
      }
    }

    // A client that left before the failover resumes on the other hub from its last event.
    const resumed = await subscribe(hubB, { 'last-event-id': resumeFrom });
    assert.equal(resumed.headers['last-event-id'], resumeFrom, 'its last event is still known');
    const after200 = answered200.filter((id) => historyIds.indexOf(id) > historyIds.indexOf(resumeFrom));
    await resumed.until((r) => after200.every((id) => r.events.some((e) => e.lastEventId === id)), 'the resumed client to get every later update answered 200');
    assert.deepEqual(
      resumed.events.map((e) => e.lastEventId),
      historyIds.slice(historyIds.indexOf(resumeFrom) + 1, historyIds.indexOf(resumeFrom) + 1 + resumed.events.length),
      'the resumed client gets history after its last event, in order, with nothing skipped',
    );
    for (const hub of hubs) assert.equal((await fetch(`${hub.url}/readyz`)).status, 200, 'ready again on the new primary');
  });
});

describe('redis+sentinel: the replica falls behind, then the primary dies', () => {
  let group: SentinelGroup;
  before(async () => {
    group = await startSentinelGroup({ replicas: 1, sentinels: 1, downAfterMs: 1000 });
  });
  after(() => group.stop());

  it('with replicas=0 updates answered 200 are lost in the failover; with replicas=1 (the default) such updates are answered 503', { timeout: 90_000 }, async (t) => {
    const key = `test-${randomUUID()}`;
    const waited = await RedisTransport.connect(`${group.url}?key=${key}-waited`, NO_LIMITS);
    const unwaited = await RedisTransport.connect(`${group.url}?key=${key}-unwaited&replicas=0`, NO_LIMITS);
    after(() => Promise.all([waited.close(), unwaited.close()]));
    await waited.dispatch(update('w-before'));
    await unwaited.dispatch(update('u-before'));

    // A frozen replica reads nothing: what the primary writes waits in the kernel's socket
    // buffers (tens of MB on loopback, delivered later) and past them in the primary's memory,
    // which its death loses. Writing well past those buffers makes the loss certain.
    const replica = group.servers[1] as (typeof group.servers)[number];
    replica.signal('SIGSTOP');
    const big = 'x'.repeat(512 * 1024);
    const answered200: string[] = [];
    for (let i = 0; i < 240; i++) {
      await unwaited.dispatch({ ...update(`u-${i}`), data: big });
      answered200.push(`u-${i}`);
    }
    await assert.rejects(waited.dispatch(update('w-during')), /only 0 of the 1 replica required acknowledged it/);

    const primary = await group.primary();
    await primary.kill();
    replica.signal('SIGCONT');
    await group.failedOver(primary.port, 0);
    await until(() => waited.ready() && unwaited.ready(), 'both transports on the new primary', 30_000);

    const kept = new Set((await unwaited.history('earliest', () => true)).updates.map((u) => u.id));
    const lost = answered200.filter((id) => !kept.has(id));
    t.diagnostic(`replicas=0: ${lost.length} of ${answered200.length} updates answered 200 were lost in the failover`);
    assert.ok(kept.has('u-before'), 'what was replicated before is kept');
    assert.ok(lost.length > 0, 'replicas=0 loses updates the old primary answered 200 for');
    assert.ok((await waited.history('earliest', () => true)).updates.some((u) => u.id === 'w-before'), 'replicas=1: every update answered 200 is kept');
  });
});
