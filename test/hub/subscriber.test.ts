// The join of history and live updates, at the level of one Subscriber.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import { loadConfig } from '../../src/hub/config.js';
import { Hub } from '../../src/hub/core/hub.js';
import { Batch, Subscriber } from '../../src/hub/core/subscriber.js';
import { MemoryTransport } from '../../src/hub/transports/index.js';
import type { Update } from '../../src/hub/core/update.js';
import { type Sink, Stream } from '../../src/server/index.js';

function recordingSink(): Sink & { text: () => string; chunks: Uint8Array[] } {
  const chunks: Uint8Array[] = [];
  return { ondrain: null, onclose: null, write: (c) => (chunks.push(c), true), end() {}, destroy() {}, text: () => Buffer.concat(chunks).toString(), chunks };
}

const update = (n: number, topic = 't'): Update => ({ id: `u${n}`, topics: [topic], data: String(n), private: false, seq: BigInt(n) });
const ids = (text: string) => [...text.matchAll(/^id: (\S+)$/gm)].map((m) => m[1]);

function subscriber(maxPending = 100) {
  return new Subscriber({ id: 's', selectors: ['t'], privateMatchers: [], address: '127.0.0.1', payload: undefined, maxPending });
}

describe('subscriber', () => {
  it('buffers live updates during the replay and writes only those after the replayed head', () => {
    const s = subscriber();
    for (const n of [3, 4, 5]) assert.equal(s.deliver(update(n)), false);
    const sink = recordingSink();
    s.stream = new Stream(sink, { heartbeat: false, retry: false });
    assert.equal(s.goLive(4n), 1);
    assert.ok(sink.text().endsWith('id: u5\ndata: 5\n\n'));
    assert.ok(!sink.text().includes('u4'));
    assert.equal(s.deliver(update(6)), true);
  });

  it('drops a subscriber as slow-consumer when more live updates arrive during the replay than it may buffer', () => {
    const s = subscriber(2);
    for (const n of [1, 2, 3, 4]) s.deliver(update(n));
    const reasons: string[] = [];
    s.stream = new Stream(recordingSink(), { heartbeat: false });
    s.stream.on('close', (r) => reasons.push(r));
    assert.equal(s.goLive(0n), 0);
    assert.deepEqual(reasons, ['slow-consumer']);
  });
});

describe('fan-out in batches', () => {
  it('writes a whole batch it may receive in one write, sharing the joined bytes', () => {
    const batch = new Batch([update(1), update(2), update(3)]);
    const sinks = [recordingSink(), recordingSink()];
    for (const sink of sinks) {
      const s = subscriber();
      s.stream = new Stream(sink, { heartbeat: false, retry: false });
      s.goLive(-1n);
      sink.chunks.length = 0; // the stream's preamble
      assert.equal(s.deliverBatch(batch), 3);
    }
    assert.equal(sinks[0]?.chunks.length, 1);
    assert.equal(sinks[0]?.chunks[0], sinks[1]?.chunks[0], 'the same bytes object for every subscriber');
    assert.deepEqual(ids(sinks[0]?.text() ?? ''), ['u1', 'u2', 'u3']);
  });

  it('writes only the updates of a batch it may receive, in order, still in one write', () => {
    const s = subscriber();
    const sink = recordingSink();
    s.stream = new Stream(sink, { heartbeat: false, retry: false });
    s.goLive(-1n);
    sink.chunks.length = 0;
    assert.equal(s.deliverBatch(new Batch([update(1), update(2, 'other'), update(3), update(4, 'other'), update(5)])), 3);
    assert.equal(sink.chunks.length, 1);
    assert.deepEqual(ids(sink.text()), ['u1', 'u3', 'u5']);
  });

  it('skips updates its replay already covered when a pass reaches it after it went live', () => {
    const s = subscriber();
    const sink = recordingSink();
    s.stream = new Stream(sink, { heartbeat: false, retry: false });
    s.goLive(4n);
    assert.equal(s.deliverBatch(new Batch([update(3), update(4), update(5), update(6)])), 2);
    assert.deepEqual(ids(sink.text()), ['u5', 'u6']);
  });

  it('buffers a batch during the replay like single updates', () => {
    const s = subscriber();
    assert.equal(s.deliverBatch(new Batch([update(1), update(2), update(3)])), 0);
    const sink = recordingSink();
    s.stream = new Stream(sink, { heartbeat: false, retry: false });
    assert.equal(s.goLive(1n), 2);
    assert.deepEqual(ids(sink.text()), ['u2', 'u3']);
  });

  it('answers the publisher before fanning out, and coalesces the updates dispatched meanwhile into one write', async () => {
    const config = loadConfig({ argv: ['--jwt-key', 'k'.repeat(32), '--transport', 'memory'] });
    const transport = new MemoryTransport({ size: 100, ttl: 0 });
    const hub = new Hub(config, transport, pino({ level: 'silent' }));
    const s = subscriber();
    const sink = recordingSink();
    s.stream = new Stream(sink, { heartbeat: false, retry: false });
    hub.admit(s);
    s.goLive(-1n);
    sink.chunks.length = 0;
    const updates = [1, 2, 3].map((n) => ({ id: `u${n}`, topics: ['t'], data: String(n), private: false }));
    for (const u of updates) await hub.publish(u);
    assert.equal(sink.chunks.length, 0, 'stored and answered, not yet fanned out');
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(sink.chunks.length, 1, 'three updates, one write');
    assert.deepEqual(ids(sink.text()), ['u1', 'u2', 'u3']);
    await hub.shutdown();
  });

  it('fans out to many subscribers in slices, letting the event loop run in between', async () => {
    const config = loadConfig({ argv: ['--jwt-key', 'k'.repeat(32), '--transport', 'memory'] });
    const hub = new Hub(config, new MemoryTransport({ size: 100, ttl: 0 }), pino({ level: 'silent' }));
    const sinks = Array.from({ length: 5000 }, () => recordingSink());
    for (const sink of sinks) {
      const s = subscriber();
      s.stream = new Stream(sink, { heartbeat: false, retry: false });
      hub.admit(s);
      s.goLive(-1n);
      sink.chunks.length = 0;
    }
    await hub.publish({ id: 'u1', topics: ['t'], data: '1', private: false });
    // After the first turn of the event loop only the first slice has its update.
    await new Promise((resolve) => setImmediate(resolve));
    const early = sinks.filter((k) => k.chunks.length > 0).length;
    assert.ok(early > 0 && early < sinks.length, `${early} of ${sinks.length} served in the first slice`);
    for (let i = 0; i < 10 && sinks.some((k) => k.chunks.length === 0); i++) await new Promise((resolve) => setImmediate(resolve));
    assert.ok(sinks.every((k) => k.chunks.length === 1 && k.text().includes('id: u1')));
    await hub.shutdown();
  });

  it('visits only the subscribers of the batch’s topics, and every template or * subscriber', async () => {
    const config = loadConfig({ argv: ['--jwt-key', 'k'.repeat(32), '--transport', 'memory'] });
    const hub = new Hub(config, new MemoryTransport({ size: 100, ttl: 0 }), pino({ level: 'silent' }));
    const visits = new Map<string, number>();
    class Counting extends Subscriber {
      override deliverBatch(batch: Batch): number {
        visits.set(this.id, (visits.get(this.id) ?? 0) + 1);
        return super.deliverBatch(batch);
      }
    }
    const make = (id: string, selectors: string[]) => {
      const s = new Counting({ id, selectors, privateMatchers: [], address: '127.0.0.1', payload: undefined, maxPending: 10 });
      s.stream = new Stream(recordingSink(), { heartbeat: false, retry: false });
      hub.admit(s);
      s.goLive(-1n);
      return s;
    };
    make('on-a', ['a']);
    make('on-b', ['b']);
    make('on-a-and-c', ['c', 'a']);
    make('template', ['{x}']);
    make('star', ['*']);
    const gone = make('gone', ['a']);
    hub.release(gone);
    await hub.publish({ id: 'u1', topics: ['a'], data: '1', private: false });
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(Object.fromEntries(visits), { 'on-a': 1, 'on-a-and-c': 1, template: 1, star: 1 });
    await hub.publish({ id: 'u2', topics: ['c', 'b'], data: '2', private: false });
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(Object.fromEntries(visits), { 'on-a': 1, 'on-b': 1, 'on-a-and-c': 2, template: 2, star: 2 });
    await hub.shutdown();
  });
});
