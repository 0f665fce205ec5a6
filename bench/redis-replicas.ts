// `npm run bench -- replicas`: what `replicas=N` costs a publish on the Redis transport, and what
// it saves in a planned failover. All local processes, loopback; the transport's own dispatch
// (store, WAIT, delivery to this process's listener), no HTTP.
// 1. Cost: a primary with one replica, found through a Sentinel. Rounds alternate replicas=0 and
//    replicas=1 on fresh keys so that machine noise falls on both.
//      sequential: one publish after the other (latency of each);
//      concurrent: 50 publishers at once (throughput; group commit puts many scripts behind one WAIT).
// 2. A planned failover (SENTINEL FAILOVER) of a primary with two replicas while one publisher
//    publishes as fast as it can, for replicas=0, 1 and 2: how many updates answered 200 the new
//    primary does not have, and how long publishes were refused.
import { Redis } from 'ioredis';
import { RedisTransport } from '../src/hub/transports/redis/index.js';
import { startSentinelGroup } from '../test/helpers/redis-sentinel.js';

const ROUNDS = 4;
const SEQUENTIAL = 2000;
const WORKERS = 50;
const PER_WORKER = 100;

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] as number;
}

const group = await startSentinelGroup({ replicas: 1, sentinels: 1 });
const results: Record<string, { p50: number[]; p99: number[]; rate: number[] }> = { 0: { p50: [], p99: [], rate: [] }, 1: { p50: [], p99: [], rate: [] } };
try {
  for (let round = 0; round < ROUNDS; round++) {
    for (const replicas of [0, 1]) {
      const t = await RedisTransport.connect(`${group.url}?key=bench-${round}-${replicas}&replicas=${replicas}`, { size: 100_000, ttl: 0 });
      t.subscribe(() => {});
      const data = 'x'.repeat(64);
      const latencies: number[] = [];
      for (let i = 0; i < SEQUENTIAL; i++) {
        const started = performance.now();
        await t.dispatch({ id: `s${i}`, topics: ['https://example.com/bench'], data, private: false, publishedAt: Date.now() });
        latencies.push(performance.now() - started);
      }
      const started = performance.now();
      await Promise.all(
        Array.from({ length: WORKERS }, async (_, w) => {
          for (let i = 0; i < PER_WORKER; i++) await t.dispatch({ id: `c${w}-${i}`, topics: ['https://example.com/bench'], data, private: false, publishedAt: Date.now() });
        }),
      );
      const rate = (WORKERS * PER_WORKER) / ((performance.now() - started) / 1000);
      await t.close();
      const r = results[replicas] as { p50: number[]; p99: number[]; rate: number[] };
      r.p50.push(percentile(latencies, 0.5));
      r.p99.push(percentile(latencies, 0.99));
      r.rate.push(rate);
      console.log(`round ${round + 1} replicas=${replicas}: sequential p50 ${percentile(latencies, 0.5).toFixed(2)} ms, p99 ${percentile(latencies, 0.99).toFixed(2)} ms; ${WORKERS} concurrent: ${rate.toFixed(0)} publishes/s`);
    }
  }
} finally {
  await group.stop();
}
const median = (xs: number[]) => percentile(xs, 0.5);
console.log('\n| replicas | sequential p50 ms | sequential p99 ms | concurrent publishes/s |');
console.log('| --- | --- | --- | --- |');
for (const replicas of ['0', '1']) {
  const r = results[replicas] as { p50: number[]; p99: number[]; rate: number[] };
  console.log(`| ${replicas} | ${median(r.p50).toFixed(2)} | ${median(r.p99).toFixed(2)} | ${median(r.rate).toFixed(0)} |`);
}
console.log(`(medians of ${ROUNDS} rounds; ${SEQUENTIAL} sequential publishes and ${WORKERS} × ${PER_WORKER} concurrent ones per round, 64-byte data)`);

console.log('\nplanned failover (SENTINEL FAILOVER) of a primary with two replicas, one publisher publishing as fast as it can:');
console.log('| replicas | answered 200 | of them lost | answered 503 | publishes refused from – to (ms after the failover began) |');
console.log('| --- | --- | --- | --- | --- |');
for (const replicas of [0, 1, 2]) {
  const group = await startSentinelGroup({ replicas: 2, sentinels: 1 });
  try {
    const t = await RedisTransport.connect(`${group.url}?key=failover&replicas=${replicas}`, { size: 1_000_000, ttl: 0 });
    const answered: string[] = [];
    let refused = 0;
    let firstRefused = 0;
    let lastRefused = 0;
    let began = 0;
    let stop = false;
    const publishing = (async () => {
      for (let i = 0; !stop; i++) {
        try {
          await t.dispatch({ id: `u${i}`, topics: ['https://example.com/bench'], data: 'x'.repeat(64), private: false, publishedAt: Date.now() });
          answered.push(`u${i}`);
        } catch {
          refused++;
          lastRefused = Date.now() - began;
          if (firstRefused === 0) firstRefused = lastRefused;
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
      }
    })();
    await new Promise((resolve) => setTimeout(resolve, 500));
    const sentinel = new Redis({ port: (group.sentinels[0] as { port: number }).port, host: '127.0.0.1' });
    const before = await group.primaryPort();
    began = Date.now();
    while ((await sentinel.call('SENTINEL', 'FAILOVER', group.name).catch(() => '')) !== 'OK') await new Promise((resolve) => setTimeout(resolve, 100));
    sentinel.disconnect();
    const now = await group.failedOver(before, 2);
    await new Promise((resolve) => setTimeout(resolve, 2000));
    stop = true;
    await publishing;
    const kept = new Set((await t.history('earliest', () => true)).updates.map((u) => u.id));
    await t.close();
    const lost = answered.filter((id) => !kept.has(id)).length;
    console.log(`| ${replicas} | ${answered.length} | ${lost} | ${refused} | ${refused === 0 ? '—' : `${firstRefused} – ${lastRefused}`} |`);
    void now;
  } finally {
    await group.stop();
  }
}
