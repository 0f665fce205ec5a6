// Publish-to-delivery latency of each transport, side by side in one run (issue 5's figures).
//
// For every transport a hub process is started (`node dist/cli.js serve`), SUBSCRIBERS streams
// are opened on it, then UPDATES updates are published one after the other at RATE per second;
// the latency of an update is from just before its POST to the moment each subscriber has parsed
// it. Redis and NATS servers are started for the run on free ports, in a temporary folder.
//
//   npm run bench -- transports           (after npm run build)
//   SUBSCRIBERS=200 UPDATES=1000 RATE=200 npx tsx bench/transport-latency.ts
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { type AddressInfo, connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EventStreamParser } from '../src/protocol/index.js';
import { signToken } from '../src/hub/mercure/token.js';

const SUBSCRIBERS = Number(process.env.SUBSCRIBERS ?? 100);
const UPDATES = Number(process.env.UPDATES ?? 500);
const RATE = Number(process.env.RATE ?? 100);
const KEY = 'bench-secret-key-that-is-at-least-32-characters';
const cli = new URL('../dist/cli.js', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'ssehub-bench-'));
const children: ChildProcess[] = [];

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  await new Promise((r) => server.close(r));
  return port;
}

function start(cmd: string, args: string[], quiet = false): ChildProcess {
  const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', quiet ? 'ignore' : 'inherit'] });
  children.push(child);
  return child;
}

async function waitFor(check: () => Promise<boolean>, what: string, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    let ok = false;
    try {
      ok = await check();
    } catch (error) {
      if ((error as Error).message.includes('exited')) throw error;
    }
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
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

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

async function measure(name: string, transport: string): Promise<{ name: string; p50: number; p99: number; max: number; lost: number }> {
  const port = await freePort();
  const hub = start(process.execPath, [cli, 'serve', '--jwt-key', KEY, '--anonymous', '--listen', `127.0.0.1:${port}`, '--transport', transport, '--log-level', 'warn', '--max-connections', '0']);
  await waitFor(async () => {
    if (hub.exitCode !== null) throw new Error(`the ${name} hub exited with code ${hub.exitCode}`);
    return (await fetch(`http://127.0.0.1:${port}/readyz`)).ok;
  }, `${name} hub`);
  const url = `http://127.0.0.1:${port}/.well-known/mercure?topic=bench`;
  const sentAt = new Map<string, number>();
  const latencies: number[] = [];
  let received = 0;
  const streams = await Promise.all(
    Array.from({ length: SUBSCRIBERS }, () => new Promise<() => void>((resolve, reject) => {
      const parser = new EventStreamParser({
        onEvent: (e) => {
          const t = sentAt.get(e.lastEventId);
          if (t !== undefined) latencies.push(performance.now() - t);
          received++;
        },
      });
      const req = request(url, { agent: false }, (res) => {
        res.on('data', (c: Buffer) => parser.feed(c));
        resolve(() => req.destroy());
      });
      req.on('error', reject);
      req.end();
    })),
  );
  const token = await signToken(KEY, { publish: ['*'] });
  const gap = 1000 / RATE;
  const begin = performance.now();
  for (let i = 0; i < UPDATES; i++) {
    const id = `${name}-${i}`;
    const due = begin + i * gap;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    sentAt.set(id, performance.now());
    const res = await fetch(`http://127.0.0.1:${port}/.well-known/mercure`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ topic: 'bench', id, data: 'x'.repeat(64) }).toString(),
    });
    if (res.status !== 200) throw new Error(`${name}: publish answered ${res.status}: ${await res.text()}`);
  }
  await waitFor(async () => received >= UPDATES * SUBSCRIBERS, `${name} deliveries`, 10_000).catch(() => {});
  for (const close of streams) close();
  hub.kill('SIGTERM');
  latencies.sort((a, b) => a - b);
  return { name, p50: percentile(latencies, 50), p99: percentile(latencies, 99), max: latencies.at(-1) ?? Number.NaN, lost: UPDATES * SUBSCRIBERS - received };
}

async function main(): Promise<void> {
  const redisPort = await freePort();
  const natsPort = await freePort();
  start('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'yes', '--appendfsync', 'everysec', '--dir', dir], true);
  start('nats-server', ['-a', '127.0.0.1', '-p', String(natsPort), '-js', '-sd', join(dir, 'nats')], true);
  await waitFor(() => tcpOpen(redisPort), 'redis-server');
  await waitFor(() => tcpOpen(natsPort), 'nats-server');

  const runs: [string, string][] = [
    ['memory', 'memory'],
    ['sqlite', `sqlite:${join(dir, 'hub.db')}`],
    ['redis', `redis://127.0.0.1:${redisPort}/0`],
    ['nats', `nats://127.0.0.1:${natsPort}`],
  ];
  const results = [];
  for (const [name, transport] of runs) {
    try {
      results.push(await measure(name, transport));
    } catch (error) {
      console.error(`${name}: ${(error as Error).message}`);
    }
  }
  const base = results.find((r) => r.name === 'memory');
  console.log(`\nPublish-to-delivery latency: ${SUBSCRIBERS} subscribers, ${UPDATES} updates of 64 bytes at ${RATE}/s, one hub process\n`);
  console.log('| transport | p50 ms | p99 ms | max ms | added p50 vs memory | added p99 vs memory | lost |');
  console.log('| --- | --- | --- | --- | --- | --- | --- |');
  for (const r of results) {
    const add = (a: number, b: number | undefined) => (b === undefined ? '—' : `${(a - b).toFixed(2)}`);
    console.log(`| ${r.name} | ${r.p50.toFixed(2)} | ${r.p99.toFixed(2)} | ${r.max.toFixed(2)} | ${add(r.p50, base?.p50)} | ${add(r.p99, base?.p99)} | ${r.lost} |`);
  }
}

main()
  .catch((error: unknown) => {
    console.error(error);
    process.exitCode = 1;
  })
  .finally(() => {
    for (const child of children) child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });
