// Subscriptions (SPEC §3, `--subscriptions`): subscription events as private updates on
// /.well-known/mercure/subscriptions/{topic}/{subscriber}, and the API listing active ones.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type TestHub, startTestHub } from '../helpers/hub.js';
import { Cleanups, subscribeUrl } from '../helpers/hub-streams.js';
import { type SseRecorder, openSse } from '../helpers/sse-client.js';

const T = { timeout: 20_000 };
const BASE = '/.well-known/mercure/subscriptions';
const EVENTS = `${BASE}/{topic}/{subscriber}`;
const BOOK = 'https://example.com/books/1';

interface Subscription {
  '@context'?: string;
  id: string;
  type: string;
  topic: string;
  subscriber: string;
  active: boolean;
  payload?: unknown;
  lastEventID?: string;
}

describe('subscriptions', () => {
  const cleanups = new Cleanups();
  after(() => cleanups.run());
  let hub: TestHub;

  before(async () => {
    hub = cleanups.add(await startTestHub(['--subscriptions', '--drain-timeout', '0']), (h) => h.close());
  });

  async function subscribe(topics: string[], token: string, on = hub): Promise<SseRecorder> {
    const sub = cleanups.add(await openSse(subscribeUrl(on.hubUrl, topics), { authorization: `Bearer ${token}` }), (s) => s.close());
    assert.equal(sub.status, 200, sub.text);
    return sub;
  }

  /** The subscription events `watcher` received about subscriptions to `topic`. */
  const about = (watcher: SseRecorder, topic: string): Subscription[] =>
    watcher.events.map((e) => JSON.parse(e.data) as Subscription).filter((s) => s.topic === topic);

  const api = (path: string, token?: string) => fetch(`${hub.url}${path}`, { headers: token === undefined ? {} : { authorization: `Bearer ${token}` } });

  it('publishes an active subscription event when a client subscribes, and an inactive one when it leaves', T, async () => {
    const watcher = await subscribe([EVENTS], await hub.token({ subscribe: [EVENTS] }));
    const reader = await subscribe([BOOK], await hub.token({ subscribe: [], payload: { user: 'alice' } }));
    await watcher.until((w) => about(w, BOOK).length === 1, 'active event');
    const [active] = about(watcher, BOOK);
    assert.ok(active !== undefined);
    assert.match(active.subscriber, /^urn:uuid:/);
    const id = `${BASE}/${encodeURIComponent(BOOK)}/${encodeURIComponent(active.subscriber)}`;
    assert.deepEqual(active, { '@context': 'https://mercure.rocks/', id, type: 'Subscription', topic: BOOK, subscriber: active.subscriber, active: true, payload: { user: 'alice' } });

    reader.close();
    await watcher.until((w) => about(w, BOOK).length === 2, 'inactive event');
    assert.deepEqual(about(watcher, BOOK)[1], { ...active, active: false });
  });

  it('keeps subscription events private: a subscriber whose token does not allow them sees none', T, async () => {
    const nosy = await subscribe([EVENTS, 'https://example.com/marker'], await hub.token({ subscribe: ['https://example.com/other'] }));
    await subscribe(['https://example.com/private-check'], await hub.token({}));
    await hub.publish({ topic: 'https://example.com/marker', id: 'subs-marker' });
    await nosy.until((r) => r.events.some((e) => e.lastEventId === 'subs-marker'), 'marker');
    assert.deepEqual(nosy.events.map((e) => e.lastEventId), ['subs-marker']);
  });

  describe('API', () => {
    const topic = 'https://example.com/api/{id}';
    let readerId: string;

    before(async () => {
      const watcher = await subscribe([EVENTS], await hub.token({ subscribe: [EVENTS] }));
      await subscribe([topic, 'https://example.com/api-other'], await hub.token({ payload: { user: 'bob' } }));
      await watcher.until((w) => about(w, topic).length === 1, 'active event');
      readerId = (about(watcher, topic)[0] as Subscription).subscriber;
    });

    it('lists the active subscriptions of the hub with the last event ID', T, async () => {
      const res = await api(BASE, hub.adminToken);
      assert.equal(res.status, 200);
      assert.match(String(res.headers.get('content-type')), /^application\/ld\+json/);
      const body = (await res.json()) as { '@context': string; id: string; type: string; lastEventID: string; subscriptions: Subscription[] };
      assert.equal(body['@context'], 'https://mercure.rocks/');
      assert.equal(body.id, BASE);
      assert.equal(body.type, 'Subscriptions');
      assert.match(body.lastEventID, /^urn:uuid:/, 'the newest update is a subscription event');
      const mine = body.subscriptions.filter((s) => s.subscriber === readerId);
      assert.deepEqual(mine.map((s) => s.topic).sort(), ['https://example.com/api-other', topic]);
      for (const s of mine) assert.deepEqual({ type: s.type, active: s.active, payload: s.payload }, { type: 'Subscription', active: true, payload: { user: 'bob' } });
      assert.ok(!body.subscriptions.some((s) => s.active !== true), 'only active ones');
    });

    it('filters by topic under /subscriptions/{topic}', T, async () => {
      const res = await api(`${BASE}/${encodeURIComponent(topic)}`, hub.adminToken);
      assert.equal(res.status, 200);
      const body = (await res.json()) as { type: string; subscriptions: Subscription[] };
      assert.equal(body.type, 'Subscriptions');
      assert.deepEqual(body.subscriptions.map((s) => [s.topic, s.subscriber]), [[topic, readerId]]);
    });

    it('returns one subscription under /subscriptions/{topic}/{subscriber}', T, async () => {
      const path = `${BASE}/${encodeURIComponent(topic)}/${encodeURIComponent(readerId)}`;
      const res = await api(path, hub.adminToken);
      assert.equal(res.status, 200);
      const body = (await res.json()) as Subscription;
      assert.deepEqual({ ...body, lastEventID: undefined }, { '@context': 'https://mercure.rocks/', id: path, type: 'Subscription', topic, subscriber: readerId, active: true, payload: { user: 'bob' }, lastEventID: undefined });
      assert.match(String(body.lastEventID), /^urn:uuid:/);
    });

    it('answers 404 for a subscriber that has no such subscription', T, async () => {
      const res = await api(`${BASE}/${encodeURIComponent(topic)}/${encodeURIComponent('urn:uuid:not-connected')}`, hub.adminToken);
      assert.equal(res.status, 404);
    });

    it('answers 401 without a token', T, async () => {
      const res = await api(BASE);
      assert.equal(res.status, 401);
      assert.match(await res.text(), /token/);
    });

    it('answers 403 when the token’s mercure.subscribe does not match the URL', T, async () => {
      const res = await api(BASE, await hub.token({ subscribe: ['https://example.com/{anything}'] }));
      assert.equal(res.status, 403);
      assert.ok((await res.text()).includes(BASE));
    });

    it('answers 200 to a token whose mercure.subscribe matches exactly that URL', T, async () => {
      const path = `${BASE}/${encodeURIComponent(topic)}`;
      const res = await api(path, await hub.token({ subscribe: [path] }));
      assert.equal(res.status, 200);
    });
  });

  it('answers 404 on the API when --subscriptions is off, and publishes no subscription events', T, async () => {
    const off = cleanups.add(await startTestHub(['--drain-timeout', '0']), (h) => h.close());
    const res = await fetch(`${off.url}${BASE}`, { headers: { authorization: `Bearer ${off.adminToken}` } });
    assert.equal(res.status, 404);
    assert.match(await res.text(), /--subscriptions/);
    const watcher = await subscribe([EVENTS, 'm'], off.adminToken, off);
    await subscribe([BOOK], off.adminToken, off);
    await off.publish({ topic: 'm', id: 'off-marker' });
    await watcher.until((w) => w.events.some((e) => e.lastEventId === 'off-marker'), 'marker');
    assert.deepEqual(watcher.events.map((e) => e.lastEventId), ['off-marker']);
  });
});
