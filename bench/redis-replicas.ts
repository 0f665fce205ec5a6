// `npm run bench -- replicas`: what `replicas=1` costs a publish on the Redis transport. A primary
// with one replica, found through a Sentinel (all local processes, loopback); the transport's own
// dispatch (store, WAIT, delivery to this process's listener), no HTTP. Rounds alternate
// replicas=0 and replicas=1 on fresh keys so that machine noise falls on both.
//   sequential: one publish after the other (latency of each);
//   concurrent: 50 publishers at once (throughput; group commit puts many scripts behind one WAIT).
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
