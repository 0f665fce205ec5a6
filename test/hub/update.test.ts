// Updates: the IDs the hub makes (SPEC §3: `urn:uuid:<UUIDv7>`) and the SSE event each update is
// encoded to once (SPEC §1: encoded once, the same bytes written to every subscriber).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { type Update, eventBytes, newUpdateId } from '../../src/hub/core/update.js';

const T = { timeout: 20_000 };
const UUID_V7 = /^urn:uuid:([0-9a-f]{8})-([0-9a-f]{4})-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** The 48-bit millisecond timestamp at the front of a UUIDv7 update ID. */
function timestampOf(id: string): number {
  const m = UUID_V7.exec(id);
  assert.ok(m, `${id} is not urn:uuid: and a UUIDv7`);
  return parseInt(`${m[1]}${m[2]}`, 16);
}

describe('newUpdateId', () => {
  it('is `urn:uuid:` and a lowercase UUID with version 7 and the RFC 9562 variant (10xx)', T, () => {
    for (let i = 0; i < 100; i++) assert.match(newUpdateId(), UUID_V7);
  });

  it('carries the given time in its first 48 bits', T, () => {
    for (const now of [0, 1, Date.UTC(2025, 0, 1), 0x0123_4567_89ab, 2 ** 48 - 1]) assert.equal(timestampOf(newUpdateId(now)), now);
  });

  it('defaults to the current time', T, () => {
    const before = Date.now();
    const at = timestampOf(newUpdateId());
    const after = Date.now();
    assert.ok(before <= at && at <= after, `${at} not within [${before}, ${after}]`);
  });

  it('IDs made in increasing milliseconds sort lexicographically in time order', T, () => {
    // 0x0ffff… → 0x10000…: consecutive milliseconds across a hex-digit carry.
    const start = 0x0ff_fff_fff_f00;
    const ids = Array.from({ length: 512 }, (_, i) => newUpdateId(start + i));
    assert.deepEqual([...ids].sort(), ids);
  });

  it('of any two times, the earlier one gives the smaller ID (property)', T, () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 48 - 2 }), fc.integer({ min: 1, max: 2 ** 40 }), (a, d) => {
        const b = Math.min(a + d, 2 ** 48 - 1);
        assert.ok(newUpdateId(a) < newUpdateId(b));
      }),
      { numRuns: 500 },
    );
  });

  it('10,000 IDs made in the same millisecond are all different', T, () => {
    const now = Date.now();
    const ids = new Set(Array.from({ length: 10_000 }, () => newUpdateId(now)));
    assert.equal(ids.size, 10_000);
  });
});

describe('eventBytes', () => {
  it('encodes event, retry, id and data in that order, one data line per line of the payload', T, () => {
    const update: Update = { id: 'urn:uuid:1', topics: ['https://example.com/books/1'], data: 'line one\nline two', private: false, type: 'book', retry: 5000 };
    assert.equal(eventBytes(update).toString('utf8'), 'event: book\nretry: 5000\nid: urn:uuid:1\ndata: line one\ndata: line two\n\n');
  });

  it('leaves out event and retry when the update has no type or retry', T, () => {
    const update: Update = { id: 'u2', topics: ['t'], data: '{"a":1}', private: false };
    assert.equal(eventBytes(update).toString('utf8'), 'id: u2\ndata: {"a":1}\n\n');
  });

  it('returns the very same Buffer for the same update on a second call', T, () => {
    const update: Update = { id: 'u3', topics: ['t'], data: 'x', private: false };
    const first = eventBytes(update);
    assert.equal(eventBytes(update), first);
  });

  it('encodes each update from its own fields, even when another update has the same ID', T, () => {
    const a: Update = { id: 'same', topics: ['t'], data: 'a', private: false };
    const b: Update = { id: 'same', topics: ['t'], data: 'b', private: false };
    assert.equal(eventBytes(a).toString('utf8'), 'id: same\ndata: a\n\n');
    assert.equal(eventBytes(b).toString('utf8'), 'id: same\ndata: b\n\n');
  });
});
