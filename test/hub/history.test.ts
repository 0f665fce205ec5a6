// Reconnecting (SPEC §3 "Reconnect"): where the last ID comes from, what is replayed, the
// `Last-Event-ID` response header, the resync signal when history cannot cover a resume, history
// joined to live updates with neither gap nor duplicate, and history across a restart.
//
// Every "exactly these events" check ends with a marker update published after the fact: once
// the marker has arrived, anything replayed twice or late would have arrived before it.
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { Verifier } from '../../src/hub/core/tokens.js';
import { handleRequest } from '../../src/hub/mercure/routes.js';
import { Hub, type HistoryResult, MemoryTransport, type Transport, type Update, loadConfig } from '../../src/hub/index.js';
import { HUB_PATH, TEST_KEY, type TestHub, startTestHub, tempDb } from '../helpers/hub.js';
import { Cleanups, subscribeUrl } from '../helpers/hub-streams.js';
import { type SseRecorder, openSse } from '../helpers/sse-client.js';

const T = { timeout: 20_000 };
const RESYNC = 'ssehub-resync';

/**
 * A memory transport whose history reads take time, as they do over a network (Redis, NATS):
 * live updates dispatched before the read are both buffered for the subscriber and part of the
 * read (the hub must not send them twice); those dispatched after the read but before its answer
 * are only in the buffer (the hub must not lose them).
 */
class LateHistoryTransport implements Transport {
  #inner = new MemoryTransport({ size: 100_000, ttl: 0 });
  dispatch = (u: Update) => this.#inner.dispatch(u);
  subscribe = (listener: (u: Update) => void) => this.#inner.subscribe(listener);
  lastId = () => this.#inner.lastId();
  ready = () => this.#inner.ready();
  close = () => this.#inner.close();
  async history(lastEventId: string, filter: (u: Update) => boolean): Promise<HistoryResult> {
    const pause = () => new Promise((r) => setTimeout(r, 5 + Math.random() * 15));
    await pause();
    const result = await this.#inner.history(lastEventId, filter);
    await pause();
    return result;
  }
}

/** A hub over `transport`, wired as `startHub` wires it (which always builds its own transport). */
async function startHubOn(transport: Transport, base: TestHub): Promise<TestHub> {
  const config = loadConfig({ argv: ['--jwt-key', TEST_KEY, '--listen', '127.0.0.1:0', '--transport', 'memory', '--drain-timeout', '0'] });
  const hub = new Hub(config, transport, pino({ level: 'silent' }));
  const verifier = new Verifier('publisher', { key: TEST_KEY, alg: 'HS256' });
  const ctx = { hub, publisherVerifier: verifier, subscriberVerifier: new Verifier('subscriber', { key: TEST_KEY, alg: 'HS256' }), rateLimiter: undefined, answered: new WeakSet<object>() };
  const server = createServer((req, res) => handleRequest(ctx, req, res));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const hubUrl = `${url}${HUB_PATH}`;
  return {
    ...base,
    hub,
    server,
    url,
    hubUrl,
    close: async () => {
      server.close();
      await hub.shutdown();
      server.closeAllConnections();
    },
    async publish(fields, token = base.adminToken) {
      const form = new URLSearchParams();
      for (const [k, v] of Object.entries(fields as Record<string, string>)) form.append(k, v);
      const res = await fetch(hubUrl, { method: 'POST', body: form.toString(), headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Bearer ${token}` } });
      return { status: res.status, body: await res.text(), headers: res.headers };
    },
  };
}

describe('history and resume', () => {
  const cleanups = new Cleanups();
  after(() => cleanups.run());
  let hub: TestHub;
  let markers = 0;

  before(async () => {
    hub = cleanups.add(await startTestHub(['--drain-timeout', '0']), (h) => h.close());
  });

  async function subscribe(on: TestHub, topics: string[], headers: Record<string, string> = {}, query: Record<string, string> = {}, token = on.adminToken): Promise<SseRecorder> {
    const sub = cleanups.add(await openSse(subscribeUrl(on.hubUrl, topics, query), { authorization: `Bearer ${token}`, ...headers }), (s) => s.close());
    assert.equal(sub.status, 200, sub.text);
    return sub;
  }

  async function publishAll(on: TestHub, topic: string, ids: string[]): Promise<void> {
    for (const id of ids) assert.equal((await on.publish({ topic, id, data: `data of ${id}` })).status, 200);
  }

  /** Publishes a marker on `topic`, waits for it, and returns every ID received before it. */
  async function receivedBeforeMarker(on: TestHub, sub: SseRecorder, topic: string): Promise<string[]> {
    const id = `marker-${++markers}`;
    assert.equal((await on.publish({ topic, id })).status, 200);
    await sub.until((r) => r.events.some((e) => e.lastEventId === id), `marker ${id}`);
    const ids = sub.events.map((e) => e.lastEventId);
    return ids.slice(0, ids.indexOf(id));
  }

  const range = (prefix: string, from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => `${prefix}${from + i}`);

  it('resumes after the ID in the `Last-Event-ID` header and echoes it in the response header', T, async () => {
    await publishAll(hub, 'h', range('h', 1, 4));
    const sub = await subscribe(hub, ['h'], { 'last-event-id': 'h2' });
    assert.equal(sub.headers['last-event-id'], 'h2');
    assert.deepEqual(await receivedBeforeMarker(hub, sub, 'h'), ['h3', 'h4']);
  });

  it('resumes after the ID in the `lastEventID` query parameter', T, async () => {
    await publishAll(hub, 'q', range('q', 1, 3));
    const sub = await subscribe(hub, ['q'], {}, { lastEventID: 'q1' });
    assert.equal(sub.headers['last-event-id'], 'q1');
    assert.deepEqual(await receivedBeforeMarker(hub, sub, 'q'), ['q2', 'q3']);
  });

  it('prefers the header to the query parameter when both are given', T, async () => {
    await publishAll(hub, 'hq', range('hq', 1, 4));
    const sub = await subscribe(hub, ['hq'], { 'last-event-id': 'hq3' }, { lastEventID: 'hq1' });
    assert.equal(sub.headers['last-event-id'], 'hq3');
    assert.deepEqual(await receivedBeforeMarker(hub, sub, 'hq'), ['hq4']);
  });

  it('replays all history for `earliest`, answering `Last-Event-ID: earliest`', T, async () => {
    await publishAll(hub, 'e', range('e', 1, 3));
    const sub = await subscribe(hub, ['e'], { 'last-event-id': 'earliest' });
    assert.equal(sub.headers['last-event-id'], 'earliest');
    assert.deepEqual(await receivedBeforeMarker(hub, sub, 'e'), ['e1', 'e2', 'e3']);
    assert.ok(!sub.events.some((e) => e.type === RESYNC), '`earliest` is not a gap');
  });

  it('sends no `Last-Event-ID` response header and no history when none was requested', T, async () => {
    await publishAll(hub, 'n', range('n', 1, 2));
    const sub = await subscribe(hub, ['n']);
    assert.equal(sub.headers['last-event-id'], undefined);
    assert.deepEqual(await receivedBeforeMarker(hub, sub, 'n'), []);
  });

  it('signals an unknown ID with `Last-Event-ID: earliest`, a resync event first, then the retained history', T, async () => {
    await publishAll(hub, 'u', range('u', 1, 2));
    const sub = await subscribe(hub, ['u'], { 'last-event-id': 'never-published' });
    assert.equal(sub.headers['last-event-id'], 'earliest');
    const ids = await receivedBeforeMarker(hub, sub, 'u');
    const first = sub.events[0];
    assert.equal(first?.type, RESYNC);
    assert.deepEqual(JSON.parse(first.data), { lastEventId: 'never-published', reason: 'unknown-id' });
    assert.deepEqual(ids.slice(1), ['u1', 'u2']);
  });

  it('signals a resync for an ID trimmed out of history (--history-size 3), then replays what is kept', T, async () => {
    const small = cleanups.add(await startTestHub(['--history-size', '3', '--drain-timeout', '0']), (h) => h.close());
    await publishAll(small, 't', range('t', 1, 10));
    const sub = await subscribe(small, ['t'], { 'last-event-id': 't2' });
    assert.equal(sub.headers['last-event-id'], 'earliest');
    const ids = await receivedBeforeMarker(small, sub, 't');
    assert.equal(sub.events[0]?.type, RESYNC);
    assert.deepEqual(JSON.parse(sub.events[0].data), { lastEventId: 't2', reason: 'unknown-id' });
    assert.deepEqual(ids.slice(1), ['t8', 't9', 't10']);
  });

  it('replays only the updates matching the subscriber’s selectors and private rules', T, async () => {
    const topic = (n: number) => `https://example.com/replay/${n}`;
    await hub.publish({ topic: topic(0), id: 'r-start' });
    await hub.publish({ topic: topic(1), id: 'r-public' });
    await hub.publish({ topic: 'https://example.com/elsewhere', id: 'r-other-topic' });
    await hub.publish({ topic: topic(2), id: 'r-private-allowed', private: 'on' });
    await hub.publish({ topic: topic(3), id: 'r-private-refused', private: 'on' });
    const token = await hub.token({ subscribe: [topic(2)] });
    const sub = await subscribe(hub, ['https://example.com/replay/{n}'], { 'last-event-id': 'r-start' }, {}, token);
    assert.deepEqual(await receivedBeforeMarker(hub, sub, topic(9)), ['r-public', 'r-private-allowed']);
  });

  /** 500 updates published one after the other while subscribers resume at earlier points: each gets exactly the updates after its point, once, in order. */
  async function race(on: TestHub, topic: string): Promise<void> {
    const n = 500;
    const plan = [
      { connectAfter: 100, from: 100 },
      { connectAfter: 200, from: 200 },
      { connectAfter: 300, from: 300 },
      { connectAfter: 300, from: 150 },
      { connectAfter: 400, from: 399 },
      { connectAfter: 450, from: 10 },
    ];
    const connecting: Promise<{ from: number; sub: SseRecorder }>[] = [];
    for (let i = 1; i <= n; i++) {
      assert.equal((await on.publish({ topic, id: `${topic}-${i}`, data: String(i) })).status, 200);
      // Not awaited: the subscriber connects and replays while publishing goes on.
      for (const p of plan) if (p.connectAfter === i) connecting.push(subscribe(on, [topic], { 'last-event-id': `${topic}-${p.from}` }).then((sub) => ({ from: p.from, sub })));
    }
    const subs = await Promise.all(connecting);
    for (const { from, sub } of subs) await sub.events_(n - from);
    assert.equal((await on.publish({ topic, id: `${topic}-end` })).status, 200);
    for (const { from, sub } of subs) {
      await sub.until((r) => r.events.some((e) => e.lastEventId === `${topic}-end`), `${topic}-end`);
      assert.equal(sub.headers['last-event-id'], `${topic}-${from}`);
      assert.deepEqual(sub.events.map((e) => e.lastEventId), [...range(`${topic}-`, from + 1, n), `${topic}-end`], `resumed from ${topic}-${from}`);
    }
  }

  it('joins history and live updates with neither gap nor duplicate while 500 updates are published', T, async () => {
    await race(hub, 'race');
  });

  it('joins them with neither gap nor duplicate when history is read while live updates keep arriving', T, async () => {
    const late = cleanups.add(await startHubOn(new LateHistoryTransport(), hub), (h) => h.close());
    await race(late, 'late');
  });

  describe('across a restart', () => {
    /** Publishes s1..s5, records the ID a live subscriber saw third, restarts the hub on `flags`, publishes s6, s7. */
    async function restart(flags: string[]): Promise<{ hub: TestHub; lastSeen: string }> {
      const first = await startTestHub([...flags, '--drain-timeout', '0']);
      const live = await openSse(subscribeUrl(first.hubUrl, ['s']), { authorization: `Bearer ${first.adminToken}` });
      await publishAll(first, 's', range('s', 1, 5));
      await live.events_(3);
      const lastSeen = (live.events[2] as { lastEventId: string }).lastEventId;
      live.close();
      await first.close();
      const second = cleanups.add(await startTestHub([...flags, '--drain-timeout', '0']), (h) => h.close());
      await publishAll(second, 's', range('s', 6, 7));
      return { hub: second, lastSeen };
    }

    it('on sqlite, resumes from an ID stored before the restart and receives exactly what was missed', T, async () => {
      const { hub: second, lastSeen } = await restart(['--transport', `sqlite:${tempDb()}`]);
      assert.equal(lastSeen, 's3');
      const sub = await subscribe(second, ['s'], { 'last-event-id': lastSeen });
      assert.equal(sub.headers['last-event-id'], 's3');
      assert.deepEqual(await receivedBeforeMarker(second, sub, 's'), ['s4', 's5', 's6', 's7']);
    });

    it('on memory, history is lost: the resume gets the resync signal and only what came after the restart', T, async () => {
      const { hub: second, lastSeen } = await restart(['--transport', 'memory']);
      const sub = await subscribe(second, ['s'], { 'last-event-id': lastSeen });
      assert.equal(sub.headers['last-event-id'], 'earliest');
      const ids = await receivedBeforeMarker(second, sub, 's');
      assert.equal(sub.events[0]?.type, RESYNC);
      assert.deepEqual(ids.slice(1), ['s6', 's7']);
    });
  });
});
