// The nats:// transport (src/hub/transports/nats/) against a real nats-server with JetStream,
// started here on a free loopback port: what only it does (its URL settings, several nodes on one
// stream with atomic duplicate detection and trimming, a server that loses its state, outages of
// the server and of one node's connection, two hubs sharing a stream). The Transport contract it
// shares with the others is test/hub/transport-contract.test.ts.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { connect as natsConnect } from 'nats';
import { DuplicateIdError, TransportUnavailableError } from '../../src/hub/errors.js';
import type { HistoryLimits, Transport } from '../../src/hub/transports/index.js';
import { NatsTransport, parseNatsUrl, reconnectDelay } from '../../src/hub/transports/nats/index.js';
import type { Update } from '../../src/hub/core/update.js';
import { startTestHub } from '../helpers/hub.js';
import { type NatsServer, startNatsServer } from '../helpers/nats-server.js';
import { openSse } from '../helpers/sse-client.js';
import { startTcpProxy } from '../helpers/tcp-proxy.js';

const T = { timeout: 20_000 };
const NO_LIMITS: HistoryLimits = { size: 100_000, ttl: 0 };

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

/** Waits for `check` to hold; fails naming `what` well before the test's own timeout. */
async function until(check: () => boolean | Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

let streams = 0;
/** A URL naming a stream of its own, so that tests do not see each other's updates. */
function freshStream(server: NatsServer, options = ''): string {
  const n = ++streams;
  return `${server.url}?stream=T${n}&subject=t${n}${options}`;
}

/** Connects transports and closes them after the current suite. */
function opener() {
  const opened: Transport[] = [];
  after(() => Promise.all(opened.map((t) => t.close())));
  return async (url: string, limits: HistoryLimits = NO_LIMITS) => {
    const t = await NatsTransport.connect(url, limits);
    opened.push(t);
    return t;
  };
}

describe('nats transport settings', () => {
  it('reads the server, the stream, the subject prefix and the timeouts from the URL, with defaults', () => {
    assert.deepEqual(parseNatsUrl('nats://10.0.0.6'), { servers: '10.0.0.6:4222', stream: 'SSEHUB', prefix: 'ssehub', timeout: 2000, replicas: 1, heartbeat: 1000 });
    assert.deepEqual(parseNatsUrl('nats://h:4333?stream=EVENTS&subject=app.sse&timeout=500&replicas=3&heartbeat=250'), {
      servers: 'h:4333',
      stream: 'EVENTS',
      prefix: 'app.sse',
      timeout: 500,
      replicas: 3,
      heartbeat: 250,
    });
  });

  it('takes a user and password, or a token, from the URL', () => {
    assert.deepEqual([parseNatsUrl('nats://ann:p%40ss@h').user, parseNatsUrl('nats://ann:p%40ss@h').pass], ['ann', 'p@ss']);
    assert.equal(parseNatsUrl('nats://s3cret@h').token, 's3cret');
  });

  it('refuses an unknown option or a bad value, naming it', () => {
    assert.throws(() => parseNatsUrl('nats://h?strem=X'), /unknown option "strem"/);
    assert.throws(() => parseNatsUrl('nats://h?stream=a.b'), /stream "a\.b"/);
    assert.throws(() => parseNatsUrl('nats://h?subject=a.*'), /subject "a\.\*"/);
    assert.throws(() => parseNatsUrl('nats://h?timeout=0'), /timeout "0"/);
    assert.throws(() => parseNatsUrl('nats://h?heartbeat=10'), /heartbeat "10"/);
  });

  it('waits longer between reconnect attempts the longer the outage lasts, from 100 ms up to 2 s', () => {
    let now = 1_000_000;
    const delay = reconnectDelay(() => now, () => 0.5);
    const waits: number[] = [];
    for (let i = 0; i < 6; i++) {
      waits.push(delay());
      now += waits.at(-1) as number;
    }
    assert.deepEqual(waits, [100, 100, 100, 150, 225, 338]);
    for (let i = 0; i < 20; i++) now += delay();
    assert.equal(delay(), 2000);
  });

  it('starts over at 100 ms for an outage that begins long after the previous one', () => {
    let now = 1_000_000;
    const delay = reconnectDelay(() => now, () => 0.5);
    now += 10_000;
    delay();
    now += 60_000;
    assert.equal(delay(), 100);
  });

  it('spreads reconnect delays by a quarter either way, so that many nodes do not reconnect in step', () => {
    const low = reconnectDelay(() => 0, () => 0);
    const high = reconnectDelay(() => 0, () => 1);
    assert.deepEqual([low(), high()], [75, 125]);
  });
});

describe('nats transport start', () => {
  it('fails to start, saying where, when no server listens', T, async () => {
    const closed = await startNatsServer();
    await closed.close();
    await assert.rejects(NatsTransport.connect(closed.url, NO_LIMITS), new RegExp(`cannot connect to 127\\.0\\.0\\.1:${closed.port}`));
  });
});

describe('nats transport with several nodes on one stream', () => {
  let server: NatsServer;
  before(async () => {
    server = await startNatsServer();
  });
  after(() => server.close());
  const connect = opener();

  it('delivers every update to every node once, in the same order, with the same seq', T, async () => {
    const url = freshStream(server);
    const [a, b] = [await connect(url), await connect(url)] as [Transport, Transport];
    const seenA: Update[] = [];
    const seenB: Update[] = [];
    a.subscribe((u) => seenA.push(u));
    b.subscribe((u) => seenB.push(u));
    const sent = Array.from({ length: 20 }, (_, i) => update(`n${i}`));
    await Promise.all(sent.map((u, i) => (i % 2 === 0 ? a : b).dispatch(u)));
    // A last one, after which nothing else may arrive: the counts below then show exactly-once.
    const last = update('last');
    await a.dispatch(last);
    await until(() => seenB.at(-1)?.id === 'last', 'node B to receive the last update');
    assert.equal(seenA.at(-1)?.id, 'last');
    const order = (seen: Update[]) => seen.map((u) => `${u.id}@${u.seq}`);
    assert.deepEqual(order(seenA), order(seenB));
    assert.equal(seenA.length, 21);
    assert.deepEqual(new Set(ids(seenA)), new Set([...ids(sent), 'last']));
    const seqs = seenA.map((u) => u.seq as bigint);
    assert.ok(seqs.every((s, i) => i === 0 || s > (seqs[i - 1] as bigint)), `seqs: ${seqs.join(', ')}`);
    for (const u of [...sent, last]) assert.equal(seenA.find((x) => x.id === u.id)?.seq, u.seq, `seq of ${u.id}`);
  });

  for (const size of [12, 150]) {
    it(`never answers found with a gap while another node trims the history being read (${size} kept)`, T, async () => {
      const url = freshStream(server);
      const writer = await connect(url, { size, ttl: 0 });
      const reader = await connect(url, { size, ttl: 0 });
      let stop = false;
      const writing = (async () => {
        for (let n = 0; !stop; n++) await writer.dispatch(update(`w${n}`));
      })();
      const outcomes = { found: 0, unknown: 0 };
      try {
        await until(async () => (await reader.history('earliest', all)).updates.length === size, 'the history to fill up');
        for (let round = 0; round < 40; round++) {
          // An ID near the old end: the writer trims it, or what follows it, at any moment.
          // 'earliest' returns what is left when each message is read: with the writer trimming,
          // that can be fewer than asked for (even none), which is right for 'earliest'.
          const { updates } = await reader.history('earliest', all);
          const from = updates[Math.min(round % 4, updates.length - 1)];
          if (from === undefined) continue;
          const result = await reader.history(from.id, all);
          if (!result.found) {
            outcomes.unknown++;
            continue;
          }
          outcomes.found++;
          const seqs = result.updates.map((u) => u.seq as bigint);
          const expected = Array.from({ length: Number(result.head - (from.seq as bigint)) }, (_, i) => (from.seq as bigint) + BigInt(i) + 1n);
          assert.deepEqual(seqs, expected, `round ${round}: a resume from ${from.id} (seq ${from.seq}) must get every update up to head ${result.head}`);
        }
      } finally {
        stop = true;
        await writing;
      }
      assert.ok(outcomes.found > 0, `no resume found its ID: ${JSON.stringify(outcomes)}`);
    });
  }

  it('reads history on one node from an ID published on another', T, async () => {
    const url = freshStream(server);
    const [a, b] = [await connect(url), await connect(url)] as [Transport, Transport];
    const sent = await dispatchAll(a, ['x1', 'x2', 'x3']);
    const result = await b.history('x1', all);
    assert.equal(result.found, true);
    assert.deepEqual(ids(result.updates), ['x2', 'x3']);
    assert.equal(result.head, sent[2]?.seq);
  });

  it('lets exactly one of two nodes store an ID that both publish at the same time', T, async () => {
    const url = freshStream(server);
    const [a, b] = [await connect(url), await connect(url)] as [Transport, Transport];
    for (let i = 0; i < 20; i++) {
      const results = await Promise.allSettled([a.dispatch(update(`same${i}`, { data: 'from a' })), b.dispatch(update(`same${i}`, { data: 'from b' }))]);
      const failed = results.filter((r) => r.status === 'rejected');
      assert.equal(failed.length, 1, `round ${i}: ${results.map((r) => r.status).join(', ')}`);
      assert.ok((failed[0] as PromiseRejectedResult).reason instanceof DuplicateIdError, `round ${i}: ${(failed[0] as PromiseRejectedResult).reason}`);
    }
    const stored = await b.history('earliest', all);
    assert.deepEqual(ids(stored.updates), Array.from({ length: 20 }, (_, i) => `same${i}`));
  });
});

describe('nats transport when the server loses its state', () => {
  let server: NatsServer;
  before(async () => {
    server = await startNatsServer();
  });
  after(() => server.close());
  const connect = opener();
  /** Runs `work` with a JetStream manager of its own, as an operator would. */
  async function asOperator(work: (jsm: Awaited<ReturnType<Awaited<ReturnType<typeof natsConnect>>['jetstreamManager']>>) => Promise<unknown>) {
    const nc = await natsConnect({ servers: `127.0.0.1:${server.port}` });
    try {
      await work(await nc.jetstreamManager());
    } finally {
      await nc.close();
    }
  }

  it('recreates its live consumer when the server drops it, and misses nothing', T, async () => {
    const t = await connect(`${server.url}?stream=DROPPED&subject=dropped&heartbeat=200`);
    const seen: string[] = [];
    t.subscribe((u) => seen.push(u.id));
    await dispatchAll(t, ['d1']);
    await asOperator(async (jsm) => {
      for await (const consumer of jsm.consumers.list('DROPPED')) await jsm.consumers.delete('DROPPED', consumer.name);
    });
    await dispatchAll(t, ['d2', 'd3']);
    await until(() => seen.includes('d3'), 'd3 through a new consumer');
    assert.deepEqual(seen, ['d1', 'd2', 'd3']);
  });

  it('declares its stream again when it was deleted, and delivers the new stream from its start', T, async () => {
    const t = await connect(`${server.url}?stream=DELETED&subject=deleted`);
    const seen: string[] = [];
    t.subscribe((u) => seen.push(u.id));
    await dispatchAll(t, ['old-1', 'old-2', 'old-3']);
    await asOperator((jsm) => jsm.streams.delete('DELETED'));
    // The new stream numbers from 1 again: sequences this node saw before must not hide it.
    await until(async () => {
      try {
        await t.dispatch(update('new-1'));
        return true;
      } catch (error) {
        assert.ok(error instanceof TransportUnavailableError, String(error));
        return false;
      }
    }, 'a publish to succeed on the declared stream');
    assert.equal(t.ready(), true);
    await until(() => seen.includes('new-1'), 'new-1 to be delivered');
    assert.deepEqual(seen, ['old-1', 'old-2', 'old-3', 'new-1']);
    const history = await t.history('earliest', all);
    assert.deepEqual(ids(history.updates), ['new-1']);
  });
});

describe('nats transport during outages', () => {
  let server: NatsServer;
  before(async () => {
    server = await startNatsServer();
  });
  after(() => server.close());
  const connect = opener();

  it('fails fast and is not ready while the server is down, then recovers with its history and live updates', T, async () => {
    // A long request timeout: failing fast must come from knowing the connection is down.
    const url = `${server.url}?stream=OUTAGE&subject=outage&timeout=10000`;
    const [a, b] = [await connect(url), await connect(url)] as [Transport, Transport];
    const seenB: string[] = [];
    b.subscribe((u) => seenB.push(u.id));
    await dispatchAll(a, ['before-1', 'before-2']);

    await server.stop('SIGKILL');
    await until(() => !a.ready() && !b.ready(), 'both nodes to see the server gone');
    const started = Date.now();
    await assert.rejects(a.dispatch(update('during')), TransportUnavailableError);
    await assert.rejects(b.history('before-1', all), TransportUnavailableError);
    const elapsed = Date.now() - started;
    assert.ok(elapsed < 1000, `rejected after ${elapsed} ms, not at once`);

    await server.start();
    await until(() => a.ready() && b.ready(), 'both nodes to reconnect');
    await a.dispatch(update('after-1'));
    await until(() => seenB.includes('after-1'), 'node B to receive an update published after the recovery');
    assert.deepEqual(seenB, ['before-1', 'before-2', 'after-1']);
    const kept = await b.history('before-1', all);
    assert.equal(kept.found, true);
    assert.deepEqual(ids(kept.updates), ['before-2', 'after-1']);
  });

  it('fails a publish in flight as soon as the connection drops, not at its timeout', T, async () => {
    const proxy = await startTcpProxy(server.port);
    after(() => proxy.close());
    const t = await connect(`nats://127.0.0.1:${proxy.port}?stream=INFLIGHT&subject=inflight&timeout=10000`);
    proxy.stall('both');
    const pending = t.dispatch(update('in-flight'));
    const outcome = pending.then(() => 'stored', (error: Error) => error);
    proxy.drop();
    const started = Date.now();
    const result = await outcome;
    assert.ok(result instanceof TransportUnavailableError, String(result));
    assert.ok(Date.now() - started < 1000, `failed after ${Date.now() - started} ms`);
    proxy.resume();
  });

  it('resumes a node that was cut off while others published from the last update it delivered: none lost, none twice', T, async () => {
    const proxy = await startTcpProxy(server.port);
    after(() => proxy.close());
    const options = '?stream=RESUME&subject=resume';
    const a = await connect(`nats://127.0.0.1:${proxy.port}${options}`);
    const b = await connect(`${server.url}${options}`);
    const seenA: string[] = [];
    a.subscribe((u) => seenA.push(u.id));
    await dispatchAll(b, ['r1']);
    await until(() => seenA.includes('r1'), 'node A to receive r1');

    proxy.stall('both');
    proxy.drop();
    await until(() => !a.ready(), 'node A to see its connection gone');
    // A restart of the server also ends node A's consumer, so nothing can be pushed to A from
    // where it was: A must ask for what follows the last update it delivered.
    await server.stop();
    await server.start();
    await until(() => b.ready(), 'node B to reconnect');
    await dispatchAll(b, ['r2', 'r3', 'r4']);
    proxy.resume();
    await until(() => a.ready(), 'node A to reconnect');
    await dispatchAll(b, ['r5']);
    await until(() => seenA.includes('r5'), 'node A to receive r5');
    assert.deepEqual(seenA, ['r1', 'r2', 'r3', 'r4', 'r5']);
  });
});

describe('two hubs on one nats stream', () => {
  let server: NatsServer;
  before(async () => {
    server = await startNatsServer();
  });
  after(() => server.close());

  it('delivers an update published on one hub to a subscriber of the other, and resumes there from the first hub’s ID', T, async () => {
    const url = freshStream(server);
    const hubA = await startTestHub(['--transport', url]);
    after(() => hubA.close());
    const hubB = await startTestHub(['--transport', url]);
    after(() => hubB.close());
    const topic = 'https://example.com/books/1';
    const subscribeUrl = `${hubB.hubUrl}?topic=${encodeURIComponent(topic)}`;
    const auth = { authorization: `Bearer ${hubB.adminToken}` };

    const live = await openSse(subscribeUrl, auth);
    after(() => live.close());
    assert.equal(live.status, 200);
    const first = await hubA.publish({ topic, data: 'one' });
    assert.equal(first.status, 200);
    await live.events_(1);
    assert.deepEqual(live.events[0], { type: 'message', data: 'one', lastEventId: first.body });
    live.close();

    assert.equal((await hubA.publish({ topic, data: 'two' })).status, 200);
    assert.equal((await hubA.publish({ topic, data: 'three' })).status, 200);
    const resumed = await openSse(subscribeUrl, { ...auth, 'last-event-id': first.body });
    after(() => resumed.close());
    await resumed.events_(2);
    assert.equal(resumed.headers['last-event-id'], first.body);
    assert.deepEqual(resumed.events.map((e) => e.data), ['two', 'three']);
  });
});
