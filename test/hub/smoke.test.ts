// The shortest end-to-end path: publish one update, a subscriber receives it.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { startTestHub } from '../helpers/hub.js';
import { openSse } from '../helpers/sse-client.js';

describe('hub smoke', () => {
  it('delivers a published update to a subscriber of its topic', async () => {
    const hub = await startTestHub();
    after(() => hub.close());
    const sub = await openSse(`${hub.hubUrl}?topic=${encodeURIComponent('https://example.com/books/{id}')}`, { authorization: `Bearer ${hub.adminToken}` });
    after(() => sub.close());
    assert.equal(sub.status, 200);
    const res = await hub.publish({ topic: 'https://example.com/books/1', data: 'hello', id: 'u1' });
    assert.equal(res.status, 200);
    assert.equal(res.body, 'u1');
    await sub.events_(1);
    assert.deepEqual(sub.events[0], { type: 'message', data: 'hello', lastEventId: 'u1' });
  });
});

describe('hub retry hint', () => {
  it('tells new streams the configured reconnection time (--retry)', async () => {
    const hub = await startTestHub(['--anonymous', '--retry', '250ms']);
    after(() => hub.close());
    const sub = await openSse(`${hub.hubUrl}?topic=t`);
    after(() => sub.close());
    await sub.until((r) => r.retries.length > 0, 'a retry hint');
    assert.deepEqual(sub.retries, [250]);
  });
});

describe('hub id hygiene', () => {
  it('refuses an id with a control character, which no client could send back in Last-Event-ID', async () => {
    const hub = await startTestHub();
    after(() => hub.close());
    for (const id of ['x\u0001', 'x\u001b', 'x\u007f']) {
      const res = await hub.publish({ topic: 't', id, data: 'd' });
      assert.equal(res.status, 400);
      assert.match(res.body, /control characters/);
    }
    assert.equal((await hub.publish({ topic: 't', id: 'tab\there', data: 'd' })).status, 200);
  });
});
