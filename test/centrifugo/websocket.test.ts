// The Centrifugo client protocol over WebSocket, driven by the real SDK (`centrifuge` from npm, with
// `ws`) and, for what the SDK would not do, by a raw WebSocket: the same topics, history and tokens
// as the Mercure front-end.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Centrifuge } from 'centrifuge';
import { type RawClient, rawClient, record, sdkClient, states } from '../helpers/centrifuge.js';
import { type TestHub, startTestHub, tempDb } from '../helpers/hub.js';
import { closedCount, eventually } from '../helpers/hub-streams.js';
import { freePort } from '../helpers/ports.js';
import { type SseRecorder, openSse } from '../helpers/sse-client.js';
import { startTcpProxy } from '../helpers/tcp-proxy.js';
import { makeCertificate } from '../helpers/tls.js';
import WebSocket from 'ws';

const T = { timeout: 30_000 };
const topic = (name: string) => `https://example.com/ws/${name}`;

describe('Centrifugo over WebSocket, with the real SDK', () => {
  let hub: TestHub;
  const clients: Centrifuge[] = [];
  const streams: SseRecorder[] = [];
  const raws: RawClient[] = [];
  before(async () => {
    hub = await startTestHub(['--anonymous', '--centrifugo-join-leave', '--centrifugo-max-subscriptions', '3']);
  });
  after(async () => {
    for (const c of clients) c.disconnect();
    for (const s of streams) s.close();
    for (const r of raws) r.close();
    await hub.close();
  });
  const client = (options: Parameters<typeof sdkClient>[2] = {}) => {
    const c = sdkClient(hub.url, 'websocket', options);
    clients.push(c);
    return c;
  };
  const token = (claims: Parameters<TestHub['token']>[0]) => hub.token(claims);

  it('delivers an update published the Mercure way: JSON data as it is, text as a string, the offset, and the update ID and type in tags', T, async () => {
    const c = client({ token: await token({ subscribe: ['*'] }) });
    const sub = c.newSubscription(topic('mercure-to-sdk'));
    const seen = record(sub);
    sub.subscribe();
    c.connect();
    await sub.ready(10_000);
    assert.equal((await hub.publish({ topic: topic('mercure-to-sdk'), data: '{"temperature":21.5}', id: 'urn:ws:json', type: 'reading' })).status, 200);
    assert.equal((await hub.publish({ topic: topic('mercure-to-sdk'), data: 'plain text' })).status, 200);
    await seen.until(() => seen.publications.length === 2, 'two publications');
    const [json, text] = seen.publications;
    assert.deepEqual(json?.data, { temperature: 21.5 });
    assert.deepEqual(json?.tags, { id: 'urn:ws:json', type: 'reading' });
    assert.equal(text?.data, 'plain text');
    assert.ok(typeof json?.offset === 'number' && typeof text?.offset === 'number' && text.offset > json.offset, 'increasing offsets');
  });

  it('turns an SDK publication into an update an EventSource receives: its JSON text as data, under the ID the SDK sees', T, async () => {
    const sse = await openSse(`${hub.hubUrl}?topic=${encodeURIComponent(topic('sdk-to-sse'))}`);
    streams.push(sse);
    const c = client({ token: await token({ publish: [topic('sdk-to-sse')], subscribe: ['*'] }) });
    const sub = c.newSubscription(topic('sdk-to-sse'));
    const seen = record(sub);
    sub.subscribe();
    c.connect();
    await sub.ready(10_000);
    await sub.publish({ message: 'hello from the SDK', n: 1 });
    await sse.events_(1);
    await seen.until(() => seen.publications.length === 1, 'its own publication');
    const event = sse.events[0];
    assert.deepEqual(JSON.parse(event?.data ?? ''), { message: 'hello from the SDK', n: 1 });
    assert.equal(event?.lastEventId, seen.publications[0]?.tags?.id, 'one ID for both protocols');
  });

  it('lets a token receive the private updates its mercure.subscribe allows, and none otherwise', T, async () => {
    const allowed = client({ token: await token({ subscribe: [topic('private')] }) });
    const other = client({ token: await token({ subscribe: [topic('something-else')] }) });
    const anonymous = client();
    const seen = [allowed, other, anonymous].map((c) => {
      const sub = c.newSubscription(topic('private'));
      const r = record(sub);
      sub.subscribe();
      c.connect();
      return { sub, r };
    });
    for (const { sub } of seen) await sub.ready(10_000);
    assert.equal((await hub.publish({ topic: topic('private'), data: 'secret', private: 'on' })).status, 200);
    assert.equal((await hub.publish({ topic: topic('private'), data: 'public' })).status, 200);
    for (const { r } of seen) await r.until(() => r.publications.some((p) => p.data === 'public'), 'the public update');
    assert.deepEqual(seen[0]?.r.publications.map((p) => p.data), ['secret', 'public']);
    assert.deepEqual(seen[1]?.r.publications.map((p) => p.data), ['public']);
    assert.deepEqual(seen[2]?.r.publications.map((p) => p.data), ['public']);
  });

  it('refuses a publication the token does not allow with 103, and stores nothing', T, async () => {
    const c = client({ token: await token({ publish: [topic('allowed')], subscribe: ['*'] }) });
    c.connect();
    await c.ready(10_000);
    await assert.rejects(c.publish(topic('not-allowed'), { x: 1 }), (error: { code: number }) => error.code === 103);
    const anonymous = client();
    anonymous.connect();
    await anonymous.ready(10_000);
    await assert.rejects(anonymous.publish(topic('allowed'), { x: 1 }), (error: { code: number }) => error.code === 103);
    assert.deepEqual((await c.history(topic('not-allowed'), { limit: -1 })).publications, []);
    assert.deepEqual((await c.history(topic('allowed'), { limit: -1 })).publications, []);
  });

  it('answers history: the position alone by default, publications with a limit, newest first with reverse, after a position with since', T, async () => {
    const name = topic('history');
    for (const n of [1, 2, 3]) assert.equal((await hub.publish({ topic: name, data: JSON.stringify({ n }) })).status, 200);
    const c = client({ token: await token({ subscribe: ['*'] }) });
    c.connect();
    await c.ready(10_000);
    const position = await c.history(name);
    assert.deepEqual(position.publications, []);
    assert.ok(position.offset > 0 && position.epoch !== '');
    const all = await c.history(name, { limit: -1 });
    assert.deepEqual(all.publications.map((p) => p.data), [{ n: 1 }, { n: 2 }, { n: 3 }]);
    assert.deepEqual((await c.history(name, { limit: 2, reverse: true })).publications.map((p) => p.data), [{ n: 3 }, { n: 2 }]);
    const since = await c.history(name, { limit: -1, since: { offset: all.publications[0]?.offset as number, epoch: all.epoch } });
    assert.deepEqual(since.publications.map((p) => p.data), [{ n: 2 }, { n: 3 }]);
    await assert.rejects(c.history(name, { limit: -1, since: { offset: 1, epoch: 'another-epoch' } }), (error: { code: number }) => error.code === 112);
  });

  it('answers presence and presence stats for the whole channel (SSE subscribers too), to a token allowed to read it', T, async () => {
    const name = topic('presence');
    const sse = await openSse(`${hub.hubUrl}?topic=${encodeURIComponent(name)}`, { authorization: `Bearer ${await token({ subscribe: [name], subject: 'sse-user' })}` });
    streams.push(sse);
    const c = client({ token: await token({ subscribe: [name], subject: 'alice', payload: { role: 'admin' } }) });
    const sub = c.newSubscription(name);
    sub.subscribe();
    c.connect();
    await sub.ready(10_000);
    const presence = await sub.presence();
    const users = Object.values(presence.clients).map((info) => info.user).sort();
    assert.deepEqual(users, ['alice', 'sse-user']);
    const alice = Object.values(presence.clients).find((info) => info.user === 'alice');
    assert.deepEqual(alice?.connInfo, { role: 'admin' });
    assert.deepEqual(await sub.presenceStats(), { numClients: 2, numUsers: 2 });
    const stranger = client({ token: await token({ subscribe: [topic('elsewhere')] }) });
    stranger.connect();
    await stranger.ready(10_000);
    await assert.rejects(stranger.presence(name), (error: { code: number }) => error.code === 103);
  });

  it('pushes join and leave to the clients that asked, for subscribers of any protocol', T, async () => {
    const name = topic('join-leave');
    const c = client({ token: await token({ subscribe: ['*'] }) });
    const sub = c.newSubscription(name, { joinLeave: true });
    const joins: string[] = [];
    const leaves: string[] = [];
    sub.on('join', (ctx) => joins.push(ctx.info.user));
    sub.on('leave', (ctx) => leaves.push(ctx.info.user));
    sub.subscribe();
    c.connect();
    await sub.ready(10_000);
    const sse = await openSse(`${hub.hubUrl}?topic=${encodeURIComponent(name)}`, { authorization: `Bearer ${await token({ subject: 'bob' })}` });
    await eventually(() => joins.includes('bob'));
    sse.close();
    await eventually(() => leaves.includes('bob'));
  });

  it('stops the publications of a channel the client unsubscribed, and goes on with its others', T, async () => {
    const c = client({ token: await token({ subscribe: ['*'] }) });
    const a = c.newSubscription(topic('unsub-a'));
    const b = c.newSubscription(topic('unsub-b'));
    const seenA = record(a);
    const seenB = record(b);
    a.subscribe();
    b.subscribe();
    c.connect();
    await a.ready(10_000);
    await b.ready(10_000);
    a.unsubscribe();
    await eventually(async () => (await (await fetch(`${hub.url}/metrics`)).text()).includes('ssehub_centrifugo_commands_total{method="unsubscribe"}'));
    assert.equal((await hub.publish({ topic: topic('unsub-a'), data: 'a' })).status, 200);
    assert.equal((await hub.publish({ topic: topic('unsub-b'), data: 'b' })).status, 200);
    await seenB.until(() => seenB.publications.length === 1, 'b');
    assert.equal(c.state, 'connected');
    assert.deepEqual(seenA.publications, []);
  });

  it('limits the channels of one connection (106 past --centrifugo-max-subscriptions)', T, async () => {
    const c = client({ token: await token({ subscribe: ['*'] }) });
    c.connect();
    const subs = [1, 2, 3, 4].map((n) => c.newSubscription(topic(`limit-${n}`)));
    const unsubscribed: number[] = [];
    for (const s of subs) {
      s.on('unsubscribed', (ctx) => unsubscribed.push(ctx.code));
      s.subscribe();
    }
    for (const s of subs.slice(0, 3)) await s.ready(10_000);
    await eventually(() => unsubscribed.length === 1);
    assert.deepEqual(unsubscribed, [106], 'the fourth is refused for good (106 is not temporary)');
    assert.equal(c.state, 'connected');
  });

  it('pings with {} and keeps a client that answers with {}; the SDK answers by itself', T, async () => {
    const pinged = await startTestHub(['--anonymous', '--centrifugo-ping', '500ms']);
    try {
      const raw = await rawClient(pinged.url);
      raws.push(raw);
      raw.ws.on('message', (data: Buffer) => {
        if (data.toString() === '{}') raw.send('{}');
      });
      raw.send('{"id":1,"connect":{}}');
      const connect = await raw.reply((r) => r.id === 1, 'the connect reply');
      assert.deepEqual({ ping: (connect.connect as Record<string, unknown>).ping, pong: (connect.connect as Record<string, unknown>).pong }, { ping: 1, pong: true });
      await raw.reply((r) => Object.keys(r).length === 0 && raw.replies.filter((x) => Object.keys(x).length === 0).length >= 3, 'three pings');
      assert.equal(raw.ws.readyState, raw.ws.OPEN);
    } finally {
      await pinged.close();
    }
  });

  it('disconnects a client that leaves a ping unanswered until the next one (3012, no pong)', T, async () => {
    const pinged = await startTestHub(['--anonymous', '--centrifugo-ping', '500ms']);
    try {
      const raw = await rawClient(pinged.url);
      raws.push(raw);
      raw.send('{"id":1,"connect":{}}');
      assert.deepEqual(await raw.closed, { code: 3012, reason: 'no pong' });
      assert.equal(await closedCount(pinged.url, 'no-pong'), 1);
    } finally {
      await pinged.close();
    }
  });

  it('answers an expired connection token 109, a bad one with 3500, and a missing one 101 when anonymous clients are not allowed', T, async () => {
    const strict = await startTestHub([]);
    try {
      const expired = await rawClient(strict.url);
      raws.push(expired);
      expired.send(`{"id":1,"connect":{"token":"${await strict.token({ subscribe: ['*'], expiresIn: -60_000 })}"}}`);
      assert.equal(((await expired.reply((r) => r.id === 1, 'reply')).error as { code: number }).code, 109);
      const forged = await rawClient(strict.url);
      raws.push(forged);
      forged.send('{"id":1,"connect":{"token":"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"}}');
      assert.equal((await forged.closed).code, 3500);
      const none = await rawClient(strict.url);
      raws.push(none);
      none.send('{"id":1,"connect":{}}');
      assert.equal(((await none.reply((r) => r.id === 1, 'reply')).error as { code: number }).code, 101);
      assert.equal((await none.closed).code, 3500);
    } finally {
      await strict.close();
    }
  });

  it('refreshes an expiring connection token through the SDK\'s getToken, and the connection goes on', T, async () => {
    let refreshes = 0;
    const c = client({
      token: await token({ subscribe: ['*'], subject: 'refresher', expiresIn: 3500 }),
      getToken: async () => {
        refreshes++;
        return token({ subscribe: ['*'], subject: 'refresher', expiresIn: 3500 });
      },
    });
    const seen = states(c);
    c.connect();
    await c.ready(10_000);
    await eventually(() => refreshes >= 2, 100);
    assert.deepEqual(seen.events.map((e) => e.type), ['connecting', 'connected'], 'connected once, never disconnected since');
  });

  it('ends a connection whose token expired without a refresh (3005)', T, async () => {
    const raw = await rawClient(hub.url);
    raws.push(raw);
    raw.send(`{"id":1,"connect":{"token":"${await token({ subscribe: ['*'], expiresIn: 1500 })}"}}`);
    assert.equal((await raw.closed).code, 3005);
  });
});

describe('Centrifugo over WebSocket with Mercure 1.0 access tokens', () => {
  it('connects with an access token (typ at+jwt, a trusted iss, the hub as aud): its authorization_details decide what it receives and where it publishes', T, async () => {
    const hub = await startTestHub(['--token-issuers', 'https://issuer.example']);
    const channel = topic('access-token');
    const { signAccessToken } = await import('../../src/hub/mercure/token.js');
    const { TEST_KEY } = await import('../helpers/hub.js');
    const accessToken = await signAccessToken(TEST_KEY, { issuer: 'https://issuer.example', audience: `${hub.url}/.well-known/mercure`, subscribe: [{ match: channel }], publish: [{ match: channel }] });
    const c = sdkClient(hub.url, 'websocket', { token: accessToken });
    try {
      const sub = c.newSubscription(channel);
      const seen = record(sub);
      sub.subscribe();
      c.connect();
      await sub.ready(10_000);
      assert.equal((await hub.publish({ topic: channel, data: '"private"', private: 'on' })).status, 200);
      await sub.publish('"from the access token"');
      await seen.until(() => seen.publications.length === 2, 'both');
      assert.deepEqual(seen.publications.map((p) => p.data), ['private', '"from the access token"']);
      await assert.rejects(c.publish(topic('elsewhere'), 1), (error: { code: number }) => error.code === 103);
      // Another hub as aud: refused like any token that does not verify.
      const wrong = await signAccessToken(TEST_KEY, { issuer: 'https://issuer.example', audience: 'https://other.example/.well-known/mercure', subscribe: [{ match: channel }] });
      const raw = await rawClient(hub.url);
      raw.send(JSON.stringify({ id: 1, connect: { token: wrong } }));
      assert.equal((await raw.closed).code, 3500);
    } finally {
      c.disconnect();
      await hub.close();
    }
  });
});

describe('Centrifugo over WebSocket on the TLS server', () => {
  it('upgrades an HTTP/1.1 connection to wss:// on the hub that serves HTTP/2 to browsers', T, async () => {
    const certificate = makeCertificate();
    const hub = await startTestHub(['--anonymous', '--tls-cert', certificate.certPath, '--tls-key', certificate.keyPath, '--drain-timeout', '0']);
    // The SDK takes a WebSocket constructor: this one trusts the test certificate.
    class TrustingWebSocket extends WebSocket {
      constructor(url: string, protocols?: string | string[]) {
        super(url, protocols, { ca: certificate.cert });
      }
    }
    const c = sdkClient(hub.url, 'websocket', { websocket: TrustingWebSocket });
    try {
      const sub = c.newSubscription(topic('tls'));
      const seen = record(sub);
      sub.subscribe();
      c.connect();
      await sub.ready(10_000);
      await hub.hub.publish({ topics: [topic('tls')], data: '"over wss"' });
      await seen.until(() => seen.publications.length === 1, 'the publication');
    } finally {
      c.disconnect();
      await hub.close();
      rmSync(certificate.dir, { recursive: true, force: true });
    }
  });
});

describe('Centrifugo over WebSocket: switching protocols', () => {
  it('resumes an SSE client on the SDK from its last event ID (subscribe data lastEventId), and an SDK client on SSE from the last tags.id', T, async () => {
    const hub = await startTestHub(['--anonymous']);
    const c = sdkClient(hub.url, 'websocket');
    const name = topic('switch');
    try {
      const ids: string[] = [];
      for (const n of [1, 2, 3]) ids.push((await hub.publish({ topic: name, data: JSON.stringify({ n }) })).body);
      // SSE → SDK: the client saw the first update over SSE.
      const sub = c.newSubscription(name, { data: { lastEventId: ids[0] } });
      const seen = record(sub);
      sub.subscribe();
      c.connect();
      await seen.until(() => seen.publications.length === 2, 'the two it had not seen');
      assert.deepEqual(seen.publications.map((p) => p.data), [{ n: 2 }, { n: 3 }]);
      assert.equal(seen.subscribed[0]?.recovered, true);
      // SDK → SSE: the client's last publication had tags.id; Last-Event-ID resumes after it.
      const sse = await openSse(`${hub.hubUrl}?topic=${encodeURIComponent(name)}`, { 'last-event-id': seen.publications[0]?.tags?.id as string });
      await sse.events_(1);
      assert.deepEqual(sse.events.map((e) => JSON.parse(e.data) as unknown), [{ n: 3 }]);
      sse.close();
    } finally {
      c.disconnect();
      await hub.close();
    }
  });
});

describe('Centrifugo over WebSocket: a slow client', () => {
  it('is disconnected as a slow consumer once its queue is past the bound, and nothing else is held up', T, async () => {
    const hub = await startTestHub(['--anonymous']);
    try {
      const name = topic('slow');
      const slow = await rawClient(hub.url);
      slow.send(`{"id":1,"connect":{}}\n{"id":2,"subscribe":{"channel":${JSON.stringify(name)}}}`);
      await slow.reply((r) => r.id === 2, 'subscribed');
      const fast = sdkClient(hub.url, 'websocket');
      const sub = fast.newSubscription(name);
      const seen = record(sub);
      sub.subscribe();
      fast.connect();
      await sub.ready(10_000);
      // The slow client stops reading: what the hub sends piles up in its queue.
      (slow.ws as unknown as { _socket: { pause(): void } })._socket.pause();
      const big = JSON.stringify('x'.repeat(60_000));
      let published = 0;
      while ((await closedCount(hub.url, 'slow-consumer')) === 0) {
        assert.equal((await hub.publish({ topic: name, data: big })).status, 200);
        published++;
      }
      await seen.until(() => seen.publications.length === published, 'every publication, for the fast client');
      (slow.ws as unknown as { _socket: { resume(): void } })._socket.resume();
      await slow.closed;
      fast.disconnect();
    } finally {
      await hub.close();
    }
  });
});

describe('Centrifugo over WebSocket: resuming', () => {
  it('recovers after a dropped connection: exactly the publications missed, in order, with recovered true', T, async () => {
    const hub = await startTestHub(['--anonymous']);
    const proxy = await startTcpProxy(Number(new URL(hub.url).port));
    const c = sdkClient(`http://127.0.0.1:${proxy.port}`, 'websocket', { token: await hub.token({ subscribe: ['*'] }) });
    try {
      const name = topic('recovery');
      const sub = c.newSubscription(name);
      const seen = record(sub);
      sub.subscribe();
      c.connect();
      await sub.ready(10_000);
      assert.equal((await hub.publish({ topic: name, data: '"before"' })).status, 200);
      await seen.until(() => seen.publications.length === 1, 'the first publication');
      // The path goes down: the connection is cut and the SDK's reconnections wait on the proxy.
      proxy.stall('both');
      proxy.drop();
      for (const n of [1, 2, 3]) assert.equal((await hub.publish({ topic: name, data: JSON.stringify(`missed ${n}`) })).status, 200);
      assert.equal((await hub.publish({ topic: topic('recovery-other'), data: '"elsewhere"' })).status, 200);
      proxy.resume();
      await seen.until(() => seen.subscribed.length === 2 && seen.publications.length === 4, 'resubscribed with the missed publications');
      const again = seen.subscribed[1];
      assert.equal(again?.wasRecovering, true);
      assert.equal(again?.recovered, true);
      assert.equal(again?.hasRecoveredPublications, true);
      assert.deepEqual(seen.publications.map((p) => p.data), ['before', 'missed 1', 'missed 2', 'missed 3']);
      assert.equal((await hub.publish({ topic: name, data: '"after"' })).status, 200);
      await seen.until(() => seen.publications.length === 5, 'live again');
      assert.equal(new Set(seen.publications.map((p) => p.tags?.id)).size, 5, 'no duplicate');
    } finally {
      c.disconnect();
      await proxy.close();
      await hub.close();
    }
  });

  it('tells the SDK it cannot recover once history is lost: another epoch, recovered false', T, async () => {
    const port = await freePort();
    const firstDb = tempDb();
    let hub = await startTestHub(['--anonymous', '--listen', `127.0.0.1:${port}`, '--transport', `sqlite:${firstDb}`, '--drain-timeout', '0']);
    const c = sdkClient(hub.url, 'websocket');
    const secondDb = tempDb();
    try {
      const name = topic('epoch');
      const sub = c.newSubscription(name);
      const seen = record(sub);
      sub.subscribe();
      c.connect();
      await sub.ready(10_000);
      assert.equal((await hub.publish({ topic: name, data: '"first life"' })).status, 200);
      await seen.until(() => seen.publications.length === 1, 'a publication');
      const epoch = seen.subscribed[0]?.streamPosition?.epoch;
      // The hub comes back with its history gone (another database file).
      await hub.close();
      hub = await startTestHub(['--anonymous', '--listen', `127.0.0.1:${port}`, '--transport', `sqlite:${secondDb}`]);
      await seen.until(() => seen.subscribed.length === 2, 'subscribed again');
      const again = seen.subscribed[1];
      assert.equal(again?.wasRecovering, true);
      assert.equal(again?.recovered, false);
      assert.ok(again?.streamPosition?.epoch !== undefined && again.streamPosition.epoch !== epoch, `a new epoch (${String(again?.streamPosition?.epoch)} after ${String(epoch)})`);
    } finally {
      c.disconnect();
      await hub.close();
      rmSync(dirname(firstDb), { recursive: true, force: true });
      rmSync(dirname(secondDb), { recursive: true, force: true });
    }
  });

  it('ends a connection at its maximum lifetime with force reconnect (3011); the SDK comes back and misses nothing', T, async () => {
    const hub = await startTestHub(['--anonymous', '--write-timeout', '1s']);
    const c = sdkClient(hub.url, 'websocket');
    try {
      const name = topic('lifetime');
      const sub = c.newSubscription(name);
      const seen = record(sub);
      const lifecycle = states(c);
      sub.subscribe();
      c.connect();
      await sub.ready(10_000);
      await lifecycle.until(() => lifecycle.events.some((e) => e.type === 'connecting' && e.code === 3011));
      assert.equal((await hub.publish({ topic: name, data: '"after the lifetime"' })).status, 200);
      await seen.until(() => seen.publications.length === 1, 'the publication');
      assert.ok(seen.subscribed.length >= 2);
    } finally {
      c.disconnect();
      await hub.close();
    }
  });

  it('tells a client to reconnect elsewhere when the hub drains (3001, shutdown)', T, async () => {
    const hub = await startTestHub(['--anonymous', '--drain-timeout', '0']);
    const c = sdkClient(hub.url, 'websocket');
    try {
      const lifecycle = states(c);
      c.connect();
      await c.ready(10_000);
      await hub.close();
      await lifecycle.until(() => lifecycle.events.some((e) => e.type === 'connecting' && e.code === 3001));
    } finally {
      c.disconnect();
    }
  });

  it('refuses the upgrade of a client address over --max-connections-per-ip with 429 and Retry-After', T, async () => {
    const hub = await startTestHub(['--anonymous', '--max-connections-per-ip', '1']);
    try {
      const first = await rawClient(hub.url);
      await assert.rejects(rawClient(hub.url), /upgrade refused: 429/);
      first.close();
      await eventually(() => hub.hub.connections.size === 0);
      (await rawClient(hub.url)).close();
    } finally {
      await hub.close();
    }
  });
});
