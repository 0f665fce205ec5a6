// The reconnect schedule (SPEC §4): the server's `retry` is a floor, exponential backoff with
// jitter is added on top for repeated failures, and the whole is capped. Asserted on computed
// values (`reconnectDelay` is a pure function, the random source passed in), not on wall-clock
// time; then the policy's limits as a real EventSource applies them.
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { after, describe, it } from 'node:test';
import fc from 'fast-check';
import { EventSource, type EventSourceErrorEvent, type ReconnectPolicy, reconnectDelay, resolvePolicy } from '../../src/client/index.js';
import { listen } from '../helpers/http.js';

const T = { timeout: 20_000 };
const POLICY = resolvePolicy({ initialDelay: 100, factor: 2, maxDelay: 10_000, jitter: 0.5 });
const RETRY = 1000;
const schedule = (random: number, policy = POLICY, retry = RETRY) => [1, 2, 3, 4, 5].map((f) => reconnectDelay(f, retry, policy, () => random));

describe('reconnect schedule', () => {
  it('waits exactly the server retry after a healthy stream (no failures), whatever the policy and the random draw', () => {
    assert.equal(reconnectDelay(0, RETRY, POLICY, () => 0), RETRY);
    assert.equal(reconnectDelay(0, RETRY, POLICY, () => 0.999), RETRY);
    assert.equal(reconnectDelay(0, 50_000, POLICY, () => 0.5), 50_000);
  });

  it('adds the full backoff, doubling with each consecutive failure, when the random draw is 0', () => {
    assert.deepEqual(schedule(0), [1100, 1200, 1400, 1800, 2600]);
  });

  it('adds only backoff·(1 − jitter) when the random draw is at its top (1)', () => {
    assert.deepEqual(schedule(1), [1050, 1100, 1200, 1400, 1800]);
  });

  it('spreads the delay over [retry + backoff·(1 − jitter), retry + backoff] with the random draw', () => {
    // Third failure: backoff 400, jitter 0.5, so 1200 to 1400.
    const at = (random: number) => reconnectDelay(3, RETRY, POLICY, () => random);
    assert.deepEqual([0, 0.25, 0.5, 0.75, 1].map(at), [1400, 1350, 1300, 1250, 1200]);
  });

  it('is the same for every random draw when jitter is 0', () => {
    const exact = resolvePolicy({ initialDelay: 100, factor: 2, maxDelay: 10_000, jitter: 0 });
    assert.deepEqual(schedule(0, exact), [1100, 1200, 1400, 1800, 2600]);
    assert.deepEqual(schedule(0.7, exact), schedule(0, exact));
    assert.deepEqual(schedule(1, exact), schedule(0, exact));
  });

  it('grows with the factor of the policy', () => {
    const triple = resolvePolicy({ initialDelay: 100, factor: 3, maxDelay: 100_000, jitter: 0 });
    assert.deepEqual(schedule(0, triple), [1100, 1300, 1900, 3700, 9100]);
  });

  it('is capped at maxDelay once the backoff grows past it', () => {
    assert.equal(reconnectDelay(20, RETRY, POLICY, () => 0), 10_000);
    assert.equal(reconnectDelay(500, RETRY, POLICY, () => 0), 10_000);
    assert.ok(reconnectDelay(20, RETRY, POLICY, () => 1) <= 10_000);
  });

  it('is never shorter than the server retry, even when retry is above maxDelay', () => {
    const small = resolvePolicy({ initialDelay: 100, maxDelay: 2000 });
    for (const random of [0, 0.5, 1]) assert.deepEqual(schedule(random, small, 60_000), [60_000, 60_000, 60_000, 60_000, 60_000]);
  });

  it('holds its invariants for any policy, retry, failure count and random draw', () => {
    const policy = fc.record({
      initialDelay: fc.integer({ min: 0, max: 100_000 }),
      factor: fc.double({ min: 1, max: 10, noNaN: true }),
      maxDelay: fc.integer({ min: 0, max: 1_000_000 }),
      jitter: fc.double({ min: 0, max: 1, noNaN: true }),
    });
    const draw = fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true });
    fc.assert(
      fc.property(policy, fc.integer({ min: 0, max: 1_000_000 }), fc.integer({ min: 0, max: 64 }), draw, (raw, retry, failures, r) => {
        const p = resolvePolicy(raw);
        const delay = reconnectDelay(failures, retry, p, () => r);
        assert.ok(Number.isFinite(delay), 'finite');
        assert.ok(delay >= retry, 'never shorter than retry');
        if (failures === 0) assert.equal(delay, retry, 'exactly retry after a healthy stream');
        if (retry <= p.maxDelay) assert.ok(delay <= p.maxDelay, 'capped at maxDelay');
        else assert.equal(delay, retry, 'retry wins over maxDelay');
        if (failures > 0) {
          const backoff = Math.min(p.maxDelay, p.initialDelay * p.factor ** (failures - 1));
          const clamp = (ms: number) => Math.max(retry, Math.min(p.maxDelay, ms));
          assert.ok(delay >= Math.round(clamp(retry + backoff * (1 - p.jitter))) && delay <= Math.round(clamp(retry + backoff)), 'within the jitter band');
        }
        assert.ok(reconnectDelay(failures + 1, retry, p, () => r) >= delay, 'one more failure never shortens the delay');
        if (p.jitter === 0) assert.equal(reconnectDelay(failures, retry, p, () => 1 - r), delay, 'no jitter: no randomness');
      }),
      { numRuns: 2000 },
    );
  });

  it('stays at the server retry after more than a thousand failures with no backoff (initialDelay 0)', () => {
    const none = resolvePolicy({ initialDelay: 0 });
    assert.equal(reconnectDelay(1025, 3000, none, () => 0), 3000);
  });
});

describe('reconnect policy', () => {
  it('fills the documented defaults', () => {
    assert.deepEqual(resolvePolicy(), { initialDelay: 1000, factor: 2, maxDelay: 30_000, jitter: 0.5, maxAttempts: Number.POSITIVE_INFINITY, resetAfter: 5000 });
  });

  const FIELDS = ['initialDelay', 'factor', 'maxDelay', 'jitter', 'maxAttempts', 'resetAfter'] as const;

  it('rejects a negative value in any field with a RangeError naming it', () => {
    for (const field of FIELDS) assert.throws(() => resolvePolicy({ [field]: -1 }), { name: 'RangeError', message: new RegExp(`reconnect\\.${field}`) }, field);
  });

  it('rejects NaN in any field with a RangeError naming it', () => {
    for (const field of FIELDS) assert.throws(() => resolvePolicy({ [field]: Number.NaN }), { name: 'RangeError', message: new RegExp(`reconnect\\.${field}`) }, field);
  });

  it('rejects a jitter above 1', () => {
    assert.throws(() => resolvePolicy({ jitter: 1.01 }), { name: 'RangeError', message: /reconnect\.jitter/ });
  });

  it('rejects a factor below 1 (a backoff that would shrink)', () => {
    assert.throws(() => resolvePolicy({ factor: 0.99 }), { name: 'RangeError', message: /reconnect\.factor/ });
  });

  it('accepts the boundaries: zero delays, jitter 0 and 1, factor 1', () => {
    const p = resolvePolicy({ initialDelay: 0, maxDelay: 0, resetAfter: 0, maxAttempts: 0, jitter: 1, factor: 1 });
    assert.equal(p.jitter, 1);
    assert.equal(resolvePolicy({ jitter: 0 }).jitter, 0);
    assert.equal(p.factor, 1);
  });

  it('is checked when the EventSource is constructed', () => {
    // Closed at once should it be constructed after all, so a failure cannot keep the process alive.
    assert.throws(() => new EventSource('http://127.0.0.1:1/', { reconnect: { jitter: 2 } }).close(), RangeError);
  });
});

/** A loopback port nothing listens on (bound, then released). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Opens a source and collects its error events until one says it will not retry (or `count` arrived). */
function errorsOf(source: EventSource, count = Number.POSITIVE_INFINITY): Promise<EventSourceErrorEvent[]> {
  const errors: EventSourceErrorEvent[] = [];
  return new Promise((resolve) => {
    source.addEventListener('error', (ev) => {
      errors.push(ev as EventSourceErrorEvent);
      if (!(ev as EventSourceErrorEvent).willRetry || errors.length >= count) resolve(errors);
    });
  });
}

describe('reconnect policy on a real EventSource', () => {
  it('gives up after maxAttempts failed connections: CLOSED, and the last error says so', T, async () => {
    const port = await closedPort();
    let attempts = 0;
    const counting: typeof fetch = (input, init) => {
      attempts++;
      return fetch(input, init);
    };
    const source = new EventSource(`http://127.0.0.1:${port}/events`, { fetch: counting, initialRetry: 1, reconnect: { initialDelay: 1, maxDelay: 5, maxAttempts: 3 } });
    after(() => source.close());
    const errors = await errorsOf(source);
    assert.equal(attempts, 3);
    assert.equal(source.readyState, EventSource.CLOSED);
    assert.deepEqual(
      errors.map((e) => e.willRetry),
      [true, true, false],
    );
    assert.match(errors.at(-1)?.message ?? '', /gave up after 3 failed attempts/);
  });

  it('waits the delays of the schedule between failed connections, as its error events report', T, async () => {
    const port = await closedPort();
    const policy: ReconnectPolicy = { initialDelay: 5, factor: 2, jitter: 0, maxDelay: 1000, maxAttempts: 5 };
    const source = new EventSource(`http://127.0.0.1:${port}/events`, { initialRetry: 5, reconnect: policy });
    after(() => source.close());
    const errors = await errorsOf(source);
    // retry 5 plus a backoff of 5, 10, 20, 40; the fifth failure gives up, with no delay.
    assert.deepEqual(
      errors.map((e) => e.delay),
      [10, 15, 25, 45, undefined],
    );
  });

  // A server whose streams open (200, text/event-stream, `retry: 5`) and end at once.
  async function shortStreams(): Promise<{ url: string; opened: () => number }> {
    let opened = 0;
    const server = await listen((_req, res) => {
      opened++;
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end('retry: 5\n\n');
    });
    after(() => server.close());
    return { url: server.url, opened: () => opened };
  }

  it('counts a stream that opened and lived resetAfter as healthy: the next delay is the server retry alone', T, async () => {
    const { url, opened } = await shortStreams();
    const source = new EventSource(url, { reconnect: { initialDelay: 10, factor: 2, jitter: 0, resetAfter: 0 } });
    after(() => source.close());
    const errors = await errorsOf(source, 3);
    source.close();
    assert.ok(opened() >= 3);
    assert.deepEqual(
      errors.map((e) => e.delay),
      [5, 5, 5],
    );
  });

  it('counts a stream that ended before resetAfter as a failure: the backoff keeps growing', T, async () => {
    const { url, opened } = await shortStreams();
    const source = new EventSource(url, { reconnect: { initialDelay: 10, factor: 2, jitter: 0, resetAfter: 60_000 } });
    after(() => source.close());
    const errors = await errorsOf(source, 3);
    source.close();
    assert.ok(opened() >= 3);
    assert.deepEqual(
      errors.map((e) => e.delay),
      [15, 25, 45],
    );
  });
});
