// The chaos scenarios (issue 9, item 2): real hub processes, real Redis and NATS servers, a real
// TCP proxy, real sockets; one fault each, repeated. Each returns a report: what was done, what
// the clients saw, what was lost (must be nothing acknowledged), and how long recovery took.
//
// The same functions run short in CI (test/chaos/chaos.test.ts, scale SHORT) and long in
// `npm run soak` (scale LONG). Every wait is bounded; a scenario that cannot finish says where.
import { mkdtempSync, rmSync } from 'node:fs';
import { type Socket, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { signToken } from '../../src/hub/mercure/token.js';
import { type HubProcess, freePort, startHubProcess } from '../helpers/hub-process.js';
import { TEST_KEY } from '../helpers/hub.js';
import { startNatsServer } from '../helpers/nats-server.js';
import { startRedisServer } from '../helpers/redis-server.js';
import { startTcpProxy } from '../helpers/tcp-proxy.js';
import { Fleet, type Published, Publisher, type Verdict, judge } from './fleet.js';

/** How big a run is. */
export interface ChaosScale {
  /** EventSource subscribers. */
  subscribers: number;
  /** Fault cycles. */
  faults: number;
  /** Updates published per second. */
  rate: number;
  /** How long each fault lasts. */
  faultMs: number;
  /** Healthy time before each fault and after the last. */
  gapMs: number;
  /** Slow consumers (reading one byte a second) in the slow-consumer scenario. */
  slowConsumers: number;
  /** Concurrent connect/disconnect loops in the storm scenario. */
  stormConcurrency: number;
}

/** CI: a few faults, a few seconds each. */
export const SHORT: ChaosScale = { subscribers: 20, faults: 2, rate: 40, faultMs: 1500, gapMs: 1500, slowConsumers: 3, stormConcurrency: 50 };
/** `npm run soak`: more of everything. */
export const LONG: ChaosScale = { subscribers: 300, faults: 10, rate: 100, faultMs: 3000, gapMs: 5000, slowConsumers: 20, stormConcurrency: 200 };

/** One scenario's outcome. */
export interface ChaosReport {
  name: string;
  /** The fault, in words. */
  fault: string;
  subscribers: number;
  faults: number;
  published: Published;
  /** What the subscribers saw, in words. */
  clientSaw: string;
  verdict: Verdict;
  /** Per fault: ms from the fault's end until every subscriber held the first update acknowledged after it. */
  recovery: number[];
  /** Scenario-specific figures, in words. */
  notes: string[];
  /** Anything that must not happen and did (empty: the scenario passed). */
  failures: string[];
}

export const TOPIC = 'https://chaos.example/feed';
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** `promise`, or a rejection naming `what` after `ms`. */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([promise, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

const subscribeUrl = (hub: HubProcess) => `${hub.hubUrl}?topic=${encodeURIComponent(TOPIC)}`;
const publisherToken = () => signToken(TEST_KEY, { publish: ['*'] });

/** Reads one sample of a hub's /metrics (0 when absent). */
export async function hubMetric(hub: HubProcess, series: string): Promise<number> {
  const text = await (await fetch(`${hub.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.slice(series.length + 1));
}

/** Waits for the fleet to hold the first update acknowledged from now on; returns ms from `since`. */
async function recoveryFrom(since: number, fleet: Fleet, publisher: Publisher, what: string, limitMs: number): Promise<number> {
  const probe = await within(publisher.nextAck(), limitMs, `${what}: an acknowledged publish`);
  const at = await within(fleet.allHave(probe), limitMs, `${what}: every subscriber holding update ${probe}`);
  return Math.round(at - since);
}

/** The end of every scenario: stop publishing, let the last acknowledged update reach everyone, judge. */
async function finish(fleet: Fleet, publisher: Publisher, gapMs: number): Promise<{ published: Published; verdict: Verdict; failures: string[] }> {
  await sleep(gapMs);
  const published = await publisher.stop();
  const failures: string[] = [];
  const last = published.acked.at(-1);
  if (last === undefined) failures.push('no publish was acknowledged');
  else {
    try {
      await within(fleet.allHave(last), 30_000, `every subscriber holding the last acknowledged update ${last}`);
    } catch (error) {
      failures.push((error as Error).message);
    }
  }
  const verdict = judge(fleet, published);
  if (verdict.lost + verdict.duplicated + verdict.reordered + verdict.invented > 0) failures.push(...verdict.problems);
  if (fleet.view.closed > 0) failures.push(`${fleet.view.closed} subscribers gave up for good`);
  return { published, verdict, failures };
}

function describeView(fleet: Fleet): string {
  const v = fleet.view;
  const errors = [...v.errors].sort((a, b) => b[1] - a[1]).map(([m, c]) => `${c} × "${m}"`);
  return `${v.reconnects} reconnects, ${v.resyncs} resyncs, ${errors.length === 0 ? 'no errors' : `errors ${errors.slice(0, 3).join(', ')}`}`;
}

/** A report from what `finish` returned and the scenario's own fields. */
function reportOf(fleet: Fleet, end: { published: Published; verdict: Verdict; failures: string[] }, fields: Pick<ChaosReport, 'name' | 'fault' | 'subscribers' | 'faults' | 'recovery' | 'notes'> & { clientSaw?: string }): ChaosReport {
  return { clientSaw: describeView(fleet), ...fields, published: end.published, verdict: end.verdict, failures: end.failures };
}

/** The end of every scenario, however it went: publisher, subscribers, then the servers. */
async function tearDown(parts: { publisher?: Publisher | undefined; fleet?: Fleet | undefined; hubs: HubProcess[]; dir?: string }): Promise<void> {
  await parts.publisher?.stop();
  parts.fleet?.close();
  await Promise.all(parts.hubs.map((h) => h.kill('SIGKILL')));
  if (parts.dir !== undefined) rmSync(parts.dir, { recursive: true, force: true });
}

/** A hub killed with SIGKILL and started again on the same port and sqlite file, `faults` times. */
export async function hubKillSqlite(scale: ChaosScale): Promise<ChaosReport> {
  const dir = mkdtempSync(join(tmpdir(), 'ssehub-chaos-'));
  const port = await freePort();
  const flags = ['--transport', `sqlite:${join(dir, 'hub.db')}`, '--anonymous', '--retry', '1s'];
  let hub = await startHubProcess(flags, port);
  let fleet: Fleet | undefined;
  let publisher: Publisher | undefined;
  try {
    fleet = await Fleet.open(subscribeUrl(hub), scale.subscribers);
    publisher = new Publisher(() => hub.hubUrl, await publisherToken(), TOPIC, scale.rate);
    const recovery: number[] = [];
    const downtime: number[] = [];
    for (let f = 0; f < scale.faults; f++) {
      await sleep(scale.gapMs);
      const killedAt = performance.now();
      await hub.kill('SIGKILL');
      await sleep(scale.faultMs);
      hub = await startHubProcess(flags, port);
      const upAt = performance.now();
      downtime.push(Math.round(upAt - killedAt));
      recovery.push(await recoveryFrom(upAt, fleet, publisher, `after restart ${f + 1}`, 30_000));
    }
    const end = await finish(fleet, publisher, scale.gapMs);
    return reportOf(fleet, end, {
      name: 'hub SIGKILL, restart on sqlite',
      fault: `the hub process killed with SIGKILL, started again ${scale.faultMs / 1000} s later on the same port and sqlite file (flags ${flags.slice(2).join(' ')})`,
      subscribers: scale.subscribers,
      faults: scale.faults,
      recovery,
      notes: [`hub down (kill → ready again) ${Math.min(...downtime)}–${Math.max(...downtime)} ms; recovery counts from ready again`],
    });
  } finally {
    await tearDown({ publisher, fleet, hubs: [hub], dir });
  }
}

/** The shared transport server (Redis or NATS) killed with SIGKILL and restarted under two hub processes, `faults` times. */
export async function transportRestart(kind: 'redis' | 'nats', scale: ChaosScale): Promise<ChaosReport> {
  const backend =
    kind === 'redis'
      ? await (async () => {
          const s = await startRedisServer();
          return { url: `${s.url}/0`, kill: () => s.kill(), start: () => s.start(), close: () => s.stop() };
        })()
      : await (async () => {
          const s = await startNatsServer();
          return { url: s.url, kill: () => s.stop('SIGKILL'), start: () => s.start(), close: () => s.close() };
        })();
  const hubs: HubProcess[] = [];
  let fleet: Fleet | undefined;
  let publisher: Publisher | undefined;
  try {
    hubs.push(...(await Promise.all([0, 1].map(() => startHubProcess(['--transport', backend.url, '--anonymous', '--retry', '1s'])))));
    fleet = await Fleet.open(hubs.map(subscribeUrl), scale.subscribers);
    let turn = 0;
    publisher = new Publisher(() => hubs[turn++ % 2]!.hubUrl, await publisherToken(), TOPIC, scale.rate);
    const recovery: number[] = [];
    const readyDuring: number[] = [];
    for (let f = 0; f < scale.faults; f++) {
      await sleep(scale.gapMs);
      await backend.kill();
      await sleep(scale.faultMs);
      readyDuring.push(...(await Promise.all(hubs.map((h) => fetch(`${h.url}/readyz`).then((r) => r.status, () => 0)))));
      await backend.start();
      const upAt = performance.now();
      recovery.push(await recoveryFrom(upAt, fleet, publisher, `after ${kind} restart ${f + 1}`, 30_000));
    }
    const end = await finish(fleet, publisher, scale.gapMs);
    const refusedOther = [...end.published.refused].filter(([status]) => status !== '503');
    if (refusedOther.length > 0) end.failures.push(`publishes during the outage must get 503, some got ${refusedOther.map(([s, ns]) => `${s} (${ns.length})`).join(', ')}`);
    if (readyDuring.some((s) => s !== 503)) end.failures.push(`/readyz during the outage answered ${readyDuring.join(', ')} (must be 503)`);
    // The hubs keep their streams open through the outage and go on from the stream position.
    if (fleet.view.reconnects > 0) end.failures.push(`${fleet.view.reconnects} subscriber streams were cut during the outage (they must stay open)`);
    return reportOf(fleet, end, {
      name: `${kind === 'redis' ? 'Redis' : 'NATS'} restart`,
      fault: `${kind === 'redis' ? 'redis-server' : 'nats-server (JetStream)'} killed with SIGKILL under two hub processes, started again ${scale.faultMs / 1000} s later; subscribers and publishes spread over both hubs`,
      subscribers: scale.subscribers,
      faults: scale.faults,
      recovery,
      notes: [`/readyz during each outage: ${[...new Set(readyDuring)].join(', ')}`],
    });
  } finally {
    await tearDown({ publisher, fleet, hubs });
    await backend.close();
  }
}

/** Subscribers behind a loopback TCP proxy that in turn resets, stalls and half-closes every connection. */
export async function proxyFaults(scale: ChaosScale): Promise<ChaosReport> {
  const dir = mkdtempSync(join(tmpdir(), 'ssehub-chaos-'));
  // A heartbeat of 1 s and clients that give a silent connection up after 2.5 s: how a
  // deployment detects a path that stopped forwarding (docs/client.md, heartbeatTimeout).
  const hub = await startHubProcess(['--transport', `sqlite:${join(dir, 'hub.db')}`, '--anonymous', '--retry', '1s', '--heartbeat', '1s']);
  const proxy = await startTcpProxy(hub.port);
  let fleet: Fleet | undefined;
  let publisher: Publisher | undefined;
  try {
    fleet = await Fleet.open(`http://127.0.0.1:${proxy.port}/.well-known/mercure?topic=${encodeURIComponent(TOPIC)}`, scale.subscribers, { heartbeatTimeout: 2500 });
    publisher = new Publisher(() => hub.hubUrl, await publisherToken(), TOPIC, scale.rate);
    const kinds = ['reset', 'stall', 'half-close'] as const;
    const recovery: Record<(typeof kinds)[number], number[]> = { reset: [], stall: [], 'half-close': [] };
    for (let f = 0; f < scale.faults * kinds.length; f++) {
      const kind = kinds[f % kinds.length]!;
      await sleep(scale.gapMs);
      if (kind === 'reset') proxy.drop();
      else if (kind === 'half-close') proxy.halfClose('client');
      else {
        // Past the clients' heartbeatTimeout, so they give up and reconnect into the dead path.
        proxy.stall('both');
        await sleep(Math.max(scale.faultMs, 3000));
        proxy.resume();
      }
      recovery[kind].push(await recoveryFrom(performance.now(), fleet, publisher, `after ${kind} ${f + 1}`, 30_000));
    }
    const end = await finish(fleet, publisher, scale.gapMs);
    const span = (xs: number[]) => (xs.length === 0 ? '—' : `${Math.min(...xs)}–${Math.max(...xs)} ms`);
    return reportOf(fleet, end, {
      name: 'TCP proxy: reset, stall, half-close',
      fault: `a loopback TCP proxy between subscribers and hub resets every connection, stalls both directions for ${Math.max(scale.faultMs, 3000) / 1000} s (new connections too), or half-closes towards the client; in turn (hub --heartbeat 1s, client heartbeatTimeout 2.5 s)`,
      subscribers: scale.subscribers,
      faults: scale.faults * kinds.length,
      clientSaw: `${describeView(fleet)}; ${proxy.connections} connections through the proxy`,
      recovery: Object.values(recovery).flat(),
      notes: [`recovery after a reset ${span(recovery.reset)}, a stall (from its end) ${span(recovery.stall)}, a half-close ${span(recovery['half-close'])}`],
    });
  } finally {
    await proxy.close();
    await tearDown({ publisher, fleet, hubs: [hub], dir });
  }
}

/** A subscriber that reads one byte a second: opens the stream, then takes a byte per tick. */
class SlowReader {
  read = 0;
  ended = false;
  readonly socket: Socket;
  #timer: NodeJS.Timeout;

  constructor(url: string) {
    const { hostname, port, pathname, search } = new URL(url);
    this.socket = connect(Number(port), hostname, () => {
      this.socket.write(`GET ${pathname}${search} HTTP/1.1\r\nHost: ${hostname}:${port}\r\nAccept: text/event-stream\r\n\r\n`);
    });
    this.socket.pause();
    this.socket.on('end', () => (this.ended = true));
    this.socket.on('error', () => (this.ended = true));
    this.#timer = setInterval(() => {
      if (this.socket.read(1) !== null) this.read++;
    }, 1000);
  }

  close(): void {
    clearInterval(this.#timer);
    this.socket.destroy();
  }
}

/** Slow consumers reading one byte a second among normal subscribers while 8 KiB updates flow. */
export async function slowConsumers(scale: ChaosScale): Promise<ChaosReport> {
  const dir = mkdtempSync(join(tmpdir(), 'ssehub-chaos-'));
  const hub = await startHubProcess(['--transport', `sqlite:${join(dir, 'hub.db')}`, '--anonymous', '--retry', '1s']);
  const slow: SlowReader[] = [];
  let fleet: Fleet | undefined;
  let publisher: Publisher | undefined;
  let sampling = true;
  try {
    fleet = await Fleet.open(subscribeUrl(hub), scale.subscribers);
    const rssBefore = await hubMetric(hub, 'process_resident_memory_bytes');
    let rssPeak = rssBefore;
    const sampler = (async () => {
      while (sampling) {
        rssPeak = Math.max(rssPeak, await hubMetric(hub, 'process_resident_memory_bytes').catch(() => 0));
        await sleep(250);
      }
    })();
    // 8 KiB at 5× the scale's rate: enough volume that a reader of one byte a second falls behind
    // by more than the kernel's socket buffers and the hub's per-stream queue (512 KiB) within seconds.
    const rate = scale.rate * 5;
    publisher = new Publisher(() => hub.hubUrl, await publisherToken(), TOPIC, rate, { pad: 8192 });
    const publishingSince = performance.now();
    await sleep(scale.gapMs);
    const startedAt = performance.now();
    for (let i = 0; i < scale.slowConsumers; i++) slow.push(new SlowReader(subscribeUrl(hub)));
    let cutAfter = -1;
    try {
      await within(
        (async () => {
          while ((await hubMetric(hub, 'ssehub_connections_closed_total{reason="slow-consumer"}')) < scale.slowConsumers) await sleep(100);
        })(),
        60_000,
        `the hub cutting all ${scale.slowConsumers} slow consumers`,
      );
      cutAfter = Math.round(performance.now() - startedAt);
    } catch {
      // reported below
    }
    const end = await finish(fleet, publisher, scale.gapMs);
    const achieved = Math.round(end.published.last / ((performance.now() - publishingSince) / 1000));
    sampling = false;
    await sampler;
    const cut = await hubMetric(hub, 'ssehub_connections_closed_total{reason="slow-consumer"}');
    if (cut !== scale.slowConsumers) end.failures.push(`the hub cut ${cut} subscribers as slow consumers, expected exactly the ${scale.slowConsumers} slow ones`);
    // Fan-out delay to the normal subscribers: from each 200 to the last of them holding it.
    const delays = end.published.acked.map((n) => Math.max(...fleet!.members.map((m) => m.at.get(n) ?? Infinity)) - end.published.ackedAt.get(n)!).filter(Number.isFinite).sort((a, b) => a - b);
    const p99 = delays[Math.max(0, Math.ceil(delays.length * 0.99) - 1)] ?? NaN;
    const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;
    return reportOf(fleet, end, {
      name: 'slow consumers',
      fault: `${scale.slowConsumers} subscribers reading one byte a second, among ${scale.subscribers} normal ones, while 8 KiB updates flow (asked ${rate}/s; ${achieved}/s achieved, one publish at a time from the process that also runs the normal subscribers)`,
      subscribers: scale.subscribers,
      faults: scale.slowConsumers,
      clientSaw: `normal subscribers: ${describeView(fleet)}; each slow one read ${Math.min(...slow.map((s) => s.read))}–${Math.max(...slow.map((s) => s.read))} bytes (its kernel buffer still held the rest)`,
      recovery: cutAfter < 0 ? [] : [cutAfter],
      notes: [
        `all slow consumers cut as slow-consumer ${cutAfter < 0 ? 'NOT within 60 s' : `${cutAfter} ms after they connected`}`,
        `hub RSS ${mib(rssBefore)} before, peak ${mib(rssPeak)}`,
        `normal subscribers: 200 → all hold it, p99 ${p99.toFixed(0)} ms`,
      ],
    });
  } finally {
    sampling = false;
    for (const s of slow) s.close();
    await tearDown({ publisher, fleet, hubs: [hub], dir });
  }
}

/**
 * One visit of a storm client, in four kinds taken in turn: a subscribe that leaves at its
 * response head; one that resumes from `earliest` (a replay) and leaves at its first bytes; half
 * a request line, then gone; a whole request, gone without waiting.
 */
function visit(hub: HubProcess, kind: number): Promise<void> {
  return new Promise((resolve) => {
    const path = `/.well-known/mercure?topic=${encodeURIComponent(TOPIC)}`;
    const request = `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${hub.port}\r\nAccept: text/event-stream\r\n${kind === 1 ? 'Last-Event-ID: earliest\r\n' : ''}\r\n`;
    const socket = connect(hub.port, '127.0.0.1');
    const done = () => {
      socket.destroy();
      resolve();
    };
    socket.setTimeout(5000, done);
    socket.on('error', done);
    socket.on('close', done);
    socket.on('connect', () => {
      if (kind === 2) {
        socket.write(request.slice(0, 20));
        setImmediate(done);
      } else if (kind === 3) socket.end(request, done);
      else socket.write(request);
    });
    let head = '';
    socket.on('data', (chunk: Buffer) => {
      head += chunk.toString('latin1');
      if (kind === 0 && head.includes('\r\n\r\n')) done();
      if (kind === 1 && head.includes('\r\n\r\n') && head.length > head.indexOf('\r\n\r\n') + 4) done();
    });
  });
}

/** A storm of connects and disconnects while normal subscribers receive updates. */
export async function subscriberStorm(scale: ChaosScale): Promise<ChaosReport> {
  const dir = mkdtempSync(join(tmpdir(), 'ssehub-chaos-'));
  const hub = await startHubProcess(['--transport', `sqlite:${join(dir, 'hub.db')}`, '--anonymous', '--retry', '1s']);
  let fleet: Fleet | undefined;
  let publisher: Publisher | undefined;
  try {
    fleet = await Fleet.open(subscribeUrl(hub), scale.subscribers);
    publisher = new Publisher(() => hub.hubUrl, await publisherToken(), TOPIC, scale.rate);
    await sleep(scale.gapMs);
    const fdsBefore = await hubMetric(hub, 'process_open_fds');
    const recovery: number[] = [];
    let visits = 0;
    let readyFailures = 0;
    let readyProbes = 0;
    let slowestReady = 0;
    for (let f = 0; f < scale.faults; f++) {
      const stormEnd = performance.now() + scale.faultMs;
      let storming = true;
      const prober = (async () => {
        while (storming) {
          const t0 = performance.now();
          const ok = await fetch(`${hub.url}/readyz`).then((r) => r.ok, () => false);
          readyProbes++;
          if (!ok) readyFailures++;
          slowestReady = Math.max(slowestReady, performance.now() - t0);
          await sleep(100);
        }
      })();
      await Promise.all(
        Array.from({ length: scale.stormConcurrency }, async (_, lane) => {
          for (let k = lane; performance.now() < stormEnd; k++) {
            await visit(hub, k % 4);
            visits++;
          }
        }),
      );
      storming = false;
      await prober;
      const stormOver = performance.now();
      // Recovered: the hub counts exactly the normal subscribers again, holds no more
      // descriptors than before the storm, and they hold an update published since.
      await within(
        (async () => {
          while ((await hubMetric(hub, 'ssehub_connections')) !== scale.subscribers || (await hubMetric(hub, 'process_open_fds')) > fdsBefore + 2) await sleep(50);
        })(),
        30_000,
        `storm ${f + 1}: the hub back to ${scale.subscribers} streams and ${fdsBefore} descriptors`,
      ).catch(() => undefined);
      const settled = Math.round(performance.now() - stormOver);
      recovery.push(Math.max(settled, await recoveryFrom(stormOver, fleet, publisher, `after storm ${f + 1}`, 30_000)));
      await sleep(scale.gapMs);
    }
    const end = await finish(fleet, publisher, 0);
    const streams = await hubMetric(hub, 'ssehub_connections');
    const fdsAfter = await hubMetric(hub, 'process_open_fds');
    if (streams !== scale.subscribers) end.failures.push(`after the storms the hub counts ${streams} streams, expected ${scale.subscribers}`);
    if (fdsAfter > fdsBefore + 2) end.failures.push(`after the storms the hub holds ${fdsAfter} descriptors, ${fdsBefore} before: a leak`);
    if (readyFailures > 0) end.failures.push(`/readyz failed ${readyFailures} of ${readyProbes} times during the storms`);
    return reportOf(fleet, end, {
      name: 'subscriber storm',
      fault: `${scale.stormConcurrency} clients connecting and leaving as fast as they can for ${scale.faultMs / 1000} s (in turn: leave at the response head; resume from earliest and leave at the first bytes; half a request line; a whole request, gone at once)`,
      subscribers: scale.subscribers,
      faults: scale.faults,
      clientSaw: `normal subscribers: ${describeView(fleet)}`,
      recovery,
      notes: [
        `${visits.toLocaleString('en-US')} visits (${Math.round(visits / ((scale.faults * scale.faultMs) / 1000)).toLocaleString('en-US')}/s)`,
        `/readyz during the storms: ${readyProbes - readyFailures}/${readyProbes} answered 200, slowest ${slowestReady.toFixed(0)} ms`,
        `hub descriptors ${fdsBefore} before, ${fdsAfter} after; streams ${streams} after`,
      ],
    });
  } finally {
    await tearDown({ publisher, fleet, hubs: [hub], dir });
  }
}

/** Every scenario, by name, as `npm run soak` and the CI suite run them. */
export const SCENARIOS: { name: string; run: (scale: ChaosScale) => Promise<ChaosReport> }[] = [
  { name: 'hub-kill', run: hubKillSqlite },
  { name: 'redis-restart', run: (s) => transportRestart('redis', s) },
  { name: 'nats-restart', run: (s) => transportRestart('nats', s) },
  { name: 'proxy', run: proxyFaults },
  { name: 'slow-consumers', run: slowConsumers },
  { name: 'storm', run: subscriberStorm },
];

/** The reports as a Markdown table. */
export function renderChaos(reports: ChaosReport[]): string {
  const rows = reports.map((r) => {
    const p = r.published;
    const refused = [...p.refused].map(([why, ns]) => `${ns.length} × ${why}`).join(', ');
    const sorted = [...r.recovery].sort((a, b) => a - b);
    const recovery = sorted.length === 0 ? '—' : `${sorted[Math.floor((sorted.length - 1) / 2)]} / ${sorted.at(-1)} ms`;
    const v = r.verdict;
    return `| ${r.name} | ${r.fault} | ${r.subscribers} | ${r.faults} | ${p.last.toLocaleString('en-US')} / ${p.acked.length.toLocaleString('en-US')}${refused === '' ? '' : ` (refused: ${refused})`} | ${r.clientSaw} | ${v.lost} / ${v.duplicated} / ${v.reordered} (${v.unanswered} delivered unanswered) | ${recovery} | ${r.notes.join('; ')} | ${r.failures.length === 0 ? 'pass' : `**FAIL**: ${r.failures.slice(0, 3).join('; ')}`} |`;
  });
  return [
    '| scenario | fault | subscribers | faults | published / acknowledged | what the clients saw | acknowledged lost / duplicated / reordered | recovery median / max | figures | result |',
    `|${' --- |'.repeat(10)}`,
    ...rows,
  ].join('\n');
}
