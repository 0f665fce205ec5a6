// The Centrifugo server HTTP API, as a backend on one of Centrifugo's server libraries calls it:
// POST /api/<method>, a JSON body, X-API-Key or Authorization: apikey, {result} or {error}.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Centrifuge } from 'centrifuge';
import { record, sdkClient, states } from '../helpers/centrifuge.js';
import { type TestHub, startTestHub } from '../helpers/hub.js';
import { eventually } from '../helpers/hub-streams.js';
import { type SseRecorder, openSse } from '../helpers/sse-client.js';

const T = { timeout: 20_000 };
const KEY = 'an-api-key-for-the-tests-0123456789';

describe('the Centrifugo server API', () => {
  let hub: TestHub;
  const clients: Centrifuge[] = [];
  const streams: SseRecorder[] = [];
  before(async () => {
    hub = await startTestHub(['--anonymous', '--api-key', KEY]);
  });
  after(async () => {
    for (const c of clients) c.disconnect();
    for (const s of streams) s.close();
    await hub.close();
  });
  const api = async (method: string, body: unknown, headers: Record<string, string> = { 'x-api-key': KEY }) => {
    const res = await fetch(`${hub.url}/api/${method}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });
    const text = await res.text();
    return { status: res.status, body: res.headers.get('content-type')?.startsWith('application/json') === true ? (JSON.parse(text) as { result?: Record<string, unknown>; error?: { code: number; message: string } }) : text };
  };
  const subscribed = async (channel: string, options: Parameters<typeof sdkClient>[2] = {}) => {
    const c = sdkClient(hub.url, 'websocket', options);
    clients.push(c);
    const sub = c.newSubscription(channel);
    const seen = record(sub);
    sub.subscribe();
    c.connect();
    await sub.ready(10_000);
    return { c, sub, seen };
  };

  it('wants the key, as X-API-Key or Authorization: apikey (401 otherwise), a POST (405) of a JSON object (400), to a method it has (404)', T, async () => {
    assert.equal((await api('info', {}, {})).status, 401);
    assert.equal((await api('info', {}, { 'x-api-key': 'wrong' })).status, 401);
    assert.equal((await api('info', {}, { authorization: `apikey ${KEY}` })).status, 200);
    assert.equal((await api('info', '{not json')).status, 400);
    assert.equal((await api('info', '[1]')).status, 400);
    assert.equal((await api('frobnicate', {})).status, 404);
    assert.equal((await fetch(`${hub.url}/api/info`, { headers: { 'x-api-key': KEY } })).status, 405);
  });

  it('is off without --api-key (404)', T, async () => {
    const off = await startTestHub(['--anonymous']);
    try {
      assert.equal((await fetch(`${off.url}/api/publish`, { method: 'POST', headers: { 'x-api-key': KEY }, body: '{}' })).status, 404);
    } finally {
      await off.close();
    }
  });

  it('publishes to SDK clients and SSE subscribers alike, answering the offset and epoch', T, async () => {
    const channel = 'https://example.com/api/publish';
    const { seen } = await subscribed(channel);
    const sse = await openSse(`${hub.hubUrl}?topic=${encodeURIComponent(channel)}`);
    streams.push(sse);
    const reply = await api('publish', { channel, data: { text: 'from the backend' } });
    assert.equal(reply.status, 200);
    const result = (reply.body as { result: { offset: number; epoch: string } }).result;
    assert.ok(result.offset > 0 && result.epoch !== '');
    await seen.until(() => seen.publications.length === 1, 'the SDK');
    assert.deepEqual(seen.publications[0]?.data, { text: 'from the backend' });
    assert.equal(seen.publications[0]?.offset, result.offset);
    await sse.events_(1);
    assert.deepEqual(JSON.parse(sse.events[0]?.data ?? ''), { text: 'from the backend' });
  });

  it('publishes once per idempotency key (the key is the update ID), and privately when asked', T, async () => {
    const channel = 'https://example.com/api/idempotent';
    const { seen } = await subscribed(channel);
    const first = await api('publish', { channel, data: 1, idempotency_key: 'urn:api:once' });
    const again = await api('publish', { channel, data: 1, idempotency_key: 'urn:api:once' });
    assert.ok((first.body as { result: { offset: number } }).result.offset > 0);
    assert.equal((again.body as { result?: unknown }).result !== undefined, true, 'a retry succeeds');
    assert.equal((await api('publish', { channel, data: 'hidden', private: true })).status, 200);
    assert.equal((await api('publish', { channel, data: 2 })).status, 200);
    await seen.until(() => seen.publications.length === 2, 'two publications');
    assert.deepEqual(seen.publications.map((p) => p.data), [1, 2], 'the private one does not reach an anonymous client');
    assert.equal(seen.publications[0]?.tags?.id, 'urn:api:once');
  });

  it('answers bad publications with 107 in the body', T, async () => {
    for (const body of [{ data: 1 }, { channel: 'x' }, { channel: 'x', b64data: 'AAEC' }, { channel: '/.well-known/mercure/subscriptions/x', data: 1 }, { channel: 5, data: 1 }]) {
      const reply = await api('publish', body);
      assert.equal(reply.status, 200);
      assert.equal((reply.body as { error: { code: number } }).error.code, 107, JSON.stringify(body));
    }
  });

  it('broadcasts one update on several channels: a client of each channel gets it, an SSE subscriber of both once', T, async () => {
    const [a, b] = ['https://example.com/api/b1', 'https://example.com/api/b2'];
    const first = await subscribed(a);
    const second = await subscribed(b);
    const sse = await openSse(`${hub.hubUrl}?topic=${encodeURIComponent(a)}&topic=${encodeURIComponent(b)}`);
    streams.push(sse);
    const reply = await api('broadcast', { channels: [a, b], data: { all: true } });
    const responses = (reply.body as { result: { responses: { result: { offset: number } }[] } }).result.responses;
    assert.equal(responses.length, 2);
    await first.seen.until(() => first.seen.publications.length === 1, 'a');
    await second.seen.until(() => second.seen.publications.length === 1, 'b');
    await sse.events_(1);
    assert.equal(first.seen.publications[0]?.offset, second.seen.publications[0]?.offset);
    assert.equal((await api('broadcast', { channels: [], data: 1 }).then((r) => r.body as { error: { code: number } })).error.code, 107);
  });

  it('answers history and presence', T, async () => {
    const channel = 'https://example.com/api/history';
    for (const n of [1, 2, 3]) await api('publish', { channel, data: { n } });
    const all = (await api('history', { channel, limit: -1 })).body as { result: { publications: { data: unknown; offset: number }[]; epoch: string } };
    assert.deepEqual(all.result.publications.map((p) => p.data), [{ n: 1 }, { n: 2 }, { n: 3 }]);
    const since = (await api('history', { channel, limit: 10, since: { offset: all.result.publications[1]?.offset, epoch: all.result.epoch } })).body as { result: { publications: { data: unknown }[] } };
    assert.deepEqual(since.result.publications.map((p) => p.data), [{ n: 3 }]);
    assert.equal(((await api('history', { channel, limit: 10, since: { offset: 1, epoch: 'lost' } })).body as { error: { code: number } }).error.code, 112);
    await subscribed(channel, { token: await hub.token({ subject: 'carol', payload: { team: 'a' } }) });
    const presence = ((await api('presence', { channel })).body as { result: { presence: Record<string, { user: string; conn_info?: unknown }> } }).result.presence;
    assert.deepEqual(Object.values(presence).map((p) => [p.user, p.conn_info]), [['carol', { team: 'a' }]]);
    assert.deepEqual((await api('presence_stats', { channel })).body, { result: { num_clients: 1, num_users: 1 } });
    const channels = ((await api('channels', { pattern: 'https://example.com/api/hist*' })).body as { result: { channels: Record<string, { num_clients: number }> } }).result.channels;
    assert.deepEqual(channels, { [channel]: { num_clients: 1 } });
  });

  it('unsubscribes a user\'s clients from a channel (the SDK is told 2000, its connection goes on)', T, async () => {
    const channel = 'https://example.com/api/unsubscribe';
    const { c, sub } = await subscribed(channel, { token: await hub.token({ subject: 'dave' }) });
    const unsubscribed = new Promise<number>((resolve) => sub.once('unsubscribed', (ctx) => resolve(ctx.code)));
    assert.deepEqual((await api('unsubscribe', { channel, user: 'dave' })).body, { result: {} });
    assert.equal(await unsubscribed, 2000);
    assert.equal(c.state, 'connected');
  });

  it('disconnects a user\'s clients with the code given (or 3503, no reconnect), and ends their SSE streams', T, async () => {
    const c = sdkClient(hub.url, 'websocket', { token: await hub.token({ subject: 'erin' }) });
    clients.push(c);
    const lifecycle = states(c);
    c.connect();
    await c.ready(10_000);
    const sse = await openSse(`${hub.hubUrl}?topic=x`, { authorization: `Bearer ${await hub.token({ subject: 'erin' })}` });
    assert.deepEqual((await api('disconnect', { user: 'erin' })).body, { result: {} });
    await lifecycle.until(() => lifecycle.events.some((e) => e.type === 'disconnected'));
    assert.deepEqual(lifecycle.events.at(-1), { type: 'disconnected', code: 3503, reason: 'force disconnect' });
    await sse.done;
    const custom = sdkClient(hub.url, 'websocket', { token: await hub.token({ subject: 'frank' }) });
    clients.push(custom);
    const customStates = states(custom);
    custom.connect();
    await custom.ready(10_000);
    await api('disconnect', { user: 'frank', disconnect: { code: 4000, reason: 'go and come back' } });
    await customStates.until(() => customStates.events.some((e) => e.type === 'connecting' && e.code === 4000));
  });

  it('tells what each node serves (info), batches commands, and answers methods it does not have with 108', T, async () => {
    const info = ((await api('info', {})).body as { result: { nodes: { uid: string; num_clients: number; version: string }[] } }).result;
    assert.equal(info.nodes[0]?.uid, hub.hub.node);
    assert.ok(typeof info.nodes[0]?.num_clients === 'number');
    const batch = (await api('batch', { commands: [{ publish: { channel: 'https://example.com/api/batch', data: 1 } }, { presence_stats: { channel: 'https://example.com/api/batch' } }, { nope: {} }] })).body as { result: { replies: Record<string, unknown>[] } };
    assert.ok('publish' in (batch.result.replies[0] ?? {}));
    assert.deepEqual(batch.result.replies[1], { presence_stats: { num_clients: 0, num_users: 0 } });
    assert.equal((batch.result.replies[2]?.error as { code: number }).code, 104);
    assert.equal(((await api('subscribe', { channel: 'x', user: 'y' })).body as { error: { code: number } }).error.code, 108);
    await eventually(async () => (await (await fetch(`${hub.url}/metrics`)).text()).includes('ssehub_centrifugo_api_requests_total{method="publish",result="ok"}'));
  });
});
