// ssehub/client in a real browser: headless Chromium loads the bundled dist/browser/ssehub-client.js
// as an ES module from the fixture's /page (test/helpers/sse-fixture.ts), and Node scripts the
// server side. A representative part of the processing model tested in Node
// (test/client/event-source.test.ts), plus what the browser's own EventSource cannot do: send an
// Authorization header, across origins through a CORS preflight.
//
// Needs `npm run build` (npm test runs it first) for the bundle, and /usr/bin/chromium.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { type TestBrowser, chromiumSkipReason, launchBrowser } from '../helpers/browser.js';
import { BUNDLE_PATH, type FixtureConnection, type SseFixture, startSseFixture } from '../helpers/sse-fixture.js';

const skip = chromiumSkipReason();
const T = { timeout: 20_000, skip };
const RETRY = 10;
/** How long a test watches for a reconnection that must not happen (it would come after RETRY). */
const QUIET = 150;

/** What the page records of each event (plain data, so it crosses page.evaluate). */
interface Entry {
  type: string;
  readyState: number;
  data?: string;
  lastEventId?: string;
  origin?: string;
  willRetry?: boolean;
  status?: number;
  message?: string;
  body?: string;
}

/** The parts of the page's globals these tests touch (the project's tsconfig has no DOM lib). */
interface PageSource {
  readonly readyState: number;
  readonly url: string;
  readonly withCredentials: boolean;
  addEventListener(type: string, listener: (event: Entry & { type: string }) => void): void;
  close(): void;
}
interface PageGlobals {
  ssehubReady?: boolean;
  ssehub: { EventSource: new (url: string, init?: object) => PageSource };
  source?: PageSource;
  log: Entry[];
}

let browser: TestBrowser | undefined;

/** The browser launched for this file. */
function page(): TestBrowser['page'] {
  assert.ok(browser, 'the browser was not launched');
  return browser.page;
}

async function log(): Promise<Entry[]> {
  return page().evaluate(() => (globalThis as unknown as PageGlobals).log);
}

/** Polls the page's log until `check` holds; a 5 s safety net explains a hang. */
async function until(check: (entries: Entry[]) => boolean, what: string): Promise<Entry[]> {
  const deadline = Date.now() + 5000;
  while (true) {
    const entries = await log();
    if (check(entries)) return entries;
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}; page log: ${JSON.stringify(entries)}; console: ${JSON.stringify(browser?.log)}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function within<V>(promise: Promise<V>, what: string): Promise<V> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for: ${what}; page log: ${JSON.stringify(browser?.log)}`)), 5000);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** A fixture whose /page the browser has loaded (the bundle imported); closed, page source first, after the test. */
async function pageOn(): Promise<SseFixture> {
  const fx = await startSseFixture();
  after(async () => {
    await page()
      .evaluate(() => (globalThis as unknown as PageGlobals).source?.close())
      .catch(() => {});
    await fx.close();
  });
  await page().goto(fx.url('/page'));
  await page().waitForFunction(() => (globalThis as unknown as PageGlobals).ssehubReady === true, undefined, { timeout: 5000 });
  return fx;
}

/** Creates `new ssehub.EventSource(url, init)` in the page, recording open, message, error, typed and resync. */
async function openInPage(url: string, init: object = {}): Promise<void> {
  await page().evaluate(
    ({ url, init }) => {
      const g = globalThis as unknown as PageGlobals;
      g.log = [];
      const source = new g.ssehub.EventSource(url, init);
      g.source = source;
      for (const type of ['open', 'message', 'error', 'typed', 'resync']) {
        source.addEventListener(type, (event) => {
          g.log.push({
            type: event.type,
            readyState: source.readyState,
            data: event.data,
            lastEventId: event.lastEventId,
            origin: event.origin,
            willRetry: event.willRetry,
            status: event.status,
            message: event.message,
            body: event.body,
          });
        });
      }
    },
    { url, init },
  );
}

async function opened(fx: SseFixture, n: number, retry = RETRY): Promise<FixtureConnection> {
  return (await within(fx.connection(n), `connection #${n}`)).open({ retry });
}

const FAST = { reconnect: { initialDelay: 0 } };

/** The bytes of a request header as they came over the wire, in hex (node:http hands header values over as Latin-1, one character per byte). */
function wireBytes(header: string | undefined): string | undefined {
  return header === undefined ? undefined : Buffer.from(header, 'latin1').toString('hex');
}

describe('the bundled client file', () => {
  it('is a self-contained ES module: no node: import, no require(, no import at all', () => {
    const bundle = readFileSync(BUNDLE_PATH, 'utf8');
    assert.doesNotMatch(bundle, /node:/);
    assert.doesNotMatch(bundle, /\brequire\(/);
    assert.doesNotMatch(bundle, /\bimport\s*[{*("']/);
    assert.match(bundle, /export\s*\{[^}]*\bas EventSource\b/);
  });
});

describe('ssehub/client EventSource in headless Chromium', { skip }, () => {
  before(async () => {
    browser = await launchBrowser();
  });
  after(() => browser?.close());

  it('resolves a relative URL, opens, and delivers messages and typed events with data, lastEventId and origin', T, async () => {
    const fx = await pageOn();
    await openInPage('/events?x=1', FAST);
    const connection = await opened(fx, 1);
    connection.event({ id: 'e1', data: 'hello' }).event({ event: 'typed', data: 'typed data' }).event({ data: 'line 1\nline 2' });
    const entries = await until((l) => l.length === 4, 'open and three events');
    assert.equal(connection.path, '/events?x=1');
    assert.equal(await page().evaluate(() => (globalThis as unknown as PageGlobals).source?.url), fx.url('/events?x=1'));
    assert.deepEqual(
      entries.map((e) => [e.type, e.readyState, e.data, e.lastEventId, e.origin]),
      [
        ['open', 1, undefined, undefined, undefined],
        ['message', 1, 'hello', 'e1', fx.origin],
        ['typed', 1, 'typed data', 'e1', fx.origin],
        ['message', 1, 'line 1\nline 2', 'e1', fx.origin],
      ],
    );
  });

  it('reconnects after the stream ends, sending the last event ID as Last-Event-ID', T, async () => {
    const fx = await pageOn();
    await openInPage(fx.url('/events'), FAST);
    const first = await opened(fx, 1);
    first.event({ id: 'e-7', data: 'a' }).end();
    const second = await opened(fx, 2);
    second.event({ data: 'b' });
    const entries = await until((l) => l.filter((e) => e.type === 'message').length === 2, 'two messages');
    assert.equal(first.lastEventId, undefined);
    assert.equal(second.lastEventId, 'e-7');
    assert.deepEqual(
      entries.map((e) => [e.type, e.readyState, e.willRetry]),
      [
        ['open', 1, undefined],
        ['message', 1, undefined],
        ['error', 0, true],
        ['open', 1, undefined],
        ['message', 1, undefined],
      ],
    );
  });

  it('sends an event ID that is not ASCII as its UTF-8 bytes in Last-Event-ID when it reconnects, and reads the new stream', T, async () => {
    const fx = await pageOn();
    await openInPage(fx.url('/events'), FAST);
    (await opened(fx, 1)).event({ id: '日本-1', data: 'a' }).end();
    const second = await opened(fx, 2);
    second.event({ data: 'b' });
    const entries = await until((l) => l.filter((e) => e.type === 'message').length === 2, 'two messages');
    assert.equal(wireBytes(second.lastEventId), 'e697a5e69cac2d31');
    assert.deepEqual(entries.filter((e) => e.type === 'message').map((e) => e.lastEventId), ['日本-1', '日本-1']);
  });

  it('sends a lastEventId option that is not ASCII as its UTF-8 bytes on the first connection', T, async () => {
    const fx = await pageOn();
    await openInPage(fx.url('/events'), { ...FAST, lastEventId: '日本-1' });
    const first = await opened(fx, 1);
    await until((l) => l.some((e) => e.type === 'open'), 'open');
    assert.equal(wireBytes(first.lastEventId), 'e697a5e69cac2d31');
  });

  it('fails on 401 with an error event that carries the status and the start of the body', T, async () => {
    const fx = await pageOn();
    await openInPage(fx.url('/events'), FAST);
    (await within(fx.connection(1), 'connection #1')).respond(401, { 'content-type': 'text/plain; charset=utf-8' }, 'a subscriber token is required\n');
    const entries = await until((l) => l.length > 0, 'the error event');
    assert.deepEqual(
      entries.map((e) => [e.type, e.readyState, e.status, e.willRetry, e.body, e.message]),
      [['error', 2, 401, false, 'a subscriber token is required', 'the server refused the stream: HTTP status 401: a subscriber token is required']],
    );
  });

  it('fails without retry on 204: CLOSED, one error event with the status, no second request', T, async () => {
    const fx = await pageOn();
    await openInPage(fx.url('/events'), { ...FAST, initialRetry: RETRY });
    (await within(fx.connection(1), 'connection #1')).respond(204);
    await until((l) => l.length > 0, 'the error event');
    await new Promise((resolve) => setTimeout(resolve, QUIET));
    assert.deepEqual(
      (await log()).map((e) => [e.type, e.readyState, e.status, e.willRetry]),
      [['error', 2, 204, false]],
    );
    assert.equal(fx.count, 1);
  });

  it('close() while OPEN: the server sees the connection close, nothing more is delivered, no reconnection', T, async () => {
    const fx = await pageOn();
    await openInPage(fx.url('/events'), FAST);
    const connection = await opened(fx, 1);
    connection.event({ data: 'a' });
    await until((l) => l.some((e) => e.type === 'message'), 'message a');
    assert.equal(await page().evaluate(() => {
      const source = (globalThis as unknown as PageGlobals).source;
      source?.close();
      return source?.readyState;
    }), 2);
    await within(connection.closed, 'the server to see the connection close');
    connection.event({ data: 'after close' });
    await new Promise((resolve) => setTimeout(resolve, QUIET));
    assert.deepEqual((await log()).map((e) => e.type), ['open', 'message']);
    assert.equal(fx.count, 1);
  });

  it('sends an Authorization header on every connection (the native EventSource cannot)', T, async () => {
    const fx = await pageOn();
    await openInPage(fx.url('/events'), { ...FAST, headers: { authorization: 'Bearer page-token' }, withCredentials: true });
    (await opened(fx, 1)).event({ id: '1', data: 'a' }).end();
    const second = await opened(fx, 2);
    await until((l) => l.filter((e) => e.type === 'open').length === 2, 'the second open');
    assert.equal(fx.connections[0]?.headers.authorization, 'Bearer page-token');
    assert.equal(second.headers.authorization, 'Bearer page-token');
    assert.equal(second.headers.accept, 'text/event-stream');
    assert.equal(await page().evaluate(() => (globalThis as unknown as PageGlobals).source?.withCredentials), true);
  });

  it('sends Authorization to another origin after a CORS preflight, and events carry that origin', T, async () => {
    const fx = await pageOn();
    const hub = await startSseFixture();
    after(() => hub.close());
    await openInPage(hub.url('/events'), { ...FAST, headers: { authorization: 'Bearer cross-origin' } });
    const connection = await opened(hub, 1);
    connection.event({ data: 'x' });
    const entries = await until((l) => l.some((e) => e.type === 'message'), 'one message');
    assert.ok(hub.requests.some((r) => r.startsWith('OPTIONS /events')), `no preflight among ${JSON.stringify(hub.requests)}`);
    assert.equal(connection.headers.authorization, 'Bearer cross-origin');
    assert.equal(connection.headers.origin, fx.origin);
    assert.equal(entries.find((e) => e.type === 'message')?.origin, hub.origin);
  });

  it('turns an ssehub-resync event into a resync event', T, async () => {
    const fx = await pageOn();
    await openInPage(fx.url('/events'), { ...FAST, lastEventId: 'gone' });
    const connection = await opened(fx, 1);
    connection.event({ event: 'ssehub-resync', data: '{"lastEventId":"gone","reason":"unknown-id"}' }).event({ id: 'n1', data: 'next' });
    const entries = await until((l) => l.some((e) => e.type === 'message'), 'the message after it');
    assert.equal(connection.lastEventId, 'gone');
    assert.deepEqual(entries.map((e) => e.type), ['open', 'resync', 'message']);
    assert.deepEqual(JSON.parse(entries[1]?.data ?? ''), { lastEventId: 'gone', reason: 'unknown-id' });
  });
});
