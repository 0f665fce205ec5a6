// Resumes from the newest updates are answered in memory in front of a networked transport, so
// that a reconnect storm is not one read of Redis or NATS per client; and only while that is safe.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Update } from '../../src/hub/core/update.js';
import { MemoryTransport, RecentUpdates, withRecentHistory } from '../../src/hub/transports/index.js';
import type { HistoryLimits, HistoryResult } from '../../src/hub/transports/index.js';

/** A memory transport that counts its history reads and can be made not ready. */
class CountingTransport extends MemoryTransport {
  reads = 0;
  readyNow = true;
  override history(lastEventId: string, filter: (u: Update) => boolean): Promise<HistoryResult> {
    this.reads++;
    return super.history(lastEventId, filter);
  }
  override ready(): boolean {
    return this.readyNow && super.ready();
  }
}

const LIMITS: HistoryLimits = { size: 1000, ttl: 0 };
const all = () => true;

async function publish(transport: MemoryTransport, ...ids: string[]): Promise<void> {
  for (const id of ids) await transport.dispatch({ id, topics: ['t'], data: id, private: false });
}

const ids = (result: HistoryResult) => result.updates.map((u) => u.id);

describe('recent history in front of a transport', () => {
  it('answers a resume from among the newest updates without reading the transport, with the newest as head', async () => {
    const inner = new CountingTransport(LIMITS);
    const transport = withRecentHistory(inner, LIMITS);
    await publish(transport, 'a', 'b', 'c', 'd');
    const result = await transport.history('b', all);
    assert.deepEqual(ids(result), ['c', 'd']);
    assert.equal(result.found, true);
    assert.equal(result.head, 4n);
    assert.equal(inner.reads, 0);
  });

  it('applies the filter, and returns the very updates it received (their encoded bytes with them)', async () => {
    const inner = new CountingTransport(LIMITS);
    const transport = withRecentHistory(inner, LIMITS);
    const received: Update[] = [];
    transport.subscribe((u) => received.push(u));
    await publish(transport, 'a', 'b', 'c');
    const result = await transport.history('a', (u) => u.id !== 'b');
    assert.deepEqual(ids(result), ['c']);
    assert.equal(result.updates[0], received[2]);
  });

  it('asks the transport for an ID it does not hold, for earliest, and for one pushed out of the window', async () => {
    const inner = new CountingTransport(LIMITS);
    const transport = withRecentHistory(inner, LIMITS, 2);
    await publish(transport, 'a', 'b', 'c');
    assert.deepEqual(ids(await transport.history('a', all)), ['b', 'c']);
    assert.equal(inner.reads, 1, 'a is out of a window of two');
    assert.deepEqual(ids(await transport.history('earliest', all)), ['a', 'b', 'c']);
    assert.equal((await transport.history('unknown', all)).found, false);
    assert.equal(inner.reads, 3);
    await transport.history('b', all);
    assert.equal(inner.reads, 3);
  });

  it('starts over when the transport was not ready (its live feed may have missed updates meanwhile)', async () => {
    const inner = new CountingTransport(LIMITS);
    const transport = withRecentHistory(inner, LIMITS);
    await publish(transport, 'a', 'b');
    inner.readyNow = false;
    await publish(inner, 'c');
    inner.readyNow = true;
    await publish(transport, 'd');
    assert.deepEqual(ids(await transport.history('a', all)), ['b', 'c', 'd']);
    assert.equal(inner.reads, 1, 'a was before the break: read from the transport');
    assert.deepEqual(ids(await transport.history('c', all)), ['d']);
    assert.equal(inner.reads, 2, 'c came while the transport was not ready: not kept');
    await transport.history('d', all);
    assert.equal(inner.reads, 2, 'd came after the break: in the window');
  });

  it('reads the transport while it is not ready', async () => {
    const inner = new CountingTransport(LIMITS);
    const transport = withRecentHistory(inner, LIMITS);
    await publish(transport, 'a', 'b');
    inner.readyNow = false;
    await transport.history('a', all).catch(() => undefined);
    assert.equal(inner.reads, 1);
  });

  it('holds no more updates than history keeps, and none when history is off', async () => {
    const inner = new CountingTransport({ size: 2, ttl: 0 });
    const transport = withRecentHistory(inner, { size: 2, ttl: 0 });
    await publish(transport, 'a', 'b', 'c');
    assert.equal((await transport.history('a', all)).found, false);
    assert.equal(inner.reads, 1);
    const off = new CountingTransport({ size: 0, ttl: 0 });
    assert.equal(withRecentHistory(off, { size: 0, ttl: 0 }), off);
  });

  it('does not resume from an update older than the history age limit', () => {
    const recent = new RecentUpdates(10, 1000);
    recent.add({ id: 'a', topics: ['t'], data: '', private: false, seq: 1n }, 0);
    recent.add({ id: 'b', topics: ['t'], data: '', private: false, seq: 2n }, 500);
    assert.equal(recent.after('a', all, 1500), undefined);
    assert.deepEqual(recent.after('b', all, 1400)?.updates, []);
  });

  it('starts over when an update does not come after the newest (another history)', () => {
    const recent = new RecentUpdates(10, 0);
    recent.add({ id: 'a', topics: ['t'], data: '', private: false, seq: 5n });
    recent.add({ id: 'b', topics: ['t'], data: '', private: false, seq: 1n });
    assert.equal(recent.after('a', all), undefined);
    assert.equal(recent.size, 1);
  });

  it('keeps the transport\'s own methods and capabilities', async () => {
    const inner = new CountingTransport(LIMITS);
    const transport = withRecentHistory(inner, LIMITS);
    assert.ok(transport instanceof MemoryTransport);
    await publish(transport, 'a');
    assert.equal(await transport.lastId(), 'a');
    assert.equal(await transport.epoch(), await inner.epoch());
    inner.readyNow = false;
    assert.equal(transport.ready(), false);
  });
});
