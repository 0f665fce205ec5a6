// A subscriber that stops reading must not make the server's memory grow: its queue is bounded
// and, by default, it is disconnected with reason `slow-consumer` while the others carry on.
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { type Socket, connect } from 'node:net';
import { after, describe, it } from 'node:test';
import { EventStreamParser } from '../../src/protocol/index.js';
import { type CloseReason, type Stream, StreamSet, createStream } from '../../src/server/index.js';
import { listen, signal } from '../helpers/http.js';

/** A reader that keeps up and keeps only a count, so the test process's own memory stays flat. */
function countingReader(url: string) {
  let count = 0;
  let waiting: { n: number; resolve: () => void } | undefined;
  const parser = new EventStreamParser({
    onEvent: () => {
      count++;
      if (waiting && count >= waiting.n) {
        waiting.resolve();
        waiting = undefined;
      }
    },
  });
  const req = request(url, { agent: false }, (res) => res.on('data', (c: Buffer) => parser.feed(c)));
  req.end();
  return {
    get count() {
      return count;
    },
    atLeast(n: number) {
      return count >= n ? Promise.resolve() : new Promise<void>((resolve) => (waiting = { n, resolve }));
    },
    close: () => req.destroy(),
  };
}

/** A client that sends its request and then never reads a byte. */
function stalledClient(url: string): Promise<Socket> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = connect(Number(port), hostname, () => {
      socket.write(`GET / HTTP/1.1\r\nHost: ${hostname}\r\nAccept: text/event-stream\r\n\r\n`);
      socket.pause();
      resolve(socket);
    });
    socket.on('error', () => {});
  });
}

describe('backpressure', () => {
  const cleanups: (() => unknown)[] = [];
  after(async () => {
    for (const c of cleanups.reverse()) await c();
  });

  it('drops a client that stops reading with reason slow-consumer, keeps memory bounded, and keeps serving the others', { timeout: 60_000 }, async () => {
    const streams = new StreamSet();
    const reasons = new Map<Stream, CloseReason>();
    const slowClosed = signal<CloseReason>();
    let n = 0;
    const srv = await listen((req, res) => {
      const stream = createStream(req, res, { maxQueueBytes: 1 << 20 });
      const index = n++;
      stream.on('close', (reason) => {
        reasons.set(stream, reason);
        if (index === 1) slowClosed.resolve(reason);
      });
      streams.add(stream);
    });
    cleanups.push(() => srv.close());

    const fast = countingReader(srv.url);
    while (streams.size < 1) await new Promise((r) => setTimeout(r, 5));
    const slow = await stalledClient(srv.url);
    cleanups.push(() => slow.destroy());
    while (streams.size < 2) await new Promise((r) => setTimeout(r, 5));

    const payload = 'y'.repeat(64 * 1024);
    const event = Buffer.from(`data: ${payload}\n\n`);
    const total = 3000; // about 190 MiB offered to each subscriber
    const base = process.memoryUsage();
    let peak = 0;
    for (let i = 1; i <= total; i++) {
      streams.broadcast(event);
      // Pace on the fast reader only; the stalled one falls behind as far as it is allowed to.
      await fast.atLeast(i - 8);
      if (i % 50 === 0) {
        const m = process.memoryUsage();
        peak = Math.max(peak, m.heapUsed + m.arrayBuffers - base.heapUsed - base.arrayBuffers);
      }
    }
    await fast.atLeast(total);
    fast.close();

    // 190 MiB went out; what the process held at any sample stays a small multiple of one queue.
    assert.ok(peak < 64 * 1024 * 1024, `memory grew by ${(peak / 1048576).toFixed(1)} MiB`);
    assert.equal(fast.count, total);
    assert.equal(reasons.size, 1, 'the stalled stream was closed while the fast one stayed open');
    assert.equal(await slowClosed.promise, 'slow-consumer');
  });

  it('with the drop policy, keeps a slow client connected, counts what it dropped, and never cuts an event', { timeout: 60_000 }, async () => {
    const got = signal<Stream>();
    const srv = await listen((req, res) => got.resolve(createStream(req, res, { slowConsumer: 'drop', maxQueueBytes: 256 * 1024 })));
    cleanups.push(() => srv.close());
    const slow = await stalledClient(srv.url);
    const stream = await got.promise;
    const event = Buffer.from(`data: ${'z'.repeat(16 * 1024)}\n\n`);
    let accepted = 0;
    for (let i = 0; i < 2000; i++) if (stream.write(event)) accepted++;
    assert.ok(stream.open);
    assert.ok(stream.eventsDropped > 0);
    assert.equal(accepted + stream.eventsDropped, 2000);
    assert.ok(stream.queuedBytes <= 256 * 1024);

    // Now read everything: what arrives parses into whole events only.
    let events = 0;
    const parser = new EventStreamParser({ onEvent: (e) => (assert.equal(e.data.length, 16 * 1024), events++) });
    let head = '';
    slow.on('data', (c: Buffer) => {
      if (head !== null && !head.includes('\r\n\r\n')) {
        head += c.toString('latin1');
        const end = head.indexOf('\r\n\r\n');
        if (end === -1) return;
        const body = Buffer.from(head.slice(end + 4), 'latin1');
        head = 'done\r\n\r\n';
        feedChunked(body);
        return;
      }
      feedChunked(c);
    });
    // The HTTP/1.1 body is chunked: strip the framing before parsing.
    let pending = Buffer.alloc(0);
    function feedChunked(c: Buffer) {
      pending = Buffer.concat([pending, c]);
      while (true) {
        const eol = pending.indexOf('\r\n');
        if (eol === -1) return;
        const size = Number.parseInt(pending.subarray(0, eol).toString(), 16);
        if (pending.length < eol + 2 + size + 2) return;
        parser.feed(pending.subarray(eol + 2, eol + 2 + size));
        pending = pending.subarray(eol + 2 + size + 2);
      }
    }
    slow.resume();
    while (events < accepted) await new Promise((r) => setTimeout(r, 10));
    assert.equal(events, accepted);
    stream.close();
    slow.destroy();
  });
});
