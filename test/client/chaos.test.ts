// Chaos (SPEC §4, issue 4): the client behind a loopback TCP proxy that drops and stalls its
// connections at random while a publisher, talking to the hub directly, sends numbered updates.
// With history covering every outage the client delivers each update exactly once and in order;
// with history made too short it says so with a `resync` event.
//
// The chaos schedule (which fault, when, for how long) comes from a seeded PRNG and the seed is
// printed: CHAOS_SEED=<seed> replays the same schedule. The interleaving with the publisher still
// depends on timing, so a replay reproduces the faults, not every byte boundary.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { EventSource, type EventSourceErrorEvent, mercureSubscribeUrl } from '../../src/client/index.js';
import { HUB_PATH, type TestHub, startTestHub } from '../helpers/hub.js';
import { Cleanups, closedCount, eventually } from '../helpers/hub-streams.js';
import { type TcpProxy, startTcpProxy } from '../helpers/tcp-proxy.js';

const TOPIC = 'https://example.com/chaos';
const UPDATES = 10_000;

/** mulberry32: a tiny seeded PRNG, so a failing schedule can be replayed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Whether `promise` settles within `ms`. */
async function within(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    return await Promise.race([promise.then(() => true), late]);
  } finally {
    clearTimeout(timer);
  }
}

/** A hub (heartbeat 200 ms, retry 20 ms) and a proxy in front of it. */
async function hubBehindProxy(historySize: number, cleanups: Cleanups): Promise<{ hub: TestHub; proxy: TcpProxy; url: string }> {
  const hub = cleanups.add(await startTestHub(['--anonymous', '--heartbeat', '200ms', '--retry', '20ms', '--history-size', String(historySize), '--drain-timeout', '0']), (h) => h.close());
  const proxy = cleanups.add(await startTcpProxy(Number(new URL(hub.url).port)), (p) => p.close());
  return { hub, proxy, url: mercureSubscribeUrl(`http://127.0.0.1:${proxy.port}${HUB_PATH}`, TOPIC) };
}

/** What the client delivered, in order: numbered messages and resync signals. */
type Delivery = { kind: 'message'; n: number; id: string } | { kind: 'resync'; data: string };

function record(source: EventSource): Delivery[] {
  const log: Delivery[] = [];
  source.addEventListener('message', (ev) => {
    const { data, lastEventId } = ev as MessageEvent;
    log.push({ kind: 'message', n: Number(data), id: lastEventId });
  });
  source.addEventListener('resync', (ev) => log.push({ kind: 'resync', data: String((ev as MessageEvent).data) }));
  return log;
}

/** Where `got` first departs from `expected`, with a little context, for a failure message. */
function firstDifference(got: number[], expected: number[]): string {
  const i = expected.findIndex((n, k) => got[k] !== n);
  if (i === -1 && got.length === expected.length) return 'none';
  const at = i === -1 ? expected.length : i;
  const counts = new Map<number, number>();
  for (const n of got) counts.set(n, (counts.get(n) ?? 0) + 1);
  const duplicates = [...counts].filter(([, c]) => c > 1).length;
  const missing = expected.filter((n) => !counts.has(n)).length;
  return `first difference at index ${at}: expected ${expected[at]}, got ${got[at]} (around: ${JSON.stringify(got.slice(Math.max(0, at - 3), at + 4))}); ${got.length} delivered, ${duplicates} duplicated, ${missing} missing`;
}

describe('client under chaos', () => {
  it('delivers 10,000 updates exactly once and in order while the proxy drops and stalls its connections', { timeout: 90_000}, async (t) => {
    const seed = Number(process.env.CHAOS_SEED ?? Math.floor(Math.random() * 2 ** 32));
    t.diagnostic(`chaos seed ${seed} (replay with CHAOS_SEED=${seed})`);
    const random = prng(seed);

    const cleanups = new Cleanups();
    after(() => cleanups.run());
    const { hub, proxy, url } = await hubBehindProxy(20_000, cleanups);
    // `earliest`: even if the first connection is cut before any event arrives, the client
    // resumes from the start of history rather than from "now".
    const source = cleanups.add(new EventSource(url, { heartbeatTimeout: 1000, lastEventId: 'earliest', reconnect: { initialDelay: 20, maxDelay: 200 } }), (s) => s.close());
    const log = record(source);
    const errors: string[] = [];
    source.addEventListener('error', (ev) => errors.push((ev as EventSourceErrorEvent).message));
    const ended = new Promise<void>((resolve) => source.addEventListener('end', () => resolve(), { once: true }));
    await new Promise((resolve) => source.addEventListener('open', resolve, { once: true }));

    let publishing = true;
    const faults: string[] = [];
    const chaos = (async () => {
      while (publishing) {
        await sleep(50 + random() * 250);
        if (!publishing) break;
        const pick = random();
        if (pick < 0.4) {
          faults.push(`drop ${proxy.drop()}`);
        } else if (pick < 0.9) {
          // Short stalls heal unnoticed; those past heartbeatTimeout make the client reconnect,
          // either into the same dead path (new connections stalled too) or past it.
          const direction = pick < 0.75 ? 'both' : 'downstream';
          const newConnections = pick < 0.6;
          const ms = Math.round(100 + random() * 1200);
          faults.push(`stall ${direction}${newConnections ? '' : ' (open connections only)'} ${ms}ms`);
          proxy.stall(direction, { newConnections });
          await sleep(ms);
          proxy.resume();
        } else {
          faults.push(`half-close ${proxy.halfClose('client')}`);
        }
      }
    })();

    try {
      for (let n = 1; n <= UPDATES; n++) {
        const res = await hub.publish({ topic: TOPIC, id: `n-${n}`, data: String(n) });
        assert.equal(res.status, 200, `publishing n-${n}: ${res.body}`);
      }
    } finally {
      publishing = false;
      await chaos;
      proxy.resume();
    }
    // A marker after the last update: once it is in, a late duplicate would have come before it.
    await hub.publish({ topic: TOPIC, id: 'end', type: 'end', data: 'end' });
    // A safety net only, so that a client that never catches up fails with the story below
    // instead of the bare test timeout.
    const arrived = await within(ended, 30_000);

    const got = log.filter((d) => d.kind === 'message').map((d) => d.n);
    const slow = await closedCount(hub.url, 'slow-consumer');
    const context = `seed ${seed}; ${proxy.connections} connections, ${slow} cut by the hub as slow consumers; faults: ${faults.join(', ')}; ${errors.length} client errors, the last: ${errors.slice(-3).join(' | ')}`;
    t.diagnostic(`${faults.length} faults, ${proxy.connections} connections, ${errors.length} client errors`);
    assert.ok(arrived, `the client received the marker after the last update within 30 s of the end of publishing; it delivered ${got.length}, the last ${got.at(-1)} (${context})`);
    assert.ok(faults.length >= 5 && proxy.connections >= 3, `the chaos must actually have happened (${context})`);
    const expected = Array.from({ length: UPDATES }, (_, i) => i + 1);
    assert.equal(firstDifference(got, expected), 'none', context);
    assert.ok(
      log.every((d) => d.kind === 'message' && d.id === `n-${d.n}`),
      `every message carries its own id and no resync was signalled (${context})`,
    );
  });

  it('emits resync, then the retained updates in order, when a stall outlasts the history', { timeout: 30_000 }, async () => {
    const cleanups = new Cleanups();
    after(() => cleanups.run());
    const { hub, proxy, url } = await hubBehindProxy(50, cleanups);
    const source = cleanups.add(new EventSource(url, { heartbeatTimeout: 1000, reconnect: { initialDelay: 20, maxDelay: 200 } }), (s) => s.close());
    const log = record(source);
    await new Promise((resolve) => source.addEventListener('open', resolve, { once: true }));

    for (let n = 1; n <= 10; n++) await hub.publish({ topic: TOPIC, id: `n-${n}`, data: String(n) });
    await eventually(() => log.length === 10);
    const gaveUp = new Promise((resolve) => source.addEventListener('error', resolve, { once: true }));
    proxy.stall();
    // 100 updates while the path is dead: n-10, where the client stands, falls out of a 50-update history.
    for (let n = 11; n <= 110; n++) await hub.publish({ topic: TOPIC, id: `n-${n}`, data: String(n) });
    // Resume only once the client has given the silent connection up; resuming earlier would
    // deliver the held-back bytes on the old connection and no resume would be needed.
    await gaveUp;
    proxy.resume();
    await eventually(() => log.some((d) => d.kind === 'message' && d.n === 110));

    const resyncs = log.flatMap((d, i) => (d.kind === 'resync' ? [i] : []));
    assert.equal(resyncs.length, 1, `exactly one resync: ${JSON.stringify(log.filter((d) => d.kind === 'resync'))}`);
    const at = resyncs[0] as number;
    const signal = log[at] as { data: string };
    assert.equal((JSON.parse(signal.data) as { lastEventId: string }).lastEventId, 'n-10');
    const numbers = (entries: Delivery[]) => entries.map((d) => (d.kind === 'message' ? d.n : -1));
    assert.deepEqual(numbers(log.slice(0, at)), Array.from({ length: 10 }, (_, i) => i + 1));
    assert.deepEqual(numbers(log.slice(at + 1)), Array.from({ length: 50 }, (_, i) => i + 61));
  });
});
