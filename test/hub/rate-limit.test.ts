// The publish rate limit (SPEC §3 "Operating it": publish rate per token/address, 429 with
// Retry-After): a token bucket per key, driven here by a fake clock.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { RateLimiter } from '../../src/hub/core/rate-limit.js';

const T = { timeout: 20_000 };

/** A clock the test moves by hand. */
function fakeClock(start = 1_700_000_000_000): { now: () => number; advance: (ms: number) => void } {
  let t = start;
  return { now: () => t, advance: (ms) => (t += ms) };
}

describe('RateLimiter', () => {
  it('allows a burst, then refuses with a Retry-After of at least one second', T, () => {
    const clock = fakeClock();
    const limiter = new RateLimiter(1, 3, clock.now);
    for (let i = 0; i < 3; i++) assert.deepEqual(limiter.take('k'), { allowed: true, retryAfter: 0 }, `take ${i + 1} of the burst`);
    assert.deepEqual(limiter.take('k'), { allowed: false, retryAfter: 1 });
  });

  it('computes Retry-After from the refill rate and what has refilled so far', T, () => {
    const clock = fakeClock();
    const limiter = new RateLimiter(0.25, 1, clock.now);
    assert.equal(limiter.take('k').allowed, true);
    assert.deepEqual(limiter.take('k'), { allowed: false, retryAfter: 4 });
    clock.advance(1_000);
    assert.deepEqual(limiter.take('k'), { allowed: false, retryAfter: 3 });
    clock.advance(2_500);
    assert.deepEqual(limiter.take('k'), { allowed: false, retryAfter: 1 });
  });

  it('a fractional rate of 0.5/s has a burst of one and a Retry-After of 2 seconds', T, () => {
    const clock = fakeClock();
    const limiter = new RateLimiter(0.5, undefined, clock.now);
    assert.equal(limiter.take('k').allowed, true);
    assert.deepEqual(limiter.take('k'), { allowed: false, retryAfter: 2 });
  });

  it('the default burst is the rate rounded up', T, () => {
    const clock = fakeClock();
    const limiter = new RateLimiter(2.5, undefined, clock.now);
    const allowed = Array.from({ length: 5 }, () => limiter.take('k').allowed);
    assert.deepEqual(allowed, [true, true, true, false, false]);
  });

  it('refills at the rate as time passes: one more token exactly when it has refilled, not before', T, () => {
    const clock = fakeClock();
    const limiter = new RateLimiter(2, 2, clock.now);
    limiter.take('k');
    limiter.take('k');
    clock.advance(499);
    assert.equal(limiter.take('k').allowed, false);
    clock.advance(1);
    assert.equal(limiter.take('k').allowed, true);
    assert.equal(limiter.take('k').allowed, false);
  });

  it('never holds more than the burst, however long a key was idle', T, () => {
    const clock = fakeClock();
    const limiter = new RateLimiter(10, 3, clock.now);
    limiter.take('k');
    clock.advance(3_600_000);
    const allowed = Array.from({ length: 4 }, () => limiter.take('k').allowed);
    assert.deepEqual(allowed, [true, true, true, false]);
  });

  it('a refused request does not use up a token, so retrying early does not push Retry-After back', T, () => {
    const clock = fakeClock();
    const limiter = new RateLimiter(1, 1, clock.now);
    limiter.take('k');
    for (let i = 0; i < 10; i++) assert.equal(limiter.take('k').allowed, false);
    clock.advance(1_000);
    assert.equal(limiter.take('k').allowed, true);
  });

  it('keys are independent: exhausting one leaves the others their full burst', T, () => {
    const clock = fakeClock();
    const limiter = new RateLimiter(1, 2, clock.now);
    limiter.take('sub:alice');
    limiter.take('sub:alice');
    assert.equal(limiter.take('sub:alice').allowed, false);
    assert.equal(limiter.take('sub:bob').allowed, true);
    assert.equal(limiter.take('sub:bob').allowed, true);
    assert.equal(limiter.take('addr:127.0.0.1').allowed, true);
    assert.equal(limiter.take('sub:alice').allowed, false);
  });

  it('a key that is still refilling keeps its bucket when many other keys make the limiter forget idle ones', T, () => {
    // 30/h: one token every 120 s. A key idle for 61 s has not refilled yet and must stay limited.
    const clock = fakeClock();
    const limiter = new RateLimiter(30 / 3600, 1, clock.now);
    assert.equal(limiter.take('slow').allowed, true);
    clock.advance(61_000);
    for (let i = 0; i <= 10_000; i++) limiter.take(`other-${i}`);
    const decision = limiter.take('slow');
    assert.equal(decision.allowed, false);
    assert.ok(decision.retryAfter >= 59 && decision.retryAfter <= 60, `retryAfter ${decision.retryAfter}`);
  });

  it('waiting the announced Retry-After is always enough (property over rates, bursts and request times)', T, () => {
    fc.assert(
      fc.property(
        fc.double({ min: 0.01, max: 100, noNaN: true }),
        fc.integer({ min: 1, max: 10 }),
        fc.array(fc.integer({ min: 0, max: 5_000 }), { minLength: 1, maxLength: 30 }),
        (rate, burst, gaps) => {
          const clock = fakeClock();
          const limiter = new RateLimiter(rate, burst, clock.now);
          for (const gap of gaps) {
            clock.advance(gap);
            const decision = limiter.take('k');
            if (decision.allowed) continue;
            assert.ok(Number.isInteger(decision.retryAfter) && decision.retryAfter >= 1, `retryAfter ${decision.retryAfter}`);
            clock.advance(decision.retryAfter * 1000);
            assert.equal(limiter.take('k').allowed, true, `refused again after waiting ${decision.retryAfter}s at ${rate}/s`);
          }
        },
      ),
      { numRuns: 500 },
    );
  });
});
