// A resume with a large backlog is replayed at the client's pace, not cut as a slow consumer.
import assert from 'node:assert/strict';
import { connect } from 'node:net';
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

describe('a non-ASCII last event ID', () => {
  it('is matched from its UTF-8 bytes and echoed in the Last-Event-ID response header as the same bytes', { timeout: 20_000 }, async () => {
    const hub = await startTestHub(['--anonymous']);
    after(() => hub.close());
    assert.equal((await hub.publish({ topic: 't', id: '日本-1', data: 'one' })).status, 200);
    assert.equal((await hub.publish({ topic: 't', id: '日本-2', data: 'two' })).status, 200);
    const { port } = new URL(hub.url);
    const raw = await new Promise<Buffer>((resolve, reject) => {
      const chunks: Buffer[] = [];
      const socket = connect(Number(port), '127.0.0.1', () => {
        socket.write(Buffer.concat([Buffer.from('GET /.well-known/mercure?topic=t HTTP/1.1\r\nHost: x\r\nLast-Event-ID: '), Buffer.from('日本-1', 'utf8'), Buffer.from('\r\n\r\n')]));
      });
      socket.on('data', (chunk: Buffer) => {
        chunks.push(chunk);
        if (Buffer.concat(chunks).includes('id: 日本-2')) {
          socket.destroy();
          resolve(Buffer.concat(chunks));
        }
      });
      socket.once('error', reject);
    });
    const head = raw.subarray(0, raw.indexOf('\r\n\r\n'));
    const expected = Buffer.concat([Buffer.from('\r\nlast-event-id: '), Buffer.from('日本-1', 'utf8'), Buffer.from('\r\n')]);
    assert.ok(Buffer.concat([head, Buffer.from('\r\n')]).includes(expected), `response head: ${head.toString('hex')}`);
    assert.ok(!raw.includes('id: 日本-1\n'), 'the event it resumed after is not sent again');
  });
});
