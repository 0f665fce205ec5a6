// Streams come and go by the thousand in production: every one must leave nothing behind, and a
// shutdown must spread the reconnects of the clients it closes.
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, describe, it } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { type CloseReason, type Sink, Stream, StreamSet, activeHeartbeats, broadcast, closeGracefully, createStream } from '../../src/server/index.js';
import { listen } from '../helpers/http.js';
import { openSse } from '../helpers/sse-client.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const tick = () => new Promise((r) => setImmediate(r));

/** Opens a stream, waits for its first bytes, then drops the connection. */
function connectAndDrop(url: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: false }, (res) => {
      res.once('data', () => {
        res.destroy();
        resolve();
      });
    });
    req.on('error', reject);
    req.end();
  });
}

/** An in-memory sink that records each chunk it is handed (the same object, not a copy). */
function recordingSink(): Sink & { chunks: Uint8Array[] } {
  return { chunks: [], ondrain: null, onclose: null, write(c) { this.chunks.push(c); return true; }, end() {}, destroy() {} };
}

describe('stream lifecycle', () => {
  const cleanups: (() => unknown)[] = [];
  after(async () => {
    for (const c of cleanups.reverse()) await c();
  });

  it('leaves no stream, timer, listener or memory behind after 5,000 connect/disconnect cycles', { timeout: 120_000 }, async () => {
    const set = new StreamSet();
    const refs: WeakRef<Stream>[] = [];
    const reasons = new Map<CloseReason, number>();
    const srv = await listen((req, res) => {
      const stream = createStream(req, res, { heartbeat: 10_000, lifetime: 600_000 });
      stream.on('close', (reason) => reasons.set(reason, (reasons.get(reason) ?? 0) + 1));
      refs.push(new WeakRef(stream));
      set.add(stream);
    });
    cleanups.push(() => srv.close());
    const listeners = () => ({ request: srv.server.listenerCount('request'), connection: srv.server.listenerCount('connection') });
    const baseListeners = listeners();
    const baseHeartbeats = activeHeartbeats();

    const cycles = 5000;
    let next = 0;
    await Promise.all(
      Array.from({ length: 25 }, async () => {
        while (next < cycles) {
          next++;
          await connectAndDrop(srv.url);
        }
      }),
    );
    while (set.size > 0) await new Promise((r) => setTimeout(r, 10));
    for (let i = 0; i < 3; i++) {
      await tick();
      gc();
    }

    assert.equal(refs.length, cycles);
    assert.equal(reasons.get('client-closed'), cycles);
    assert.equal(activeHeartbeats(), baseHeartbeats, 'heartbeat timer stopped');
    assert.deepEqual(listeners(), baseListeners);
    // A pending lifetime timer, a heartbeat Set or a listener would each keep its stream reachable.
    const alive = refs.filter((r) => r.deref() !== undefined).length;
    assert.ok(alive <= 5, `${alive} streams still reachable after garbage collection`);
    const sockets = await new Promise<number>((resolve) => srv.server.getConnections((_e, n) => resolve(n)));
    assert.equal(sockets, 0);
  });

  it('closes every stream gracefully in batches spread over the window, each with its own retry hint', async () => {
    const set = new StreamSet();
    const closedAt: number[] = [];
    const srv = await listen((req, res) => {
      const s = createStream(req, res, { retry: 1000 });
      s.on('close', (reason) => {
        assert.equal(reason, 'shutdown');
        closedAt.push(performance.now());
      });
      set.add(s);
    });
    cleanups.push(() => srv.close());
    const clients = await Promise.all(Array.from({ length: 30 }, () => openSse(srv.url)));
    await Promise.all(clients.map((c) => c.until((r) => r.chunks.length > 0)));
    assert.equal(set.size, 30);

    const start = performance.now();
    await set.close({ window: 300, batchInterval: 100 });
    await Promise.all(clients.map((c) => c.done));

    assert.equal(set.size, 0);
    assert.equal(closedAt.length, 30);
    // Three batches of ten, 100 ms apart: timers never fire early, so the later batches cannot close sooner.
    const sorted = closedAt.map((t) => t - start).sort((a, b) => a - b);
    assert.ok((sorted[10] ?? 0) >= 99 && (sorted[20] ?? 0) >= 199, `close times ${sorted.map(Math.round).join(',')}`);
    const hints = clients.map((c) => c.retries.at(-1) ?? -1);
    assert.ok(hints.every((h) => h >= 1000 && h < 2000), `hints ${hints.join(',')}`);
    assert.ok(new Set(hints).size > 1, 'hints are jittered');
    assert.ok(clients.every((c) => c.text.endsWith('\n\n')));
  });

  it('resolves a graceful close of no streams at once', async () => {
    await closeGracefully([]);
    await new StreamSet().close();
  });

  it('leaves no batch timer behind when every stream closes before the drain window ends', async () => {
    const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const before = timers();
    const streams = Array.from({ length: 10 }, () => new Stream(recordingSink(), { heartbeat: false, closeTimeout: 0 }));
    const drained = closeGracefully(streams, { window: 60_000, batchInterval: 100 });
    // The clients leave on their own while the drain is still in its first batch.
    for (const s of streams) s.destroy('client-closed');
    await drained;
    assert.equal(timers(), before, 'a batch timer of a finished drain would keep the process alive for the rest of the window');
  });

  it('broadcasts one encoding: every stream is handed the same bytes object', () => {
    const sinks = [recordingSink(), recordingSink(), recordingSink()];
    const streams = sinks.map((s) => new Stream(s, { heartbeat: false }));
    assert.equal(broadcast(streams, { id: '1', data: 'hello' }), 3);
    const last = sinks.map((s) => s.chunks.at(-1));
    assert.ok(last[0] === last[1] && last[1] === last[2]);
    assert.equal(Buffer.from(last[0] as Uint8Array).toString(), 'id: 1\ndata: hello\n\n');
    for (const s of streams) s.destroy();
  });

  it('does not count closed streams as accepting a broadcast', () => {
    const streams = [new Stream(recordingSink(), { heartbeat: false }), new Stream(recordingSink(), { heartbeat: false })];
    streams[0]?.destroy();
    assert.equal(broadcast(streams, { data: 'x' }), 1);
    streams[1]?.destroy();
  });

  it('closes a stream whose connection is gone at the next heartbeat, even if no close event came', async () => {
    let alive = true;
    const sink = { ...recordingSink(), alive: () => alive };
    const stream = new Stream(sink, { heartbeat: 20 });
    const reason = new Promise<CloseReason>((resolve) => stream.once('close', resolve));
    alive = false;
    assert.equal(await reason, 'client-closed');
    assert.equal(stream.open, false);
  });

  it('beats only a stream that wrote nothing since the tick before last: every interval when idle, never while events flow faster', () => {
    // An interval no timer reaches during the test: the ticks are driven by hand.
    const sink = recordingSink();
    const stream = new Stream(sink, { heartbeat: 3_600_000, retry: false });
    const beats = () => sink.chunks.filter((c) => Buffer.from(c).toString() === ':\n\n').length;
    let tick = 1_000;
    // Idle: the timer ticks every half interval, a comment goes out every second tick.
    for (let k = 0; k < 6; k++) stream.heartbeat(++tick);
    assert.equal(beats(), 3);
    // An event on every tick: no comment at all.
    for (let k = 0; k < 6; k++) {
      stream.send({ data: String(k) });
      stream.heartbeat(++tick);
    }
    assert.equal(beats(), 3);
    // An event every other tick (one per interval): a comment goes out between them too, because a
    // silence could otherwise reach the interval. Events must come more often to replace comments.
    for (let k = 0; k < 6; k++) {
      if (k % 2 === 0) stream.send({ data: String(k) });
      stream.heartbeat(++tick);
    }
    assert.equal(beats(), 6);
    stream.destroy();
  });
});
