// Compression middleware must leave a stream alone: no Content-Encoding, and no bytes held back.
// "Not held back" is shown by order, not by timing: each event is sent only after the client has
// parsed the previous one, so a middleware that buffered would stall the test (the per-test
// timeout is only a safety net that turns the stall into a failure).
import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it, type TestContext } from 'node:test';
import { brotliDecompressSync, gunzipSync, inflateSync } from 'node:zlib';
import fastifyCompress from '@fastify/compress';
import compression from 'compression';
import express from 'express';
import Fastify from 'fastify';
import Koa from 'koa';
import koaCompress from 'koa-compress';
import { type EventFields, encodeEvent } from '../../src/protocol/index.js';
import { expressStream, fastifyStream, koaStream, type Stream, type StreamOptions } from '../../src/server/index.js';
import { openSse } from '../helpers/sse-client.js';

const ACCEPT_ENCODING = { 'accept-encoding': 'gzip, deflate, br' };
const OPTIONS: StreamOptions = { heartbeat: false };
const PREAMBLE = ': ok\n\nretry: 3000\n\n';
const TIMEOUT = 10_000;

const EVENTS: EventFields[] = [
  { id: '1', data: 'first' },
  { id: '2', event: 'update', data: 'second — 😀' },
  { id: '3', data: 'third\nof two lines' },
];

// Large and repetitive, so that any compressing middleware wants to compress it.
const PAYLOAD = { items: Array.from({ length: 200 }, (_, i) => ({ i, text: 'compress me please' })) };

/** Server-side streams, in the order their requests arrived. */
class Inbox {
  #ready: Stream[] = [];
  #waiting: ((stream: Stream) => void)[] = [];

  put(stream: Stream): void {
    const waiter = this.#waiting.shift();
    if (waiter) waiter(stream);
    else this.#ready.push(stream);
  }

  next(): Promise<Stream> {
    const stream = this.#ready.shift();
    if (stream) return Promise.resolve(stream);
    return new Promise((resolve) => this.#waiting.push(resolve));
  }
}

/** An app with the compression middleware on, `/sse` (a stream) and `/json` (an ordinary response). */
interface App {
  origin: string;
  streams: Inbox;
}

interface Framework {
  name: string;
  start(t: TestContext): Promise<App>;
}

async function listen(t: TestContext, server: Server): Promise<string> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  t.after(
    () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  );
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

const FRAMEWORKS: Framework[] = [
  {
    name: 'Express 5 with compression() (threshold 0)',
    async start(t) {
      const streams = new Inbox();
      const app = express();
      app.use(compression({ threshold: 0 }));
      app.get('/sse', (req, res) => streams.put(expressStream(req, res, OPTIONS)));
      app.get('/json', (_req, res) => {
        res.json(PAYLOAD);
      });
      return { origin: await listen(t, createServer(app)), streams };
    },
  },
  {
    name: 'Fastify 5 with @fastify/compress (global, threshold 0)',
    async start(t) {
      const streams = new Inbox();
      const app = Fastify({ forceCloseConnections: true });
      await app.register(fastifyCompress, { global: true, threshold: 0 });
      app.get('/sse', (request, reply) => {
        streams.put(fastifyStream(request, reply, OPTIONS));
      });
      app.get('/json', async () => PAYLOAD);
      const origin = await app.listen({ port: 0, host: '127.0.0.1' });
      t.after(() => app.close());
      return { origin, streams };
    },
  },
  {
    name: 'Koa 3 with koa-compress (threshold 0)',
    async start(t) {
      const streams = new Inbox();
      const app = new Koa();
      app.use(koaCompress({ threshold: 0 }));
      app.use(async (ctx, next) => {
        if (ctx.path === '/sse') streams.put(koaStream(ctx, OPTIONS));
        else if (ctx.path === '/json') ctx.body = PAYLOAD;
        else await next();
      });
      return { origin: await listen(t, createServer(app.callback())), streams };
    },
  },
];

/** GET with the given headers; resolves with the raw (still encoded) body. */
function getRaw(url: string, headers: Record<string, string>): Promise<{ status: number; headers: IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

function decode(encoding: string, body: Buffer): Buffer {
  if (encoding === 'gzip') return gunzipSync(body);
  if (encoding === 'br') return brotliDecompressSync(body);
  if (encoding === 'deflate') return inflateSync(body);
  throw new Error(`unexpected content-encoding ${encoding}`);
}

for (const framework of FRAMEWORKS) {
  describe(framework.name, () => {
    it('compresses an ordinary JSON route of the same app (control: the middleware is active)', { timeout: TIMEOUT }, async (t) => {
      const app = await framework.start(t);
      // With the stream's Accept-Encoding, the middleware picks its preferred coding (br, today).
      const res = await getRaw(`${app.origin}/json`, ACCEPT_ENCODING);
      assert.equal(res.status, 200);
      const encoding = String(res.headers['content-encoding']);
      assert.match(encoding, /^(gzip|br|deflate)$/);
      assert.deepEqual(JSON.parse(decode(encoding, res.body).toString('utf8')), PAYLOAD);
      // And gzip when that is all the client takes.
      const gzipped = await getRaw(`${app.origin}/json`, { 'accept-encoding': 'gzip' });
      assert.equal(gzipped.headers['content-encoding'], 'gzip');
      assert.deepEqual(JSON.parse(gunzipSync(gzipped.body).toString('utf8')), PAYLOAD);
    });

    it('neither compresses nor holds back the stream: each event reaches the client before the next is sent', { timeout: TIMEOUT }, async (t) => {
      const app = await framework.start(t);
      const [client, stream] = await Promise.all([openSse(`${app.origin}/sse`, ACCEPT_ENCODING), app.streams.next()]);
      t.after(() => client.close());
      assert.equal(client.status, 200);
      assert.equal(client.headers['content-encoding'], undefined);
      assert.equal(client.headers['content-type'], 'text/event-stream; charset=utf-8');

      // The preamble alone must arrive before anything else is sent.
      await client.until((r) => r.retries.length === 1, 'the preamble');
      for (const [i, event] of EVENTS.entries()) {
        assert.equal(stream.send(event), true);
        await client.events_(i + 1);
        assert.equal(client.events.length, i + 1);
        assert.equal(client.events[i]?.lastEventId, event.id);
      }
      // Plain text on the wire, not merely an absent header.
      assert.equal(Buffer.concat(client.chunks).toString('utf8'), PREAMBLE + EVENTS.map((e) => encodeEvent(e)).join(''));
    });
  });
}
