// Several hub processes on one shared transport (issue 5): every subscriber on every node gets
// every matching update exactly once and in order; a node killed with SIGKILL loses nothing for
// clients that fail over to another node. (A transport restart under several nodes is in the chaos
// suite, test/chaos/scenarios.ts, with the figures it reports.)
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { EventSource } from '../../src/client/index.js';
import { type HubProcess, startHubProcess } from '../helpers/hub-process.js';
import { TEST_KEY } from '../helpers/hub.js';
import { type NatsServer, startNatsServer } from '../helpers/nats-server.js';
import { type RedisServer, startRedisServer } from '../helpers/redis-server.js';
import { type SseRecorder, openSse } from '../helpers/sse-client.js';
import { signToken } from '../../src/hub/mercure/token.js';

const T = { timeout: 90_000 };

/** A shared transport server. */
interface Backend {
  name: string;
  url(): string;
  stop(): Promise<void>;
}

async function redisBackend(): Promise<Backend> {
  const server: RedisServer = await startRedisServer();
  return { name: 'redis', url: () => `${server.url}/0`, stop: () => server.stop() };
}

async function natsBackend(): Promise<Backend> {
  const server: NatsServer = await startNatsServer();
  return { name: 'nats', url: () => server.url, stop: () => server.close() };
}

const BACKENDS: [string, () => Promise<Backend>][] = [
  ['redis', redisBackend],
  ['nats', natsBackend],
];

let token = '';
async function publish(hub: HubProcess, fields: Record<string, string>): Promise<number> {
  try {
    const res = await fetch(hub.hubUrl, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/x-www-form-urlencoded', connection: 'close' },
      body: new URLSearchParams(fields).toString(),
    });
    await res.text();
    return res.status;
  } catch {
    return 0;
  }
}

const ids = (r: SseRecorder) => r.events.map((e) => e.lastEventId);

for (const [name, makeBackend] of BACKENDS) {
  describe(`${name}: several hub processes on one transport`, () => {
    let backend: Backend;
    const hubs: HubProcess[] = [];
    const cleanups: (() => unknown)[] = [];
    before(async () => {
      token = await signToken(TEST_KEY, { publish: ['*'] });
      backend = await makeBackend();
    });
    after(async () => {
      for (const c of cleanups.reverse()) await c();
      await Promise.all(hubs.map((h) => h.kill('SIGKILL')));
      await backend.stop();
    });
    const startHubs = async (n: number, flags: string[] = []) => {
      const started = await Promise.all(Array.from({ length: n }, () => startHubProcess(['--transport', backend.url(), '--anonymous', '--retry', '50ms', ...flags])));
      hubs.push(...started);
      return started;
    };

    it('delivers every update exactly once and in publish order to subscribers on all three nodes, whichever node it was published on', T, async () => {
      const nodes = await startHubs(3);
      const subsA: SseRecorder[] = [];
      const subsB: SseRecorder[] = [];
      for (const node of nodes) {
        for (let i = 0; i < 2; i++) subsA.push(await openSse(`${node.hubUrl}?topic=a`));
        subsB.push(await openSse(`${node.hubUrl}?topic=b`));
      }
      for (const s of [...subsA, ...subsB]) cleanups.push(() => s.close());
      await Promise.all([...subsA, ...subsB].map((s) => s.until((r) => r.chunks.length > 0)));
      const expected = { a: [] as string[], b: [] as string[] };
      for (let i = 1; i <= 150; i++) {
        const topic = i % 3 === 0 ? 'b' : 'a';
        const id = `c-${i}`;
        assert.equal(await publish(nodes[i % 3] as HubProcess, { topic, id, data: String(i) }), 200);
        expected[topic].push(id);
      }
      await Promise.all(subsA.map((s) => s.events_(expected.a.length)));
      await Promise.all(subsB.map((s) => s.events_(expected.b.length)));
      for (const s of subsA) assert.deepEqual(ids(s), expected.a);
      for (const s of subsB) assert.deepEqual(ids(s), expected.b);
    });

    it('a node killed with SIGKILL loses nothing: its clients resume on another node with Last-Event-ID', T, async () => {
      const [doomed, survivor] = (await startHubs(2)) as [HubProcess, HubProcess];
      // A client-side "load balancer": the first node that accepts the connection gets it.
      const balancedFetch: typeof fetch = async (input, init) => {
        const path = new URL(String(input)).pathname + new URL(String(input)).search;
        for (const node of [doomed, survivor]) {
          try {
            return await fetch(node.url + path, init);
          } catch {
            // refused: try the next node
          }
        }
        throw new TypeError('no node answered');
      };
      const received: string[] = [];
      const source = new EventSource(`${doomed.url}/.well-known/mercure?topic=k`, { fetch: balancedFetch, reconnect: { initialDelay: 10, maxDelay: 200 } });
      cleanups.push(() => source.close());
      source.onmessage = (e) => received.push((e as MessageEvent).lastEventId);
      await new Promise((resolve) => source.addEventListener('open', resolve, { once: true }));
      const total = 200;
      for (let i = 1; i <= total; i++) {
        assert.equal(await publish(survivor, { topic: 'k', id: `k-${i}`, data: String(i) }), 200);
        if (i === 80) await doomed.kill('SIGKILL');
      }
      const deadline = Date.now() + 30_000;
      while (received.length < total && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      assert.deepEqual(received, Array.from({ length: total }, (_, i) => `k-${i + 1}`));
    });

    it('a resume from an ID trimmed from history gets the unknown-ID signal on any node', T, async () => {
      const [a, b] = (await startHubs(2, ['--history-size', '5'])) as [HubProcess, HubProcess];
      for (let i = 1; i <= 20; i++) assert.equal(await publish(a, { topic: 't', id: `t-${i}`, data: String(i) }), 200);
      const sub = await openSse(`${b.hubUrl}?topic=t`, { 'last-event-id': 't-2' });
      cleanups.push(() => sub.close());
      assert.equal(sub.headers['last-event-id'], 'earliest');
      await sub.events_(6);
      assert.equal(sub.events[0]?.type, 'ssehub-resync');
      assert.deepEqual(ids(sub).slice(1), ['t-16', 't-17', 't-18', 't-19', 't-20']);
    });
  });
}
