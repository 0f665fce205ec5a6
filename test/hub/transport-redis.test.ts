// The Redis Streams transport against a real redis-server started for this file: what only it
// does (its URL options, its ID index, several nodes on one stream, outages, two hubs sharing one
// Redis). The Transport contract it shares with the others is test/hub/transport-contract.test.ts.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { type AddressInfo, createServer } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { DuplicateIdError, TransportUnavailableError } from '../../src/hub/errors.js';
import type { HistoryLimits, Transport } from '../../src/hub/transports/index.js';
import { RedisTransport } from '../../src/hub/transports/redis/index.js';
import type { Update } from '../../src/hub/core/update.js';
import { startTestHub } from '../helpers/hub.js';
import { type RedisServer, startRedisServer } from '../helpers/redis-server.js';
import { openSse } from '../helpers/sse-client.js';
import { freePort } from '../helpers/ports.js';
import { startTcpProxy } from '../helpers/tcp-proxy.js';

const T = { timeout: 20_000 };
const NO_LIMITS: HistoryLimits = { size: 100_000, ttl: 0 };
/** What "fails fast" means for a publish while Redis is unreachable: the hub answers 503 at once, not after a queue or a retry. */
const FAST_MS = 500;

function update(id: string, fields: Partial<Update> = {}): Update {
  return { id, topics: [`https://example.com/${id}`], data: `data of ${id}`, private: false, ...fields };
}

const all = () => true;
const ids = (updates: Update[]) => updates.map((u) => u.id);

async function dispatchAll(transport: Transport, names: string[]): Promise<Update[]> {
  const out: Update[] = [];
  for (const name of names) {
    const u = update(name);
    await transport.dispatch(u);
    out.push(u);
  }
  return out;
}

/** Polls `check` (a safety-net deadline, not an assertion on time). */
async function until(check: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Like `until`, for a check that has to ask something over the network. */
async function untilAsync(check: () => Promise<boolean>, what: string, ms = 10_000): Promise<void> {
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

let server: RedisServer;
const opened: Transport[] = [];
before(async () => {
  server = await startRedisServer();
});
after(async () => {
  await Promise.all(opened.map((t) => t.close()));
  await server.stop();
});

/** A transport on the file's server; each call without `key` gets a fresh stream. */
async function open(limits: HistoryLimits = NO_LIMITS, options: { key?: string; query?: string; url?: string } = {}): Promise<Transport> {
  const key = options.key ?? `test-${randomUUID()}`;
  const t = await RedisTransport.connect(`${options.url ?? server.url}/?key=${key}${options.query ?? ''}`, limits);
  opened.push(t);
  return t;
}

describe('redis transport: its ID index', () => {
  it('forgets the IDs it trims, so the ID index stays as small as the stream', T, async () => {
    const key = `test-${randomUUID()}`;
    const t = await open({ size: 2, ttl: 0 }, { key });
    await dispatchAll(t, ['u1', 'u2', 'u3', 'u4', 'u5']);
    await dispatchAll(t, ['u1']);
    const admin = new Redis(server.port, '127.0.0.1');
    after(() => admin.disconnect());
    assert.equal(await admin.hlen(`{${key}}:ids`), 2);
    assert.equal(await admin.xlen(`{${key}}:updates`), 2);
  });
});

describe('redis transport: URL options', () => {
  it('takes maxlen and maxage from the URL over the hub limits', T, async () => {
    const t = await open({ size: 100, ttl: 0 }, { query: '&maxlen=2&maxage=1h' });
    await dispatchAll(t, ['a', 'b', 'c']);
    assert.deepEqual(ids((await t.history('earliest', all)).updates), ['b', 'c']);
  });

  it('keeps no history with maxlen=0 but still delivers live updates', T, async () => {
    const t = await open({ size: 100, ttl: 0 }, { query: '&maxlen=0' });
    const seen = record(t);
    await dispatchAll(t, ['a', 'b']);
    assert.deepEqual(ids(seen), ['a', 'b']);
    assert.deepEqual(await t.history('a', all), { updates: [], found: false, head: 0n });
    assert.equal(await t.lastId(), undefined);
  });

  it('refuses an unknown option, naming it', T, async () => {
    await assert.rejects(RedisTransport.connect(`${server.url}/?stream=x`, NO_LIMITS), /unknown option "stream"/);
  });

  it('fails to connect, with the address in the message, when nothing listens there', T, async () => {
    const proxy = await startTcpProxy(server.port);
    const port = proxy.port;
    await proxy.close();
    await assert.rejects(RedisTransport.connect(`redis://127.0.0.1:${port}`, NO_LIMITS), new RegExp(`cannot connect to redis://127\\.0\\.0\\.1:${port}`));
  });
});

describe('redis transport: two nodes on one stream', () => {
  it('gives both nodes every update from either node, in one order with the same seq', T, async () => {
    const key = `test-${randomUUID()}`;
    const a = await open(NO_LIMITS, { key });
    const b = await open(NO_LIMITS, { key });
    const seenA = record(a);
    const seenB = record(b);
    const sent: Update[] = [];
    await Promise.all(
      [a, b].map(async (node, n) => {
        for (let i = 0; i < 20; i++) {
          const u = update(`n${n}-${i}`);
          await node.dispatch(u);
          sent.push(u);
        }
      }),
    );
    await until(() => seenA.length === 40 && seenB.length === 40, 'both nodes saw 40 updates');
    assert.deepEqual(ids(seenA), ids(seenB));
    assert.deepEqual(seenA.map((u) => u.seq), seenB.map((u) => u.seq));
    const bySeq = [...sent].sort((x, y) => ((x.seq as bigint) < (y.seq as bigint) ? -1 : 1));
    assert.deepEqual(ids(seenA), ids(bySeq), 'listeners see the updates in seq order');
    for (const n of [0, 1]) {
      const mine = ids(seenA).filter((id) => id.startsWith(`n${n}-`));
      assert.deepEqual(mine, Array.from({ length: 20 }, (_, i) => `n${n}-${i}`), `node ${n}'s updates in its publish order`);
    }
  });

  it('finds on node B the ID of an update published on node A', T, async () => {
    const key = `test-${randomUUID()}`;
    const a = await open(NO_LIMITS, { key });
    const b = await open(NO_LIMITS, { key });
    const sent = await dispatchAll(a, ['a1', 'a2', 'a3']);
    const result = await b.history('a1', all);
    assert.equal(result.found, true);
    assert.deepEqual(ids(result.updates), ['a2', 'a3']);
    assert.equal(result.head, sent[2]?.seq);
    assert.equal(await b.lastId(), 'a3');
  });

  it('lets exactly one of two nodes publishing the same ID at once succeed', T, async () => {
    const key = `test-${randomUUID()}`;
    const a = await open(NO_LIMITS, { key });
    const b = await open(NO_LIMITS, { key });
    const names = Array.from({ length: 30 }, (_, i) => `same-${i}`);
    const outcomes = await Promise.all(names.map((name) => Promise.allSettled([a.dispatch(update(name, { data: 'from a' })), b.dispatch(update(name, { data: 'from b' }))])));
    for (const [i, pair] of outcomes.entries()) {
      assert.equal(pair.filter((o) => o.status === 'fulfilled').length, 1, `${names[i]}: one success`);
      const failure = pair.find((o) => o.status === 'rejected');
      assert.ok(failure?.reason instanceof DuplicateIdError, `${names[i]}: the other gets DuplicateIdError, got ${failure?.reason}`);
    }
    const stored = ids((await a.history('earliest', all)).updates);
    assert.deepEqual([...stored].sort(), [...names].sort());
  });

  it('makes an ID trimmed by node A unknown on node B', T, async () => {
    const key = `test-${randomUUID()}`;
    const a = await open({ size: 2, ttl: 0 }, { key });
    const b = await open({ size: 2, ttl: 0 }, { key });
    await dispatchAll(a, ['t1', 't2', 't3']);
    const result = await b.history('t1', all);
    assert.equal(result.found, false);
    assert.deepEqual(ids(result.updates), ['t2', 't3']);
  });
});

describe('redis transport: a start that fails says what failed', () => {
  it('names a refused connection', T, async () => {
    const port = await freePort();
    await assert.rejects(RedisTransport.connect(`redis://127.0.0.1:${port}`, NO_LIMITS), (error: Error) => {
      assert.equal(error.message, `cannot connect to redis://127.0.0.1:${port}: connection refused by 127.0.0.1:${port} (is redis-server running there, on that port?)`);
      return true;
    });
  });

  it('names an authentication failure', T, async () => {
    await assert.rejects(RedisTransport.connect(`redis://nobody:wrong@127.0.0.1:${server.port}`, NO_LIMITS), (error: Error) => {
      assert.match(error.message, new RegExp(`^cannot connect to redis://127\\.0\\.0\\.1:${server.port}: authentication failed: WRONGPASS`));
      assert.doesNotMatch(error.message, /wrong/, 'the password is not repeated');
      return true;
    });
  });

  it('names a server that accepts the connection and never answers', T, async () => {
    const silent = createServer((socket) => socket.resume());
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    after(() => silent.close());
    const { port } = silent.address() as AddressInfo;
    await assert.rejects(RedisTransport.connect(`redis://127.0.0.1:${port}?timeout=200ms`, NO_LIMITS), (error: Error) => {
      assert.match(error.message, /accepted the connection but did not answer within 400 ms/);
      return true;
    });
    await assert.rejects(RedisTransport.connect(`rediss://127.0.0.1:${port}?timeout=200ms`, NO_LIMITS), (error: Error) => {
      assert.match(error.message, /timed out after 1000 ms .*rediss:\/\/, for a server without TLS/);
      return true;
    });
  });
});

describe('redis transport: outages', () => {
  it('while cut off, a node is not ready and refuses publishes at once; reconnected, its listeners get what other nodes published meanwhile, once', T, async () => {
    const key = `test-${randomUUID()}`;
    const proxy = await startTcpProxy(server.port);
    after(() => proxy.close());
    const a = await open(NO_LIMITS, { key, url: `redis://127.0.0.1:${proxy.port}` });
    const b = await open(NO_LIMITS, { key });
    const seenA = record(a);
    const seenB = record(b);
    await dispatchAll(b, ['before']);
    await until(() => seenA.length === 1, 'node A saw "before"');

    // Every connection of node A is reset, and new ones get no answer until the path heals.
    proxy.stall('both');
    proxy.drop();
    await until(() => !a.ready(), 'node A not ready');
    const started = Date.now();
    await assert.rejects(a.dispatch(update('refused')), TransportUnavailableError);
    assert.ok(Date.now() - started < FAST_MS, `rejected after ${Date.now() - started} ms`);
    await dispatchAll(b, ['during1', 'during2']);
    assert.equal(a.ready(), false);

    proxy.resume();
    await until(() => a.ready(), 'node A ready again');
    await until(() => seenA.length >= 3, 'node A caught up');
    await dispatchAll(a, ['after']);
    await until(() => seenB.length === 4, 'node B saw "after"');
    assert.deepEqual(ids(seenA), ['before', 'during1', 'during2', 'after']);
    assert.deepEqual(seenA.map((u) => u.seq), seenB.map((u) => u.seq));
  });

  it('counts an answer that came during a long turn of the event loop (a starved process), instead of timing the command out', T, async () => {
    const t = await open(NO_LIMITS, { query: '&timeout=200ms' });
    await dispatchAll(t, ['first']);
    for (const id of ['during-a-long-turn', 'and-another']) {
      const published = t.dispatch(update(id));
      const read = t.history('first', all);
      // Redis answers within a millisecond; the process only looks after 3 timeouts (and past the socket timeout).
      const until = Date.now() + 600;
      while (Date.now() < until);
      await published;
      assert.ok((await read).found);
    }
    assert.equal(t.ready(), true);
    assert.deepEqual(ids((await t.history('first', all)).updates), ['during-a-long-turn', 'and-another']);
  });

  it('rejects a publish over a connection that silently stopped answering within its timeout, and turns not ready', T, async () => {
    const proxy = await startTcpProxy(server.port);
    after(() => proxy.close());
    const t = await open(NO_LIMITS, { url: `redis://127.0.0.1:${proxy.port}`, query: '&timeout=200ms' });
    await dispatchAll(t, ['ok']);
    proxy.stall('both');
    const started = Date.now();
    await assert.rejects(t.dispatch(update('lost')), TransportUnavailableError);
    const elapsed = Date.now() - started;
    assert.ok(elapsed >= 150 && elapsed < 200 + FAST_MS, `rejected after ${elapsed} ms with a 200 ms timeout`);
    await until(() => !t.ready(), 'not ready once the silent connection is given up');
  });

  describe('redis-server killed and restarted', () => {
    let outage: RedisServer;
    before(async () => {
      outage = await startRedisServer();
    });
    after(() => outage.stop());

    it('refuses publishes fast while Redis is down, then delivers and keeps everything once it is back', T, async () => {
      const key = `test-${randomUUID()}`;
      const a = await open(NO_LIMITS, { key, url: outage.url });
      const b = await open(NO_LIMITS, { key, url: outage.url });
      const seenA = record(a);
      const seenB = record(b);
      await dispatchAll(a, ['before1', 'before2']);
      await until(() => seenB.length === 2, 'node B saw the updates before the outage');

      await outage.kill();
      await until(() => !a.ready() && !b.ready(), 'both nodes not ready');
      for (const node of [a, b]) {
        const started = Date.now();
        await assert.rejects(node.dispatch(update('during')), TransportUnavailableError);
        assert.ok(Date.now() - started < FAST_MS, `rejected after ${Date.now() - started} ms`);
        await assert.rejects(node.history('before1', all), TransportUnavailableError);
      }

      await outage.start();
      await until(() => a.ready() && b.ready(), 'both nodes ready again');
      await dispatchAll(b, ['after']);
      await until(() => seenA.length === 3, 'node A saw "after"');
      assert.deepEqual(ids(seenA), ['before1', 'before2', 'after']);
      assert.deepEqual(ids(seenB), ['before1', 'before2', 'after']);
      assert.deepEqual(seenA.map((u) => u.seq), seenB.map((u) => u.seq));

      const resumed = await a.history('before1', all);
      assert.equal(resumed.found, true, 'an ID stored before the outage is still known');
      assert.deepEqual(ids(resumed.updates), ['before2', 'after']);
      await assert.rejects(b.dispatch(update('before2')), DuplicateIdError);
    });

    it('makes a hub fail /readyz and answer publishes 503 while Redis is down; its subscribers stay connected and get what is published once it is back', T, async () => {
      const hub = await startTestHub(['--transport', `${outage.url}/?key=test-${randomUUID()}`]);
      after(() => hub.close());
      const readyz = async () => (await fetch(`${hub.url}/readyz`)).status;
      const topic = 'https://example.com/outage';
      const sub = await openSse(`${hub.hubUrl}?topic=${encodeURIComponent(topic)}`, { authorization: `Bearer ${hub.adminToken}` });
      after(() => sub.close());
      assert.equal((await hub.publish({ topic, data: 'd', id: 'h1' })).status, 200);
      await sub.events_(1);

      await outage.kill();
      await untilAsync(async () => (await readyz()) === 503, '/readyz answers 503');
      assert.equal((await hub.publish({ topic, data: 'd', id: 'h2' })).status, 503);

      await outage.start();
      await untilAsync(async () => (await readyz()) === 200, '/readyz answers 200 again');
      assert.equal((await hub.publish({ topic, data: 'd', id: 'h3' })).status, 200);
      await sub.events_(2);
      assert.deepEqual(sub.events.map((e) => e.lastEventId), ['h1', 'h3']);
      assert.equal(sub.ended, false, 'the subscriber stayed connected through the outage');
    });
  });
});

describe('two hubs on one redis', () => {
  const topic = 'https://example.com/books/1';
  const subscribe = (hubUrl: string, token: string, headers: Record<string, string> = {}) =>
    openSse(`${hubUrl}?topic=${encodeURIComponent(topic)}`, { authorization: `Bearer ${token}`, ...headers });

  it('delivers an update published on hub A to a subscriber of hub B', T, async () => {
    const url = `${server.url}/?key=test-${randomUUID()}`;
    const hubA = await startTestHub(['--transport', url]);
    after(() => hubA.close());
    const hubB = await startTestHub(['--transport', url]);
    after(() => hubB.close());
    const sub = await subscribe(hubB.hubUrl, hubB.adminToken);
    after(() => sub.close());
    assert.equal(sub.status, 200);
    const res = await hubA.publish({ topic, data: 'hello', id: 'h1' });
    assert.equal(res.status, 200);
    await sub.events_(1);
    assert.deepEqual(sub.events, [{ type: 'message', data: 'hello', lastEventId: 'h1' }]);
  });

  it('resumes on hub B from a Last-Event-ID given by hub A, with nothing missed or repeated', T, async () => {
    const url = `${server.url}/?key=test-${randomUUID()}`;
    const hubA = await startTestHub(['--transport', url]);
    after(() => hubA.close());
    const hubB = await startTestHub(['--transport', url]);
    after(() => hubB.close());
    const first = await subscribe(hubA.hubUrl, hubA.adminToken);
    after(() => first.close());
    for (const id of ['r1', 'r2', 'r3']) assert.equal((await hubA.publish({ topic, data: `data ${id}`, id })).status, 200);
    await first.events_(3);
    const lastSeen = first.events[0]?.lastEventId as string;
    assert.equal(lastSeen, 'r1');
    first.close();

    const resumed = await subscribe(hubB.hubUrl, hubB.adminToken, { 'last-event-id': lastSeen });
    after(() => resumed.close());
    assert.equal(resumed.status, 200);
    assert.equal(resumed.headers['last-event-id'], 'r1');
    await resumed.events_(2);
    assert.equal((await hubA.publish({ topic, data: 'data r4', id: 'r4' })).status, 200);
    await resumed.events_(3);
    assert.deepEqual(resumed.events.map((e) => e.lastEventId), ['r2', 'r3', 'r4']);
  });
});
