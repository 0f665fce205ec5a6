// Graceful shutdown (SPEC §2, §3 "Operating it"): readiness goes off at once, new streams are
// refused, and open streams get a jittered `retry:` hint and are closed in batches over
// --drain-timeout, so their clients do not all come back in the same second.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { after, describe, it } from 'node:test';
import { signToken } from '../../src/hub/mercure/token.js';
import { HUB_PATH, TEST_KEY, startTestHub } from '../helpers/hub.js';
import { Cleanups, subscribeUrl } from '../helpers/hub-streams.js';
import { type SseRecorder, openSse } from '../helpers/sse-client.js';
import { freePort } from '../helpers/ports.js';

const T = { timeout: 20_000 };
/** The stream library's default gap between two batches (DrainOptions.batchInterval). */
const BATCH_INTERVAL = 100;
/**
 * Timers fire on libuv's loop clock, cached per loop iteration and counted in whole
 * milliseconds, so against `performance.now()` a chain of timers can look a few ms early.
 */
const CLOCK_SLACK = 15;

/** The `retry:` hint sent last on a stream, if its body ends with one. */
function finalRetry(sub: SseRecorder): number | undefined {
  const m = /retry: (\d+)\n\n?$/.exec(sub.text);
  return m === null ? undefined : Number(m[1]);
}

describe('graceful shutdown', () => {
  const cleanups = new Cleanups();
  after(() => cleanups.run());

  it('turns readiness off at once, refuses new streams, and closes open ones in batches with a jittered retry', T, async () => {
    const drain = 1000;
    const hub = await startTestHub(['--drain-timeout', '1s']);
    let closed = false;
    cleanups.add(hub, (h) => (closed ? undefined : h.close()));
    const n = 20;
    const subs: SseRecorder[] = [];
    // One after the other, so the hub's streams are in this order too.
    for (let i = 0; i < n; i++) subs.push(cleanups.add(await openSse(subscribeUrl(hub.hubUrl, ['x']), { authorization: `Bearer ${hub.adminToken}` }), (s) => s.close()));
    assert.equal((await fetch(`${hub.url}/readyz`)).status, 200);

    const started = performance.now();
    const endedAt = subs.map((s) => s.done.then(() => performance.now() - started));
    const closing = hub.close().then(() => (closed = true));

    const ready = await fetch(`${hub.url}/readyz`);
    assert.equal(ready.status, 503);
    assert.match(await ready.text(), /draining/);
    const refused = await fetch(subscribeUrl(hub.hubUrl, ['x']), { headers: { authorization: `Bearer ${hub.adminToken}` } });
    assert.equal(refused.status, 503);
    assert.ok(refused.headers.get('retry-after') !== null, 'a refused stream says when to come back');
    assert.ok(performance.now() - started < drain / 2, 'readiness answered while the drain was still under way');

    const ends = await Promise.all(endedAt);
    await closing;

    const batches = Math.min(n, Math.floor(drain / BATCH_INTERVAL));
    const perBatch = Math.ceil(n / batches);
    for (let i = 0; i < n; i++) {
      const offset = Math.floor(i / perBatch) * (drain / batches);
      assert.ok((ends[i] as number) >= offset - CLOCK_SLACK, `stream ${i} ended after ${(ends[i] as number).toFixed(0)} ms, scheduled at ${offset} ms`);
    }
    const hints = subs.map(finalRetry);
    assert.ok(hints.every((h) => h !== undefined && h >= 3000 && h < 6000), `final retry hints: ${hints.join(', ')}`);
    assert.ok(new Set(hints).size > 1, 'the retry hints are jittered, not all equal');
    const metrics = await hub.hub.metrics.registry.getSingleMetricAsString('ssehub_connections_closed_total');
    assert.match(metrics, new RegExp(`ssehub_connections_closed_total\\{reason="shutdown"\\} ${n}\\b`));
  });

  describe('the ssehub process', () => {
    let child: ChildProcess | undefined;
    after(() => {
      if (child !== undefined && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });

    it('on SIGTERM ends its streams with a retry hint and exits 0', T, async () => {
      const port = await freePort();
      const proc = spawn(process.execPath, ['dist/cli.js', 'serve', '--jwt-key', TEST_KEY, '--listen', `127.0.0.1:${port}`, '--transport', 'memory', '--drain-timeout', '500ms'], { stdio: ['ignore', 'pipe', 'pipe'] });
      child = proc;
      let stdout = '';
      let stderr = '';
      proc.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
      proc.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
      const exited = once(proc, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
      await new Promise<void>((resolve, reject) => {
        const check = () => (stdout.includes('hub listening') ? resolve() : undefined);
        proc.stdout.on('data', check);
        void exited.then(([code]) => reject(new Error(`ssehub exited with ${code} before listening: ${stderr}`)));
      });

      const token = await signToken(TEST_KEY, { subscribe: ['*'] });
      const sub = await openSse(subscribeUrl(`http://127.0.0.1:${port}${HUB_PATH}`, ['x']), { authorization: `Bearer ${token}` });
      cleanups.add(sub, (s) => s.close());
      assert.equal(sub.status, 200);
      await sub.until((r) => r.text.length > 0, 'first bytes');

      proc.kill('SIGTERM');
      await sub.done;
      assert.ok(finalRetry(sub) !== undefined, `no retry hint at the end of: ${JSON.stringify(sub.text)}`);
      const [code, signal] = await exited;
      assert.deepEqual({ code, signal }, { code: 0, signal: null }, stderr);
      const closedLine = stdout.split('\n').find((l) => l.includes('"stream closed"'));
      assert.ok(closedLine !== undefined, stdout);
      assert.equal(JSON.parse(closedLine).reason, 'shutdown');
    });
  });
});

