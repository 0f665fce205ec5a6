// A browser's own EventSource against the hub: headless Debian Chromium, no polyfill, no client
// library. What a browser does by itself (multi-line data, `retry:`, reconnecting with
// Last-Event-ID) must be enough to receive every update exactly once across a hub restart.
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, describe, it } from 'node:test';
import { type TestBrowser, chromiumSkipReason, launchBrowser } from '../helpers/browser.js';
import { type TestHub, startTestHub, tempDb } from '../helpers/hub.js';
import { freePort } from '../helpers/ports.js';

const TOPIC = 'https://example.com/books/1';

/** What the page keeps: every message its EventSource dispatched, and how often it opened. */
interface Received {
  data: string;
  id: string;
}
interface MessageLike {
  data: string;
  lastEventId: string;
}
/** The page's globals this test touches (the project's tsconfig has no DOM lib). */
interface PageGlobals {
  received: Received[];
  opens: number;
  EventSource: new (url: string) => { onopen: (() => void) | null; onmessage: ((event: MessageLike) => void) | null };
}


/**
 * Publishes on a fresh connection. fetch (hub.publish) would reuse a pooled keep-alive connection
 * to the same origin, which may still be the first hub's, closed by its shutdown a moment ago.
 */
function publish(hub: TestHub, data: string): Promise<{ status: number; body: string }> {
  const body = new URLSearchParams({ topic: TOPIC, data }).toString();
  return new Promise((resolve, reject) => {
    const req = request(
      hub.hubUrl,
      { method: 'POST', agent: false, headers: { authorization: `Bearer ${hub.adminToken}`, 'content-type': 'application/x-www-form-urlencoded', 'content-length': Buffer.byteLength(body) } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

async function received(browser: TestBrowser): Promise<Received[]> {
  return browser.page.evaluate(() => (globalThis as unknown as PageGlobals).received);
}

/** Waits until the page has `n` messages (a safety-net timeout, not an assertion); the test then checks exactly what arrived. */
async function waitForMessages(browser: TestBrowser, n: number): Promise<void> {
  try {
    await browser.page.waitForFunction((count) => (globalThis as unknown as PageGlobals).received.length >= count, n, { timeout: 30_000, polling: 50 });
  } catch (error) {
    throw new Error(`the browser did not receive ${n} messages; it has ${JSON.stringify(await received(browser))}; page log: ${JSON.stringify(browser.log)}`, { cause: error });
  }
}

describe('native EventSource in headless Chromium', () => {
  it(
    'receives a multi-line update, and after the hub restarts on the same sqlite file resumes with Last-Event-ID, getting every missed update once and in order',
    { skip: chromiumSkipReason(), timeout: 60_000 },
    async () => {
      const hubs: TestHub[] = [];
      after(() => Promise.all(hubs.map((h) => h.close())));
      const port = await freePort();
      const flags = ['--anonymous', '--transport', `sqlite:${tempDb()}`, '--listen', `127.0.0.1:${port}`, '--drain-timeout', '100ms'];
      const first = await startTestHub(flags);
      hubs.push(first);

      const browser = await launchBrowser();
      after(() => browser.close());
      // Same origin as the hub, so the EventSource needs no CORS.
      await browser.page.goto(`${first.url}/healthz`);
      await browser.page.evaluate((url) => {
        const page = globalThis as unknown as PageGlobals;
        page.received = [];
        page.opens = 0;
        const source = new page.EventSource(url);
        source.onopen = () => {
          page.opens++;
        };
        source.onmessage = (event) => {
          page.received.push({ data: event.data, id: event.lastEventId });
        };
      }, `/.well-known/mercure?topic=${encodeURIComponent(TOPIC)}`);
      await browser.page.waitForFunction(() => (globalThis as unknown as PageGlobals).opens === 1, undefined, { timeout: 10_000 });

      const multiLine = await publish(first, 'line 1\nline 2\nline 3');
      assert.equal(multiLine.status, 200, multiLine.body);
      await waitForMessages(browser, 1);
      assert.deepEqual(await received(browser), [{ data: 'line 1\nline 2\nline 3', id: multiLine.body }]);

      await first.close();
      const second = await startTestHub(flags);
      hubs.push(second);
      const missed: Received[] = [];
      for (const data of ['after restart 1', 'after restart 2', 'after restart 3']) {
        const res = await publish(second, data);
        assert.equal(res.status, 200, res.body);
        missed.push({ data, id: res.body });
      }
      // The browser waits the server's retry (at least 3 s) before reconnecting: these updates can
      // only reach it through the history replay its Last-Event-ID asks for.
      assert.equal(second.hub.streams.size, 0, 'the browser reconnected before the updates were published, so this run does not test resuming');

      await waitForMessages(browser, 4);
      assert.deepEqual(await received(browser), [{ data: 'line 1\nline 2\nline 3', id: multiLine.body }, ...missed]);
      assert.equal(await browser.page.evaluate(() => (globalThis as unknown as PageGlobals).opens), 2, 'the EventSource reconnected once');
      const replayed = (await second.hub.metrics.replayed.get()).values[0]?.value;
      assert.equal(replayed, 3, 'the new hub replayed the three missed updates from history');
    },
  );
});
