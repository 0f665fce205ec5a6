// `--workers N` and /metrics: whichever worker a scrape reaches answers with the whole group's
// figures, gathered by the primary over IPC; a worker that does not answer does not hang it.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { signToken } from '../../src/hub/mercure/token.js';
import { type HubProcess, startHubProcess } from '../helpers/hub-process.js';
import { TEST_KEY } from '../helpers/hub.js';
import { send } from '../helpers/hub-probes.js';
import { startRedisServer } from '../helpers/redis-server.js';
import { type SseRecorder, openSse } from '../helpers/sse-client.js';

function workerPids(primary: number): number[] {
  try {
    return execFileSync('pgrep', ['-P', String(primary)], { encoding: 'utf8' }).trim().split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** Established TCP connections to local `port` that process `pid` holds: its socket descriptors matched against /proc/net/tcp{,6}. */
function connectionsHeldBy(pid: number, port: number): number {
  const established = new Set<string>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of readFileSync(table, 'utf8').split('\n').slice(1)) {
      const [, local, , state, , , , , , inode] = line.trim().split(/\s+/);
      if (state === '01' && local !== undefined && inode !== undefined && Number.parseInt(local.split(':').at(-1) as string, 16) === port) established.add(inode);
    }
  }
  let held = 0;
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const inode = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`))?.[1];
      if (inode !== undefined && established.has(inode)) held++;
    } catch {
      // closed meanwhile
    }
  }
  return held;
}

/** One scrape on a connection of its own (node:cluster hands each new connection to the next worker). */
async function scrape(hub: HubProcess): Promise<string> {
  const res = await send(`${hub.url}/metrics`, { headers: { connection: 'close' } });
  assert.equal(res.status, 200, res.body);
  return res.body;
}

/** The value of an unlabelled sample in a scrape (`undefined` when absent). */
function sample(text: string, name: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.slice(name.length + 1));
}

async function until(check: () => boolean | Promise<boolean>, what: string, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function publish(hub: HubProcess, id: string): Promise<void> {
  const token = await signToken(TEST_KEY, { publish: ['*'] });
  const res = await send(hub.hubUrl, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/x-www-form-urlencoded', connection: 'close' },
    body: new URLSearchParams({ topic: 'm', id, data: id }).toString(),
  });
  assert.equal(res.status, 200, res.body);
}

/** A `--workers 2` hub over a fresh Redis, once both workers report (a worker reports once its hub listens). */
async function twoWorkers(flags: string[] = []): Promise<{ hub: HubProcess; workers: number[] }> {
  const redis = await startRedisServer();
  after(() => redis.stop());
  const hub = await startHubProcess(['--transport', `${redis.url}/0`, '--anonymous', '--workers', '2', '--drain-timeout', '0', ...flags]);
  after(() => hub.kill('SIGKILL'));
  const primary = hub.child.pid as number;
  await until(() => workerPids(primary).length === 2, 'two workers');
  await until(async () => sample(await scrape(hub), 'ssehub_workers_reporting') === 2, 'both workers reporting');
  return { hub, workers: workerPids(primary) };
}

describe('--workers: /metrics of the whole group', () => {
  it('reports the connections open on both workers and the updates published through either, on every scrape, and so does the dashboard', { timeout: 90_000 }, async () => {
    const { hub, workers } = await twoWorkers(['--ui']);
    const subs: SseRecorder[] = [];
    after(() => subs.forEach((s) => s.close()));
    // Connections go to the workers in turn; open until both hold some, so that one worker's figures cannot pass for the group's.
    while (subs.length < 6 || workers.some((pid) => connectionsHeldBy(pid, hub.port) === 0)) {
      assert.ok(subs.length < 40, `40 streams and still a worker holds none: ${workers.map((pid) => connectionsHeldBy(pid, hub.port)).join(', ')}`);
      const sub = await openSse(`${hub.hubUrl}?topic=m`);
      subs.push(sub);
      assert.equal(sub.status, 200, sub.text);
      // The retry hint is written once the hub has counted the connection.
      await sub.until((r) => r.retries.length === 1, 'the retry hint sent on connect');
    }
    const held = workers.map((pid) => connectionsHeldBy(pid, hub.port));
    assert.ok(held.every((n) => n > 0), `each worker holds streams: ${held.join(', ')}`);

    const published = 10;
    for (let i = 1; i <= published; i++) await publish(hub, `m-${i}`);
    await Promise.all(subs.map((s) => s.events_(published)));

    for (let i = 0; i < 6; i++) {
      const text = await scrape(hub);
      assert.equal(sample(text, 'ssehub_connections'), subs.length, `scrape ${i + 1}: connections (per worker: ${held.join(', ')})`);
      assert.equal(sample(text, 'ssehub_subscriptions'), subs.length, `scrape ${i + 1}: subscriptions`);
      assert.equal(sample(text, 'ssehub_updates_published_total'), published, `scrape ${i + 1}: updates published`);
      assert.equal(sample(text, 'ssehub_deliveries_total'), published * subs.length, `scrape ${i + 1}: deliveries`);
      assert.equal(sample(text, 'ssehub_delivery_latency_seconds_count'), published * 2, `scrape ${i + 1}: one latency observation per update on each worker`);
      assert.equal(sample(text, 'ssehub_workers'), 2);
      assert.equal(sample(text, 'ssehub_workers_reporting'), 2);
      // Per-process figures keep the worker apart.
      assert.equal(text.split('\n').filter((l) => l.startsWith('process_max_fds{worker=')).length, 2, text);
    }

    const uiToken = await signToken(TEST_KEY, { ui: true });
    for (let i = 0; i < 4; i++) {
      const res = await send(`${hub.url}/ui/api/state`, { headers: { authorization: `Bearer ${uiToken}`, connection: 'close' } });
      assert.equal(res.status, 200, res.body);
      const state = JSON.parse(res.body) as { connections: number; subscriptions: number; updatesPublished: number; deliveries: number; workers: number; workersReporting: number };
      assert.deepEqual(
        { connections: state.connections, subscriptions: state.subscriptions, updatesPublished: state.updatesPublished, deliveries: state.deliveries, workers: state.workers, workersReporting: state.workersReporting },
        { connections: subs.length, subscriptions: subs.length, updatesPublished: published, deliveries: published * subs.length, workers: 2, workersReporting: 2 },
        `dashboard poll ${i + 1}`,
      );
    }
  });

  it('answers a scrape with the workers that answer when one is stopped (SIGSTOP), its counters as last reported', { timeout: 90_000 }, async () => {
    const { hub, workers } = await twoWorkers();
    for (let i = 1; i <= 6; i++) await publish(hub, `s-${i}`);
    // A scrape both workers answer: the primary now knows each worker's counters.
    await until(async () => {
      const text = await scrape(hub);
      return sample(text, 'ssehub_workers_reporting') === 2 && sample(text, 'ssehub_updates_published_total') === 6;
    }, 'a scrape with both workers and every publish');

    const stopped = workers[0] as number;
    process.kill(stopped, 'SIGSTOP');
    after(() => {
      try {
        process.kill(stopped, 'SIGCONT'); // so that it can exit with the primary
      } catch {
        // already gone
      }
    });
    // node:cluster hands at most one of two new connections to the stopped worker (it takes no
    // other before it acknowledges that one): the other reaches the running worker, which must answer.
    const scrapes = [scrape(hub), scrape(hub)];
    const first = await Promise.any(scrapes);
    assert.equal(sample(first, 'ssehub_workers'), 2);
    assert.equal(sample(first, 'ssehub_workers_reporting'), 1, first);
    assert.equal(sample(first, 'ssehub_updates_published_total'), 6, 'a group counter went back while a worker did not answer');

    process.kill(stopped, 'SIGCONT');
    await Promise.all(scrapes);
    await until(async () => sample(await scrape(hub), 'ssehub_workers_reporting') === 2, 'the resumed worker reporting again');
  });

  it('keeps a group counter from going back when a worker dies and is replaced', { timeout: 90_000 }, async () => {
    const { hub, workers } = await twoWorkers();
    for (let i = 1; i <= 6; i++) await publish(hub, `k-${i}`);
    await until(async () => {
      const text = await scrape(hub);
      return sample(text, 'ssehub_workers_reporting') === 2 && sample(text, 'ssehub_updates_published_total') === 6;
    }, 'a scrape with both workers and every publish');

    const victim = workers[0] as number;
    process.kill(victim, 'SIGKILL');
    const primary = hub.child.pid as number;
    await until(() => {
      const pids = workerPids(primary);
      return pids.length === 2 && !pids.includes(victim);
    }, 'the dead worker replaced');
    await until(async () => sample(await scrape(hub), 'ssehub_workers_reporting') === 2, 'the replacement reporting');

    await publish(hub, 'k-7');
    for (let i = 0; i < 4; i++) assert.equal(sample(await scrape(hub), 'ssehub_updates_published_total'), 7, `scrape ${i + 1}`);
  });
});
