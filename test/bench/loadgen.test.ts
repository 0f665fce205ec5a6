// The load generator's counting is what the benchmark and the soak's verdicts rest on: these pin
// down that it counts every gap, repeat and inversion wherever a read splits the bytes, and that
// it sees a stream end at the last chunk of its body (as an EventSource does), not only when the
// server closes the connection.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { CONNECTING, Connection, Counters } from '../../bench/sse/loadgen.js';
import { payload } from '../../bench/sse/clients.js';
import { sequenceReference } from '../helpers/sequence-reference.js';

const HEAD = 'HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n';

/** The chunked bytes of a stream carrying updates `seqs` (ids `id-<seq>`), then optionally the last chunk. */
function stream(seqs: number[], end: boolean): Buffer {
  const chunks = [':ok\n\n', ...seqs.map((s) => `id: id-${s}\ndata: ${payload(s)}\n\n`)];
  const body = chunks.map((c) => `${Buffer.byteLength(c).toString(16)}\r\n${c}\r\n`).join('');
  return Buffer.from(HEAD + body + (end ? '0\r\n\r\n' : ''), 'latin1');
}

/** Feeds `bytes` to a fresh connection in pieces cut at `cuts`; returns it and its counters. */
function feed(bytes: Buffer, cuts: number[]): { c: Connection; counters: Counters; results: (string | null)[] } {
  const counters = new Counters();
  const c = new Connection(counters, 0);
  c.state = CONNECTING;
  const results: (string | null)[] = [];
  const points = [...new Set(cuts.map((x) => x % bytes.length))].sort((a, b) => a - b);
  let from = 0;
  for (const to of [...points, bytes.length]) {
    if (to <= from) continue;
    results.push(c.feed(bytes, from, to, Number(process.hrtime.bigint() / 1000n)));
    from = to;
  }
  return { c, counters, results };
}

describe('load generator counting', () => {
  it('counts lost, duplicated and reordered updates exactly, wherever the reads split the bytes', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 30 }), { minLength: 1, maxLength: 40 }), fc.array(fc.nat(), { maxLength: 30 }), (seqs, cuts) => {
        const { c, counters, results } = feed(stream(seqs, false), cuts);
        assert.ok(results.includes('open'));
        const { lost, duplicated, reordered, last } = sequenceReference(seqs);
        assert.deepEqual({ events: counters.events, lost: counters.lost, duplicated: counters.duplicated, reordered: counters.reordered }, { events: seqs.length, lost, duplicated, reordered });
        assert.equal(c.lastSeq, last);
        assert.equal(c.lastId(), `id-${seqs.at(-1)}`);
      }),
    );
  });

  it('sees the end of the stream at the last chunk of the body, wherever the reads split it', () => {
    fc.assert(
      fc.property(fc.array(fc.nat(), { maxLength: 10 }), (cuts) => {
        const ended = feed(stream([1, 2, 3], true), cuts);
        assert.equal(ended.c.bodyEnded, true);
        assert.equal(ended.counters.events, 3);
        const open = feed(stream([1, 2, 3], false), cuts);
        assert.equal(open.c.bodyEnded, false);
      }),
    );
  });

  it('reports a refused stream with its status line', () => {
    const { results } = feed(Buffer.from('HTTP/1.1 503 Service Unavailable\r\nretry-after: 1\r\n\r\n'), []);
    assert.deepEqual(results, ['fail:HTTP/1.1 503 Service Unavailable']);
  });
});
