// The join of history and live updates, at the level of one Subscriber.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Subscriber } from '../../src/hub/subscriber.js';
import type { Update } from '../../src/hub/update.js';
import { type CloseReason, type Sink, Stream } from '../../src/server/index.js';

function recordingSink(): Sink & { text: () => string } {
  const chunks: Uint8Array[] = [];
  return { ondrain: null, onclose: null, write: (c) => (chunks.push(c), true), end() {}, destroy() {}, text: () => Buffer.concat(chunks).toString() };
}

const update = (n: number): Update => ({ id: `u${n}`, topics: ['t'], data: String(n), private: false, seq: BigInt(n) });

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
    const reasons: CloseReason[] = [];
    s.stream = new Stream(recordingSink(), { heartbeat: false });
    s.stream.on('close', (r) => reasons.push(r));
    assert.equal(s.goLive(0n), 0);
    assert.deepEqual(reasons, ['slow-consumer']);
  });
});
