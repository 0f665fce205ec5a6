// The Centrifugo front-end across two hub processes on Redis (and NATS for forwarding), with a
// real nginx in front: one presence, one set of offsets, join and leave from any node, the server
// API's disconnect reaching a client on another node, bidirectional emulation whose commands land
// on the node that does not hold the stream (forwarded over the transport's signals), and SDKs
// falling back to SSE behind an nginx that does not pass Upgrade.
import assert from 'node:assert/strict';
import { type IncomingMessage, get } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { Centrifuge } from 'centrifuge';
import WebSocket from 'ws';
import { EventSource } from '../../src/client/index.js';
import { record, sdkClient, states } from '../helpers/centrifuge.js';
import { type HubProcess, startHubProcess } from '../helpers/hub-process.js';
import { eventually } from '../helpers/hub-streams.js';
import { NGINX_BINARY, type Proxy, proxySkipReason, startNginx } from '../helpers/proxies.js';
import { type NatsServer, startNatsServer } from '../helpers/nats-server.js';
import { type RedisServer, startRedisServer } from '../helpers/redis-server.js';
import { type SseRecorder, openSse } from '../helpers/sse-client.js';

const T = { timeout: 60_000 };
const KEY = 'an-api-key-for-the-cluster-tests-0123';

/** deploy/nginx.conf with round-robin instead of least_conn: consecutive requests alternate between the hubs. */
const roundRobin = (conf: string) => conf.replace(/^([ \t]*)least_conn;/m, '$1# round-robin for the test');

describe('the Centrifugo front-end across two hub processes on Redis', T, () => {
  let redis: RedisServer;
  let a: HubProcess;
  let b: HubProcess;
  const clients: Centrifuge[] = [];
  const streams: SseRecorder[] = [];
  const api = async (hub: HubProcess, method: string, body: unknown) => (await (await fetch(`${hub.url}/api/${method}`, { method: 'POST', headers: { 'x-api-key': KEY }, body: JSON.stringify(body) })).json()) as { result?: Record<string, unknown>; error?: { code: number } };

  before(async () => {
    redis = await startRedisServer();
    const flags = ['--transport', redis.url, '--anonymous', '--centrifugo-join-leave', '--api-key', KEY, '--presence-ttl', '3s', '--drain-timeout', '0'];
    a = await startHubProcess(flags);
    b = await startHubProcess(flags);
  });
  after(async () => {
    for (const c of clients) c.disconnect();
    for (const s of streams) s.close();
    await a.kill('SIGKILL');
    await b.kill('SIGKILL');
    await redis.stop();
  });
  const client = (hub: HubProcess, options: Parameters<typeof sdkClient>[2] = {}) => {
    const c = sdkClient(hub.url, 'websocket', options);
    clients.push(c);
    return c;
  };

  it('gives an update the same offset on both nodes, and a client on one node the publications of the other', T, async () => {
    const channel = 'https://example.com/cluster/offsets';
    const subs = [client(a), client(b)].map((c) => {
      const sub = c.newSubscription(channel);
      const seen = record(sub);
      sub.subscribe();
      c.connect();
      return { sub, seen };
    });
    for (const { sub } of subs) await sub.ready(10_000);
    const reply = await api(b, 'publish', { channel, data: { n: 1 } });
    for (const { seen } of subs) await seen.until(() => seen.publications.length === 1, 'the publication');
    assert.equal(subs[0]?.seen.publications[0]?.offset, (reply.result as { offset: number }).offset);
    assert.equal(subs[0]?.seen.publications[0]?.offset, subs[1]?.seen.publications[0]?.offset);
    assert.equal(subs[0]?.seen.subscribed[0]?.streamPosition?.epoch, subs[1]?.seen.subscribed[0]?.streamPosition?.epoch, 'one epoch');
  });

  it('answers presence for the cluster: an SDK client on A and an SSE subscriber on B, from either node', T, async () => {
    const channel = 'https://example.com/cluster/presence';
    const c = client(a, { token: await tokenFor('alice', channel) });
    const sub = c.newSubscription(channel);
    sub.subscribe();
    c.connect();
    await sub.ready(10_000);
    streams.push(await openSse(`${b.hubUrl}?topic=${encodeURIComponent(channel)}`, { authorization: `Bearer ${await tokenFor('bob', channel)}` }));
    await eventually(async () => (await sub.presenceStats()).numClients === 2, 50);
    const users = Object.values((await sub.presence()).clients).map((info) => info.user).sort();
    assert.deepEqual(users, ['alice', 'bob']);
    assert.deepEqual((await api(b, 'presence_stats', { channel })).result, { num_clients: 2, num_users: 2 });
  });

  it('pushes join and leave of a subscriber on B to a client on A that asked', T, async () => {
    const channel = 'https://example.com/cluster/join-leave';
    const c = client(a);
    const sub = c.newSubscription(channel, { joinLeave: true });
    const joins: string[] = [];
    const leaves: string[] = [];
    sub.on('join', (ctx) => joins.push(ctx.info.user));
    sub.on('leave', (ctx) => leaves.push(ctx.info.user));
    sub.subscribe();
    c.connect();
    await sub.ready(10_000);
    const sse = await openSse(`${b.hubUrl}?topic=${encodeURIComponent(channel)}`, { authorization: `Bearer ${await tokenFor('carol', channel)}` });
    await eventually(() => joins.includes('carol'), 50);
    sse.close();
    await eventually(() => leaves.includes('carol'), 50);
  });

  it('disconnects, by the API of B, a user connected to A', T, async () => {
    const c = client(a, { token: await tokenFor('dave', 'urn:x') });
    const lifecycle = states(c);
    c.connect();
    await c.ready(10_000);
    assert.deepEqual((await api(b, 'disconnect', { user: 'dave' })).result, {});
    await lifecycle.until(() => lifecycle.events.some((e) => e.type === 'disconnected' && e.code === 3503));
  });

  for (const transport of ['sse', 'http_stream'] as const) {
    it(`forwards ${transport} commands POSTed to B to the stream held by A`, T, async () => {
      const channel = `https://example.com/cluster/forward-${transport}`;
      const c = sdkClient(a.url, transport, { emulationEndpoint: `${b.url}/emulation`, token: await tokenFor('erin', channel, true) });
      clients.push(c);
      const sub = c.newSubscription(channel);
      const seen = record(sub);
      sub.subscribe();
      c.connect();
      await sub.ready(10_000);
      await sub.publish({ via: 'b' });
      await seen.until(() => seen.publications.length === 1, 'its publication');
      assert.deepEqual(seen.publications[0]?.data, { via: 'b' });
      assert.deepEqual(await sub.presenceStats(), { numClients: 1, numUsers: 1 });
    });
  }

  describe('behind nginx (deploy/nginx.conf, round-robin)', { skip: proxySkipReason(NGINX_BINARY) }, () => {
    let nginx: Proxy;
    before(async () => {
      nginx = await startNginx([`127.0.0.1:${a.port}`, `127.0.0.1:${b.port}`], { edit: roundRobin });
    });
    after(async () => {
      await nginx?.stop();
    });

    for (const transport of ['websocket', 'sse', 'http_stream'] as const) {
      it(`serves the SDK over ${transport} through nginx, its commands landing on either node`, T, async () => {
        const channel = `https://example.com/cluster/nginx-${transport}`;
        const c = sdkClient(nginx.url, transport, { token: await tokenFor('frank', channel, true) });
        clients.push(c);
        const sub = c.newSubscription(channel);
        const seen = record(sub);
        sub.subscribe();
        c.connect();
        await sub.ready(10_000);
        // Enough commands that round-robin sends some to the node without the stream.
        for (let n = 1; n <= 4; n++) await sub.publish({ n });
        assert.equal((await sub.presenceStats()).numClients, 1);
        await seen.until(() => seen.publications.length === 4, 'four publications');
        assert.deepEqual(seen.publications.map((p) => p.data), [{ n: 1 }, { n: 2 }, { n: 3 }, { n: 4 }]);
      });
    }

    it('falls back to SSE by itself behind an nginx that does not pass Upgrade', T, async () => {
      const noUpgrade = await startNginx([`127.0.0.1:${a.port}`, `127.0.0.1:${b.port}`], {
        edit: (conf) => roundRobin(conf).replace(/^[ \t]*proxy_set_header (Upgrade|Connection \$connection_upgrade).*$/gm, '        # (removed for the test)'),
      });
      const ws = noUpgrade.url.replace(/^http/, 'ws');
      const c = new Centrifuge(
        [
          { transport: 'websocket', endpoint: `${ws}/connection/websocket` },
          { transport: 'sse', endpoint: `${noUpgrade.url}/connection/sse` },
        ],
        { websocket: WebSocket, eventsource: EventSource as never, fetch, emulationEndpoint: `${noUpgrade.url}/emulation`, minReconnectDelay: 50, maxReconnectDelay: 300 },
      );
      clients.push(c);
      try {
        const connected = new Promise<string>((resolve) => c.once('connected', (ctx) => resolve(ctx.transport)));
        c.connect();
        assert.equal(await connected, 'sse');
        // And the hub said why the WebSocket failed.
        const res = await new Promise<IncomingMessage>((resolve, reject) => {
          get(`${noUpgrade.url}/connection/websocket`, { headers: { upgrade: 'websocket', connection: 'Upgrade', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==', 'sec-websocket-version': '13' } }, resolve).on('error', reject);
        });
        res.resume();
        assert.equal(res.statusCode, 400);
        assert.equal(res.headers['x-ssehub-upgrade'], 'missing');
      } finally {
        c.disconnect();
        await noUpgrade.stop();
      }
    });
  });
});

describe('the Centrifugo front-end on a Redis that loses its data', T, () => {
  it('starts another epoch, so a client resubscribing is told it did not recover', T, async () => {
    const redis = await startRedisServer();
    const hub = await startHubProcess(['--transport', redis.url, '--anonymous', '--api-key', KEY, '--drain-timeout', '0']);
    const c = sdkClient(hub.url, 'websocket');
    try {
      const channel = 'https://example.com/cluster/flushed';
      const sub = c.newSubscription(channel);
      const seen = record(sub);
      sub.subscribe();
      c.connect();
      await sub.ready(10_000);
      await fetch(`${hub.url}/api/publish`, { method: 'POST', headers: { 'x-api-key': KEY }, body: JSON.stringify({ channel, data: 1 }) });
      await seen.until(() => seen.publications.length === 1, 'a publication');
      const { Redis } = await import('ioredis');
      const admin = new Redis(redis.url);
      await admin.flushall();
      admin.disconnect();
      // The client comes back (a reconnect code), and asks to recover from where it was.
      await fetch(`${hub.url}/api/disconnect`, { method: 'POST', headers: { 'x-api-key': KEY }, body: JSON.stringify({ user: '', disconnect: { code: 3011, reason: 'come back' } }) });
      await seen.until(() => seen.subscribed.length === 2, 'subscribed again');
      assert.equal(seen.subscribed[1]?.wasRecovering, true);
      assert.equal(seen.subscribed[1]?.recovered, false);
      assert.notEqual(seen.subscribed[1]?.streamPosition?.epoch, seen.subscribed[0]?.streamPosition?.epoch);
    } finally {
      c.disconnect();
      await hub.kill('SIGKILL');
      await redis.stop();
    }
  });
});

describe('the Centrifugo front-end across two hub processes on NATS', T, () => {
  let nats: NatsServer;
  let a: HubProcess;
  let b: HubProcess;
  before(async () => {
    nats = await startNatsServer();
    const flags = ['--transport', nats.url, '--anonymous', '--drain-timeout', '0'];
    a = await startHubProcess(flags);
    b = await startHubProcess(flags);
  });
  after(async () => {
    await a.kill('SIGKILL');
    await b.kill('SIGKILL');
    await nats.close();
  });

  it('forwards commands POSTed to B to the SSE stream held by A, over NATS core subjects', T, async () => {
    const channel = 'https://example.com/cluster/nats-forward';
    const c = sdkClient(a.url, 'sse', { emulationEndpoint: `${b.url}/emulation`, token: await tokenFor('gina', channel, true) });
    try {
      const sub = c.newSubscription(channel);
      const seen = record(sub);
      sub.subscribe();
      c.connect();
      await sub.ready(10_000);
      await sub.publish({ via: 'nats' });
      await seen.until(() => seen.publications.length === 1, 'its publication');
    } finally {
      c.disconnect();
    }
  });
});

/** A token for `user`, reading `channel`'s private updates (and publishing to it). */
async function tokenFor(user: string, channel: string, publish = false): Promise<string> {
  const { signToken } = await import('../../src/hub/mercure/token.js');
  const { TEST_KEY } = await import('../helpers/hub.js');
  return signToken(TEST_KEY, { subject: user, subscribe: [channel], ...(publish ? { publish: [channel] } : {}) });
}
