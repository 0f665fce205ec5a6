// The cluster as one (SPEC §9): three hub processes on Redis and on NATS. The subscriptions API of
// any node lists every node's subscribers; a node killed with SIGKILL leaves no ghosts past
// --presence-ttl; each webhook event comes once per cluster, signed, also around the kill.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { signToken } from '../../src/hub/mercure/token.js';
import { ISSUER, accessToken, detail } from '../helpers/access-token.js';
import { TEST_KEY } from '../helpers/hub.js';
import { type HubProcess, startHubProcess } from '../helpers/hub-process.js';
import { subscribeUrl } from '../helpers/hub-streams.js';
import { type NatsServer, startNatsServer } from '../helpers/nats-server.js';
import { type RedisServer, startRedisServer } from '../helpers/redis-server.js';
import { type SseRecorder, openSse } from '../helpers/sse-client.js';
import { type Received, WEBHOOK_SECRET, type WebhookReceiver, startWebhookReceiver } from '../helpers/webhook-receiver.js';

const T = { timeout: 120_000 };
const TTL_MS = 3000;

interface Backend {
  url: string;
  stop(): Promise<void>;
}

const BACKENDS: [string, () => Promise<Backend>][] = [
  [
    'redis',
    async () => {
      const server: RedisServer = await startRedisServer();
      return { url: server.url, stop: () => server.stop() };
    },
  ],
  [
    'nats',
    async () => {
      const server: NatsServer = await startNatsServer();
      return { url: server.url, stop: () => server.close() };
    },
  ],
];

/** The subscriptions a node's API lists, as `subscriber topic` strings, sorted. */
async function listed(hub: HubProcess, token: string): Promise<string[]> {
  const res = await fetch(`${hub.hubUrl}/subscriptions`, { headers: { authorization: `Bearer ${token}` } });
  assert.equal(res.status, 200);
  const body = (await res.json()) as { subscriptions: { subscriber: string; topic: string }[] };
  return body.subscriptions.map((s) => `${s.subscriber} ${s.topic}`).sort();
}

async function until(check: () => boolean | Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** The subscriber ID the hub gave a stream: the subscription event it published about itself. */
const of = (received: Received[], type: string) => received.filter((r) => r.type === type);

for (const [name, makeBackend] of BACKENDS) {
  describe(`${name}: presence and webhooks across three hub processes`, T, () => {
    let backend: Backend;
    let receiver: WebhookReceiver;
    const hubs: HubProcess[] = [];
    const streams: SseRecorder[] = [];
    let token = '';

    before(async () => {
      backend = await makeBackend();
      receiver = await startWebhookReceiver();
      token = await signToken(TEST_KEY, { subscribe: ['*'] });
      const flags = ['--transport', backend.url, '--anonymous', '--subscriptions', '--presence-ttl', `${TTL_MS}ms`, '--webhook-url', `${receiver.url}/hooks`, '--webhook-secret', WEBHOOK_SECRET, '--webhook-vacate-delay', '500ms', '--drain-timeout', '0', '--ui', '--token-issuers', ISSUER];
      for (let i = 0; i < 3; i++) hubs.push(await startHubProcess(flags));
    });
    after(async () => {
      for (const s of streams) s.close();
      for (const h of hubs) await h.kill('SIGKILL');
      await receiver.close();
      await backend.stop();
    });

    it('lists on C the subscribers of A and B, drops A\'s within the TTL after A is killed, and sends each event once', async () => {
      const [a, b, c] = hubs as [HubProcess, HubProcess, HubProcess];
      const topicA = `urn:${name}:on-a`;
      const topicB = `urn:${name}:on-b`;
      streams.push(await openSse(subscribeUrl(a.hubUrl, [topicA])));
      streams.push(await openSse(subscribeUrl(b.hubUrl, [topicB])));
      streams.push(await openSse(subscribeUrl(c.hubUrl, [topicB])));
      await until(async () => (await listed(c, token)).length === 3, 'C listing the three subscriptions');
      // Every node answers the same.
      assert.deepEqual(await listed(a, token), await listed(c, token));
      assert.deepEqual(await listed(b, token), await listed(c, token));
      await receiver.until((r) => of(r, 'subscriber.connected').length === 3 && of(r, 'topic.occupied').length === 2, 'three connected, two occupied');
      const onA = (await listed(c, token)).find((s) => s.endsWith(` ${topicA}`))?.split(' ')[0] as string;
      // The dashboard of A shows the cluster's presence per topic: B's topic on two nodes.
      const uiToken = await signToken(TEST_KEY, { ui: true });
      const state = (await (await fetch(`${a.url}/ui/api/state`, { headers: { authorization: `Bearer ${uiToken}` } })).json()) as { cluster: { nodes: string[]; topics: { topic: string; subscribers: number; nodes: number }[] } };
      assert.equal(state.cluster.nodes.length, 3);
      assert.deepEqual(state.cluster.topics, [
        { topic: topicB, subscribers: 2, nodes: 2 },
        { topic: topicA, subscribers: 1, nodes: 1 },
      ]);

      await a.kill('SIGKILL');
      const killedAt = Date.now();
      await until(async () => (await listed(c, token)).length === 2, 'A\'s subscriber gone from C\'s list');
      const gone = Date.now() - killedAt;
      // The bound is the TTL plus one heartbeat (a third of it) and the time to ask: no ghost lasts longer.
      assert.ok(gone < TTL_MS * 2, `A's subscriber listed ${gone} ms after the kill`);
      await receiver.until((r) => of(r, 'subscriber.disconnected').length === 1 && of(r, 'topic.vacated').length === 1, 'A\'s subscriber disconnected and its topic vacated');

      // B's topic keeps its two subscribers; a later event is a marker that nothing else was pending.
      streams.push(await openSse(subscribeUrl(b.hubUrl, [`urn:${name}:marker`])));
      await receiver.until((r) => of(r, 'topic.occupied').some((e) => e.data.topic === `urn:${name}:marker`), 'the marker');
      const disconnected = of(receiver.received, 'subscriber.disconnected');
      assert.deepEqual(disconnected.map((e) => [e.data.subscriber, e.data.reason]), [[onA, 'node-lost']]);
      assert.deepEqual(of(receiver.received, 'topic.vacated').map((e) => e.data.topic), [topicA]);
      assert.deepEqual(of(receiver.received, 'topic.occupied').map((e) => e.data.topic).sort(), [topicA, topicB, `urn:${name}:marker`].sort());
      assert.equal(of(receiver.received, 'subscriber.connected').length, 4);
      assert.equal(new Set(receiver.received.map((r) => r.id)).size, receiver.received.length, 'no event twice');
      assert.equal(receiver.rejected, 0, 'every signature verified');
    });

    it('answers a Mercure 1.0 request on C with the match type each subscription on B was made with', async () => {
      const [, b, c] = hubs as [HubProcess, HubProcess, HubProcess];
      // An exact match holding `{` (draft-07 would read it as a template) and a URL pattern.
      const exact = `https://example.com/${name}/books/{id}`;
      const pattern = `https://example.com/${name}/books/:id`;
      const url = new URL(b.hubUrl);
      url.searchParams.append('match', exact);
      url.searchParams.append('match_urlpattern', pattern);
      streams.push(await openSse(url.href));
      const reader = await accessToken(c.hubUrl, [detail(['subscribe'], [{ urlpattern: '/.well-known/mercure/subscriptions{/*}?' }])]);
      const onC = async () => {
        const res = await fetch(`${c.hubUrl}/subscriptions`, { headers: { authorization: `Bearer ${reader}` } });
        assert.equal(res.status, 200);
        const body = (await res.json()) as { subscriptions: { match_type: string; match: string }[] };
        return body.subscriptions.filter((s) => s.match.startsWith(`https://example.com/${name}/books/`)).map((s) => `${s.match_type} ${s.match}`).sort();
      };
      await until(async () => (await onC()).length === 2, 'C listing both of B\'s subscriptions');
      assert.deepEqual(await onC(), [`exact ${exact}`, `urlpattern ${pattern}`]);
    });
  });
}
