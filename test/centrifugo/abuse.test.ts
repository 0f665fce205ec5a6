// Bad input to the Centrifugo front-end, over a raw WebSocket and raw HTTP: every kind gets a
// precise protocol answer (an error reply, a disconnect code, an HTTP status), nothing is stored,
// and the hub stays ready.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { type RawClient, rawClient } from '../helpers/centrifuge.js';
import { type TestHub, startTestHub } from '../helpers/hub.js';

const T = { timeout: 20_000 };

describe('Centrifugo front-end: bad input', () => {
  let hub: TestHub;
  let connectLine = '';
  const raws: RawClient[] = [];
  before(async () => {
    hub = await startTestHub(['--centrifugo-max-message', '4kb', '--centrifugo-command-rate', '50']);
    connectLine = JSON.stringify({ id: 1, connect: { token: await hub.token({ publish: ['*'], subscribe: ['*'] }) } });
  });
  after(async () => {
    for (const r of raws) r.close();
    // Whatever was sent, the hub is still ready, and none of it was stored.
    assert.equal((await fetch(`${hub.url}/readyz`)).status, 200);
    assert.deepEqual((await hub.hub.history('earliest', () => true)).updates, []);
    await hub.close();
  });
  const open = async () => {
    const raw = await rawClient(hub.url);
    raws.push(raw);
    return raw;
  };
  const connected = async () => {
    const raw = await open();
    raw.send(connectLine);
    await raw.reply((r) => r.id === 1 && 'connect' in r, 'the connect reply');
    return raw;
  };

  it('closes a connection whose message is larger than --centrifugo-max-message with 1009, storing nothing', T, async () => {
    const raw = await connected();
    raw.send(JSON.stringify({ id: 2, publish: { channel: 'urn:abuse', data: 'x'.repeat(5000) } }));
    assert.equal((await raw.closed).code, 1009);
  });

  it('disconnects a message that is not JSON (3501, bad request)', T, async () => {
    const raw = await connected();
    raw.send('{"id":2,"publish":');
    assert.deepEqual(await raw.closed, { code: 3501, reason: 'bad request' });
  });

  it('disconnects a binary (Protobuf) message (3501)', T, async () => {
    const raw = await connected();
    raw.send(Buffer.from([0x08, 0x01, 0x2a, 0x00]), { binary: true });
    assert.equal((await raw.closed).code, 3501);
  });

  it('disconnects a command before connect (3501)', T, async () => {
    const raw = await open();
    raw.send('{"id":1,"subscribe":{"channel":"urn:abuse"}}');
    assert.equal((await raw.closed).code, 3501);
  });

  it('disconnects a second connect (3501)', T, async () => {
    const raw = await connected();
    raw.send(connectLine.replace('"id":1', '"id":2'));
    assert.equal((await raw.closed).code, 3501);
  });

  it('answers a method the protocol does not have with 104 and keeps the connection', T, async () => {
    const raw = await connected();
    raw.send('{"id":2,"frobnicate":{"x":1}}\n{"id":3,"ping":{}}');
    const unknown = await raw.reply((r) => r.id === 2, 'the reply to the unknown method');
    assert.equal((unknown.error as { code: number }).code, 104);
    assert.deepEqual(await raw.reply((r) => r.id === 3, 'the ping reply'), { id: 3, ping: {} });
  });

  it('answers parameters of the wrong kind with 107 (bad request) and an RPC with 108 (not available)', T, async () => {
    const raw = await connected();
    raw.send('{"id":2,"subscribe":{"channel":42}}\n{"id":3,"publish":{"channel":"urn:abuse"}}\n{"id":4,"rpc":{"method":"x"}}\n{"id":5,"history":{"channel":"urn:abuse","limit":"all"}}');
    for (const [id, code] of [[2, 107], [3, 107], [4, 108], [5, 107]] as const) {
      const reply = await raw.reply((r) => r.id === id, `reply ${id}`);
      assert.equal((reply.error as { code: number }).code, code, `command ${id}`);
    }
    assert.equal(raw.ws.readyState, WebSocket.OPEN);
  });

  it('answers a subscribe to a channel already subscribed with 105', T, async () => {
    const raw = await connected();
    raw.send('{"id":2,"subscribe":{"channel":"urn:abuse:twice"}}\n{"id":3,"subscribe":{"channel":"urn:abuse:twice"}}');
    await raw.reply((r) => r.id === 2 && 'subscribe' in r, 'the first subscribe');
    assert.equal(((await raw.reply((r) => r.id === 3, 'the second')).error as { code: number }).code, 105);
  });

  it('answers commands past --centrifugo-command-rate with 111, and disconnects a flood (3013)', T, async () => {
    const raw = await connected();
    const flood = Array.from({ length: 150 }, (_, i) => `{"id":${i + 2},"ping":{}}`).join('\n');
    raw.send(flood);
    assert.equal((await raw.closed).code, 3013);
    const refused = raw.replies.filter((r) => (r.error as { code?: number } | undefined)?.code === 111);
    assert.ok(refused.length > 0, 'some commands were answered 111 before the disconnect');
  });

  it('answers a WebSocket request that lost its Upgrade header with 400, saying what dropped it', T, async () => {
    const res = await fetch(`${hub.url}/connection/websocket`);
    assert.equal(res.status, 400);
    assert.equal(res.headers.get('x-ssehub-upgrade'), 'missing');
    assert.match(await res.text(), /proxy_set_header Upgrade/);
  });

  it('refuses an upgrade asking for the Protobuf protocol with 400, and an upgrade elsewhere with 404', T, async () => {
    await assert.rejects(rawClient(hub.url, '/connection/websocket', { 'sec-websocket-protocol': 'centrifuge-protobuf' }), /upgrade refused: 400/);
    await assert.rejects(rawClient(hub.url, '/.well-known/mercure'), /upgrade refused: 404/);
  });

  it('answers bad emulation requests with precise statuses', T, async () => {
    const post = (path: string, body: string, headers: Record<string, string> = {}) => fetch(`${hub.url}${path}`, { method: 'POST', body, headers: { 'content-type': 'application/json', ...headers } });
    assert.equal((await post('/emulation', '{not json')).status, 400);
    assert.equal((await post('/emulation', '{"session":1}')).status, 400);
    assert.equal((await post('/emulation', JSON.stringify({ session: 'gone', node: hub.hub.node, data: '{"id":1,"ping":{}}' }))).status, 204, 'a session gone from this node');
    assert.equal((await post('/emulation', JSON.stringify({ session: 's', node: 'no-such-node', data: '{}' }))).status, 404);
    assert.equal((await post('/emulation', 'x'.repeat(5000))).status, 413);
    assert.equal((await fetch(`${hub.url}/emulation`)).status, 405);
    assert.equal((await fetch(`${hub.url}/connection/sse`)).status, 400, 'no cf_connect');
    assert.equal((await post('/connection/http_stream', 'x', { 'content-type': 'application/octet-stream' })).status, 415);
  });

  it('ends an emulated stream whose connect is not JSON with a Disconnect push (3501)', T, async () => {
    const res = await fetch(`${hub.url}/connection/http_stream`, { method: 'POST', body: '{"id":1,"connect":' });
    assert.equal(res.status, 200);
    const body = await res.text();
    assert.deepEqual(JSON.parse(body.trim()), { push: { disconnect: { code: 3501, reason: 'bad request', reconnect: false } } });
  });
});
