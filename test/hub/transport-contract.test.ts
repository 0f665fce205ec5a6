// The Transport contract (src/hub/transports/transport.ts), run against every built-in transport:
// what the hub relies on to answer 200 only for stored updates and to join history and live
// updates with neither gap nor duplicate. Each transport is opened the way the hub opens it
// (createTransport with its --transport value) on a history no other test uses: a temporary
// sqlite file, a Redis key prefix (on one server, through Sentinel, on a Redis Cluster), a NATS stream. What only one transport does (its URL options,
// outages, several nodes on one stream, sqlite's recent updates in memory) is in its own file.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DuplicateIdError, TransportUnavailableError } from '../../src/hub/errors.js';
import { type HistoryLimits, type Transport, createTransport } from '../../src/hub/transports/index.js';
import type { Update } from '../../src/hub/core/update.js';
import { tempDb } from '../helpers/hub.js';
import { startNatsServer } from '../helpers/nats-server.js';
import { startRedisCluster } from '../helpers/redis-cluster.js';
import { startSentinelGroup } from '../helpers/redis-sentinel.js';
import { startRedisServer } from '../helpers/redis-server.js';

const T = { timeout: 20_000 };
const NO_LIMITS: HistoryLimits = { size: 100_000, ttl: 0 };

/** One transport as the contract sees it. */
interface TransportKind {
  name: string;
  /** Starts what every test of this transport shares (a server process); resolves to what stops it and cleans up. */
  start(): Promise<() => Promise<void>>;
  /** The --transport value of a history no other test uses. */
  fresh(): string;
  /** Whether a transport opened again on the same value finds what an earlier one stored (a new memory transport starts empty). */
  durable: boolean;
}

const memory: TransportKind = {
  name: 'memory',
  durable: false,
  start: async () => async () => {},
  fresh: () => 'memory',
};

/** A temporary file per history. */
function sqlite(): TransportKind {
  const files: string[] = [];
  return {
    name: 'sqlite',
    durable: true,
    start: async () => async () => {
      for (const file of files) rmSync(dirname(file), { recursive: true, force: true });
    },
    fresh() {
      const file = tempDb();
      files.push(file);
      return `sqlite:${file}`;
    },
  };
}

/** One redis-server for the file, a key prefix per history. */
function redis(): TransportKind {
  let url = '';
  return {
    name: 'redis',
    durable: true,
    async start() {
      const server = await startRedisServer();
      url = server.url;
      return () => server.stop();
    },
    fresh: () => `${url}/?key=test-${randomUUID()}`,
  };
}

/** A primary, a replica and a Sentinel for the file, a key prefix per history; publishes wait for the replica (replicas=1, the default). */
function redisSentinel(): TransportKind {
  let url = '';
  return {
    name: 'redis+sentinel',
    durable: true,
    async start() {
      const group = await startSentinelGroup({ replicas: 1, sentinels: 1 });
      url = group.url;
      return () => group.stop();
    },
    fresh: () => `${url}?key=test-${randomUUID()}`,
  };
}

/** A Redis Cluster of three masters for the file, a key prefix (so a slot) per history; no replicas, so replicas=0. */
function redisCluster(): TransportKind {
  let url = '';
  return {
    name: 'redis+cluster',
    durable: true,
    async start() {
      const cluster = await startRedisCluster({ masters: 3 });
      url = cluster.url;
      return () => cluster.stop();
    },
    fresh: () => `${url}?key=test-${randomUUID()}&replicas=0`,
  };
}

/** One nats-server for the file, a stream and subject prefix per history. */
function nats(): TransportKind {
  let url = '';
  return {
    name: 'nats',
    durable: true,
    async start() {
      const server = await startNatsServer();
      url = server.url;
      return () => server.close();
    },
    fresh() {
      const name = randomUUID().replaceAll('-', '');
      return `${url}?stream=T${name}&subject=t${name}`;
    },
  };
}

const kinds: TransportKind[] = [memory, sqlite(), redis(), redisSentinel(), redisCluster(), nats()];

/** An update as the hub hands it over: `publishedAt` set to now. */
function update(id: string, fields: Partial<Update> = {}): Update {
  return { id, topics: [`https://example.com/${id}`], data: `data of ${id}`, private: false, publishedAt: Date.now(), ...fields };
}

const all = () => true;
const ids = (updates: Update[]) => updates.map((u) => u.id);
const bySeq = (updates: Update[]) => [...updates].sort((x, y) => ((x.seq as bigint) < (y.seq as bigint) ? -1 : 1));

async function dispatchAll(transport: Transport, names: string[]): Promise<Update[]> {
  const out: Update[] = [];
  for (const name of names) {
    const u = update(name);
    await transport.dispatch(u);
    out.push(u);
  }
  return out;
}

/** Records what a transport's listener receives. */
function record(transport: Transport): Update[] {
  const seen: Update[] = [];
  transport.subscribe((u) => seen.push(u));
  return seen;
}

/** Polls `check` (a safety-net deadline, not an assertion on time). */
async function until(check: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

// The transports are independent of one another: their tests run side by side, each transport's in order.
describe('the Transport contract', { concurrency: true }, () => {
  for (const kind of kinds) {
    describe(`${kind.name} transport`, { concurrency: false }, () => {
      let stop: () => Promise<void> = async () => {};
      const opened: Transport[] = [];
      before(async () => {
        stop = await kind.start();
      });
      after(async () => {
        await Promise.all(opened.map((t) => t.close()));
        await stop();
      });
      const open = async (limits: HistoryLimits = NO_LIMITS, spec = kind.fresh()) => {
        const t = await createTransport(spec, limits);
        opened.push(t);
        return t;
      };

      it('sets an increasing seq on each dispatch and calls listeners in dispatch order', T, async () => {
        const t = await open();
        const seen = record(t);
        const sent = await dispatchAll(t, ['a', 'b', 'c']);
        assert.deepEqual(ids(seen), ['a', 'b', 'c']);
        const seqs = sent.map((u) => u.seq as bigint);
        assert.ok(seqs.every((s, i) => typeof s === 'bigint' && (i === 0 || s > (seqs[i - 1] as bigint))), `seqs: ${seqs.join(', ')}`);
        assert.deepEqual(seen.map((u) => u.seq), seqs);
      });

      it('has handed an update to the listeners by the time its dispatch resolves', T, async () => {
        const t = await open();
        const seen = record(t);
        for (let i = 0; i < 50; i++) {
          await t.dispatch(update(`u${i}`));
          assert.equal(seen.at(-1)?.id, `u${i}`);
        }
      });

      it('stops calling a listener once it unsubscribed', T, async () => {
        const t = await open();
        const seen: string[] = [];
        const off = t.subscribe((u) => seen.push(u.id));
        await dispatchAll(t, ['a']);
        off();
        await dispatchAll(t, ['b']);
        assert.deepEqual(seen, ['a']);
      });

      it('returns all of history, oldest first, for `earliest`, with head at the newest seq', T, async () => {
        const t = await open();
        const sent = await dispatchAll(t, ['a', 'b', 'c']);
        const result = await t.history('earliest', all);
        assert.equal(result.found, true);
        assert.deepEqual(ids(result.updates), ['a', 'b', 'c']);
        assert.equal(result.head, sent[2]?.seq);
        assert.deepEqual(result.updates.map((u) => u.seq), sent.map((u) => u.seq));
      });

      it('returns only the updates after a known ID, with found true', T, async () => {
        const t = await open();
        await dispatchAll(t, ['a', 'b', 'c', 'd']);
        const result = await t.history('b', all);
        assert.equal(result.found, true);
        assert.deepEqual(ids(result.updates), ['c', 'd']);
      });

      it('returns everything kept, with found false, for an unknown ID', T, async () => {
        const t = await open();
        await dispatchAll(t, ['a', 'b']);
        const result = await t.history('never-seen', all);
        assert.equal(result.found, false);
        assert.deepEqual(ids(result.updates), ['a', 'b']);
      });

      it('answers an empty history with found false for an ID, found true for `earliest`, and head 0', T, async () => {
        const t = await open();
        assert.deepEqual(await t.history('x', all), { updates: [], found: false, head: 0n });
        assert.deepEqual(await t.history('earliest', all), { updates: [], found: true, head: 0n });
      });

      it('applies the filter to what it returns', T, async () => {
        const t = await open();
        await dispatchAll(t, ['a', 'b', 'c', 'd']);
        const result = await t.history('earliest', (u) => u.id !== 'b' && u.id !== 'd');
        assert.deepEqual(ids(result.updates), ['a', 'c']);
      });

      it('reads a history longer than one page completely and in seq order, from the start, from a kept ID and from a trimmed one', T, async () => {
        // Longer than a Redis XRANGE page (1,000), sqlite's recent updates in memory (1,024) and a NATS short read (16).
        const t = await open({ size: 2500, ttl: 0 });
        const sent = Array.from({ length: 2600 }, (_, i) => update(`p${i}`));
        for (let i = 0; i < sent.length; i += 200) await Promise.all(sent.slice(i, i + 200).map((u) => t.dispatch(u)));
        const kept = bySeq(sent).slice(100);
        const fromStart = await t.history('earliest', all);
        assert.deepEqual(ids(fromStart.updates), ids(kept));
        assert.equal(fromStart.head, kept.at(-1)?.seq);
        const fromKept = await t.history((kept[4] as Update).id, all);
        assert.equal(fromKept.found, true);
        assert.deepEqual(ids(fromKept.updates), ids(kept.slice(5)));
        const fromTrimmed = await t.history((bySeq(sent)[10] as Update).id, all);
        assert.equal(fromTrimmed.found, false);
        assert.deepEqual(ids(fromTrimmed.updates), ids(kept));
      });

      it('keeps id, topics, data, private, type, retry and publishedAt, through history and to listeners', T, async () => {
        const t = await open();
        const seen = record(t);
        const u = update('full', { topics: ['https://example.com/x', 'urn:alt'], data: 'line 1\nline 2 — é ✓ ünïcode', private: true, type: 'changed', retry: 2500, publishedAt: 1_700_000_000_123 });
        await t.dispatch(u);
        const [read] = (await t.history('earliest', all)).updates;
        assert.deepEqual(read, u);
        assert.deepEqual(seen, [u]);
      });

      it('finds an ID of any length and content', T, async () => {
        const t = await open();
        const odd = `urn:x:${'ä.*> \t{}:'.repeat(400)}`;
        await dispatchAll(t, [odd, 'after']);
        const result = await t.history(odd, all);
        assert.equal(result.found, true);
        assert.deepEqual(ids(result.updates), ['after']);
        assert.equal(await t.lastId(), 'after');
      });

      it('rejects a duplicate ID with DuplicateIdError, stores nothing, and goes on storing other IDs', T, async () => {
        const t = await open();
        const seen: string[] = [];
        t.subscribe((u) => seen.push(u.id));
        await dispatchAll(t, ['a']);
        await assert.rejects(t.dispatch(update('a', { data: 'again' })), DuplicateIdError);
        await dispatchAll(t, ['b']);
        assert.deepEqual(seen, ['a', 'b']);
        const result = await t.history('earliest', all);
        assert.deepEqual(result.updates.map((u) => u.data), ['data of a', 'data of b']);
      });

      it('refuses only the duplicate among updates dispatched at once, and stores and delivers the others', T, async () => {
        const t = await open();
        const seen = record(t);
        const results = await Promise.allSettled(['a', 'b', 'a', 'c'].map((id) => t.dispatch(update(id))));
        const refused = results.flatMap((r, i) => (r.status === 'rejected' ? [{ i, reason: r.reason as unknown }] : []));
        assert.equal(refused.length, 1, `refused: ${refused.map((r) => `#${r.i} ${r.reason}`).join(', ')}`);
        assert.ok(refused[0]?.i === 0 || refused[0]?.i === 2, 'one of the two "a"');
        assert.ok(refused[0]?.reason instanceof DuplicateIdError, String(refused[0]?.reason));
        const stored = (await t.history('earliest', all)).updates;
        assert.deepEqual([...ids(stored)].sort(), ['a', 'b', 'c']);
        assert.deepEqual(ids(seen), ids(stored), 'listeners see what was stored, in history order');
      });

      it('keeps at most `size` updates, dropping the oldest; a dropped ID becomes unknown', T, async () => {
        const t = await open({ size: 3, ttl: 0 });
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

      it('accepts a trimmed ID again, since it is no longer in history', T, async () => {
        const t = await open({ size: 1, ttl: 0 });
        await dispatchAll(t, ['a', 'b']);
        await t.dispatch(update('a', { data: 'a again' }));
        assert.deepEqual((await t.history('earliest', all)).updates.map((u) => u.data), ['a again']);
      });

      it('drops updates older than `ttl`; a dropped ID becomes unknown', T, async () => {
        const ttl = 800;
        const t = await open({ size: 100, ttl });
        await t.dispatch(update('old'));
        await new Promise((resolve) => setTimeout(resolve, ttl + 50));
        await t.dispatch(update('fresh'));
        // Redis and NATS count the age on the server's clock and drop on their own schedule.
        await until(async () => !ids((await t.history('earliest', all)).updates).includes('old'), '"old" to be dropped');
        assert.deepEqual(ids((await t.history('earliest', all)).updates), ['fresh']);
        const fromOld = await t.history('old', all);
        assert.equal(fromOld.found, false);
        assert.deepEqual(ids(fromOld.updates), ['fresh']);
        assert.equal(await t.lastId(), 'fresh');
      });

      it('accepts an expired ID again, since it is no longer in history', T, async () => {
        const t = await open({ size: 100, ttl: 300 });
        await t.dispatch(update('a'));
        await until(async () => (await t.history('earliest', all)).updates.length === 0, '"a" to expire');
        await t.dispatch(update('a', { data: 'a again' }));
        assert.deepEqual((await t.history('earliest', all)).updates.map((u) => u.data), ['a again']);
      });

      it('keeps nothing to resume from with size 0, but still delivers every update', T, async () => {
        const t = await open({ size: 0, ttl: 0 });
        const seen = record(t);
        await dispatchAll(t, ['a', 'b']);
        assert.deepEqual(ids(seen), ['a', 'b']);
        assert.deepEqual(ids((await t.history('earliest', all)).updates), []);
        const fromA = await t.history('a', all);
        assert.equal(fromA.found, false);
        assert.deepEqual(fromA.updates, []);
        assert.equal(await t.lastId(), undefined);
      });

      it('reports the newest ID in history, or undefined when it is empty', T, async () => {
        const t = await open();
        assert.equal(await t.lastId(), undefined);
        await dispatchAll(t, ['a', 'b']);
        assert.equal(await t.lastId(), 'b');
      });

      // Positions: what the Centrifugo front-end's offsets and epochs stand on.
      describe('positions', () => {
        /** The capabilities every built-in transport has. */
        const positions = (t: Transport) => {
          const { epoch, head, historyAfter } = t;
          assert.ok(epoch !== undefined && head !== undefined && historyAfter !== undefined, 'epoch, head and historyAfter');
          return { epoch: () => epoch.call(t), head: () => head.call(t), after: (seq: bigint, filter: (u: Update) => boolean = all) => historyAfter.call(t, seq, filter) };
        };
        const offsetOf = (t: Transport, seq: bigint) => t.offsetOf?.(seq) ?? Number(seq);
        const seqOfOffset = (t: Transport, offset: number) => t.seqOfOffset?.(offset) ?? BigInt(offset);

        it('names its epoch: the same for the same history, reopened; another for a new history', T, async () => {
          const spec = kind.fresh();
          const first = await open(NO_LIMITS, spec);
          const epoch = await positions(first).epoch();
          assert.ok(epoch.length > 0);
          assert.equal(await positions(first).epoch(), epoch);
          if (kind.durable) {
            await first.close();
            assert.equal(await positions(await open(NO_LIMITS, spec)).epoch(), epoch, 'the same history, reopened');
          }
          assert.notEqual(await positions(await open()).epoch(), epoch, 'a new history');
        });

        it('reports as head the seq of the newest update stored, 0 when none, and keeps it once that update is trimmed', T, async () => {
          const t = await open({ size: 1, ttl: 0 });
          assert.equal(await positions(t).head(), 0n);
          const sent = await dispatchAll(t, ['a', 'b', 'c']);
          assert.equal(await positions(t).head(), sent[2]?.seq);
        });

        it('reads the updates after a position, found, with the head', T, async () => {
          const t = await open();
          const [, b, , d] = await dispatchAll(t, ['a', 'b', 'c', 'd']);
          const result = await positions(t).after(b?.seq as bigint);
          assert.equal(result.found, true);
          assert.deepEqual(ids(result.updates), ['c', 'd']);
          assert.equal(result.head, d?.seq);
          assert.deepEqual(ids((await positions(t).after(b?.seq as bigint, (u) => u.id !== 'c')).updates), ['d'], 'filtered');
        });

        it('reads the whole epoch after position 0, and nothing, found, at the head', T, async () => {
          const t = await open();
          assert.deepEqual(await positions(t).after(0n), { updates: [], found: true, head: 0n });
          const sent = await dispatchAll(t, ['a', 'b']);
          const fromStart = await positions(t).after(0n);
          assert.equal(fromStart.found, true);
          assert.deepEqual(ids(fromStart.updates), ['a', 'b']);
          assert.deepEqual(await positions(t).after(sent[1]?.seq as bigint), { updates: [], found: true, head: sent[1]?.seq });
        });

        it('does not resume from a position an update after which was trimmed, and does from a kept one', T, async () => {
          const t = await open({ size: 2, ttl: 0 });
          const [a, , c] = await dispatchAll(t, ['a', 'b', 'c', 'd']);
          const gone = await positions(t).after(a?.seq as bigint);
          assert.equal(gone.found, false);
          assert.deepEqual(gone.updates, []);
          assert.equal((await positions(t).after(0n)).found, false, 'the start of the epoch');
          const kept = await positions(t).after(c?.seq as bigint);
          assert.equal(kept.found, true);
          assert.deepEqual(ids(kept.updates), ['d']);
        });

        it('does not resume from a position past the head (one of another history that started over)', T, async () => {
          const t = await open();
          const [a] = await dispatchAll(t, ['a']);
          assert.deepEqual(await positions(t).after((a?.seq as bigint) + 1000n), { updates: [], found: false, head: a?.seq });
        });

        it('does not resume when history keeps nothing (size 0), except at the head', T, async () => {
          const t = await open({ size: 0, ttl: 0 });
          const [a, b] = await dispatchAll(t, ['a', 'b']);
          assert.equal((await positions(t).after(a?.seq as bigint)).found, false);
          assert.equal((await positions(t).after(b?.seq as bigint)).found, true);
        });

        it('gives every seq an offset that is a safe integer, increasing, and turns back into the seq', T, async () => {
          const t = await open();
          const sent = await dispatchAll(t, ['a', 'b', 'c']);
          const offsets = sent.map((u) => offsetOf(t, u.seq as bigint));
          for (const [i, offset] of offsets.entries()) {
            assert.ok(Number.isSafeInteger(offset) && offset > 0, `offset ${offset}`);
            if (i > 0) assert.ok(offset > (offsets[i - 1] as number), `offsets ${offsets.join(', ')}`);
            assert.equal(seqOfOffset(t, offset), sent[i]?.seq);
          }
          assert.equal(offsetOf(t, 0n), 0, 'position 0, the start of the epoch');
          assert.equal(seqOfOffset(t, 0), 0n);
        });
      });

      it('carries signals between nodes, to one node or to all, and stores none of them', T, async (context) => {
        const t = await open();
        if (t.signals === undefined) {
          context.skip('one node: the hub keeps signals in the process (core/signals.ts, tested there)');
          return;
        }
        const a = t.signals('node-a');
        const b = t.signals('node-b');
        const got: string[] = [];
        a.listen((m) => got.push(`a ${m}`));
        b.listen((m) => got.push(`b ${m}`));
        await Promise.all([a.ready(), b.ready()]);
        await a.send('node-b', 'to b');
        await b.send('*', 'to all');
        await until(async () => got.length === 3, 'three signals');
        await b.send('node-a', 'marker');
        await until(async () => got.includes('a marker'), 'the marker');
        assert.deepEqual([...got].sort(), ['a marker', 'a to all', 'b to all', 'b to b']);
        assert.deepEqual((await t.history('earliest', all)).updates, []);
        await a.close();
        await b.close();
      });

      it('is not ready after close, and rejects dispatch with TransportUnavailableError', T, async () => {
        const t = await open();
        assert.equal(t.ready(), true);
        await t.close();
        assert.equal(t.ready(), false);
        await assert.rejects(t.dispatch(update('late')), TransportUnavailableError);
      });

      if (kind.durable) {
        it('keeps its history, its IDs and an increasing seq when opened again on the same storage', T, async () => {
          const spec = kind.fresh();
          const first = await open(NO_LIMITS, spec);
          const sent = await dispatchAll(first, ['a', 'b', 'c']);
          await first.close();

          const second = await open(NO_LIMITS, spec);
          const kept = await second.history('a', all);
          assert.equal(kept.found, true);
          assert.deepEqual(ids(kept.updates), ['b', 'c']);
          assert.equal(await second.lastId(), 'c');
          const [next] = await dispatchAll(second, ['d']);
          assert.ok((next?.seq as bigint) > (sent[2]?.seq as bigint), `seq ${next?.seq} after ${sent[2]?.seq}`);
          await assert.rejects(second.dispatch(update('b')), DuplicateIdError);
        });

        it('keeps seq increasing when opened again after its history was trimmed', T, async () => {
          const spec = kind.fresh();
          const first = await open({ size: 1, ttl: 0 }, spec);
          const sent = await dispatchAll(first, ['a', 'b', 'c']);
          await first.close();

          const second = await open({ size: 1, ttl: 0 }, spec);
          const [next] = await dispatchAll(second, ['d']);
          assert.ok((next?.seq as bigint) > (sent[2]?.seq as bigint), `seq ${next?.seq} after ${sent[2]?.seq}`);
        });
      }
    });
  }
});
