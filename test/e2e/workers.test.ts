// `--workers N`: N hub processes share one port through node:cluster and one Redis transport.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { signToken } from '../../src/hub/mercure/token.js';
import { startHubProcess } from '../helpers/hub-process.js';
import { TEST_KEY } from '../helpers/hub.js';
import { startRedisServer } from '../helpers/redis-server.js';
import { openSse } from '../helpers/sse-client.js';

function workerPids(primary: number): number[] {
  try {
    return execFileSync('pgrep', ['-P', String(primary)], { encoding: 'utf8' }).trim().split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** Open descriptors of a process. */
function fds(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** Whether process `pid` holds the socket listening on `port` (found by its inode in /proc/net/tcp). */
function listensOn(pid: number, port: number): boolean {
  const hex = port.toString(16).toUpperCase().padStart(4, '0');
  const inodes = readFileSync('/proc/net/tcp', 'utf8')
    .split('\n')
    .map((line) => line.trim().split(/\s+/))
    .filter((f) => f[1]?.endsWith(`:${hex}`) && f[3] === '0A')
    .map((f) => `socket:[${f[9]}]`);
  return readdirSync(`/proc/${pid}/fd`).some((fd) => {
    try {
      return inodes.includes(readlinkSync(`/proc/${pid}/fd/${fd}`));
    } catch {
      return false;
    }
  });
}

async function until(check: () => boolean, what: string, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('--workers', () => {
  it('runs three worker processes on one port that serve every subscriber, restarts a dead worker, and drains on SIGTERM', { timeout: 90_000 }, async () => {
    const redis = await startRedisServer();
    after(() => redis.stop());
    const hub = await startHubProcess(['--transport', `${redis.url}/0`, '--anonymous', '--workers', '3', '--drain-timeout', '200ms']);
    after(() => hub.kill('SIGKILL'));
    const primary = hub.child.pid as number;
    await until(() => workerPids(primary).length === 3, 'three workers');

    const subs = await Promise.all(Array.from({ length: 9 }, () => openSse(`${hub.hubUrl}?topic=w`)));
    after(() => subs.forEach((s) => s.close()));
    const token = await signToken(TEST_KEY, { publish: ['*'] });
    for (let i = 1; i <= 20; i++) {
      const res = await fetch(hub.hubUrl, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/x-www-form-urlencoded', connection: 'close' },
        body: new URLSearchParams({ topic: 'w', id: `w-${i}`, data: String(i) }).toString(),
      });
      assert.equal(res.status, 200);
    }
    await Promise.all(subs.map((s) => s.events_(20)));
    for (const s of subs) assert.deepEqual(s.events.map((e) => e.lastEventId), Array.from({ length: 20 }, (_, i) => `w-${i + 1}`));

    const [victim] = workerPids(primary);
    process.kill(victim as number, 'SIGKILL');
    await until(() => {
      const pids = workerPids(primary);
      return pids.length === 3 && !pids.includes(victim as number);
    }, 'the dead worker replaced');

    assert.equal(await hub.kill('SIGTERM'), 0);
    assert.deepEqual(workerPids(primary), []);
  });

  it('drains every stream when each worker gets its own SIGTERM and then the primary forwards one (Ctrl-C, systemd: the whole process group is signalled)', { timeout: 90_000 }, async () => {
    const redis = await startRedisServer();
    after(() => redis.stop());
    // 10 streams over 3 workers, each worker closing its streams one by one over 2 s: at the
    // primary's signal (after the first stream has ended) most of them are still open.
    const hub = await startHubProcess(['--transport', `${redis.url}/0`, '--anonymous', '--workers', '3', '--drain-timeout', '2s']);
    after(() => hub.kill('SIGKILL'));
    const primary = hub.child.pid as number;
    await until(() => workerPids(primary).length === 3, 'three workers');
    const workers = workerPids(primary);

    const subs = await Promise.all(Array.from({ length: 10 }, () => openSse(`${hub.hubUrl}?topic=group`)));
    after(() => subs.forEach((s) => s.close()));
    for (const s of subs) assert.equal(s.status, 200, s.text);
    // The hint every stream gets when it opens: a graceful end adds a second one.
    await Promise.all(subs.map((s) => s.until((r) => r.retries.length === 1, 'the retry hint sent on connect')));

    // What a process-group signal does: every worker gets SIGTERM itself, and the primary too,
    // which then forwards SIGTERM to each worker, already draining.
    for (const pid of workers) process.kill(pid, 'SIGTERM');
    await until(() => subs.some((s) => s.ended), 'a worker starting to drain (its first stream ended)', 10_000);
    const openAtForward = subs.filter((s) => !s.ended).length;
    assert.ok(openAtForward > 0, 'every stream had already ended before the primary was signalled: the test would prove nothing');
    const exitCode = await hub.kill('SIGTERM');

    await Promise.all(subs.map((s) => s.done));
    const cut = subs.filter((s) => s.retries.length !== 2 || !/\nretry: \d+\n\n$/.test(s.text)).map((s) => JSON.stringify(s.text));
    assert.deepEqual(cut, [], `${cut.length} of 10 streams (${openAtForward} still open when the primary forwarded SIGTERM) ended without the drain's closing retry hint, cut by a worker that took the forwarded SIGTERM as "stop now":\n${cut.join('\n')}\n${hub.stderr()}`);
    assert.equal(exitCode, 0, hub.stderr());
    assert.deepEqual(workerPids(primary), []);
  });

  it('workers at their descriptor ceilings stop accepting and the others take the connections: none refused while there is room, and they accept again once some close', { timeout: 90_000 }, async () => {
    const redis = await startRedisServer();
    after(() => redis.stop());
    // ulimit -n 500: a worker should hold at most 244 connections (500 less a reserve of 256) and
    // stops on its own at 468, a few short of running out.
    const hub = await startHubProcess(['--transport', `${redis.url}/0`, '--anonymous', '--workers', '2', '--log-level', 'debug'], undefined, [], { fdLimit: 500, stdout: true });
    after(() => hub.kill('SIGKILL'));
    const primary = hub.child.pid as number;
    await until(() => workerPids(primary).length === 2, 'two workers');
    const workers = workerPids(primary);
    await until(() => workers.every((pid) => listensOn(pid, hub.port)), 'both workers listening');
    // Until the primary has heard from both, each listens as if alone (past its ceilings).
    // (Both are told at once, when the second one reports: the first alone was left as it was.)
    await until(() => hub.stdout().split('\n').filter((l) => l.includes('"msg":"admission"') && l.includes('"keep":false')).length >= 2, 'the primary telling both that the other listens');
    const base = workers.map(fds);
    const held = () => workers.map((pid, i) => fds(pid) - (base[i] as number));

    // What the workers said of accepting, for a failure's message.
    const story = () => hub.stdout().split('\n').filter((l) => /"msg":"(admission|accepting|not accepting|out of descriptors)/.test(l)).join('\n');
    const openAll = async (n: number) => {
      const opened = await Promise.allSettled(Array.from({ length: n }, () => openSse(`${hub.hubUrl}?topic=ceiling`)));
      const failed = opened.flatMap((r) => (r.status === 'rejected' ? [String(r.reason)] : []));
      assert.deepEqual(failed, [], `${failed.length} of ${n} not opened:\n${story()}`);
      return opened.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    };
    // 600 at once: more than either worker can hold (it would run out of descriptors), and more
    // than both should (2 × 244), fewer than both can.
    const first = await openAll(600);
    after(() => first.forEach((s) => s.close()));
    for (const s of first) assert.equal(s.status, 200, s.text);
    assert.ok(held().every((n) => n <= 468 + 4), `a worker went past its hard ceiling: ${held().join(', ')} connections`);
    // (Within a few: the descriptors counted before include the test's own /readyz connections, since closed.)
    assert.ok(held().reduce((a, b) => a + b, 0) >= 600 - 4, `the connections are not in the workers: ${held().join(', ')}`);

    // Half of them close; once the workers have seen it, the room is taken again, whichever had stopped.
    first.splice(0, 300).forEach((s) => s.close());
    await until(() => held().reduce((a, b) => a + b, 0) <= 300 + 4, 'the workers seeing the closes');
    // Room for them among the workers listening (which ones, the primary's balance decides).
    await until(() => workers.reduce((room, pid, i) => room + (listensOn(pid, hub.port) ? 468 - (held()[i] as number) : 0), 0) >= 300, 'room among the workers accepting');
    const second = await openAll(300);
    after(() => second.forEach((s) => s.close()));
    for (const s of second) assert.equal(s.status, 200, s.text);

    // Everyone gets what is published, whichever worker holds the stream.
    const token = await signToken(TEST_KEY, { publish: ['*'] });
    const res = await fetch(hub.hubUrl, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ topic: 'ceiling', id: 'c-1', data: 'x' }).toString(),
    });
    assert.equal(res.status, 200);
    await Promise.all([...first, ...second].map((s) => s.events_(1)));
    assert.equal(await hub.kill('SIGTERM'), 0, hub.stderr());
  });
});
