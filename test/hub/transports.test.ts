// The Transport contract (src/hub/transports/transport.ts), run against every transport: what the
// hub relies on to answer 200 only for stored updates and to join history and live updates.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { DuplicateIdError, TransportUnavailableError } from '../../src/hub/errors.js';
import { type HistoryLimits, MemoryTransport, SqliteTransport, type Transport } from '../../src/hub/transports/index.js';
import type { Update } from '../../src/hub/core/update.js';
import { tempDb } from '../helpers/hub.js';

const T = { timeout: 20_000 };
const NO_LIMITS: HistoryLimits = { size: 100_000, ttl: 0 };

function update(id: string, fields: Partial<Update> = {}): Update {
  return { id, topics: [`https://example.com/${id}`], data: `data of ${id}`, private: false, ...fields };
}

const all = () => true;
const ids = (updates: Update[]) => updates.map((u) => u.id);

async function dispatchAll(transport: Transport, names: string[]): Promise<Update[]> {
  const out: Update[] = [];
  for (const name of names) {
    const u = update(name);
    await transport.dispatch(u);
    out.push(u);
  }
  return out;
}

const kinds: { name: string; open: (limits: HistoryLimits) => Transport }[] = [
  { name: 'memory', open: (limits) => new MemoryTransport(limits) },
  { name: 'sqlite', open: (limits) => new SqliteTransport(tempDb(), limits) },
];

for (const kind of kinds) {
  describe(`${kind.name} transport`, () => {
    const opened: Transport[] = [];
    after(() => Promise.all(opened.map((t) => t.close())));
    const open = (limits: HistoryLimits = NO_LIMITS) => {
      const t = kind.open(limits);
      opened.push(t);
      return t;
    };

    it('sets an increasing seq on each dispatch and calls listeners in dispatch order', T, async () => {
      const t = open();
      const seen: Update[] = [];
      t.subscribe((u) => seen.push(u));
      const sent = await dispatchAll(t, ['a', 'b', 'c']);
      assert.deepEqual(ids(seen), ['a', 'b', 'c']);
      const seqs = sent.map((u) => u.seq as bigint);
      assert.ok(seqs.every((s, i) => typeof s === 'bigint' && (i === 0 || s > (seqs[i - 1] as bigint))), `seqs: ${seqs.join(', ')}`);
      assert.deepEqual(seen.map((u) => u.seq), seqs);
    });

    it('stops calling a listener once it unsubscribed', T, async () => {
      const t = open();
      const seen: string[] = [];
      const off = t.subscribe((u) => seen.push(u.id));
      await dispatchAll(t, ['a']);
      off();
      await dispatchAll(t, ['b']);
      assert.deepEqual(seen, ['a']);
    });

    it('returns all of history, oldest first, for `earliest`, with head at the newest seq', T, async () => {
      const t = open();
      const sent = await dispatchAll(t, ['a', 'b', 'c']);
      const result = await t.history('earliest', all);
      assert.equal(result.found, true);
      assert.deepEqual(ids(result.updates), ['a', 'b', 'c']);
      assert.equal(result.head, sent[2]?.seq);
      assert.deepEqual(result.updates.map((u) => u.seq), sent.map((u) => u.seq));
    });

    it('returns only the updates after a known ID, with found true', T, async () => {
      const t = open();
      await dispatchAll(t, ['a', 'b', 'c', 'd']);
      const result = await t.history('b', all);
      assert.equal(result.found, true);
      assert.deepEqual(ids(result.updates), ['c', 'd']);
    });

    it('returns everything kept, with found false, for an unknown ID', T, async () => {
      const t = open();
      await dispatchAll(t, ['a', 'b']);
      const result = await t.history('never-seen', all);
      assert.equal(result.found, false);
      assert.deepEqual(ids(result.updates), ['a', 'b']);
    });

    it('applies the filter to what it returns', T, async () => {
      const t = open();
      await dispatchAll(t, ['a', 'b', 'c', 'd']);
      const result = await t.history('earliest', (u) => u.id !== 'b' && u.id !== 'd');
      assert.deepEqual(ids(result.updates), ['a', 'c']);
    });

    it('keeps topics, data, private, type and retry through history', T, async () => {
      const t = open();
      const u = update('full', { topics: ['https://example.com/x', 'urn:alt'], data: 'line 1\nline 2', private: true, type: 'changed', retry: 2500 });
      await t.dispatch(u);
      const [read] = (await t.history('earliest', all)).updates;
      assert.deepEqual({ ...read, publishedAt: undefined }, { ...u, publishedAt: undefined });
    });

    it('rejects a duplicate ID with DuplicateIdError and stores nothing', T, async () => {
      const t = open();
      const seen: string[] = [];
      t.subscribe((u) => seen.push(u.id));
      await dispatchAll(t, ['a']);
      await assert.rejects(t.dispatch(update('a', { data: 'again' })), DuplicateIdError);
      assert.deepEqual(seen, ['a']);
      const result = await t.history('earliest', all);
      assert.deepEqual(result.updates.map((u) => u.data), ['data of a']);
    });

    it('keeps at most `size` updates, dropping the oldest; a dropped ID becomes unknown', T, async () => {
      const t = open({ size: 3, ttl: 0 });
      await dispatchAll(t, ['u1', 'u2', 'u3', 'u4', 'u5', 'u6']);
      const everything = await t.history('earliest', all);
      assert.deepEqual(ids(everything.updates), ['u4', 'u5', 'u6']);
      const fromTrimmed = await t.history('u2', all);
      assert.equal(fromTrimmed.found, false);
      assert.deepEqual(ids(fromTrimmed.updates), ['u4', 'u5', 'u6']);
      const fromKept = await t.history('u4', all);
      assert.equal(fromKept.found, true);
      assert.deepEqual(ids(fromKept.updates), ['u5', 'u6']);
    });

    it('drops updates older than `ttl`; a dropped ID becomes unknown', T, async () => {
      const t = open({ size: 100, ttl: 60_000 });
      await t.dispatch(update('old', { publishedAt: Date.now() - 120_000 }));
      await t.dispatch(update('fresh', { publishedAt: Date.now() }));
      const everything = await t.history('earliest', all);
      assert.deepEqual(ids(everything.updates), ['fresh']);
      const fromOld = await t.history('old', all);
      assert.equal(fromOld.found, false);
      assert.deepEqual(ids(fromOld.updates), ['fresh']);
    });

    it('reports the newest ID in history, or undefined when it is empty', T, async () => {
      const t = open();
      assert.equal(await t.lastId(), undefined);
      await dispatchAll(t, ['a', 'b']);
      assert.equal(await t.lastId(), 'b');
    });

    it('is not ready after close, and rejects dispatch with TransportUnavailableError', T, async () => {
      const t = open();
      assert.equal(t.ready(), true);
      await t.close();
      assert.equal(t.ready(), false);
      await assert.rejects(t.dispatch(update('late')), TransportUnavailableError);
    });
  });
}

describe('sqlite transport across a reopen', () => {
  it('keeps its history and keeps seq increasing after close and reopen of the same file', T, async () => {
    const path = tempDb();
    const first = new SqliteTransport(path, NO_LIMITS);
    const before = await dispatchAll(first, ['a', 'b', 'c']);
    await first.close();

    const second = new SqliteTransport(path, NO_LIMITS);
    after(() => second.close());
    const kept = await second.history('a', all);
    assert.equal(kept.found, true);
    assert.deepEqual(ids(kept.updates), ['b', 'c']);
    assert.equal(await second.lastId(), 'c');
    const [next] = await dispatchAll(second, ['d']);
    assert.ok((next?.seq as bigint) > (before[2]?.seq as bigint), `seq ${next?.seq} after ${before[2]?.seq}`);
    await assert.rejects(second.dispatch(update('b')), DuplicateIdError);
  });

  it('keeps seq increasing after reopen even when every stored update was trimmed', T, async () => {
    const path = tempDb();
    const first = new SqliteTransport(path, { size: 1, ttl: 0 });
    const before = await dispatchAll(first, ['a', 'b', 'c']);
    await first.close();
    const second = new SqliteTransport(path, { size: 1, ttl: 0 });
    after(() => second.close());
    const [next] = await dispatchAll(second, ['d']);
    assert.ok((next?.seq as bigint) > (before[2]?.seq as bigint), `seq ${next?.seq} after ${before[2]?.seq}`);
  });
});

describe('sqlite transport: recent updates served from memory', () => {
  it('answers a resume among the newest updates with the dispatched objects themselves, and an older one from the file', T, async () => {
    const t = new SqliteTransport(tempDb(), { size: 5000, ttl: 0 });
    after(() => t.close());
    const names = Array.from({ length: 1100 }, (_, i) => `u${i}`);
    const dispatched = await dispatchAll(t, names);
    const recent = await t.history('u1090', all);
    assert.equal(recent.found, true);
    assert.deepEqual(ids(recent.updates), names.slice(1091));
    assert.ok(recent.updates.every((u, i) => u === dispatched[1091 + i]), 'the same objects the fan-out had, so their encoded bytes are reused');
    assert.equal(recent.head, dispatched.at(-1)?.seq);
    // u5 fell out of the 1,024 kept in memory: read from the file, same answer shape.
    const old = await t.history('u5', all);
    assert.equal(old.found, true);
    assert.deepEqual(ids(old.updates), names.slice(6));
    assert.ok(old.updates[0] !== dispatched[6], 'rows read back from sqlite');
    assert.equal(old.head, recent.head);
  });

  it('never serves from memory what the history limits already dropped', T, async () => {
    const t = new SqliteTransport(tempDb(), { size: 3, ttl: 0 });
    after(() => t.close());
    await dispatchAll(t, ['a', 'b', 'c', 'd', 'e']);
    const gone = await t.history('a', all);
    assert.equal(gone.found, false);
    assert.deepEqual(ids((await t.history('c', all)).updates), ['d', 'e']);
  });
});

describe('sqlite transport: publishes of one turn in one transaction', () => {
  it('stores concurrent publishes together, refuses only the duplicate among them, and delivers in order', T, async () => {
    const t = new SqliteTransport(tempDb(), NO_LIMITS);
    after(() => t.close());
    const seen: string[] = [];
    t.subscribe((u) => seen.push(u.id));
    const results = await Promise.allSettled(['a', 'b', 'a', 'c'].map((id) => t.dispatch(update(id))));
    assert.deepEqual(results.map((r) => r.status), ['fulfilled', 'fulfilled', 'rejected', 'fulfilled']);
    assert.ok((results[2] as PromiseRejectedResult).reason instanceof DuplicateIdError);
    assert.deepEqual(seen, ['a', 'b', 'c']);
    assert.deepEqual(ids((await t.history('earliest', all)).updates), ['a', 'b', 'c']);
  });

  it('stores on close what was handed over before it', T, async () => {
    const path = tempDb();
    const t = new SqliteTransport(path, NO_LIMITS);
    const stored = Promise.all(['x', 'y'].map((id) => t.dispatch(update(id))));
    await t.close();
    await stored;
    const reopened = new SqliteTransport(path, NO_LIMITS);
    after(() => reopened.close());
    assert.deepEqual(ids((await reopened.history('earliest', all)).updates), ['x', 'y']);
  });
});
