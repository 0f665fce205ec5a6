// What only the memory and sqlite transports do: an update's age counted from its publishedAt, and
// sqlite's recent updates in memory and its batched writes. The Transport contract they share with
// redis and nats is test/hub/transport-contract.test.ts.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
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
  describe(`${kind.name} transport: an update's age`, () => {
    const opened: Transport[] = [];
    after(() => Promise.all(opened.map((t) => t.close())));

    it('counts an update’s age from its publishedAt, so one published longer than `ttl` ago is dropped at once', T, async () => {
      const t = kind.open({ size: 100, ttl: 60_000 });
      opened.push(t);
      await t.dispatch(update('old', { publishedAt: Date.now() - 120_000 }));
      await t.dispatch(update('fresh', { publishedAt: Date.now() }));
      const everything = await t.history('earliest', all);
      assert.deepEqual(ids(everything.updates), ['fresh']);
      const fromOld = await t.history('old', all);
      assert.equal(fromOld.found, false);
      assert.deepEqual(ids(fromOld.updates), ['fresh']);
    });
  });
}

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

describe('sqlite transport: close', () => {
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
