// The soak's verdict helpers: reading /metrics, and the slope that decides "memory is flat".
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseExposition, quantile, slopePerMinute } from '../../bench/soak/trend.js';

describe('soak trend helpers', () => {
  it('parseExposition reads every sample by series and skips comments', () => {
    const text = [
      '# HELP process_open_fds Number of open file descriptors.',
      '# TYPE process_open_fds gauge',
      'process_open_fds 42',
      'ssehub_connections_closed_total{reason="slow-consumer"} 3',
      'nodejs_eventloop_lag_p99_seconds 0.0123',
      '',
    ].join('\n');
    const m = parseExposition(text);
    assert.equal(m.get('process_open_fds'), 42);
    assert.equal(m.get('ssehub_connections_closed_total{reason="slow-consumer"}'), 3);
    assert.equal(m.get('nodejs_eventloop_lag_p99_seconds'), 0.0123);
    assert.equal(m.size, 3);
  });

  it('slopePerMinute is the least-squares slope, per minute', () => {
    // 2 units per second = 120 per minute, with noise that cancels out.
    const points = Array.from({ length: 11 }, (_, i) => ({ t: i * 1000, v: 2 * i + (i % 2 === 0 ? 1 : -1) }));
    assert.ok(Math.abs(slopePerMinute(points) - 120) < 10, String(slopePerMinute(points)));
    assert.equal(slopePerMinute([{ t: 0, v: 5 }]), 0);
    assert.equal(slopePerMinute([{ t: 0, v: 5 }, { t: 60_000, v: 5 }]), 0);
    assert.equal(slopePerMinute([{ t: 0, v: 0 }, { t: 30_000, v: -3 }]), -6);
  });

  it('quantile takes the nearest rank', () => {
    const values = Array.from({ length: 100 }, (_, i) => i + 1);
    assert.equal(quantile(values, 0.5), 50);
    assert.equal(quantile(values, 0.99), 99);
    assert.equal(quantile(values, 1), 100);
    assert.ok(Number.isNaN(quantile([], 0.5)));
  });
});
