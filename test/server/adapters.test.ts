// Every framework adapter, over a real socket: the same events must arrive byte for byte, under
// the same headers, with the same Last-Event-ID handling and the same close on disconnect.
import assert from 'node:assert/strict';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createHttp2Server, type Http2Server, type ServerHttp2Session } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { describe, it, type TestContext } from 'node:test';
import { createAdaptorServer } from '@hono/node-server';
import express from 'express';
import Fastify from 'fastify';
import { Hono } from 'hono';
import Koa from 'koa';
import { type EventFields, encodeEvent, type ParsedEvent } from '../../src/protocol/index.js';
import { createStream, expressStream, fastifyStream, fetchStream, honoStream, koaStream, type Stream, type StreamOptions } from '../../src/server/index.js';
import { openSse, openSseH2, type SseRecorder } from '../helpers/sse-client.js';

// No heartbeat, so the bytes on the wire are exactly the preamble and the events.
const OPTIONS: StreamOptions = { heartbeat: false };
const PREAMBLE = ': ok\n\nretry: 3000\n\n';
// A safety net only: a test waiting for bytes that never come fails instead of hanging.
const TIMEOUT = 10_000;

const EVENTS: EventFields[] = [
  { data: 'first' },
  { data: 'line one\r\nline two\rline three\nline four' },
  { data: 'héllo wörld — 日本語 — 😀🚀' },
  { id: '42', data: 'with an id' },
  { event: 'update', data: 'typed' },
  { data: '' },
  { data: ' starts with a space' },
  { event: 'both', id: 'id-😀', data: 'last' },
];

const PARSED: ParsedEvent[] = [
  { type: 'message', data: 'first', lastEventId: '' },
  { type: 'message', data: 'line one\nline two\nline three\nline four', lastEventId: '' },
  { type: 'message', data: 'héllo wörld — 日本語 — 😀🚀', lastEventId: '' },
  { type: 'message', data: 'with an id', lastEventId: '42' },
  { type: 'update', data: 'typed', lastEventId: '42' },
  { type: 'message', data: '', lastEventId: '42' },
  { type: 'message', data: ' starts with a space', lastEventId: '42' },
  { type: 'both', data: 'last', lastEventId: 'id-😀' },
];

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

/** A running server with one SSE route at `/sse`, and the client connections opened to it. */
interface Running {
  streams: Inbox;
  /** Opens `/sse` + `query`; resolves with the client recorder and the server-side stream. */
  open(query?: string, headers?: Record<string, string>): Promise<{ client: SseRecorder; stream: Stream }>;
  /** Closes every client, then the server; resolves once the server has fully closed. */
  close(): Promise<void>;
}

interface Adapter {
  name: string;
  http2: boolean;
  /** Starts the server; it is closed after the test whatever happens. */
  start(t: TestContext): Promise<Running>;
}

function listenHttp(server: HttpServer): Promise<string> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}`));
  });
}

function closeHttp(server: HttpServer): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

/** Wires a started server into a `Running`, closed by `t.after`. */
function running(t: TestContext, origin: string, http2: boolean, streams: Inbox, closeServer: () => Promise<void>): Running {
  const clients: SseRecorder[] = [];
  let closed: Promise<void> | undefined;
  const run: Running = {
    streams,
    async open(query = '', headers = {}) {
      const path = `/sse${query}`;
      const [client, stream] = await Promise.all([http2 ? openSseH2(origin, path, headers) : openSse(origin + path, headers), streams.next()]);
      clients.push(client);
      return { client, stream };
    },
    close() {
      closed ??= (async () => {
        for (const client of clients) client.close();
        await Promise.all(clients.map((c) => c.done));
        await closeServer();
      })();
      return closed;
    },
  };
  t.after(() => run.close());
  return run;
}

async function startNodeHttp(t: TestContext, streams: Inbox, server: HttpServer, http2 = false): Promise<Running> {
  const origin = await listenHttp(server);
  return running(t, origin, http2, streams, () => closeHttp(server));
}

const ADAPTERS: Adapter[] = [
  {
    name: 'node:http (createStream)',
    http2: false,
    start(t) {
      const streams = new Inbox();
      return startNodeHttp(t, streams, createHttpServer((req, res) => streams.put(createStream(req, res, OPTIONS))));
    },
  },
  {
    name: 'node:http2 cleartext (createStream)',
    http2: true,
    async start(t) {
      const streams = new Inbox();
      const server: Http2Server = createHttp2Server((req, res) => streams.put(createStream(req, res, OPTIONS)));
      const sessions = new Set<ServerHttp2Session>();
      server.on('session', (session) => {
        sessions.add(session);
        session.on('close', () => sessions.delete(session));
      });
      const origin = await new Promise<string>((resolve, reject) => {
        server.once('error', reject);
        server.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}`));
      });
      return running(t, origin, true, streams, () => new Promise((resolve) => {
        server.close(() => resolve());
        for (const session of sessions) session.destroy();
      }));
    },
  },
  {
    name: 'Express 5 (expressStream)',
    http2: false,
    start(t) {
      const streams = new Inbox();
      const app = express();
      app.get('/sse', (req, res) => streams.put(expressStream(req, res, OPTIONS)));
      return startNodeHttp(t, streams, createHttpServer(app));
    },
  },
  {
    name: 'Fastify 5 (fastifyStream)',
    http2: false,
    async start(t) {
      const streams = new Inbox();
      const app = Fastify({ forceCloseConnections: true });
      app.get('/sse', (request, reply) => {
        streams.put(fastifyStream(request, reply, OPTIONS));
      });
      const origin = await app.listen({ port: 0, host: '127.0.0.1' });
      return running(t, origin, false, streams, () => app.close());
    },
  },
  {
    name: 'Koa 3 (koaStream)',
    http2: false,
    start(t) {
      const streams = new Inbox();
      const app = new Koa();
      app.use(async (ctx, next) => {
        if (ctx.path !== '/sse') return next();
        streams.put(koaStream(ctx, OPTIONS));
      });
      return startNodeHttp(t, streams, createHttpServer(app.callback()));
    },
  },
  {
    name: 'Hono 4 on @hono/node-server (honoStream)',
    http2: false,
    start(t) {
      const streams = new Inbox();
      const app = new Hono();
      app.get('/sse', (c) => {
        const { stream, response } = honoStream(c, OPTIONS);
        streams.put(stream);
        return response;
      });
      return startNodeHttp(t, streams, createAdaptorServer({ fetch: app.fetch }) as HttpServer);
    },
  },
];

/** Sends every event of EVENTS and waits until the client has parsed all of them. */
async function sendAll(client: SseRecorder, stream: Stream): Promise<void> {
  for (const event of EVENTS) assert.equal(stream.send(event), true);
  await client.events_(PARSED.length);
}

for (const adapter of ADAPTERS) {
  describe(adapter.name, () => {
    it('delivers the preamble and then each encoded event, byte for byte', { timeout: TIMEOUT }, async (t) => {
      const server = await adapter.start(t);
      const { client, stream } = await server.open();
      await sendAll(client, stream);
      const expected = Buffer.from(PREAMBLE + EVENTS.map((e) => encodeEvent(e)).join(''), 'utf8');
      assert.deepEqual(Buffer.concat(client.chunks), expected);
    });

    it('delivers events that parse back to what was sent, line ends normalised to LF', { timeout: TIMEOUT }, async (t) => {
      const server = await adapter.start(t);
      const { client, stream } = await server.open();
      await sendAll(client, stream);
      assert.deepEqual(client.events, PARSED);
      assert.deepEqual(client.comments, [' ok']);
      assert.deepEqual(client.retries, [3000]);
    });

    it('answers with status 200 and the SSE headers, uncompressed', { timeout: TIMEOUT }, async (t) => {
      const server = await adapter.start(t);
      const { client } = await server.open('', { 'accept-encoding': 'gzip, deflate, br' });
      assert.equal(client.status, 200);
      assert.equal(client.headers['content-type'], 'text/event-stream; charset=utf-8');
      assert.match(String(client.headers['cache-control']), /(^|,)\s*no-cache\s*(,|$)/);
      assert.equal(client.headers['x-accel-buffering'], 'no');
      assert.equal(client.headers['x-content-type-options'], 'nosniff');
      assert.equal(client.headers['content-encoding'], undefined);
      assert.equal(client.headers['content-length'], undefined);
      if (adapter.http2) assert.equal(client.headers.connection, undefined);
      else assert.equal(client.headers.connection, 'keep-alive');
    });

    it('exposes the Last-Event-ID header as stream.lastEventId', { timeout: TIMEOUT }, async (t) => {
      const server = await adapter.start(t);
      const { stream } = await server.open('', { 'last-event-id': 'from-header' });
      assert.equal(stream.lastEventId, 'from-header');
    });

    it('exposes the lastEventID (Mercure) query parameter as stream.lastEventId', { timeout: TIMEOUT }, async (t) => {
      const server = await adapter.start(t);
      const { stream } = await server.open('?lastEventID=from-mercure-query');
      assert.equal(stream.lastEventId, 'from-mercure-query');
    });

    it('exposes the lastEventId query parameter as stream.lastEventId', { timeout: TIMEOUT }, async (t) => {
      const server = await adapter.start(t);
      const { stream } = await server.open('?topic=x&lastEventId=from-query');
      assert.equal(stream.lastEventId, 'from-query');
    });

    it('prefers the Last-Event-ID header over the query parameters', { timeout: TIMEOUT }, async (t) => {
      const server = await adapter.start(t);
      const { stream } = await server.open('?lastEventID=q1&lastEventId=q2', { 'last-event-id': 'header' });
      assert.equal(stream.lastEventId, 'header');
    });

    it('leaves stream.lastEventId undefined when the client gives none', { timeout: TIMEOUT }, async (t) => {
      const server = await adapter.start(t);
      const { stream } = await server.open('?topic=x');
      assert.equal(stream.lastEventId, undefined);
    });

    it('emits close with reason client-closed exactly once when the client disconnects', { timeout: TIMEOUT }, async (t) => {
      const server = await adapter.start(t);
      const { client, stream } = await server.open();
      await client.until((r) => r.retries.length === 1, 'preamble');
      const emit = t.mock.method(stream, 'emit');
      const closed = new Promise<unknown[]>((resolve) => stream.on('close', (...args) => resolve(args)));
      client.close();
      assert.deepEqual(await closed, ['client-closed', undefined]);
      // Every path that could report the close again has run once the server has fully closed.
      await server.close();
      const closes = emit.mock.calls.filter((call) => call.arguments[0] === 'close');
      assert.equal(closes.length, 1);
      assert.equal(stream.open, false);
      assert.equal(stream.closeReason, 'client-closed');
      assert.equal(stream.send({ data: 'too late' }), false);
    });
  });
}

describe('Fastify 5 (fastifyStream) headers', () => {
  it('carries a header set with reply.header() before fastifyStream over to the client', { timeout: TIMEOUT }, async (t) => {
    const streams = new Inbox();
    const app = Fastify({ forceCloseConnections: true });
    app.get('/sse', (request, reply) => {
      reply.header('x-test', '1');
      streams.put(fastifyStream(request, reply, OPTIONS));
    });
    const origin = await app.listen({ port: 0, host: '127.0.0.1' });
    const server = running(t, origin, false, streams, () => app.close());
    const { client } = await server.open();
    assert.equal(client.headers['x-test'], '1');
    assert.equal(client.headers['content-type'], 'text/event-stream; charset=utf-8');
  });
});

describe('Hono 4 on @hono/node-server (honoStream) disconnects', () => {
  it('logs nothing when the client disconnects, since a client leaving is not an error', { timeout: TIMEOUT }, async (t) => {
    const hono = ADAPTERS.find((a) => a.name.startsWith('Hono'));
    assert.ok(hono);
    const server = await hono.start(t);
    const { client, stream } = await server.open();
    await client.until((r) => r.retries.length === 1, 'preamble');
    const error = t.mock.method(console, 'error', () => {});
    const info = t.mock.method(console, 'info', () => {});
    const closed = new Promise<void>((resolve) => stream.once('close', () => resolve()));
    client.close();
    await closed;
    await server.close();
    assert.deepEqual(error.mock.calls.map((c) => c.arguments), []);
    assert.deepEqual(info.mock.calls.map((c) => c.arguments), []);
  });
});

describe('fetchStream body cancellation', () => {
  it('closes the stream with client-closed when the Response body is cancelled, without any abort signal', { timeout: TIMEOUT }, async () => {
    // A signal that never aborts: only the body's cancellation can tell the stream the client left.
    const request = new Request('http://localhost/sse', { signal: new AbortController().signal });
    const { stream, response } = fetchStream(request, OPTIONS);
    assert.ok(response.body);
    const reader = response.body.getReader();
    const first = await reader.read();
    assert.equal(Buffer.from(first.value ?? new Uint8Array()).toString('utf8'), PREAMBLE);
    const closed = new Promise<unknown[]>((resolve) => stream.on('close', (...args) => resolve(args)));
    await reader.cancel();
    assert.deepEqual(await closed, ['client-closed', undefined]);
    assert.equal(stream.open, false);
  });
});
