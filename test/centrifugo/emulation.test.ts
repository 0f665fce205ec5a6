// Bidirectional emulation with the real SDK: its `sse` transport (the project's EventSource in
// Node) and its `http_stream` transport (fetch), commands by POST /emulation; and the SDK falling
// back to them by itself when a WebSocket cannot get through.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Centrifuge } from 'centrifuge';
import { record, sdkClient, states } from '../helpers/centrifuge.js';
import { listen } from '../helpers/http.js';
import { type TestHub, startTestHub } from '../helpers/hub.js';
import { openSse } from '../helpers/sse-client.js';
import { startTcpProxy } from '../helpers/tcp-proxy.js';

const T = { timeout: 30_000 };

for (const transport of ['sse', 'http_stream'] as const) {
  describe(`Centrifugo over ${transport === 'sse' ? 'bidirectional SSE' : 'HTTP streaming'}, with the real SDK`, () => {
    let hub: TestHub;
    const clients: Centrifuge[] = [];
    before(async () => {
      hub = await startTestHub(['--anonymous', '--centrifugo-ping', '1s', '--drain-timeout', '0']);
    });
    after(async () => {
      for (const c of clients) c.disconnect();
      await hub.close();
    });
    const topic = (name: string) => `https://example.com/${transport}/${name}`;

    it('connects, subscribes, receives a Mercure update, and publishes to an EventSource, its commands by POST /emulation', T, async () => {
      const sse = await openSse(`${hub.hubUrl}?topic=${encodeURIComponent(topic('both-ways'))}`);
      const c = sdkClient(hub.url, transport, { token: await hub.token({ subscribe: ['*'], publish: ['*'], subject: 'emulated' }) });
      clients.push(c);
      const connected = new Promise<string>((resolve) => c.once('connected', (ctx) => resolve(ctx.transport)));
      const sub = c.newSubscription(topic('both-ways'));
      const seen = record(sub);
      sub.subscribe();
      c.connect();
      assert.equal(await connected, transport);
      await sub.ready(10_000);
      assert.equal((await hub.publish({ topic: topic('both-ways'), data: '{"from":"mercure"}' })).status, 200);
      await sub.publish({ from: transport });
      await seen.until(() => seen.publications.length === 2, 'both publications');
      assert.deepEqual(seen.publications.map((p) => p.data), [{ from: 'mercure' }, { from: transport }]);
      await sse.events_(2);
      assert.deepEqual(JSON.parse(sse.events[1]?.data ?? ''), { from: transport });
      assert.deepEqual(await sub.presenceStats(), { numClients: 2, numUsers: 2 });
      sse.close();
    });

    it('recovers after the stream is cut: exactly the publications missed, recovered true', T, async () => {
      const proxy = await startTcpProxy(Number(new URL(hub.url).port));
      const base = `http://127.0.0.1:${proxy.port}`;
      const c = sdkClient(base, transport);
      clients.push(c);
      try {
        const sub = c.newSubscription(topic('recovery'));
        const seen = record(sub);
        sub.subscribe();
        c.connect();
        await sub.ready(10_000);
        proxy.stall('both');
        proxy.drop();
        for (const n of [1, 2]) assert.equal((await hub.publish({ topic: topic('recovery'), data: `"missed ${n}"` })).status, 200);
        proxy.resume();
        await seen.until(() => seen.subscribed.length === 2 && seen.publications.length === 2, 'resubscribed');
        assert.equal(seen.subscribed[1]?.recovered, true);
        assert.deepEqual(seen.publications.map((p) => p.data), ['missed 1', 'missed 2']);
      } finally {
        c.disconnect();
        await proxy.close();
      }
    });

    it('tells the client to reconnect when the hub drains (a Disconnect push, 3001)', T, async () => {
      const draining = await startTestHub(['--anonymous', '--drain-timeout', '0']);
      const c = sdkClient(draining.url, transport);
      clients.push(c);
      const lifecycle = states(c);
      c.connect();
      await c.ready(10_000);
      await draining.close();
      await lifecycle.until(() => lifecycle.events.some((e) => e.type === 'connecting' && e.code === 3001));
    });
  });
}

/** A raw HTTP-streaming client: its reply lines as they come, and its emulation POSTs. */
async function rawStream(base: string, token?: string) {
  const connect = JSON.stringify({ id: 1, connect: token === undefined ? {} : { token } });
  const res = await fetch(`${base}/connection/http_stream`, { method: 'POST', body: connect });
  const lines: Record<string, unknown>[] = [];
  let ended = false;
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  const decoder = new TextDecoder();
  let buffered = '';
  const done = (async () => {
    for (;;) {
      const { value, done: finished } = await reader.read().catch(() => ({ value: undefined, done: true }));
      if (finished) break;
      buffered += decoder.decode(value, { stream: true });
      let nl = buffered.indexOf('\n');
      while (nl !== -1) {
        lines.push(JSON.parse(buffered.slice(0, nl)) as Record<string, unknown>);
        buffered = buffered.slice(nl + 1);
        nl = buffered.indexOf('\n');
      }
    }
    ended = true;
  })();
  const until = async (check: () => boolean) => {
    while (!check()) await new Promise((resolve) => setTimeout(resolve, 20));
  };
  await until(() => lines.some((l) => l.id === 1));
  const result = (lines.find((l) => l.id === 1) as { connect: { session: string; node: string } }).connect;
  return {
    lines,
    done,
    get ended() {
      return ended;
    },
    until,
    send: (data: string) => fetch(`${base}/emulation`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ session: result.session, node: result.node, data }) }),
    cancel: () => reader.cancel(),
  };
}

describe('pings over emulation', () => {
  it('pings with {} over the stream; a client answering by POST /emulation stays, one that does not is told 3012', T, async () => {
    const hub = await startTestHub(['--anonymous', '--centrifugo-ping', '1s']);
    try {
      const answering = await rawStream(hub.url);
      const silent = await rawStream(hub.url);
      let answered = 0;
      while (answered < 3) {
        await answering.until(() => answering.lines.filter((l) => Object.keys(l).length === 0).length > answered);
        answered++;
        assert.equal((await answering.send('{}')).status, 204);
      }
      await silent.done;
      assert.deepEqual(silent.lines.at(-1), { push: { disconnect: { code: 3012, reason: 'no pong', reconnect: true } } });
      assert.equal(answering.ended, false, 'the answering client is still connected after three pings');
      await answering.cancel();
    } finally {
      await hub.close();
    }
  });
});

describe('falling back from WebSocket', () => {
  it('moves on to SSE by itself when the WebSocket cannot get through (a proxy that does not pass Upgrade)', T, async () => {
    const hub = await startTestHub(['--anonymous']);
    // What the SDK meets when something in between drops Upgrade: a 400 instead of 101.
    const broken = await listen((_req, res) => {
      res.writeHead(400, { 'content-type': 'text/plain' }).end('no upgrade here');
    });
    const ws = broken.url.replace(/^http/, 'ws');
    const { Centrifuge } = await import('centrifuge');
    const WebSocket = (await import('ws')).default;
    const { EventSource } = await import('../../src/client/index.js');
    const c = new Centrifuge(
      [
        { transport: 'websocket', endpoint: `${ws}/connection/websocket` },
        { transport: 'sse', endpoint: `${hub.url}/connection/sse` },
      ],
      { websocket: WebSocket, eventsource: EventSource as never, fetch, emulationEndpoint: `${hub.url}/emulation`, minReconnectDelay: 50, maxReconnectDelay: 300 },
    );
    try {
      const connected = new Promise<string>((resolve) => c.once('connected', (ctx) => resolve(ctx.transport)));
      c.connect();
      assert.equal(await connected, 'sse');
    } finally {
      c.disconnect();
      await broken.close();
      await hub.close();
    }
  });
});
