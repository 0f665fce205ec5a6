// The steady soak (issue 9, item 1): one hub process, many subscribers over several load-generator
// processes, updates at a steady rate across many topics, and a share of the subscribers leaving
// and resuming with Last-Event-ID every second, for a fixed time. At the end every subscriber must
// hold every update of its topic exactly once and in order; the hub's memory must be flat after
// warm-up, its event loop responsive, and its file descriptors back where they started.
//
// Counting: update k of the run goes to topic k mod T with data `s=<its number within the topic>`,
// so each subscriber (one topic each) expects 1, 2, 3, … and the load generator counts every gap,
// repeat and inversion (bench/sse/clients.ts). The publisher completes the last round, so every
// topic ends on the same number and one waitFor covers all subscribers.
import { execFileSync } from 'node:child_process';
import { Agent, request } from 'node:http';
import { fileURLToPath } from 'node:url';
import { cpus } from 'node:os';
import { type ClientStats, startClients, payload } from '../sse/clients.js';
import { type HubProcess, startHubProcess } from '../../test/helpers/hub-process.js';
import { TEST_KEY } from '../../test/helpers/hub.js';
import { signToken } from '../../src/hub/mercure/token.js';
import { type Point, parseExposition, quantile, slopePerMinute } from './trend.js';

/** What a steady soak is asked to do. */
export interface SteadyOptions {
  durationMs: number;
  subscribers: number;
  /** Updates per second, over all topics. */
  rate: number;
  topics: number;
  /** Share of the subscribers closed and resumed each second (0.01 = 1 %). */
  churn: number;
  /** Load-generator processes. */
  processes: number;
  /** Samples before this much time has passed are warm-up: left out of slopes and lag figures. */
  warmupMs: number;
  sampleMs: number;
  /**
   * Updates published (to a topic nobody subscribes to) before the run, so that history starts
   * full-sized, as on a hub that has run for a while: sqlite's page cache (16 MiB in
   * better-sqlite3) then fills before warm-up ends instead of over the first half hour, where
   * its growth would pass for a leak.
   */
  seed: number;
  /** Flags for the hub (the transport among them). */
  hubFlags: string[];
  /** Transport as shown in the report. */
  transportName: string;
  log: (message: string) => void;
}

/** One reading of the hub's /metrics. */
interface Sample {
  t: number;
  rss: number;
  heap: number;
  /** V8 heap committed, and memory outside it held by JS objects (Buffers): RSS less both is native (sockets, sqlite, allocator). */
  heapTotal: number;
  external: number;
  fds: number;
  connections: number;
  lagP99: number;
}

/** One memory series: warm/end are the first and last floor (after a full GC) past warm-up; slope is of all samples, floorSlope of the floors. */
interface MemoryFigures {
  warm: number;
  end: number;
  peak: number;
  slope: number;
  floorSlope: number;
  floors: number;
  series: number[];
}

/** What a steady soak measured, and whether each target held. */
export interface SteadyResult {
  options: SteadyOptions;
  elapsedMs: number;
  published: number;
  publishFailures: number;
  finalSeq: number;
  clients: ClientStats;
  churned: number;
  caughtUp: boolean;
  caughtUpError: string;
  rss: MemoryFigures;
  heap: MemoryFigures;
  /** RSS less the free space V8 keeps committed (heap size less heap used): memory something still holds. */
  inUse: MemoryFigures;
  /** RSS less V8's committed heap and external memory, at each floor reading (MiB). */
  native: number[];
  /** V8's committed heap at each floor reading (MiB). */
  v8: number[];
  lag: { p50: number; p99: number; max: number };
  fds: { baseline: number; extraMin: number; extraMax: number; after: number };
  notReady: number;
  checks: { name: string; ok: boolean; detail: string }[];
}

/**
 * Memory may rise by at most this much per minute after warm-up, measured after a full GC, so
 * what is still referenced: the JS heap in use, and RSS less the free space V8 keeps committed.
 * That free space is capacity V8 sizes to the allocation rate (new space alone grows to 3 × 16 MiB
 * on Node 20) and gives back under memory pressure; nothing holds it, so it is reported (raw RSS
 * and V8's committed heap) but not judged. A leak, in JS or native (sockets, sqlite, addons),
 * shows in the judged figures.
 */
export const HEAP_FLOOR_SLOPE_LIMIT = 1 * 2 ** 20;
export const RSS_FLOOR_SLOPE_LIMIT = 2 * 2 ** 20;
/** File descriptors the hub may hold after every client left, above what it held before any came. */
export const FD_TOLERANCE = 3;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** One publish over `agent`: `'200'`, or the status and body, or the error. */
function post(agent: Agent, url: string, authorization: string, body: string): Promise<string> {
  return new Promise((resolve) => {
    const req = request(url, { method: 'POST', agent, headers: { authorization, 'content-type': 'application/x-www-form-urlencoded', 'content-length': Buffer.byteLength(body) } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve(res.statusCode === 200 ? '200' : `${res.statusCode} ${text.slice(0, 100)}`));
      res.on('error', (error) => resolve(error.message));
    });
    req.on('error', (error) => resolve(error.message));
    req.end(body);
  });
}

async function scrape(hub: HubProcess): Promise<Map<string, number>> {
  const res = await fetch(`${hub.url}/metrics`);
  return parseExposition(await res.text());
}

function reading(t: number, m: Map<string, number>): Sample {
  return {
    t,
    rss: m.get('process_resident_memory_bytes') ?? NaN,
    heap: m.get('nodejs_heap_size_used_bytes') ?? NaN,
    heapTotal: m.get('nodejs_heap_size_total_bytes') ?? NaN,
    external: m.get('nodejs_external_memory_bytes') ?? NaN,
    fds: m.get('process_open_fds') ?? NaN,
    connections: m.get('ssehub_connections') ?? NaN,
    lagP99: m.get('nodejs_eventloop_lag_p99_seconds') ?? NaN,
  };
}

/** Pins every thread of `pid` to `core` when the machine has that core (the load generator takes core 0). */
function pin(pid: number, core: number): void {
  if (cpus().length <= core) return;
  execFileSync('taskset', ['-acp', String(core), String(pid)], { stdio: 'ignore' });
}

const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;

/** Runs one steady soak against a fresh hub process; never throws for a failed check (the result says). */
export async function steadySoak(o: SteadyOptions): Promise<SteadyResult> {
  // --expose-gc and a SIGUSR2 handler (bench/soak/gc-on-signal.mjs): the floors below are read
  // right after a full collection.
  const gcHook = fileURLToPath(new URL('./gc-on-signal.mjs', import.meta.url));
  const hub = await startHubProcess(['--anonymous', '--max-connections', '0', ...o.hubFlags], undefined, ['--expose-gc', '--import', gcHook]);
  pin(hub.child.pid!, 1);
  const token = await signToken(TEST_KEY, { publish: ['*'] });
  const clients = await startClients({ processes: o.processes, core: 0, resume: true });
  const samples: Sample[] = [];
  const floors: Sample[] = [];
  let notReady = 0;
  try {
    if (o.seed > 0) {
      const seedStart = performance.now();
      const seedAgent = new Agent({ keepAlive: true, maxSockets: 32 });
      let next = 0;
      let failed = 0;
      await Promise.all(
        Array.from({ length: 32 }, async () => {
          while (next < o.seed) {
            const n = ++next;
            const body = new URLSearchParams({ topic: 'https://soak.example/seed', data: payload(n) }).toString();
            if ((await post(seedAgent, hub.hubUrl, `Bearer ${token}`, body)) !== '200') failed++;
          }
        }),
      );
      seedAgent.destroy();
      if (failed > 0) throw new Error(`seeding history: ${failed} of ${o.seed} publishes failed`);
      o.log(`history seeded with ${o.seed.toLocaleString('en-US')} updates in ${((performance.now() - seedStart) / 1000).toFixed(1)} s`);
    }

    // The descriptors to come back to (after seeding: sqlite has its -wal and -shm files open by now).
    const base = reading(0, await scrape(hub));
    o.log(`hub pid ${hub.child.pid} on ${hub.url}, ${o.transportName}; ${base.fds} fds, RSS ${mib(base.rss)} before any subscriber`);

    // Subscribers: an equal share per topic (the first topics take the remainder).
    const topicUrl = (k: number) => `https://soak.example/topics/${k}`;
    const connectStart = performance.now();
    for (let k = 0; k < o.topics; k++) {
      const count = Math.floor(o.subscribers / o.topics) + (k < o.subscribers % o.topics ? 1 : 0);
      if (count === 0) continue;
      await clients.connect({ host: '127.0.0.1', port: hub.port, path: `/.well-known/mercure?topic=${encodeURIComponent(topicUrl(k))}` }, count);
    }
    o.log(`${o.subscribers.toLocaleString('en-US')} subscribers on ${o.topics} topics in ${((performance.now() - connectStart) / 1000).toFixed(1)} s`);

    const start = performance.now();
    const end = start + o.durationMs;
    let stopped = false;

    // Sampling and progress lines. About a dozen times after warm-up (every 15–60 s), a full
    // collection first: those samples are the floors whose slope tells a leak from the sawtooth.
    const floorEvery = Math.min(60_000, Math.max(15_000, (o.durationMs - o.warmupMs) / 12));
    const sampler = (async () => {
      let lastLog = start;
      let lastFloor = start;
      while (!stopped) {
        if (performance.now() - lastFloor >= floorEvery) {
          lastFloor = performance.now();
          process.kill(hub.child.pid!, 'SIGUSR2');
          await sleep(1000);
          try {
            floors.push(reading(performance.now() - start, await scrape(hub)));
          } catch {
            notReady++;
          }
          // That scrape reset the event-loop histogram: the next sample's window starts after the
          // forced collection, whose pause is the soak's doing, not the hub's.
          await sleep(o.sampleMs);
          continue;
        }
        const t = performance.now() - start;
        try {
          samples.push(reading(t, await scrape(hub)));
          if (!(await fetch(`${hub.url}/readyz`)).ok) notReady++;
        } catch {
          notReady++;
        }
        if (performance.now() - lastLog >= 30_000) {
          lastLog = performance.now();
          const s = samples.at(-1)!;
          const c = await clients.stats();
          o.log(
            `${Math.round(t / 1000)} s: ${c.connections} open, ${c.churning} resuming, ${c.resumes} resumes, ${c.events.toLocaleString('en-US')} events, lost/dup/reord ${c.lost}/${c.duplicated}/${c.reordered}, failed ${c.failed}, later than 1 s/10 s ${c.latency.over1s}/${c.latency.over10s}; hub RSS ${mib(s.rss)}, heap ${mib(s.heap)}, fds ${s.fds}, lag p99 ${(s.lagP99 * 1000).toFixed(1)} ms`,
          );
        }
        await sleep(o.sampleMs);
      }
    })();

    // Churn: every second a share of the subscribers leaves and comes back with Last-Event-ID within 1 s.
    let churned = 0;
    const churner = (async () => {
      const perSecond = Math.round(o.subscribers * o.churn);
      while (!stopped && performance.now() < end && perSecond > 0) {
        churned += await clients.churn(perSecond, 1000);
        await sleep(1000);
      }
    })();

    // Publisher: on schedule whatever the answers' pace; updates of one topic one after the other.
    // Its own keep-alive agent, closed before the descriptors are counted at the end.
    const agent = new Agent({ keepAlive: true, maxSockets: 16 });
    const chains: Promise<void>[] = Array.from({ length: o.topics }, () => Promise.resolve());
    const failures: string[] = [];
    let failedPublishes = 0;
    const publishOne = async (topic: number, seq: number): Promise<void> => {
      const body = new URLSearchParams({ topic: topicUrl(topic), data: payload(seq) }).toString();
      const outcome = await post(agent, hub.hubUrl, `Bearer ${token}`, body);
      if (outcome === '200') return;
      failedPublishes++;
      if (failures.length < 20) failures.push(`topic ${topic} #${seq}: ${outcome}`);
    };
    const interval = 1000 / o.rate;
    let k = 0;
    while (performance.now() < end || k % o.topics !== 0) {
      const wait = start + k * interval - performance.now();
      if (wait > 0) await sleep(wait);
      const topic = k % o.topics;
      const seq = Math.floor(k / o.topics) + 1;
      chains[topic] = chains[topic]!.then(() => publishOne(topic, seq));
      k++;
    }
    await Promise.all(chains);
    agent.destroy();
    const finalSeq = k / o.topics;
    await churner;
    const elapsedMs = performance.now() - start;
    o.log(`published ${k.toLocaleString('en-US')} updates (${finalSeq} per topic) in ${(elapsedMs / 1000).toFixed(0)} s; ${failedPublishes} failed`);

    // Every subscriber must reach the last number of its topic, including those being resumed
    // right now (the hub keeps ending streams at their write timeout): poll until none is behind.
    let caughtUp = false;
    let caughtUpError = '';
    const catchUpBy = performance.now() + 120_000;
    while (!caughtUp && performance.now() < catchUpBy) {
      const behind = await clients.behind(finalSeq);
      const s = await clients.stats();
      caughtUp = behind === 0 && s.connections + s.churning === o.subscribers;
      caughtUpError = `after 120 s ${behind} subscribers have not seen update ${finalSeq} of their topic; ${s.connections} open, ${s.churning} being resumed, ${s.failed} failed`;
      if (!caughtUp) await sleep(200);
    }
    const final = await clients.stats();
    stopped = true;
    await sampler;

    // Every client leaves; the hub must give back every descriptor.
    await clients.disconnectAll();
    let after = reading(0, await scrape(hub));
    const releaseBy = performance.now() + 30_000;
    while ((after.connections > 0 || after.fds > base.fds + FD_TOLERANCE) && performance.now() < releaseBy) {
      await sleep(500);
      after = reading(0, await scrape(hub));
    }

    const warm = samples.filter((s) => s.t >= o.warmupMs);
    const warmFloors = floors.filter((s) => s.t >= o.warmupMs);
    const value = { rss: (s: Sample) => s.rss, heap: (s: Sample) => s.heap, inUse: (s: Sample) => s.rss - (s.heapTotal - s.heap) };
    const series = (from: Sample[], key: keyof typeof value): Point[] => from.map((s) => ({ t: s.t, v: value[key](s) }));
    const memory = (key: keyof typeof value): MemoryFigures => {
      const points = series(warm, key);
      const floorPoints = series(warmFloors, key);
      return {
        warm: floorPoints[0]?.v ?? NaN,
        end: floorPoints.at(-1)?.v ?? NaN,
        peak: Math.max(...points.map((p) => p.v)),
        slope: slopePerMinute(points),
        floorSlope: slopePerMinute(floorPoints),
        floors: floorPoints.length,
        series: floorPoints.map((p) => Math.round((p.v / 2 ** 20) * 10) / 10),
      };
    };
    const rss = memory('rss');
    const heap = memory('heap');
    const inUse = memory('inUse');
    const lags = warm.map((s) => s.lagP99 * 1000);
    const extras = warm.map((s) => s.fds - s.connections);

    const checks = [
      { name: 'every publish answered 200', ok: failedPublishes === 0, detail: failedPublishes === 0 ? `${k} of ${k}` : `${failedPublishes} failed: ${failures.slice(0, 3).join('; ')}` },
      {
        name: 'every subscriber got every update of its topic exactly once, in order',
        ok: caughtUp && final.lost === 0 && final.duplicated === 0 && final.reordered === 0 && final.failed === 0,
        detail: `${final.connections} open + ${final.churning} being resumed; lost ${final.lost}, duplicated ${final.duplicated}, reordered ${final.reordered}, failed ${final.failed}${caughtUp ? '' : `; not caught up: ${caughtUpError}`}`,
      },
      { name: `heap after full GC flat (≤ ${mib(HEAP_FLOOR_SLOPE_LIMIT)}/min)`, ok: heap.floors >= 3 && heap.floorSlope <= HEAP_FLOOR_SLOPE_LIMIT, detail: `${mib(heap.floorSlope)}/min over ${heap.floors} readings` },
      {
        name: `RSS in use after full GC flat (RSS less V8's free committed heap; ≤ ${mib(RSS_FLOOR_SLOPE_LIMIT)}/min)`,
        ok: inUse.floors >= 3 && inUse.floorSlope <= RSS_FLOOR_SLOPE_LIMIT,
        detail: `${mib(inUse.floorSlope)}/min over ${inUse.floors} readings (raw RSS ${mib(rss.floorSlope)}/min, not judged)`,
      },
      { name: `no descriptor leak (≤ ${FD_TOLERANCE} above the start once all left)`, ok: after.connections === 0 && after.fds <= base.fds + FD_TOLERANCE, detail: `${base.fds} before, ${after.fds} after, ${after.connections} streams open` },
      { name: '/readyz answered 200 throughout', ok: notReady === 0, detail: `${notReady} failures in ${samples.length} probes` },
    ];
    return {
      options: o,
      elapsedMs,
      published: k,
      publishFailures: failedPublishes,
      finalSeq,
      clients: final,
      churned,
      caughtUp,
      caughtUpError,
      rss,
      heap,
      inUse,
      native: warmFloors.map((f) => Math.round(((f.rss - f.heapTotal - f.external) / 2 ** 20) * 10) / 10),
      v8: warmFloors.map((f) => Math.round((f.heapTotal / 2 ** 20) * 10) / 10),
      lag: { p50: quantile(lags, 0.5), p99: quantile(lags, 0.99), max: Math.max(...lags) },
      fds: { baseline: base.fds, extraMin: Math.min(...extras), extraMax: Math.max(...extras), after: after.fds },
      notReady,
      checks,
    };
  } finally {
    await clients.close();
    await hub.kill('SIGTERM');
  }
}

/** The result as Markdown: what ran, the figures, and each check. */
export function renderSteady(r: SteadyResult): string {
  const o = r.options;
  const n = (v: number) => Math.round(v).toLocaleString('en-US');
  const c = r.clients;
  return [
    `${o.seed > 0 ? `History first seeded with ${n(o.seed)} updates (to a topic nobody subscribes to). ` : ''}${n(o.subscribers)} subscribers (${o.processes} load-generator processes) on ${o.topics} topics, ${o.rate} updates/s, ${(o.churn * 100).toFixed(1)} % of the subscribers closed and resumed with Last-Event-ID every second, for ${(r.elapsedMs / 60_000).toFixed(1)} min; hub transport ${o.transportName}, ${o.hubFlags.length > 2 ? `flags ${o.hubFlags.slice(2).join(' ')}, ` : ''}its defaults otherwise (heartbeat 15 s, write timeout 10 min). The hub is pinned to core 1, the load generators to core 0.`,
    '',
    '| figure | value |',
    '| --- | --- |',
    `| updates published | ${n(r.published)} (${r.finalSeq} per topic); ${r.publishFailures} failed |`,
    `| events received by subscribers | ${n(c.events)} |`,
    `| lost / duplicated / reordered | ${c.lost} / ${c.duplicated} / ${c.reordered} |`,
    `| resumes with Last-Event-ID (churn + streams the hub ended at their write timeout) | ${n(c.resumes)} (${n(r.churned)} churned, ${n(c.serverCloses)} ended by the hub) |`,
    `| failed connections | ${c.failed} |`,
    `| delivery latency p50 / p99 / max (publish → subscriber, whole run; a resumed subscriber's replayed events count from their publish) | ${(c.latency.p50 / 1000).toFixed(1)} / ${(c.latency.p99 / 1000).toFixed(1)} / ${(c.latency.max / 1000).toFixed(1)} ms |`,
    `| deliveries later than 1 s / 10 s | ${n(c.latency.over1s)} / ${n(c.latency.over10s)} |`,
    `| hub heap used after a full GC: first → last reading past warm-up (peak of all samples) | ${mib(r.heap.warm)} → ${mib(r.heap.end)} (${mib(r.heap.peak)}) |`,
    `| hub heap slope: after full GC / all samples | ${mib(r.heap.floorSlope)}/min / ${mib(r.heap.slope)}/min |`,
    `| hub RSS after a full GC: first → last reading past warm-up (peak of all samples) | ${mib(r.rss.warm)} → ${mib(r.rss.end)} (${mib(r.rss.peak)}) |`,
    `| hub RSS slope: after full GC / all samples | ${mib(r.rss.floorSlope)}/min / ${mib(r.rss.slope)}/min |`,
    `| hub RSS in use (less V8's free committed heap) after a full GC: first → last, slope | ${mib(r.inUse.warm)} → ${mib(r.inUse.end)}, ${mib(r.inUse.floorSlope)}/min |`,
    `| event-loop lag p99 per ${o.sampleMs / 1000} s window (windows with a forced GC left out): median / p99 / worst | ${r.lag.p50.toFixed(1)} / ${r.lag.p99.toFixed(1)} / ${r.lag.max.toFixed(1)} ms |`,
    `| open fds minus open streams, during the run | ${r.fds.extraMin} – ${r.fds.extraMax} |`,
    `| open fds before any subscriber / after all left | ${r.fds.baseline} / ${r.fds.after} |`,
    '',
    '| check | result |',
    '| --- | --- |',
    ...r.checks.map((ch) => `| ${ch.name} | ${ch.ok ? 'pass' : '**FAIL**'}: ${ch.detail} |`),
    '',
    `Heap after each full GC past warm-up (MiB): ${r.heap.series.join(', ')}.`,
    `RSS after each full GC past warm-up (MiB): ${r.rss.series.join(', ')}.`,
    `Of that RSS, V8's committed heap (MiB): ${r.v8.join(', ')}.`,
    `RSS in use, less V8's free committed heap (MiB): ${r.inUse.series.join(', ')}.`,
    `Of that RSS, outside the V8 heap and its Buffers: sockets, sqlite, the allocator (MiB): ${r.native.join(', ')}.`,
    ...(c.late.length === 0 ? [] : ['', 'The first deliveries later than 5 s, with their connection\'s story:', '', ...c.late.map((l) => `- ${l}`)]),
  ].join('\n');
}
