// The side-by-side SSE benchmark (issue 7): nchan, better-sse, a bare node:http loop, and the
// ssehub hub (memory and sqlite transports), each pinned to one core with the load generator on the
// other, measured in one run by the same scenarios. Prints a table of absolute figures and ratios
// to nchan, and with --write puts it into docs/benchmarks.md with an SVG chart.
//
//   npm run bench -- sse [--write] [--peers nchan,ssehub-memory] [--scenarios fanout,latency]
//   SUBSCRIBERS=10000 IDLE=19900 npx tsx bench/sse/main.ts
import { spawnSync } from 'node:child_process';
import { cpus, totalmem } from 'node:os';
import { readFileSync, writeFileSync } from 'node:fs';
import { type ClientStats, type Clients, payload, startClients } from './clients.js';
import { PEERS, type Peer, type PeerName, startPeer } from './peers.js';
import type { Figures } from './figures.js';
import { chart } from './svg.js';

const SUBSCRIBERS = Number(process.env.SUBSCRIBERS ?? 10_000);
const IDLE = Number(process.env.IDLE ?? 19_900);
const FANOUT_UPDATES = Number(process.env.FANOUT_UPDATES ?? 100);
const LATENCY_RATE = Number(process.env.LATENCY_RATE ?? 5);
const LATENCY_SECONDS = Number(process.env.LATENCY_SECONDS ?? 20);
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
const SCENARIOS = ['fanout', 'latency', 'idle', 'storm', 'publish'] as const;
type Scenario = (typeof SCENARIOS)[number];
const scenarios = (option('scenarios')?.split(',') ?? SCENARIOS) as Scenario[];
for (const p of peers) if (!PEERS.includes(p)) throw new Error(`unknown peer ${p}; known: ${PEERS.join(', ')}`);
for (const s of scenarios) if (!SCENARIOS.includes(s)) throw new Error(`unknown scenario ${s}; known: ${SCENARIOS.join(', ')}`);

const log = (message: string) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${message}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Publishes updates `from..to` one after the other, each waiting for its answer. */
async function publishSequence(peer: Peer, from: number, to: number): Promise<void> {
  for (let seq = from; seq <= to; seq++) await peer.publish(payload(seq));
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
const target = (peer: Peer) => ({ host: peer.host, port: peer.port, path: peer.subscribePath });

async function fanout(peer: Peer, f: Figures): Promise<void> {
  await withClients(children(SUBSCRIBERS), async (clients) => {
    await clients.connect(target(peer), SUBSCRIBERS);
    // One warm-up update (JIT, buffers), not counted.
    await peer.publish(payload(1));
    await clients.waitFor(1, 60_000);
    const before = await clients.stats();
    const cpu0 = peer.cpu();
    const start = performance.now();
    await publishSequence(peer, 2, FANOUT_UPDATES + 1);
    await clients.waitFor(FANOUT_UPDATES + 1, 120_000);
    const elapsed = (performance.now() - start) / 1000;
    const cpu1 = peer.cpu();
    const after = await clients.stats();
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
    await clients.connect(target(peer), SUBSCRIBERS);
    await peer.publish(payload(1));
    await clients.waitFor(1, 60_000);
    clients.resetLatency();
    const count = LATENCY_RATE * LATENCY_SECONDS;
    const interval = 1000 / LATENCY_RATE;
    const start = performance.now();
    const pending: Promise<void>[] = [];
    for (let k = 0; k < count; k++) {
      const due = start + k * interval;
      const wait = due - performance.now();
      if (wait > 0) await sleep(wait);
      // On schedule whatever the server's pace: a slow answer must not slow the publisher down.
      pending.push(peer.publish(payload(k + 2)));
    }
    await Promise.all(pending);
    await clients.waitFor(count + 1, 120_000);
    const s: ClientStats = await clients.stats();
    f.p50 = s.latency.p50 / 1000;
    f.p99 = s.latency.p99 / 1000;
    f.max = s.latency.max / 1000;
    f.latencyLost = s.lost;
  });
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
    await clients.connect(target(peer), SUBSCRIBERS);
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

const RUN: Record<Scenario, (peer: Peer, f: Figures) => Promise<void>> = { fanout, latency, idle, storm, publish: publishRate };

async function main(): Promise<void> {
  const results = new Map<PeerName, Figures>();
  for (const name of peers) {
    const f: Figures = { errors: [] };
    results.set(name, f);
    for (const scenario of scenarios) {
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
    const anomalies = { 'fan-out lost': f.fanoutLost, 'fan-out duplicated': f.fanoutDuplicated, 'fan-out reordered': f.fanoutReordered, 'latency lost': f.latencyLost, 'storm lost': f.stormLost, 'storm duplicated': f.stormDuplicated };
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

function render(results: Map<PeerName, Figures>): string {
  const base = results.get('nchan');
  const rows: string[] = [];
  const header = '| peer | CPU µs/event | kernel share | deliveries/s | lost/dup/reord | p50 ms | p99 ms | max ms | RSS/idle conn | storm ms | storm lost/dup | publishes/s |';
  rows.push(header, `|${' --- |'.repeat(12)}`);
  for (const [name, f] of results) {
    rows.push(
      `| ${name} | ${fmt(f.cpuPerEvent, 2)} | ${f.systemShare === undefined ? '—' : `${Math.round(f.systemShare * 100)} %`} | ${fmt(f.deliveriesPerSecond)} | ${f.fanoutLost ?? '—'}/${f.fanoutDuplicated ?? '—'}/${f.fanoutReordered ?? '—'} | ${fmt(f.p50, 2)} | ${fmt(f.p99, 2)} | ${fmt(f.max, 2)} | ${f.rssPerConnection === undefined ? '—' : `${fmt(f.rssPerConnection / 1024, 1)} KiB`} | ${fmt(f.stormMs)} | ${f.stormLost ?? '—'}/${f.stormDuplicated ?? '—'} | ${fmt(f.publishPerSecond)} |`,
    );
  }
  const ratios: string[] = ['| peer | CPU/event | deliveries/s | p99 | RSS/conn | storm time | publishes/s |', `|${' --- |'.repeat(7)}`];
  for (const [name, f] of results) {
    ratios.push(
      `| ${name} | ${ratio(f.cpuPerEvent, base?.cpuPerEvent)} | ${ratio(f.deliveriesPerSecond, base?.deliveriesPerSecond)} | ${ratio(f.p99, base?.p99)} | ${ratio(f.rssPerConnection, base?.rssPerConnection)} | ${ratio(f.stormMs, base?.stormMs)} | ${ratio(f.publishPerSecond, base?.publishPerSecond)} |`,
    );
  }
  const loadgen = [...results].map(([name, f]) => `${name} ${fmt(f.loadgenPerEvent, 2)} µs`).join(', ');
  const errors = [...results].flatMap(([name, f]) => f.errors.map((e) => `- ${name}: ${e}`));
  return [
    `Machine: ${machine()}. Servers pinned to core 1, load generator to core 0.`,
    `Subscribers ${SUBSCRIBERS.toLocaleString('en-US')}; fan-out ${FANOUT_UPDATES} updates of 64 bytes one after the other; latency ${LATENCY_RATE}/s for ${LATENCY_SECONDS} s; idle ${IDLE.toLocaleString('en-US')} connections; storm ${STORM_MISSED} missed updates.`,
    '',
    'Absolute figures:',
    '',
    ...rows,
    '',
    'Ratios to nchan (lower is better for CPU, p99, RSS and storm time; higher for rates):',
    '',
    ...ratios,
    '',
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
  writeFileSync(new URL('../../docs/img/bench-sse.svg', import.meta.url), chart(results));
  log('wrote docs/benchmarks.md and docs/img/bench-sse.svg');
}

process.on('SIGINT', () => process.exit(130));
await main();
