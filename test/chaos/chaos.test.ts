// The chaos suite, short versions (issue 9, item 2; the long versions run in `npm run soak`).
// Real hub processes, real redis-server and nats-server, a real TCP proxy. Each scenario must
// lose, repeat and reorder nothing that was acknowledged, and recover; what the clients saw and
// how long recovery took are printed as test diagnostics (nothing is asserted on time).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SCENARIOS, SHORT, renderChaos } from './scenarios.js';

describe('chaos (short versions)', () => {
  for (const scenario of SCENARIOS) {
    it(`${scenario.name}: nothing acknowledged is lost, repeated or reordered, and the subscribers recover`, { timeout: 120_000 }, async (t) => {
      const report = await scenario.run(SHORT);
      for (const line of renderChaos([report]).split('\n').slice(2)) t.diagnostic(line);
      assert.ok(report.published.acked.length > 0, 'some publishes were acknowledged');
      assert.ok(report.recovery.length > 0, 'recovery was measured');
      assert.deepEqual(report.failures, []);
      assert.equal(report.verdict.lost + report.verdict.duplicated + report.verdict.reordered + report.verdict.invented, 0);
    });
  }
});
