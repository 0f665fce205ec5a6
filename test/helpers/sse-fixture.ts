// A loopback SSE server that each test scripts by hand, for the client tests (Node and Chromium).
//
// Every request the client makes becomes a numbered `FixtureConnection` that waits, unanswered,
// until the test tells it what to do: `open()` and `write()` an event stream chunk by chunk,
// `respond(204)`, `redirect(307, '/b')`, `end()` it cleanly, `destroy()` the socket. So a test says
// "answer connection #2 with 204" and never depends on a timer. Each connection keeps the request's
// method, path, headers (Last-Event-ID, Authorization…) and body.
//
// Two paths are not scripted: `/page`, a blank HTML page that imports the bundled browser client
// (dist/browser/ssehub-client.js, built by `npm run build`) as `globalThis.ssehub`, and
// `/ssehub-client.js`, that bundle itself.
import { readFileSync } from 'node:fs';
import { type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The browser bundle the fixture serves at `/ssehub-client.js`. */
export const BUNDLE_PATH = join(fileURLToPath(new URL('../../', import.meta.url)), 'dist/browser/ssehub-client.js');

/** The page that loads the bundle; `globalThis.ssehubReady` is true once the module ran. */
const PAGE = `<!doctype html>
<meta charset="utf-8">
<title>ssehub client test page</title>
<script type="module">
import * as ssehub from '/ssehub-client.js';
globalThis.ssehub = ssehub;
globalThis.ssehubReady = true;
</script>
`;

/** The fields of one event, encoded by `FixtureConnection.event`. */
export interface FixtureEvent {
  id?: string;
  event?: string;
  data?: string;
  retry?: number;
}

/** One request the client made, waiting for the test to answer it. */
export class FixtureConnection {
  /** 1 for the first scripted request this fixture received, 2 for the next… */
  readonly n: number;
  readonly method: string;
  /** Path and query string, as requested. */
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  /** The request body, as text. */
  readonly body: string;
  /** Resolves when the connection is gone (the client closed it, or the test ended it). */
  readonly closed: Promise<void>;
  readonly #req: IncomingMessage;
  readonly #res: ServerResponse;

  constructor(n: number, req: IncomingMessage, res: ServerResponse, body: string) {
    this.n = n;
    this.method = req.method ?? '';
    this.path = req.url ?? '';
    this.headers = req.headers;
    this.body = body;
    this.#req = req;
    this.#res = res;
    this.closed = new Promise((resolve) => res.once('close', () => resolve()));
  }

  /** The `Last-Event-ID` request header, `undefined` when the client sent none. */
  get lastEventId(): string | undefined {
    const value = this.headers['last-event-id'];
    return Array.isArray(value) ? value.join(', ') : value;
  }

  /** Whether the client still holds the connection. */
  get isOpen(): boolean {
    return !this.#res.closed && !this.#req.socket.destroyed;
  }

  /** Sends 200 headers at once (default type `text/event-stream`), then `retry:` when given. */
  open(options: { contentType?: string; headers?: Record<string, string>; retry?: number } = {}): this {
    this.#res.writeHead(200, { 'content-type': options.contentType ?? 'text/event-stream', 'cache-control': 'no-cache', ...options.headers });
    this.#res.flushHeaders();
    if (options.retry !== undefined) this.write(`retry: ${options.retry}\n\n`);
    return this;
  }

  /** Writes raw bytes of the body (anything: half a line, a BOM, CRLFs). */
  write(chunk: string | Uint8Array): this {
    this.#res.write(chunk);
    return this;
  }

  /** Writes one complete event (fields in the order id, event, retry, data; a blank line ends it). */
  event(fields: FixtureEvent): this {
    let text = '';
    if (fields.id !== undefined) text += `id: ${fields.id}\n`;
    if (fields.event !== undefined) text += `event: ${fields.event}\n`;
    if (fields.retry !== undefined) text += `retry: ${fields.retry}\n`;
    if (fields.data !== undefined) for (const line of fields.data.split('\n')) text += `data: ${line}\n`;
    return this.write(`${text}\n`);
  }

  /** Ends the response cleanly (the client sees the end of the stream). */
  end(): this {
    this.#res.end();
    return this;
  }

  /** Answers with a status, headers and a body, and ends. */
  respond(status: number, headers: Record<string, string> = {}, body = ''): this {
    this.#res.writeHead(status, headers);
    this.#res.end(body);
    return this;
  }

  /** Answers with a redirect to `location` (relative to this fixture or absolute). */
  redirect(status: 301 | 302 | 303 | 307 | 308, location: string): this {
    return this.respond(status, { location });
  }

  /** Breaks the connection without an HTTP answer or a clean end: a network error for the client. */
  destroy(): this {
    this.#req.socket.destroy();
    return this;
  }
}

/** A running fixture server. */
export class SseFixture {
  /** Every scripted request, in arrival order (`connections[0]` is connection #1). */
  readonly connections: FixtureConnection[] = [];
  /** Every request the fixture received, scripted or not, as `METHOD path`. */
  readonly requests: string[] = [];
  readonly #server: Server;
  readonly #port: number;
  #waiters: { n: number; resolve: (c: FixtureConnection) => void }[] = [];
  #script: ((c: FixtureConnection) => void) | undefined;

  constructor(server: Server, port: number) {
    this.#server = server;
    this.#port = port;
  }

  get port(): number {
    return this.#port;
  }

  /** `http://127.0.0.1:PORT`. */
  get origin(): string {
    return `http://127.0.0.1:${this.#port}`;
  }

  /** The absolute URL of `path` on this fixture. */
  url(path = '/events'): string {
    return new URL(path, this.origin).href;
  }

  /** How many scripted requests arrived so far. */
  get count(): number {
    return this.connections.length;
  }

  /** Resolves with connection #n as soon as it arrives (at once if it already did). */
  connection(n: number): Promise<FixtureConnection> {
    const known = this.connections[n - 1];
    if (known !== undefined) return Promise.resolve(known);
    return new Promise((resolve) => this.#waiters.push({ n, resolve }));
  }

  /** Scripts every connection that arrives from now on, before `connection(n)` hands it to the test (`undefined` stops). */
  onConnection(script: ((c: FixtureConnection) => void) | undefined): void {
    this.#script = script;
  }

  /** Stops listening and drops every connection (clients then see connection refused). */
  async stop(): Promise<void> {
    this.#server.closeAllConnections();
    if (!this.#server.listening) return;
    await new Promise<void>((resolve, reject) => this.#server.close((error) => (error ? reject(error) : resolve())));
  }

  /** Listens again on the same port, after `stop()`. */
  async restart(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(this.#port, '127.0.0.1', () => {
        this.#server.off('error', reject);
        resolve();
      });
    });
  }

  /** Same as `stop()`, for after hooks. */
  close(): Promise<void> {
    return this.stop();
  }

  handle(req: IncomingMessage, res: ServerResponse): void {
    const path = req.url ?? '/';
    this.requests.push(`${req.method ?? ''} ${path}`);
    // The page and the stream share one origin, so no CORS is needed; these headers only make a
    // cross-origin use (another fixture's page) work too.
    const origin = req.headers.origin;
    if (origin !== undefined) {
      res.setHeader('access-control-allow-origin', origin);
      res.setHeader('access-control-allow-credentials', 'true');
      res.setHeader('access-control-expose-headers', 'link');
      res.setHeader('vary', 'origin');
    }
    if (req.method === 'OPTIONS') {
      res.writeHead(204, {
        'access-control-allow-methods': 'GET, POST, HEAD',
        'access-control-allow-headers': req.headers['access-control-request-headers'] ?? '',
        'access-control-max-age': '600',
      });
      res.end();
      return;
    }
    if (path === '/page') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
      res.end(PAGE);
      return;
    }
    if (path === '/ssehub-client.js') {
      res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8', 'cache-control': 'no-store' });
      res.end(readFileSync(BUNDLE_PATH));
      return;
    }
    if (path === '/favicon.ico') {
      res.writeHead(404).end();
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const connection = new FixtureConnection(this.connections.length + 1, req, res, Buffer.concat(chunks).toString('utf8'));
      this.connections.push(connection);
      this.#script?.(connection);
      for (const waiter of this.#waiters.filter((w) => w.n === connection.n)) waiter.resolve(connection);
      this.#waiters = this.#waiters.filter((w) => w.n !== connection.n);
    });
  }
}

/** Starts a fixture on 127.0.0.1 and an ephemeral port. */
export async function startSseFixture(): Promise<SseFixture> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const fixture = new SseFixture(server, (server.address() as AddressInfo).port);
  server.on('request', (req: IncomingMessage, res: ServerResponse) => fixture.handle(req, res));
  return fixture;
}
