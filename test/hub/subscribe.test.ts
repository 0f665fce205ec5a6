// GET /.well-known/mercure (SPEC §3, Mercure draft-07): topic selectors, errors, the stream's
// headers and fields, private updates, heartbeats, the write timeout and slow subscribers.
//
// "Not delivered" is never asserted by waiting: a public marker update is published after the one
// that must not arrive, and once the marker is there, an earlier update would have been too
// (updates reach a stream in publication order).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type TestHub, startTestHub } from '../helpers/hub.js';
import { Cleanups, closedCount, eventually, stalledSubscriber, subscribeUrl } from '../helpers/hub-streams.js';
import { type SseRecorder, openSse } from '../helpers/sse-client.js';

const T = { timeout: 20_000 };
const BOOKS = 'https://example.com/books/{id}';

describe('subscribe', () => {
  const cleanups = new Cleanups();
  after(() => cleanups.run());
  let hub: TestHub;
  let anonymousHub: TestHub;
  let markers = 0;

  async function subscribe(topics: string[], token: string | null = null, on: TestHub = hub): Promise<SseRecorder> {
    const headers: Record<string, string> = token === null ? {} : { authorization: `Bearer ${token}` };
    const sub = cleanups.add(await openSse(subscribeUrl(on.hubUrl, topics), headers), (s) => s.close());
    assert.equal(sub.status, 200, sub.text);
    return sub;
  }

  /** Publishes a public update on `topic` and waits until `sub` has it: everything published before has arrived by then. */
  async function marker(sub: SseRecorder, topic: string, on: TestHub = hub): Promise<void> {
    const id = `marker-${++markers}`;
    assert.equal((await on.publish({ topic, id, data: 'marker' })).status, 200);
    await sub.until((r) => r.events.some((e) => e.lastEventId === id), `marker ${id}`);
  }

  /** IDs of the events received, markers left out. */
  const ids = (sub: SseRecorder) => sub.events.map((e) => e.lastEventId).filter((id) => !id.startsWith('marker-'));

  before(async () => {
    hub = cleanups.add(await startTestHub(['--drain-timeout', '0']), (h) => h.close());
    anonymousHub = cleanups.add(await startTestHub(['--drain-timeout', '0', '--anonymous']), (h) => h.close());
  });

  describe('topic selectors', () => {
    it('an exact selector matches only the identical topic', T, async () => {
      const sub = await subscribe(['https://example.com/books/1'], hub.adminToken);
      await hub.publish({ topic: 'https://example.com/books/10', id: 'exact-10' });
      await hub.publish({ topic: 'https://example.com/books/1/', id: 'exact-slash' });
      await hub.publish({ topic: 'https://example.com/books/1', id: 'exact-1' });
      await marker(sub, 'https://example.com/books/1');
      assert.deepEqual(ids(sub), ['exact-1']);
    });

    it('`*` matches every topic', T, async () => {
      const sub = await subscribe(['*'], hub.adminToken);
      await hub.publish({ topic: 'https://example.com/a', id: 'star-a' });
      await hub.publish({ topic: 'urn:something:else', id: 'star-urn' });
      await sub.events_(2);
      assert.deepEqual(ids(sub).slice(0, 2), ['star-a', 'star-urn']);
    });

    it('a `{id}` template matches one path segment: /books/1 but not /books/1/reviews', T, async () => {
      const sub = await subscribe([BOOKS], hub.adminToken);
      await hub.publish({ topic: 'https://example.com/books/1/reviews', id: 'tpl-reviews' });
      await hub.publish({ topic: 'https://example.com/authors/1', id: 'tpl-author' });
      await hub.publish({ topic: 'https://example.com/books/1', id: 'tpl-1' });
      await marker(sub, 'https://example.com/books/99');
      assert.deepEqual(ids(sub), ['tpl-1']);
    });

    it('a `{+path}` template matches reserved characters, slashes included', T, async () => {
      const sub = await subscribe(['https://example.com/files/{+path}'], hub.adminToken);
      await hub.publish({ topic: 'https://example.com/other/a/b', id: 'plus-other' });
      await hub.publish({ topic: 'https://example.com/files/a/b/c.txt', id: 'plus-deep' });
      await marker(sub, 'https://example.com/files/m');
      assert.deepEqual(ids(sub), ['plus-deep']);
    });

    it('a `{?q}` template matches the bare path and the path with a query, nothing else', T, async () => {
      const sub = await subscribe(['https://example.com/search{?q}'], hub.adminToken);
      await hub.publish({ topic: 'https://example.com/search', id: 'q-bare' });
      await hub.publish({ topic: 'https://example.com/search?q=sse', id: 'q-query' });
      await hub.publish({ topic: 'https://example.com/searchx', id: 'q-suffix' });
      await hub.publish({ topic: 'https://example.com/search/sse', id: 'q-path' });
      await marker(sub, 'https://example.com/search?q=marker');
      assert.deepEqual(ids(sub), ['q-bare', 'q-query']);
    });

    it('several `topic` parameters are a union, and an update matching two of them is delivered once', T, async () => {
      const sub = await subscribe(['https://example.com/books/1', BOOKS, 'https://example.com/authors/7'], hub.adminToken);
      await hub.publish({ topic: 'https://example.com/books/1', id: 'union-both' });
      await hub.publish({ topic: 'https://example.com/authors/7', id: 'union-author' });
      await hub.publish({ topic: ['https://example.com/authors/7', 'https://example.com/books/2'], id: 'union-alternate' });
      await hub.publish({ topic: 'https://example.com/magazines/1', id: 'union-none' });
      await marker(sub, 'https://example.com/books/3');
      assert.deepEqual(ids(sub), ['union-both', 'union-author', 'union-alternate']);
    });
  });

  describe('refused subscriptions', () => {
    it('answers 400 without a topic parameter', T, async () => {
      const res = await fetch(hub.hubUrl, { headers: { authorization: `Bearer ${hub.adminToken}` } });
      assert.equal(res.status, 400);
      assert.match(await res.text(), /"topic"/);
    });

    it('accepts 1000 topics and answers 400 to 1001, saying how many were sent', T, async () => {
      const topics = Array.from({ length: 1001 }, (_, i) => String(i));
      const ok = await subscribe(topics.slice(0, 1000), hub.adminToken);
      assert.equal(ok.status, 200);
      const res = await fetch(subscribeUrl(hub.hubUrl, topics), { headers: { authorization: `Bearer ${hub.adminToken}` } });
      assert.equal(res.status, 400);
      assert.match(await res.text(), /at most 1000 topics, got 1001/);
    });

    it('answers 400 to a malformed template, naming the selector', T, async () => {
      const bad = 'https://example.com/books/{id';
      const res = await fetch(subscribeUrl(hub.hubUrl, ['https://example.com/ok', bad]), { headers: { authorization: `Bearer ${hub.adminToken}` } });
      assert.equal(res.status, 400);
      assert.ok((await res.text()).includes(`"${bad}"`));
    });
  });

  describe('the stream', () => {
    it('is sent with the event-stream type, no caching, and no proxy buffering', T, async () => {
      const sub = await subscribe(['x'], hub.adminToken);
      assert.match(String(sub.headers['content-type']), /^text\/event-stream(;|$)/);
      const directives = String(sub.headers['cache-control']).split(',').map((d) => d.trim());
      for (const d of ['private', 'no-cache', 'no-store', 'must-revalidate', 'max-age=0']) assert.ok(directives.includes(d), `cache-control lacks ${d}: ${directives.join(', ')}`);
      assert.equal(sub.headers['x-accel-buffering'], 'no');
      assert.equal(sub.headers['x-content-type-options'], 'nosniff');
      assert.equal(sub.headers['content-encoding'], undefined);
    });

    it('starts its body with a comment', T, async () => {
      const sub = await subscribe(['x'], hub.adminToken);
      await sub.until((r) => r.text.length > 0, 'first bytes');
      assert.equal(sub.text[0], ':');
    });

    it('carries `event:`, `retry:`, `id:` and `data:` as published, multi-line data included', T, async () => {
      const sub = await subscribe(['https://example.com/fields'], hub.adminToken);
      await hub.publish({ topic: 'https://example.com/fields', id: 'fields-1', type: 'book-updated', retry: '7000', data: 'line one\nline two' });
      await sub.events_(1);
      assert.deepEqual(sub.events[0], { type: 'book-updated', data: 'line one\nline two', lastEventId: 'fields-1' });
      assert.ok(sub.text.includes('event: book-updated\nretry: 7000\nid: fields-1\ndata: line one\ndata: line two\n\n'), sub.text);
      assert.equal(sub.retries.at(-1), 7000);
    });
  });

  describe('private updates', () => {
    const claimOnly = 'https://example.com/secret/1';

    it('are not delivered when the token allows the topic but the query does not select it', T, async () => {
      const token = await hub.token({ subscribe: [claimOnly] });
      const sub = await subscribe(['https://example.com/public'], token);
      await hub.publish({ topic: claimOnly, id: 'priv-claim-only', private: 'on' });
      await marker(sub, 'https://example.com/public');
      assert.deepEqual(ids(sub), []);
    });

    it('are not delivered when the query selects the topic but the token does not allow it', T, async () => {
      const token = await hub.token({ subscribe: ['https://example.com/secret/2'] });
      const sub = await subscribe(['https://example.com/secret/{n}'], token);
      await hub.publish({ topic: 'https://example.com/secret/3', id: 'priv-query-only', private: 'on' });
      await hub.publish({ topic: 'https://example.com/secret/3', id: 'pub-query-only' });
      await marker(sub, 'https://example.com/secret/0');
      assert.deepEqual(ids(sub), ['pub-query-only']);
    });

    it('are delivered when both the query and the token match', T, async () => {
      const token = await hub.token({ subscribe: ['https://example.com/secret/{n}'] });
      const sub = await subscribe(['https://example.com/secret/4'], token);
      await hub.publish({ topic: 'https://example.com/secret/4', id: 'priv-both', private: 'on', data: 'for you' });
      await marker(sub, 'https://example.com/secret/4');
      assert.deepEqual(ids(sub), ['priv-both']);
    });

    it('never reach an anonymous subscriber, even with `*`', T, async () => {
      const sub = await subscribe(['*'], null, anonymousHub);
      await anonymousHub.publish({ topic: 'https://example.com/secret/5', id: 'priv-anon', private: 'on' });
      await anonymousHub.publish({ topic: 'https://example.com/secret/5', id: 'pub-anon' });
      await marker(sub, 'https://example.com/m', anonymousHub);
      assert.deepEqual(ids(sub), ['pub-anon']);
    });
  });

  describe('heartbeats', () => {
    it('are sent as comments with --heartbeat 100ms, and not at all with --heartbeat 0', T, async () => {
      const beating = cleanups.add(await startTestHub(['--heartbeat', '100ms', '--drain-timeout', '0']), (h) => h.close());
      const silent = cleanups.add(await startTestHub(['--heartbeat', '0', '--drain-timeout', '0']), (h) => h.close());
      const quiet = await subscribe(['x'], silent.adminToken, silent);
      const sub = await subscribe(['x'], beating.adminToken, beating);
      await sub.until((r) => r.comments.length >= 4, 'three heartbeats after the opening comment');
      // Three intervals have passed while `quiet` was open: it still has only its opening comment.
      assert.equal(quiet.comments.length, 1, `comments: ${JSON.stringify(quiet.comments)}`);
      assert.equal(sub.events.length, 0, 'heartbeats are comments, not events');
    });
  });

  describe('write timeout', () => {
    it('ends the stream after 80–100 % of --write-timeout with a retry hint, counted as `lifetime`', T, async () => {
      const short = cleanups.add(await startTestHub(['--write-timeout', '1s', '--drain-timeout', '0']), (h) => h.close());
      const started = performance.now();
      const sub = await subscribe(['x'], short.adminToken, short);
      const retriesAtOpen = sub.retries.length;
      await short.publish({ topic: 'x', id: 'before-end', data: 'complete' });
      await sub.done;
      const elapsed = performance.now() - started;
      // Only a lower bound: timers never fire early, but a loaded machine may fire them late.
      assert.ok(elapsed >= 800, `ended after ${elapsed.toFixed(0)} ms`);
      assert.ok(sub.retries.length > retriesAtOpen, 'a retry hint before the end');
      assert.match(sub.text, /id: before-end\ndata: complete\n\nretry: \d+\n\n?$/);
      await eventually(async () => (await closedCount(short.url, 'lifetime')) === 1);
    });
  });

  describe('slow subscribers', () => {
    it('a subscriber that stops reading is dropped as `slow-consumer` while another keeps receiving', T, async () => {
      const big = cleanups.add(await startTestHub(['--max-body', '4mb', '--history-size', '10', '--drain-timeout', '0']), (h) => h.close());
      const fast = await subscribe(['big'], big.adminToken, big);
      cleanups.add(await stalledSubscriber(subscribeUrl(big.hubUrl, ['big']), { authorization: `Bearer ${big.adminToken}` }), (s) => s.destroy());
      await eventually(() => big.hub.streams.size === 2);

      const data = 'y'.repeat(64 * 1024);
      let sent = 0;
      // 64 KiB a time: the socket buffers and then the stream's bounded queue fill within a few hundred.
      for (; sent < 2000 && (await closedCount(big.url, 'slow-consumer')) === 0; sent++) {
        assert.equal((await big.publish({ topic: 'big', id: `big-${sent}`, data })).status, 200);
        await fast.events_(sent + 1);
      }
      assert.ok(sent < 2000, 'the stalled subscriber was never dropped');
      assert.equal(await closedCount(big.url, 'slow-consumer'), 1);

      await big.publish({ topic: 'big', id: 'after-drop', data: 'still here' });
      await fast.until((r) => r.events.at(-1)?.lastEventId === 'after-drop', 'the update after the drop');
      assert.equal(fast.events.length, sent + 1);
      assert.ok(!fast.ended);
      assert.equal(big.hub.streams.size, 1);
    });
  });
});
