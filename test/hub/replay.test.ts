// A resume with a large backlog is replayed at the client's pace, not cut as a slow consumer.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { startTestHub } from '../helpers/hub.js';
import { openSse } from '../helpers/sse-client.js';

describe('history replay', () => {
  it('replays a backlog of 5,000 updates whole and in order, within the queue bounds that guard against slow clients', { timeout: 60_000 }, async () => {
    const hub = await startTestHub(['--anonymous', '--history-size', '10000']);
    after(() => hub.close());
    const total = 5000;
    for (let i = 1; i <= total; i++) {
      const res = await hub.publish({ topic: 't', id: `n-${i}`, data: 'x'.repeat(200) + i });
      assert.equal(res.status, 200);
    }
    const sub = await openSse(`${hub.hubUrl}?topic=t`, { 'last-event-id': 'n-1' });
    after(() => sub.close());
    assert.equal(sub.status, 200);
    await sub.events_(total - 1);
    assert.deepEqual(
      sub.events.map((e) => e.lastEventId),
      Array.from({ length: total - 1 }, (_, i) => `n-${i + 2}`),
    );
    const metrics = await (await fetch(`${hub.url}/metrics`)).text();
    assert.doesNotMatch(metrics, /ssehub_connections_closed_total\{reason="slow-consumer"\} [1-9]/);
  });
});
