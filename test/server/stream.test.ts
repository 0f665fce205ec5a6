// Behaviour of one Stream over a real node:http connection: first bytes, heartbeats, retry,
// Last-Event-ID, lifetime, close reasons and clean-up.
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { after, describe, it } from 'node:test';
import { encodeEvent, parseEventStream } from '../../src/protocol/index.js';
import { type CloseReason, type Sink, Stream, activeHeartbeats, createStream } from '../../src/server/index.js';
import { listen, signal } from '../helpers/http.js';
import { openSse } from '../helpers/sse-client.js';

describe('a stream', () => {
  const cleanups: (() => unknown)[] = [];
  after(async () => {
    for (const c of cleanups.reverse()) await c();
  });

  async function serve(onStream: (stream: Stream) => void, options = {}) {
    const srv = await listen((req, res) => onStream(createStream(req, res, options)));
    cleanups.push(() => srv.close());
    return srv;
  }

  it('sends headers and a first comment before any event is sent', async () => {
    const firstChunkSeen = signal();
    const streamReady = signal<Stream>();
    const srv = await serve((stream) => {
      streamReady.resolve(stream);
      void firstChunkSeen.promise.then(() => stream.send({ data: 'after' }));
    });
    const client = await openSse(srv.url);
    cleanups.push(() => client.close());
    assert.equal(client.status, 200);
    await client.until((r) => r.chunks.length > 0, 'first chunk');
    // Nothing was sent yet: whatever arrived is the opening comment and retry hint only.
    assert.equal(client.events.length, 0);
    assert.deepEqual(client.comments, [' ok']);
    assert.deepEqual(client.retries, [3000]);
    firstChunkSeen.resolve();
    await client.events_(1);
    assert.equal(client.events[0]?.data, 'after');
  });

  it('sends no retry hint when retry is false, and the configured first comment', async () => {
    const srv = await serve((stream) => stream.send({ data: 'x' }), { retry: false, firstComment: 'hello' });
    const client = await openSse(srv.url);
    cleanups.push(() => client.close());
    await client.events_(1);
    assert.equal(client.text, ': hello\n\ndata: x\n\n');
  });

  it('sends heartbeat comments on the shared timer', async () => {
    const srv = await serve(() => {}, { heartbeat: 30 });
    const client = await openSse(srv.url);
    cleanups.push(() => client.close());
    await client.until((r) => r.comments.filter((c) => c === '').length >= 3, 'three heartbeats');
    assert.equal(client.events.length, 0);
  });

  it('runs one heartbeat timer for many streams of the same interval, and none once they close', async () => {
    const opened: Stream[] = [];
    const srv = await serve((s) => opened.push(s), { heartbeat: 60_000 });
    const before = activeHeartbeats();
    const clients = await Promise.all(Array.from({ length: 20 }, () => openSse(srv.url)));
    await Promise.all(clients.map((c) => c.until((r) => r.chunks.length > 0)));
    assert.equal(activeHeartbeats(), before + 1);
    const closed = Promise.all(opened.map((s) => new Promise((r) => s.once('close', r))));
    for (const c of clients) c.close();
    await closed;
    assert.equal(activeHeartbeats(), before);
  });

  it('hands the app the Last-Event-ID header, else the lastEventID or lastEventId query, header first', async () => {
    const seen: (string | undefined)[] = [];
    const srv = await serve((s) => {
      seen.push(s.lastEventId);
      s.close();
    });
    for (const [path, headers] of [
      ['/', { 'last-event-id': 'h1' }],
      ['/?lastEventID=q1', {}],
      ['/?lastEventId=q2', {}],
      ['/?lastEventID=q3', { 'last-event-id': 'h2' }],
      ['/', {}],
    ] as const) {
      const client = await openSse(srv.url + path, headers);
      await client.done;
    }
    assert.deepEqual(seen, ['h1', 'q1', 'q2', 'h2', undefined]);
  });

  it('reports client-closed exactly once when the client goes away', async () => {
    const reasons: CloseReason[] = [];
    const closed = signal();
    const srv = await serve((s) => {
      s.on('close', (reason) => {
        reasons.push(reason);
        closed.resolve();
      });
    });
    const client = await openSse(srv.url);
    await client.until((r) => r.chunks.length > 0);
    client.close();
    await closed.promise;
    await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(reasons, ['client-closed']);
  });

  it('closes exactly once when closed, destroyed and disconnected in a row, keeping the first reason', async () => {
    const reasons: CloseReason[] = [];
    const got = signal<Stream>();
    const srv = await serve((s) => {
      s.on('close', (reason) => reasons.push(reason));
      got.resolve(s);
    });
    const client = await openSse(srv.url);
    const stream = await got.promise;
    stream.close('shutdown');
    stream.close('lifetime');
    stream.destroy('error');
    client.close();
    await client.done;
    assert.deepEqual(reasons, ['shutdown']);
    assert.equal(stream.open, false);
    assert.equal(stream.send({ data: 'late' }), false);
  });

  it('ends a graceful close with a jittered retry hint between 1 and 2 times the base', async () => {
    const srv = await serve((s) => {
      s.send({ id: '1', data: 'a' });
      s.close('shutdown');
    }, { retry: 1000 });
    const client = await openSse(srv.url);
    await client.done;
    assert.equal(client.events.length, 1);
    assert.equal(client.retries.length, 2);
    const hint = client.retries[1] ?? -1;
    assert.ok(hint >= 1000 && hint < 2000, `retry ${hint}`);
    assert.ok(client.text.endsWith(`retry: ${hint}\n\n`));
  });

  it('ends at its lifetime only between events: whole events, then a retry hint', async () => {
    const big = 'x'.repeat(50_000);
    const reason = signal<CloseReason>();
    let sent = 0;
    const srv = await serve((s) => {
      s.on('close', (r) => reason.resolve(r));
      const pump = () => {
        // Keep the pipe full so that the lifetime fires while bytes are in flight.
        while (s.open && s.queuedBytes < 200_000) s.send({ id: String(++sent), data: big });
        if (s.open) setImmediate(pump);
      };
      pump();
    }, { lifetime: 300, lifetimeJitter: 0.5, maxQueueBytes: 1 << 24, maxQueueEvents: 1 << 20 });
    const client = await openSse(srv.url);
    await client.done;
    assert.equal(await reason.promise, 'lifetime');
    assert.ok(client.events.length > 2, `only ${client.events.length} events`);
    for (const [i, e] of client.events.entries()) {
      assert.equal(e.data.length, big.length);
      assert.equal(e.lastEventId, String(i + 1));
    }
    // The body ends exactly with the hint: re-encoding what was parsed reproduces it byte for byte.
    const body = client.text;
    const hint = client.retries.at(-1);
    const expected = ': ok\n\nretry: 3000\n\n' + client.events.map((e) => encodeEvent({ id: e.lastEventId, data: e.data })).join('') + `retry: ${hint}\n\n`;
    assert.equal(body.length, expected.length);
    assert.ok(body === expected, 'the body is whole events followed by one retry hint');
    assert.equal(parseEventStream(body).length, client.events.length);
  });

  it('never ends a stream before the jittered lower bound of its lifetime', async () => {
    const opened = performance.now();
    const ended = signal<number>();
    const srv = await serve((s) => s.on('close', () => ended.resolve(performance.now())), { lifetime: 200, lifetimeJitter: 0.25 });
    const client = await openSse(srv.url);
    await client.done;
    // Timers never fire early, so this bound is exact: 75 % of 200 ms.
    assert.ok((await ended.promise) - opened >= 150);
    assert.equal(client.retries.length, 2);
  });

  it('cleans up a stream answering a pipelined request when the client leaves before its turn', { timeout: 10_000 }, async () => {
    const reasons: CloseReason[] = [];
    let opened = 0;
    const bothClosed = signal();
    const srv = await serve((s) => {
      opened++;
      s.on('close', (r) => {
        reasons.push(r);
        if (reasons.length === 2) bothClosed.resolve();
      });
    });
    const { port } = new URL(srv.url);
    const socket = connect(Number(port), '127.0.0.1', () => socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    socket.on('error', () => {});
    await new Promise((r) => socket.once('data', r));
    while (opened < 2) await new Promise((r) => setImmediate(r));
    socket.destroy();
    await bothClosed.promise;
    assert.deepEqual(reasons, ['client-closed', 'client-closed']);
  });
  it('leaves nothing behind once closed, however many streams with their own lifetimes came and went', async () => {
    // Each stream's lifetime is jittered, so each has a timer of its own duration. Node drops the
    // timer list of such a duration when the timer is cleared only if the timer was ref'd; an
    // unref'd one left ~70 bytes per stream for up to a lifetime (found by the soak: the heap
    // grew 1 MiB/min under reconnects). 100,000 streams opened and closed must retain < 2 MiB.
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const used = async () => {
      await new Promise((r) => setImmediate(r));
      gc();
      return process.memoryUsage().heapUsed;
    };
    const sink = (): Sink => ({ write: () => true, end() { this.onclose?.(); }, destroy() { this.onclose?.(); }, ondrain: null, onclose: null });
    const open = (n: number) => {
      for (let i = 0; i < n; i++) new Stream(sink(), { lifetime: 600_000, lifetimeJitter: 0.2, heartbeat: false }).destroy('client-closed');
    };
    open(10_000); // warm up code and allocations
    const before = await used();
    open(100_000);
    const retained = (await used()) - before;
    assert.ok(retained < 2 * 2 ** 20, `${(retained / 2 ** 20).toFixed(1)} MiB retained by 100,000 closed streams`);
  });
});
