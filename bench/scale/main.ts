// The seeds' scale on one machine: 120,000 concurrent subscribers of one hub run as `--workers N`
// over a local Redis (or NATS), against the seeds' node that passed 120,000 SSE connections
// (latency 850 ms, memory 3.8 GB, then a rolling restart).
//
//   npm run bench -- scale [--write] [--transport redis|nats]
//   SUBSCRIBERS=120000 TOPICS=1000 WORKERS=8 npx tsx bench/scale/main.ts
//
// Every subscriber watches one of TOPICS topics and a topic every subscriber watches. The hub
// (primary and workers) and Redis or NATS are pinned to core 1, the load generator
// (bench/sse/loadgen.ts: raw sockets, children of at most 9,900 connections each, well within
// the 20,000 descriptors of a process, spread over 64 loopback source addresses) to core 0. In
// order:
//   connect   every subscriber at once (500 connections being opened at a time): time until all
//             have their response head and first comment, and until presence has every one of
//             them (Redis: its entries counted in Redis, two per subscriber)
//   memory    RSS of the hub's processes (primary and workers), in total and per connection
//   all       1 update per second to the topic everyone watches (120,000 deliveries each)
//   storm     everyone disconnects, 50 updates are published to the topic everyone watches, and
//             all 120,000 reconnect at once with Last-Event-ID: time until all have all
//   spread    100 updates per second, round-robin over the TOPICS topics (each to 120 subscribers)
// Latency is from each update's slot in the schedule to its arrival, over every delivery; the
// load generator counts every update lost, duplicated or out of order (each subscriber sees one
// sequence: the first phase's updates, the storm's, then its topic's).
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { connect } from 'node:net';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { signToken } from '../../src/hub/mercure/token.js';
import { onProcessExit } from '../../test/helpers/exit-hook.js';
import { freePort } from '../../test/helpers/ports.js';
import { type ClientStats, type Clients, MAX_PER_CHILD, onSchedule, payload, startClients } from '../sse/clients.js';
import { alive, childrenOf, cpuOf, fdsOf, rssOf } from '../sse/peers.js';

const SUBSCRIBERS = Number(process.env.SUBSCRIBERS ?? 120_000);
const TOPICS = Number(process.env.TOPICS ?? 1000);
const WORKERS = Number(process.env.WORKERS ?? 8);
const ALL_SECONDS = Number(process.env.ALL_SECONDS ?? 30);
const SPREAD_RATE = Number(process.env.SPREAD_RATE ?? 100);
const SPREAD_SECONDS = Number(process.env.SPREAD_SECONDS ?? 30);
const STORM_MISSED = Number(process.env.STORM_MISSED ?? 50);
/** A connection that fails to open is tried again after a random 0–RETRY_MS, as an EventSource does (its default reconnection time, and the hub's --retry, is 3 s). */
const RETRY_MS = Number(process.env.RETRY_MS ?? 3000);
/** The cores the hub and Redis/NATS run on (taskset list), and the load generator's. */
const SERVER_CORES = process.env.SERVER_CORES ?? '1';
const LOADGEN_CORE = Number(process.env.LOADGEN_CORE ?? 0);
const KEY = 'bench-secret-key-that-is-at-least-32-characters';
const ALL = 'https://example.com/scale/all';
const topicOf = (k: number) => `https://example.com/scale/t/${k}`;
/** The seeds' node at 120,000 connections: average latency (seed 000) and memory (seed 002). */
/** The kernel's accept-queue settings (the hub asks for more than any; the kernel caps it at somaxconn). */
const KERNEL = ['net/core/somaxconn', 'net/ipv4/tcp_max_syn_backlog']
  .map((name) => {
    try {
      return `${name.replaceAll('/', '.')} ${readFileSync(`/proc/sys/${name}`, 'utf8').trim()}`;
    } catch {
      return `${name.replaceAll('/', '.')} unknown`;
    }
  })
  .join(', ');
/** Descriptors a process may hold here (the hub's processes inherit the benchmark's limit). */
const FD_LIMIT = Number(/^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'))?.[1] ?? 0);
const SEEDS = { latencyMs: 850, memoryBytes: 3.8 * 2 ** 30 };

const args = process.argv.slice(2);
const option = (name: string): string | undefined => {
  const i = args.indexOf(`--${name}`);
  return i === -1 ? undefined : args[i + 1];
};
const TRANSPORT = (option('transport') ?? process.env.TRANSPORT ?? 'redis') as 'redis' | 'nats';
if (TRANSPORT !== 'redis' && TRANSPORT !== 'nats') throw new Error('--transport redis or nats');
if (SPREAD_RATE * SPREAD_SECONDS % TOPICS !== 0) throw new Error('SPREAD_RATE × SPREAD_SECONDS must be a multiple of TOPICS (every topic gets as many updates)');

const root = new URL('../../', import.meta.url).pathname;
const cli = join(root, 'dist/cli.js');
const dir = mkdtempSync(join(tmpdir(), 'ssehub-bench-scale-'));
const children: ChildProcess[] = [];
onProcessExit(() => {
  for (const child of children) child.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

const log = (message: string) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${message}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------
// Processes and /proc

/** Starts a server process pinned to the servers' core; its output goes to `<name>.log` in the run's folder. */
function start(command: string[], name: string): ChildProcess {
  const out = openSync(join(dir, `${name}.log`), 'a');
  const child = spawn('taskset', ['-c', SERVER_CORES, ...command], { cwd: dir, stdio: ['ignore', out, out] });
  child.on('exit', (code, signal) => {
    if (!stopping) log(`${name} exited (${signal ?? code}):\n${logTail(name)}`);
  });
  children.push(child);
  return child;
}

function logTail(name: string): string {
  try {
    return readFileSync(join(dir, `${name}.log`), 'utf8').slice(-4000);
  } catch {
    return '';
  }
}

/** The hub's log lines at warn level and above, counted by message. */
function hubWarnings(): string {
  const counts = new Map<string, number>();
  for (const line of logTail('hub').split('\n')) {
    const match = /"msg":"([^"]*)"/.exec(line);
    if (match !== null && /"level":(40|50|60)/.test(line)) counts.set(match[1] as string, (counts.get(match[1] as string) ?? 0) + 1);
  }
  return [...counts].map(([message, n]) => `${n}× ${message}`).join('; ');
}
let stopping = false;

/** User + system CPU of `pids`, in seconds. */
const cpuSeconds = (pids: number[]): number => {
  const { user, system } = cpuOf(pids);
  return (user + system) / 1e6;
};

async function until(check: () => Promise<boolean>, what: string, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}`);
}

function status(port: number, path: string): Promise<number> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false, timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(0));
    req.end();
  });
}

// ---------------------------------------------------------------------------------------------
// The servers

interface Servers {
  port: number;
  /** The hub's PIDs: the primary and its workers. */
  hub: () => number[];
  /** The transport server's PID. */
  backend: number;
  redis?: Redis;
}

async function startServers(): Promise<Servers> {
  const backendPort = await freePort();
  let transport: string;
  let backend: ChildProcess;
  if (TRANSPORT === 'redis') {
    backend = start(['redis-server', '--port', String(backendPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'yes', '--appendfsync', 'everysec', '--dir', dir, '--maxclients', '1000'], 'redis-server');
    transport = `redis://127.0.0.1:${backendPort}`;
  } else {
    backend = start(['nats-server', '-js', '-a', '127.0.0.1', '-p', String(backendPort), '-sd', join(dir, 'nats')], 'nats-server');
    transport = `nats://127.0.0.1:${backendPort}`;
  }
  await until(async () => backend.exitCode === null && (await tcpOpen(backendPort)), TRANSPORT, 15_000);
  const port = await freePort();
  const hub = start([process.execPath, cli, 'serve', '--workers', String(WORKERS), '--transport', transport, '--jwt-key', KEY, '--anonymous', '--listen', `127.0.0.1:${port}`, '--max-connections', '0', '--log-level', 'warn', '--write-timeout', '0', '--drain-timeout', '1s'], 'hub');
  await until(async () => (await status(port, '/readyz')) === 200 && childrenOf(hub.pid as number).length === WORKERS, 'the hub and its workers', 60_000);
  // Every worker must be ready, not only the one that answered.
  for (let i = 0; i < 4 * WORKERS; i++) await until(async () => (await status(port, '/readyz')) === 200, 'every worker', 30_000);
  const servers: Servers = { port, hub: () => [hub.pid as number, ...childrenOf(hub.pid as number)], backend: backend.pid as number };
  if (TRANSPORT === 'redis') servers.redis = new Redis({ host: '127.0.0.1', port: backendPort, lazyConnect: false });
  return servers;
}

function tcpOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1', () => {
      socket.destroy();
      resolve(true);
    });
    socket.on('error', () => resolve(false));
  });
}

/**
 * The most descriptors each hub process held while `during` ran (sampled every 250 ms), primary
 * first: a process at its limit (ulimit -n) sheds new connections (libuv accepts and closes them).
 */
async function peakFds<T>(pids: () => number[], during: Promise<T>): Promise<{ result: T; peaks: number[] }> {
  const peaks: number[] = [];
  const sample = () => pids().forEach((pid, i) => (peaks[i] = Math.max(peaks[i] ?? 0, fdsOf(pid))));
  const timer = setInterval(sample, 250);
  try {
    const result = await during;
    sample();
    return { result, peaks };
  } finally {
    clearInterval(timer);
  }
}

/** Presence entries in Redis, over every node (two per subscriber: its topic and the one everyone watches). */
async function presenceEntries(redis: Redis): Promise<number> {
  let total = 0;
  for (const node of await redis.zrange('{ssehub}:presence:nodes', '0', '-1')) total += await redis.hlen(`{ssehub}:presence:node:${node}`);
  return total;
}

/** Logs the requests the hub refused so far (the group's /metrics), by status and reason. */
async function reportRejections(port: number): Promise<void> {
  const text = await fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.text()).catch(() => '');
  const lines = text.split('\n').filter((l) => l.startsWith('ssehub_requests_rejected_total{') && !l.endsWith(' 0'));
  if (lines.length > 0) log(`refused: ${lines.join('; ')}`);
}

// ---------------------------------------------------------------------------------------------
// Publishing

const agent = new Agent({ keepAlive: true, maxSockets: 1 });
let authorization = '';
/** Publishes answered 503 and sent again (see publish). */
let retried = 0;
let published = 0;

function post(port: number, body: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, path: '/.well-known/mercure', method: 'POST', agent, headers: { 'content-type': 'application/x-www-form-urlencoded', authorization, 'content-length': Buffer.byteLength(body) } },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.setTimeout(30_000, () => req.destroy(new Error('no answer to a publish within 30 s')));
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * Publishes one update under its own ID, as a publisher that cares should: a 503 (the transport
 * did not answer in time: the update may or may not be stored) is sent again with the same ID
 * after 100 ms, and a 409 then means the first one was stored. Every retry is counted and reported.
 */
async function publish(port: number, topic: string, data: string): Promise<void> {
  const id = `urn:bench:${++published}`;
  const body = new URLSearchParams({ topic, data, id }).toString();
  for (let attempt = 0; ; attempt++) {
    // A keep-alive connection the hub closed while it was idle (a long storm) fails as it is reused: sent again, as a 503 is.
    const status = await post(port, body).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'ECONNRESET' || attempt === 50) throw error;
      return 503;
    });
    if (status === 200 || (status === 409 && attempt > 0)) return;
    if (status !== 503 || attempt === 50) throw new Error(`publish answered ${status}${attempt > 0 ? ` after ${attempt} retries` : ''}`);
    retried++;
    await sleep(100);
  }
}

// ---------------------------------------------------------------------------------------------
// The run

interface Phase {
  /** Openings that failed and were tried again during the phase, and the first reasons. */
  retries: number;
  retryReasons: string[];
  p50: number;
  p99: number;
  max: number;
  deliveries: number;
  lost: number;
  duplicated: number;
  reordered: number;
}

function phase(before: ClientStats, after: ClientStats, expected: number): Phase {
  const deliveries = after.events - before.events;
  const lost = after.lost - before.lost;
  return {
    retries: after.retries - before.retries,
    // The phase's own failures, most frequent first.
    retryReasons: Object.entries(after.retryReasons)
      .map(([reason, n]) => [reason, n - (before.retryReasons[reason] ?? 0)] as const)
      .filter(([, n]) => n > 0)
      .sort((a, b) => b[1] - a[1])
      .map(([reason, n]) => `${reason}: ${n.toLocaleString('en-US')}`),
    p50: after.latency.p50 / 1000,
    p99: after.latency.p99 / 1000,
    max: after.latency.max / 1000,
    deliveries,
    lost: lost + Math.max(0, expected - deliveries - lost),
    duplicated: after.duplicated - before.duplicated,
    reordered: after.reordered - before.reordered,
  };
}

interface Results {
  connectMs: number;
  presenceMs: number | undefined;
  presenceEntries: number | undefined;
  rssBefore: number;
  rssAfter: number;
  rssWorkers: number[];
  all: Phase;
  spread: Phase;
  stormMs: number;
  storm: Phase;
  cpu: { connect: number; presence: number; storm: number; backendConnect: number; backendStorm: number; loadgenStorm: number };
  retried: number;
  published: number;
  connectRetries: number;
  /** Subscribers not open again after the storm (every retry failed). */
  notBack: number;
  /** The most descriptors each hub process held (primary first) while connecting, and during the storm. */
  connectFds: number[];
  stormFds: number[];
}

async function run(): Promise<Results> {
  authorization = `Bearer ${await signToken(KEY, { publish: ['*'] })}`;
  log(`starting ${TRANSPORT} and the hub (--workers ${WORKERS})`);
  const servers = await startServers();
  const { port } = servers;
  const hubCpu = () => cpuSeconds(servers.hub());
  const backendCpu = () => cpuSeconds([servers.backend]);
  await sleep(2000);
  const rssBefore = rssOf(servers.hub());
  const clients: Clients = await startClients({ processes: Math.ceil(SUBSCRIBERS / MAX_PER_CHILD), core: LOADGEN_CORE, retryMs: RETRY_MS });
  try {
    const paths = Array.from({ length: TOPICS }, (_, k) => `/.well-known/mercure?topic=${encodeURIComponent(ALL)}&topic=${encodeURIComponent(topicOf(k))}`);
    log(`connecting ${SUBSCRIBERS.toLocaleString('en-US')} subscribers`);
    let cpu0 = hubCpu();
    let b0 = backendCpu();
    const t0 = performance.now();
    const { peaks: connectFds } = await peakFds(servers.hub, clients.connect({ host: '127.0.0.1', port, path: paths[0] as string, paths }, SUBSCRIBERS));
    log(`most descriptors held while connecting (primary first): ${connectFds.join(', ')}`);
    const connectMs = performance.now() - t0;
    const connectCpu = hubCpu() - cpu0;
    const backendConnect = backendCpu() - b0;
    const connectRetries = (await clients.stats()).retries;
    log(`connected in ${(connectMs / 1000).toFixed(1)} s (${connectRetries} openings tried again)`);
    let presenceMs: number | undefined;
    let entries: number | undefined;
    if (servers.redis !== undefined) {
      const redis = servers.redis;
      await until(async () => (entries = await presenceEntries(redis)) >= 2 * SUBSCRIBERS, 'presence of every subscriber', 600_000).catch((error: Error) => log(error.message));
      presenceMs = performance.now() - t0;
      log(`presence has ${entries?.toLocaleString('en-US')} entries after ${(presenceMs / 1000).toFixed(1)} s`);
    }
    const presenceCpu = hubCpu() - cpu0;
    await sleep(5000);
    const rssAfter = rssOf(servers.hub());
    const rssWorkers = servers.hub().map((pid) => rssOf([pid]));

    log(`1 update/s to all for ${ALL_SECONDS} s`);
    clients.resetLatency();
    let before = await clients.stats();
    await onSchedule(ALL_SECONDS, 1, (k, due) => publish(port, ALL, payload(k + 1, due)));
    await clients.waitFor(ALL_SECONDS, 120_000);
    const all = phase(before, await clients.stats(), SUBSCRIBERS * ALL_SECONDS);
    log(`all: p50 ${all.p50.toFixed(0)} ms p99 ${all.p99.toFixed(0)} ms`);

    await reportRejections(port);
    log(`storm: all disconnect, ${STORM_MISSED} updates, all reconnect at once with Last-Event-ID`);
    await clients.disconnectAll();
    await sleep(2000);
    for (let k = 1; k <= STORM_MISSED; k++) await publish(port, ALL, payload(ALL_SECONDS + k));
    clients.resetLatency();
    before = await clients.stats();
    cpu0 = hubCpu();
    b0 = backendCpu();
    const s0 = performance.now();
    // Connections still not open after every retry are reported, not fatal: the figures of the others still count.
    let stormFailure: string | undefined;
    const { peaks: stormFds } = await peakFds(
      servers.hub,
      (async () => {
        await clients.reconnectAll().catch((error: Error) => (stormFailure = error.message));
        await clients.waitFor(ALL_SECONDS + STORM_MISSED, 600_000).catch((error: Error) => (stormFailure ??= error.message));
      })(),
    );
    const stormMs = performance.now() - s0;
    log(`most descriptors held during the storm (primary first): ${stormFds.join(', ')}`);
    await reportRejections(port);
    const afterStorm = await clients.stats();
    const notBack = SUBSCRIBERS - afterStorm.connections;
    if (stormFailure !== undefined) log(`storm: ${stormFailure}`);
    const storm = phase(before, afterStorm, afterStorm.connections * STORM_MISSED);
    const stormCpu = hubCpu() - cpu0;
    // The load generator's own CPU over the storm: near the storm's length, its core was the limit.
    const loadgenStorm = (afterStorm.cpu.user + afterStorm.cpu.system - before.cpu.user - before.cpu.system) / 1e6;
    const backendStorm = backendCpu() - b0;
    log(`storm: ${(stormMs / 1000).toFixed(1)} s, ${storm.retries} openings tried again (${storm.retryReasons.join('; ')})`);
    if (servers.redis !== undefined) log(`presence after the storm: ${(await presenceEntries(servers.redis)).toLocaleString('en-US')} entries`);
    const spreadCount = SPREAD_RATE * SPREAD_SECONDS;
    const perTopic = spreadCount / TOPICS;
    log(`${SPREAD_RATE} updates/s over ${TOPICS} topics for ${SPREAD_SECONDS} s`);
    clients.resetLatency();
    before = await clients.stats();
    await onSchedule(spreadCount, SPREAD_RATE, (k, due) => publish(port, topicOf(k % TOPICS), payload(ALL_SECONDS + STORM_MISSED + 1 + Math.floor(k / TOPICS), due)));
    const lastSpread = ALL_SECONDS + STORM_MISSED + perTopic;
    await clients.waitFor(lastSpread, 120_000);
    const afterSpread = await clients.stats();
    const spread = phase(before, afterSpread, afterSpread.connections * perTopic);
    log(`spread: p50 ${spread.p50.toFixed(0)} ms p99 ${spread.p99.toFixed(0)} ms`);

    return {
      connectMs, presenceMs, presenceEntries: entries, rssBefore, rssAfter, rssWorkers, all, spread, stormMs, storm, connectFds, stormFds,
      cpu: { connect: connectCpu, presence: presenceCpu, storm: stormCpu, backendConnect, backendStorm, loadgenStorm },
      retried,
      published,
      connectRetries,
      notBack,
    };
  } finally {
    const warnings = hubWarnings();
    if (warnings !== '') log(`the hub logged: ${warnings}`);
    stopping = true;
    await clients.close();
    agent.destroy();
    servers.redis?.disconnect();
    // The primary drains its workers on SIGTERM; whatever is left after a while is killed.
    const pids = [...servers.hub(), servers.backend];
    for (const child of children) child.kill('SIGTERM');
    for (let i = 0; i < 50 && pids.some(alive); i++) await sleep(100);
    for (const pid of pids.filter(alive)) process.kill(pid, 'SIGKILL');
  }
}

const fmt = (v: number, digits = 0) => v.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
const mib = (bytes: number) => `${fmt(bytes / 2 ** 20)} MiB`;

function render(r: Results): string {
  const perConnection = (r.rssAfter - r.rssBefore) / SUBSCRIBERS;
  const row = (name: string, p: Phase) => `| ${name} | ${fmt(p.deliveries)} | ${fmt(p.p50, 1)} | ${fmt(p.p99, 1)} | ${fmt(p.max, 1)} | ${p.lost}/${p.duplicated}/${p.reordered} |`;
  return [
    `${process.env.NODE_CLUSTER_SCHED_POLICY !== undefined ? `With NODE_CLUSTER_SCHED_POLICY=${process.env.NODE_CLUSTER_SCHED_POLICY}. ` : ''}Machine: ${cpus().length} cores (${cpus()[0]?.model.trim() ?? '?'}), ${Math.round(totalmem() / 2 ** 30)} GiB, Node.js ${process.version}. The hub (--workers ${WORKERS}) and ${TRANSPORT === 'redis' ? 'Redis' : 'NATS'} on core${SERVER_CORES.length > 1 ? 's' : ''} ${SERVER_CORES}, the load generator (${Math.ceil(SUBSCRIBERS / MAX_PER_CHILD)} processes) on core ${LOADGEN_CORE}. Kernel: ${KERNEL}.`,
    `${fmt(SUBSCRIBERS)} subscribers, each to one of ${fmt(TOPICS)} topics and to one topic all of them watch; presence on (as shipped).`,
    '',
    '| figure | ssehub | the seeds\' node |',
    '| --- | --- | --- |',
    `| connect all ${fmt(SUBSCRIBERS)} | ${fmt(r.connectMs / 1000, 1)} s, 500 being opened at a time (hub CPU ${fmt(r.cpu.connect, 1)} s, ${TRANSPORT} ${fmt(r.cpu.backendConnect, 1)} s; ${fmt(r.connectRetries)} openings tried again) | — |`,
    ...(r.presenceMs === undefined ? [] : [`| presence of all (${fmt(r.presenceEntries ?? 0)} entries in Redis) | ${fmt(r.presenceMs / 1000, 1)} s after the first connection (hub CPU until then ${fmt(r.cpu.presence, 1)} s) | — |`]),
    `| RSS of the hub's ${WORKERS + 1} processes | ${mib(r.rssAfter)} (${mib(r.rssBefore)} before the connections) | 3.8 GB |`,
    `| RSS per connection | ${fmt(perConnection / 1024, 1)} KiB (growth), ${fmt(r.rssAfter / SUBSCRIBERS / 1024, 1)} KiB (total / connections) | ${fmt(SEEDS.memoryBytes / SUBSCRIBERS / 1024, 1)} KiB |`,
    `| latency at 1 update/s to all: p50 / p99 / max | ${fmt(r.all.p50)} / ${fmt(r.all.p99)} / ${fmt(r.all.max)} ms | 850 ms average |`,
    `| latency at ${SPREAD_RATE} updates/s over ${fmt(TOPICS)} topics: p50 / p99 / max | ${fmt(r.spread.p50, 1)} / ${fmt(r.spread.p99, 1)} / ${fmt(r.spread.max, 1)} ms | — |`,
    `| reconnect storm, all ${fmt(SUBSCRIBERS)} at once with Last-Event-ID, ${STORM_MISSED} missed | ${fmt(r.stormMs / 1000, 1)} s until all had all (hub CPU ${fmt(r.cpu.storm, 1)} s, ${TRANSPORT} ${fmt(r.cpu.backendStorm, 1)} s, load generator ${fmt(r.cpu.loadgenStorm, 1)} s); ${fmt(r.storm.retries)} openings failed and were tried again after 0–${fmt(RETRY_MS / 1000)} s${r.storm.retries > 0 ? ` (${r.storm.retryReasons.join('; ')})` : ''}; ${fmt(r.notBack)} not back after 30 tries | a rolling restart |`,
    '',
    '| phase | deliveries | p50 ms | p99 ms | max ms | lost/dup/reord |',
    '| --- | --- | --- | --- | --- | --- |',
    row('1 update/s to all', r.all),
    row(`${SPREAD_RATE} updates/s over the topics`, r.spread),
    row('storm (the missed updates, from the reconnect)', r.storm),
    '',
    `RSS per process (primary first): ${r.rssWorkers.map((b) => mib(b)).join(', ')}.`,
    `Most descriptors held per process (primary first; the limit is ${fmt(FD_LIMIT)}): connecting ${r.connectFds.map((n) => fmt(n)).join(', ')}; storm ${r.stormFds.map((n) => fmt(n)).join(', ')}.`,
    `Publishes answered 503 (the transport's command timeout passed) or cut (a keep-alive connection closed as it was reused) and sent again with the same ID: ${fmt(r.retried)} of ${fmt(r.published)}.`,
  ].join('\n');
}

function write(report: string): void {
  const docPath = new URL('../../docs/benchmarks.md', import.meta.url);
  const doc = readFileSync(docPath, 'utf8');
  const startMark = '<!-- scale-bench:start -->';
  const endMark = '<!-- scale-bench:end -->';
  const i = doc.indexOf(startMark);
  const j = doc.indexOf(endMark);
  if (i === -1 || j === -1) throw new Error(`docs/benchmarks.md has no ${startMark} … ${endMark} markers`);
  const section = `${startMark}\nRun of ${new Date().toISOString().slice(0, 10)} (\`npm run bench -- scale --write${TRANSPORT === 'nats' ? ' --transport nats' : ''}\`):\n\n${report}\n${endMark}`;
  writeFileSync(docPath, doc.slice(0, i) + section + doc.slice(j + endMark.length));
  log('wrote docs/benchmarks.md');
}

process.on('SIGINT', () => process.exit(130));
const results = await run();
const report = render(results);
process.stdout.write(`${report}\n`);
const anomalies = [results.all, results.spread, results.storm].reduce((n, p) => n + p.lost + p.duplicated + p.reordered, 0);
if (anomalies > 0) {
  log(`${anomalies} updates lost, duplicated or reordered`);
  process.exitCode = 1;
}
if (args.includes('--write')) write(report);
