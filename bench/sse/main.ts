// The side-by-side SSE benchmark (issue 7): nchan, better-sse, a bare node:http loop, and the
// ssehub hub (memory and sqlite transports), each pinned to one core with the load generator on the
// other, measured in one run by the same scenarios. Prints tables of absolute figures and ratios
// to nchan, and with --write puts them into docs/benchmarks.md with an SVG chart.
// WebSocket subscribers too, in the same run: nchan's (`nchan-ws`) against the hub's
// `/connection/websocket` (`ssehub-ws`), in a ratio table of their own (to nchan-ws).
//
//   npm run bench -- sse [--write] [--peers nchan,ssehub-memory] [--scenarios fanout,latency]
//   SUBSCRIBERS=10000 IDLE=19900 npx tsx bench/sse/main.ts
//
// Latency is counted from when an update was due — its slot in the schedule (latency, overload)
// or the start of the burst (fan-out, slow) — not from when its POST went out, so that a server
// that holds its publisher back cannot hide the wait.
//
// WebSocket: a peer's `wire` (peers.ts) is 'websocket' for nchan-ws (nginx's
// `nchan_subscriber websocket` location, the same channel) and ssehub-ws (the memory-transport
// hub; each subscriber connects anonymously and subscribes to channel "bench" with the Centrifugo
// client protocol). Both are published to as their SSE twins are (nchan's POST, the Mercure
// POST). The load generator (loadgen.ts) speaks RFC 6455 over the same raw sockets and feeds the
// same counters. The fan-out, latency, overload, idle and publish scenarios run over it
// unchanged; the slow-reader and storm scenarios are SSE only (Last-Event-ID resume, reads of a
// few bytes through preconnected sockets) and skip WebSocket peers, whose figures stay '—'.
import { spawnSync } from 'node:child_process';
import { cpus, totalmem } from 'node:os';
import { readFileSync, writeFileSync } from 'node:fs';
import { type ClientStats, type Clients, monotonicMicros, onSchedule, payload, startClients } from './clients.js';
import { PEERS, type Peer, type PeerName, startPeer, wireOf } from './peers.js';
import type { Figures } from './figures.js';
import { chart } from './svg.js';

const SUBSCRIBERS = Number(process.env.SUBSCRIBERS ?? 10_000);
const IDLE = Number(process.env.IDLE ?? 19_900);
const FANOUT_UPDATES = Number(process.env.FANOUT_UPDATES ?? 100);
const LATENCY_RATE = Number(process.env.LATENCY_RATE ?? 5);
const LATENCY_SECONDS = Number(process.env.LATENCY_SECONDS ?? 20);
/** Above every peer's capacity at 10,000 subscribers (200,000 deliveries per second). */
const OVERLOAD_RATE = Number(process.env.OVERLOAD_RATE ?? 20);
const OVERLOAD_SECONDS = Number(process.env.OVERLOAD_SECONDS ?? 10);
/**
 * Slow readers, as a phone on a weak network: a tenth of the subscribers, each with a 4 KiB
 * receive buffer (so the kernel's window, not a large buffer, holds back what it has not read),
 * reading 256 bytes at a time, 4 KiB per second at most.
 */
const SLOW_SHARE = Number(process.env.SLOW_SHARE ?? 0.1);
const SLOW_RECEIVE_BUFFER = Number(process.env.SLOW_RECEIVE_BUFFER ?? 4096);
const SLOW_READ = Number(process.env.SLOW_READ ?? 256);
const SLOW_RATE = Number(process.env.SLOW_RATE ?? 4096);
const STORM_MISSED = 50;
const PUBLISH_SECONDS = Number(process.env.PUBLISH_SECONDS ?? 5);
const PUBLISH_CONCURRENCY = 32;
/** Each child of the load generator holds at most this many connections (fd limit 20,000 per process). */
const PER_CHILD = 6_700;

const args = process.argv.slice(2);
const option = (name: string): string | undefined => {
  const i = args.indexOf(`--${name}`);
  return i === -1 ? undefined : args[i + 1];
};
const peers = (option('peers')?.split(',') ?? PEERS) as PeerName[];
const SCENARIOS = ['fanout', 'latency', 'overload', 'slow', 'idle', 'storm', 'publish'] as const;
type Scenario = (typeof SCENARIOS)[number];
const scenarios = (option('scenarios')?.split(',') ?? SCENARIOS) as Scenario[];
for (const p of peers) if (!PEERS.includes(p)) throw new Error(`unknown peer ${p}; known: ${PEERS.join(', ')}`);
for (const s of scenarios) if (!SCENARIOS.includes(s)) throw new Error(`unknown scenario ${s}; known: ${SCENARIOS.join(', ')}`);

const log = (message: string) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${message}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Publishes updates `from..to` one after the other, each waiting for its answer; with `at`, all stamped as due then (a burst). */
async function publishSequence(peer: Peer, from: number, to: number, at?: number): Promise<void> {
  for (let seq = from; seq <= to; seq++) await peer.publish(payload(seq, at));
}

/** Publishes `count` updates (seqs `first`…) at `rate` per second, each stamped with its slot in the schedule (see onSchedule). */
function publishOnSchedule(peer: Peer, first: number, count: number, rate: number): Promise<void> {
  return onSchedule(count, rate, (k, due) => peer.publish(payload(first + k, due)));
}

async function withClients<T>(processes: number, run: (clients: Clients) => Promise<T>): Promise<T> {
  const clients = await startClients({ processes, core: 0 });
  try {
    return await run(clients);
  } finally {
    await clients.close();
  }
}

const children = (n: number) => Math.max(1, Math.ceil(n / PER_CHILD));
const target = (peer: Peer) => ({ host: peer.host, port: peer.port, path: peer.subscribePath, wire: peer.wire, ...(peer.channel === undefined ? {} : { channel: peer.channel }) });
/** Opens the SUBSCRIBERS connections of a scenario, and logs how long that took (a WebSocket: until subscribed). */
async function connectAll(clients: Clients, peer: Peer): Promise<void> {
  const start = performance.now();
  await clients.connect(target(peer), SUBSCRIBERS);
  log(`${peer.name}: ${SUBSCRIBERS.toLocaleString('en-US')} ${peer.wire === 'websocket' ? 'WebSocket' : 'SSE'} subscribers connected in ${Math.round(performance.now() - start)} ms`);
}
/** Connects SUBSCRIBERS, then one warm-up update (JIT, buffers), received by all and not counted in latency. */
async function connectWarmed(clients: Clients, peer: Peer): Promise<void> {
  await connectAll(clients, peer);
  await peer.publish(payload(1));
  await clients.waitFor(1, 60_000);
  clients.resetLatency();
}
/** Scenarios that need SSE (Last-Event-ID resume; slow readers on preconnected sockets): skipped for WebSocket peers. */
const SSE_ONLY: readonly Scenario[] = ['slow', 'storm'];

async function fanout(peer: Peer, f: Figures): Promise<void> {
  await withClients(children(SUBSCRIBERS), async (clients) => {
    await connectWarmed(clients, peer);
    const before = await clients.stats();
    const cpu0 = peer.cpu();
    const start = performance.now();
    await publishSequence(peer, 2, FANOUT_UPDATES + 1, monotonicMicros());
    await clients.waitFor(FANOUT_UPDATES + 1, 120_000);
    const elapsed = (performance.now() - start) / 1000;
    const cpu1 = peer.cpu();
    const after = await clients.stats();
    f.burstP50 = after.latency.p50 / 1000;
    f.burstP99 = after.latency.p99 / 1000;
    f.burstMax = after.latency.max / 1000;
    const delivered = after.events - before.events;
    const user = cpu1.user - cpu0.user;
    const system = cpu1.system - cpu0.system;
    f.cpuPerEvent = (user + system) / delivered;
    f.systemShare = system / (user + system);
    f.deliveriesPerSecond = delivered / elapsed;
    f.fanoutLost = after.lost + Math.max(0, SUBSCRIBERS * FANOUT_UPDATES - delivered - after.lost);
    f.fanoutDuplicated = after.duplicated;
    f.fanoutReordered = after.reordered;
    f.loadgenPerEvent = (after.cpu.user + after.cpu.system - before.cpu.user - before.cpu.system) / delivered;
  });
}

async function latency(peer: Peer, f: Figures): Promise<void> {
  await withClients(children(SUBSCRIBERS), async (clients) => {
    await connectWarmed(clients, peer);
    const count = LATENCY_RATE * LATENCY_SECONDS;
    const before = await clients.stats();
    const cpu0 = peer.cpu();
    await publishOnSchedule(peer, 2, count, LATENCY_RATE);
    await clients.waitFor(count + 1, 120_000);
    const cpu1 = peer.cpu();
    const s: ClientStats = await clients.stats();
    // Everything the server did during the run (the publishes, heartbeats) over what it delivered.
    f.steadyCpuPerEvent = (cpu1.user + cpu1.system - cpu0.user - cpu0.system) / (s.events - before.events);
    f.p50 = s.latency.p50 / 1000;
    f.p99 = s.latency.p99 / 1000;
    f.max = s.latency.max / 1000;
    f.latencyLost = s.lost;
  });
}

/** More updates per second than any peer can deliver, on schedule: what each delivers at saturation, and how late. */
async function overload(peer: Peer, f: Figures): Promise<void> {
  await withClients(children(SUBSCRIBERS), async (clients) => {
    await connectWarmed(clients, peer);
    const before = await clients.stats();
    const count = OVERLOAD_RATE * OVERLOAD_SECONDS;
    const start = performance.now();
    await publishOnSchedule(peer, 2, count, OVERLOAD_RATE);
    await clients.waitFor(count + 1, 600_000);
    const elapsed = (performance.now() - start) / 1000;
    const after = await clients.stats();
    f.overloadRate = OVERLOAD_RATE;
    f.overloadDeliveriesPerSecond = (after.events - before.events) / elapsed;
    f.overloadP50 = after.latency.p50 / 1000;
    f.overloadP99 = after.latency.p99 / 1000;
    f.overloadMax = after.latency.max / 1000;
    f.overloadLost = after.lost + Math.max(0, SUBSCRIBERS * count - (after.events - before.events) - after.lost);
    f.overloadDuplicated = after.duplicated;
    f.overloadReordered = after.reordered;
  });
}

/**
 * The fan-out burst again, with a share of the subscribers reading slowly (see SLOW_*): the
 * server's CPU per delivered event until everyone, slow readers too, has every update, and the
 * latency of the others from the burst's start (what a slow reader costs them).
 */
async function slow(peer: Peer, f: Figures): Promise<void> {
  const slowCount = Math.round(SUBSCRIBERS * SLOW_SHARE);
  const others = SUBSCRIBERS - slowCount;
  // The slow readers' sockets are connected (with their small receive buffer) as their process starts.
  const slowClients = await startClients({ processes: 1, core: 0, preconnected: { host: peer.host, port: peer.port, count: slowCount, receiveBuffer: SLOW_RECEIVE_BUFFER } });
  try {
    await withClients(children(others), async (clients) => {
      await Promise.all([slowClients.connect(target(peer), slowCount, { slow: { readSize: SLOW_READ, bytesPerSecond: SLOW_RATE } }), clients.connect(target(peer), others)]);
      await peer.publish(payload(1));
      await Promise.all([clients.waitFor(1, 60_000), slowClients.waitFor(1, 60_000)]);
      clients.resetLatency();
      const [fast0, slow0] = await Promise.all([clients.stats(), slowClients.stats()]);
      const cpu0 = peer.cpu();
      const start = performance.now();
      await publishSequence(peer, 2, FANOUT_UPDATES + 1, monotonicMicros());
      await clients.waitFor(FANOUT_UPDATES + 1, 120_000);
      const othersDone = (performance.now() - start) / 1000;
      const fast1 = await clients.stats();
      await slowClients.waitFor(FANOUT_UPDATES + 1, 600_000);
      f.slowAllMs = performance.now() - start;
      const cpu1 = peer.cpu();
      const slow1 = await slowClients.stats();
      const delivered = fast1.events - fast0.events + slow1.events - slow0.events;
      f.slowCpuPerEvent = (cpu1.user + cpu1.system - cpu0.user - cpu0.system) / delivered;
      f.slowDeliveriesPerSecond = (fast1.events - fast0.events) / othersDone;
      f.slowP50 = fast1.latency.p50 / 1000;
      f.slowP99 = fast1.latency.p99 / 1000;
      const lost = fast1.lost + slow1.lost;
      f.slowLost = lost + Math.max(0, SUBSCRIBERS * FANOUT_UPDATES - delivered - lost);
      f.slowDuplicated = fast1.duplicated + slow1.duplicated;
      f.slowReordered = fast1.reordered + slow1.reordered;
    });
  } finally {
    await slowClients.close();
  }
}

async function idle(peer: Peer, f: Figures): Promise<void> {
  await withClients(children(IDLE), async (clients) => {
    // A few connections first, so that lazily allocated structures are not charged to the idle ones.
    await clients.connect(target(peer), 100);
    await sleep(1000);
    const before = peer.rss();
    await clients.connect(target(peer), IDLE - 100);
    await sleep(3000);
    const after = peer.rss();
    const s = await clients.stats();
    f.idleConnections = s.connections;
    f.rssPerConnection = (after - before) / (IDLE - 100);
  });
}

async function storm(peer: Peer, f: Figures): Promise<void> {
  await withClients(children(SUBSCRIBERS), async (clients) => {
    await connectAll(clients, peer);
    await publishSequence(peer, 1, 5);
    await clients.waitFor(5, 60_000);
    await clients.disconnectAll();
    await publishSequence(peer, 6, 5 + STORM_MISSED);
    const start = performance.now();
    await clients.reconnectAll();
    await clients.waitFor(5 + STORM_MISSED, 120_000);
    f.stormMs = performance.now() - start;
    const s = await clients.stats();
    f.stormLost = s.lost;
    f.stormDuplicated = s.duplicated;
  });
}

async function publishRate(peer: Peer, f: Figures): Promise<void> {
  await withClients(1, async (clients) => {
    await clients.connect(target(peer), 1);
    let seq = 0;
    const end = performance.now() + PUBLISH_SECONDS * 1000;
    const start = performance.now();
    const worker = async () => {
      while (performance.now() < end) await peer.publish(payload(++seq));
    };
    await Promise.all(Array.from({ length: PUBLISH_CONCURRENCY }, worker));
    const elapsed = (performance.now() - start) / 1000;
    f.publishPerSecond = seq / elapsed;
    await clients.waitFor(seq, 60_000).catch(() => undefined);
  });
}

const RUN: Record<Scenario, (peer: Peer, f: Figures) => Promise<void>> = { fanout, latency, overload, slow, idle, storm, publish: publishRate };

async function main(): Promise<void> {
  const results = new Map<PeerName, Figures>();
  for (const name of peers) {
    const f: Figures = { errors: [] };
    results.set(name, f);
    for (const scenario of scenarios) {
      if (wireOf(name) === 'websocket' && SSE_ONLY.includes(scenario)) {
        log(`${name}: ${scenario} skipped (SSE only)`);
        continue;
      }
      log(`${name}: ${scenario}`);
      let peer: Peer | undefined;
      try {
        peer = await startPeer(name, { core: 1 });
        await RUN[scenario](peer, f);
      } catch (error) {
        const message = `${scenario}: ${(error as Error).message}`;
        f.errors.push(message);
        log(`${name}: FAILED ${message}`);
      } finally {
        await peer?.stop();
      }
    }
    log(`${name}: ${JSON.stringify(f)}`);
  }
  // The benchmark is also a correctness check: anything lost, duplicated or reordered fails the run.
  for (const f of results.values()) {
    const anomalies = {
      'fan-out lost': f.fanoutLost, 'fan-out duplicated': f.fanoutDuplicated, 'fan-out reordered': f.fanoutReordered, 'latency lost': f.latencyLost,
      'overload lost': f.overloadLost, 'overload duplicated': f.overloadDuplicated, 'overload reordered': f.overloadReordered,
      'slow-reader run lost': f.slowLost, 'slow-reader run duplicated': f.slowDuplicated, 'slow-reader run reordered': f.slowReordered,
      'storm lost': f.stormLost, 'storm duplicated': f.stormDuplicated,
    };
    for (const [what, n] of Object.entries(anomalies)) if (n !== undefined && n > 0) f.errors.push(`${what}: ${n}`);
    if (f.errors.length > 0) process.exitCode = 1;
  }
  const report = render(results);
  process.stdout.write(`${report}\n`);
  if (args.includes('--write')) write(report, results);
}

const fmt = (v: number | undefined, digits = 1) => (v === undefined || !Number.isFinite(v) ? '—' : v >= 100 ? Math.round(v).toLocaleString('en-US') : v.toFixed(digits));
const ratio = (v: number | undefined, base: number | undefined) => (v === undefined || base === undefined || base === 0 ? '—' : `${(v / base).toFixed(2)}×`);

function machine(): string {
  const model = cpus()[0]?.model.trim() ?? 'unknown CPU';
  // nginx -v prints to stderr.
  const nginx = spawnSync('/usr/sbin/nginx', ['-v'], { encoding: 'utf8' }).stderr ?? '';
  return `${cpus().length} cores (${model}), ${Math.round(totalmem() / 2 ** 30)} GiB, Node.js ${process.version}, ${nginx.trim().replace('nginx version: ', '')}`;
}

/** The results of the peers whose subscribers speak `wire`. */
const onWire = (results: Map<PeerName, Figures>, wire: 'sse' | 'websocket') => new Map([...results].filter(([name]) => wireOf(name) === wire));

function render(results: Map<PeerName, Figures>): string {
  const base = results.get('nchan');
  const wsBase = results.get('nchan-ws');
  const sse = onWire(results, 'sse');
  const websocket = onWire(results, 'websocket');
  const table = (header: string[], row: (name: PeerName, f: Figures) => string[], rows: Map<PeerName, Figures> = results): string[] => [
    `| ${header.join(' | ')} |`,
    `|${' --- |'.repeat(header.length)}`,
    ...[...rows].map(([name, f]) => `| ${[name, ...row(name, f)].join(' | ')} |`),
  ];
  const triple = (a: number | undefined, b: number | undefined, c: number | undefined) => `${a ?? '—'}/${b ?? '—'}/${c ?? '—'}`;
  const share = (v: number | undefined) => (v === undefined ? '—' : `${Math.round(v * 100)} %`);
  const kib = (v: number | undefined) => (v === undefined ? '—' : `${fmt(v / 1024, 1)} KiB`);
  const bursts = table(
    ['peer', 'CPU µs/event', 'kernel share', 'deliveries/s', 'p50 ms', 'p99 ms', 'lost/dup/reord', `overload deliveries/s`, 'overload p50 ms', 'overload p99 ms', 'overload lost/dup/reord'],
    (_, f) => [fmt(f.cpuPerEvent, 2), share(f.systemShare), fmt(f.deliveriesPerSecond), fmt(f.burstP50, 1), fmt(f.burstP99, 1), triple(f.fanoutLost, f.fanoutDuplicated, f.fanoutReordered), fmt(f.overloadDeliveriesPerSecond), fmt(f.overloadP50), fmt(f.overloadP99), triple(f.overloadLost, f.overloadDuplicated, f.overloadReordered)],
  );
  const steady = table(['peer', 'CPU µs/event', 'p50 ms', 'p99 ms', 'max ms', 'lost'], (_, f) => [fmt(f.steadyCpuPerEvent, 2), fmt(f.p50, 2), fmt(f.p99, 2), fmt(f.max, 2), String(f.latencyLost ?? '—')]);
  const slowReaders = table(
    ['peer', 'CPU µs/event', 'vs its burst', 'deliveries/s to the others', 'others p50 ms', 'others p99 ms', 'all had all, ms', 'lost/dup/reord'],
    (_, f) => [fmt(f.slowCpuPerEvent, 2), ratio(f.slowCpuPerEvent, f.cpuPerEvent), fmt(f.slowDeliveriesPerSecond), fmt(f.slowP50, 1), fmt(f.slowP99, 1), fmt(f.slowAllMs), triple(f.slowLost, f.slowDuplicated, f.slowReordered)],
    sse,
  );
  const other = table(['peer', 'RSS/idle conn', 'storm ms', 'storm lost/dup', 'publishes/s'], (_, f) => [kib(f.rssPerConnection), fmt(f.stormMs), `${f.stormLost ?? '—'}/${f.stormDuplicated ?? '—'}`, fmt(f.publishPerSecond)]);
  const ratios = table(
    ['peer', 'burst CPU/event', 'burst p50', 'burst p99', 'overload deliveries/s', 'overload p99', 'steady CPU/event', 'steady p99', 'slow-reader CPU/event', 'slow-reader others p99', 'RSS/conn', 'storm time', 'publishes/s'],
    (_, f) => [
      ratio(f.cpuPerEvent, base?.cpuPerEvent), ratio(f.burstP50, base?.burstP50), ratio(f.burstP99, base?.burstP99),
      ratio(f.overloadDeliveriesPerSecond, base?.overloadDeliveriesPerSecond), ratio(f.overloadP99, base?.overloadP99), ratio(f.steadyCpuPerEvent, base?.steadyCpuPerEvent), ratio(f.p99, base?.p99),
      ratio(f.slowCpuPerEvent, base?.slowCpuPerEvent), ratio(f.slowP99, base?.slowP99),
      ratio(f.rssPerConnection, base?.rssPerConnection), ratio(f.stormMs, base?.stormMs), ratio(f.publishPerSecond, base?.publishPerSecond),
    ],
    sse,
  );
  const wsRatios = table(
    ['peer', 'burst CPU/message', 'burst p99', 'steady CPU/message', 'steady p99', 'RSS/conn', 'overload deliveries/s', 'overload p99'],
    (_, f) => [
      ratio(f.cpuPerEvent, wsBase?.cpuPerEvent), ratio(f.burstP99, wsBase?.burstP99), ratio(f.steadyCpuPerEvent, wsBase?.steadyCpuPerEvent), ratio(f.p99, wsBase?.p99), ratio(f.rssPerConnection, wsBase?.rssPerConnection),
      ratio(f.overloadDeliveriesPerSecond, wsBase?.overloadDeliveriesPerSecond), ratio(f.overloadP99, wsBase?.overloadP99),
    ],
    websocket,
  );
  const loadgen = [...results].map(([name, f]) => `${name} ${fmt(f.loadgenPerEvent, 2)} µs`).join(', ');
  const errors = [...results].flatMap(([name, f]) => f.errors.map((e) => `- ${name}: ${e}`));
  const slowCount = Math.round(SUBSCRIBERS * SLOW_SHARE);
  return [
    `Machine: ${machine()}. Servers pinned to core 1, load generator to core 0.`,
    `Subscribers ${SUBSCRIBERS.toLocaleString('en-US')}${websocket.size > 0 ? ` (SSE, or WebSocket for ${[...websocket.keys()].join(' and ')}, which run neither the slow readers nor the storm)` : ''}; updates of 64 bytes. Burst: ${FANOUT_UPDATES} updates one after the other, latency from the burst's start. Overload: ${OVERLOAD_RATE}/s for ${OVERLOAD_SECONDS} s, on schedule. Steady: ${LATENCY_RATE}/s for ${LATENCY_SECONDS} s, on schedule. Slow readers: the burst with ${slowCount.toLocaleString('en-US')} of the subscribers reading ${SLOW_READ} bytes at a time, ${(SLOW_RATE / 1024).toFixed(0)} KiB/s, through a ${(SLOW_RECEIVE_BUFFER / 1024).toFixed(0)} KiB receive buffer. Idle: ${IDLE.toLocaleString('en-US')} connections. Storm: ${STORM_MISSED} missed updates.`,
    '',
    'Bursts and overload (CPU per delivered event and deliveries per second of the burst; latency from the burst\'s start, or from each update\'s slot in the schedule):',
    '',
    ...bursts,
    '',
    `Steady rate, ${LATENCY_RATE} updates per second (latency from each update's slot):`,
    '',
    ...steady,
    '',
    'Slow readers among the subscribers (CPU per delivered event until the slow readers had everything too; latency of the others from the burst\'s start):',
    '',
    ...slowReaders,
    '',
    'Memory, reconnect storm, publishing:',
    '',
    ...other,
    '',
    'SSE, ratios to nchan (lower is better but for rates):',
    '',
    ...ratios,
    '',
    ...(websocket.size > 0 ? ['WebSocket, ratios to nchan-ws (lower is better but for rates):', '', ...wsRatios, ''] : []),
    `Load generator CPU per received event in the fan-out run: ${loadgen}.`,
    ...(errors.length > 0 ? ['', 'Failures:', ...errors] : []),
  ].join('\n');
}

function write(report: string, results: Map<PeerName, Figures>): void {
  const docPath = new URL('../../docs/benchmarks.md', import.meta.url);
  const doc = readFileSync(docPath, 'utf8');
  const start = '<!-- sse-bench:start -->';
  const end = '<!-- sse-bench:end -->';
  const section = `${start}\nRun of ${new Date().toISOString().slice(0, 10)} (\`npm run bench -- sse --write\`):\n\n${report}\n\n![Side-by-side benchmark](img/bench-sse.svg)\n${end}`;
  const i = doc.indexOf(start);
  const j = doc.indexOf(end);
  if (i === -1 || j === -1) throw new Error(`docs/benchmarks.md has no ${start} … ${end} markers`);
  writeFileSync(docPath, doc.slice(0, i) + section + doc.slice(j + end.length));
  // The chart is SSE's: its ratios are to nchan (SSE).
  writeFileSync(new URL('../../docs/img/bench-sse.svg', import.meta.url), chart(onWire(results, 'sse')));
  log('wrote docs/benchmarks.md and docs/img/bench-sse.svg');
}

process.on('SIGINT', () => process.exit(130));
await main();
