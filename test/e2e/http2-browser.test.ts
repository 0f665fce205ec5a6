// Why the hub speaks HTTP/2: a browser opens at most six HTTP/1.1 connections per origin, so a
// seventh EventSource (a seventh tab) stalls; over HTTP/2 every EventSource is a stream on one
// connection. Headless Debian Chromium, native EventSource, ten of them on one page: over HTTPS
// (ALPN h2) all ten open and receive an update; the control, the same page against a plain-HTTP
// hub, has exactly six open and four still connecting, which shows the first result is HTTP/2's.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import type { Page } from 'playwright-core';
import { type TestBrowser, chromiumSkipReason, launchBrowser } from '../helpers/browser.js';
import { type TestHub, startTestHub } from '../helpers/hub.js';
import { type TestCertificate, h2Publish, h2Session, makeCertificate } from '../helpers/tls.js';

const TOPIC = 'https://example.com/books/1';
const SOURCES = 10;
/** Chromium's limit of HTTP/1.1 connections per origin (per host and port, in one profile). */
const HTTP1_CONNECTIONS_PER_ORIGIN = 6;
const T = { skip: chromiumSkipReason(), timeout: 60_000 };

/** The page's globals this test touches (the project's tsconfig has no DOM lib). */
interface SourceLike {
  readyState: number;
  onopen: (() => void) | null;
  onmessage: ((event: { data: string }) => void) | null;
}
interface PageGlobals {
  sources: SourceLike[];
  opened: boolean[];
  received: string[][];
  EventSource: new (url: string) => SourceLike;
  performance: { getEntriesByType(type: string): { nextHopProtocol: string }[] };
}

/** What each EventSource of the page looks like now. */
interface SourceState {
  readyState: number;
  opened: boolean;
  received: string[];
}

/** Opens `SOURCES` EventSources to the hub's own origin (the page is the hub's /healthz: no CORS). */
async function openSources(page: Page): Promise<void> {
  await page.evaluate(
    ({ url, n }) => {
      const g = globalThis as unknown as PageGlobals;
      g.sources = [];
      g.opened = [];
      g.received = [];
      for (let i = 0; i < n; i++) {
        const source = new g.EventSource(url);
        g.opened.push(false);
        g.received.push([]);
        source.onopen = () => {
          g.opened[i] = true;
        };
        source.onmessage = (event) => {
          g.received[i]?.push(event.data);
        };
        g.sources.push(source);
      }
    },
    { url: `/.well-known/mercure?topic=${encodeURIComponent(TOPIC)}`, n: SOURCES },
  );
}

async function states(page: Page): Promise<SourceState[]> {
  return page.evaluate(() => {
    const g = globalThis as unknown as PageGlobals;
    return g.sources.map((s, i) => ({ readyState: s.readyState, opened: g.opened[i] ?? false, received: g.received[i] ?? [] }));
  });
}

/** The protocol Chromium loaded the page with (`h2`, `http/1.1`). */
async function pageProtocol(page: Page): Promise<string | undefined> {
  return page.evaluate(() => (globalThis as unknown as PageGlobals).performance.getEntriesByType('navigation')[0]?.nextHopProtocol);
}

/** Waits until `count(states)` reaches `n` (a safety net, not a timing assertion); the message says what the page had. */
async function waitForCount(browser: TestBrowser, page: Page, what: string, count: (s: SourceState[]) => number, n: number): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const now = await states(page);
    if (count(now) >= n) return;
    if (Date.now() > deadline) throw new Error(`${what}: ${count(now)} of ${n} after 20 s; sources: ${JSON.stringify(now)}; page log: ${JSON.stringify(browser.log)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const openCount = (s: SourceState[]): number => s.filter((x) => x.opened).length;
const receivedCount = (data: string) => (s: SourceState[]): number => s.filter((x) => x.received.includes(data)).length;

describe('ten EventSources on one page in headless Chromium', () => {
  let certificate: TestCertificate;
  const hubs: TestHub[] = [];
  let browser: TestBrowser | undefined;
  before(() => {
    certificate = makeCertificate();
  });
  after(async () => {
    await browser?.close();
    // A short drain window (see startTestHub flags below) keeps this quick.
    await Promise.all(hubs.map((h) => h.close()));
    rmSync(certificate.dir, { recursive: true, force: true });
  });

  /** A fresh page in a context that accepts the self-signed certificate. */
  async function newPage(): Promise<Page> {
    browser ??= await launchBrowser();
    const context = await browser.browser.newContext({ ignoreHTTPSErrors: true });
    const page = await context.newPage();
    const log = browser.log;
    page.on('console', (message) => log.push(`console.${message.type()}: ${message.text()}`));
    page.on('pageerror', (error) => log.push(`pageerror: ${error.message}`));
    return page;
  }

  it('over HTTPS the page and all ten streams use HTTP/2: every EventSource opens and receives the update', T, async () => {
    const hub = await startTestHub(['--anonymous', '--tls-cert', certificate.certPath, '--tls-key', certificate.keyPath, '--drain-timeout', '100ms']);
    hubs.push(hub);
    const page = await newPage();
    await page.goto(`${hub.url}/healthz`);
    assert.equal(await pageProtocol(page), 'h2');

    await openSources(page);
    const b = browser as TestBrowser;
    await waitForCount(b, page, 'EventSources open', openCount, SOURCES);
    assert.equal(hub.hub.streams.size, SOURCES);

    const session = await h2Session(hub.url, certificate.cert);
    try {
      const res = await h2Publish(session, '/.well-known/mercure', { topic: TOPIC, data: 'to all ten' }, hub.adminToken);
      assert.equal(res.status, 200, res.body);
    } finally {
      session.destroy();
    }
    await waitForCount(b, page, 'EventSources with the update', receivedCount('to all ten'), SOURCES);
    const now = await states(page);
    assert.deepEqual(
      now.map((s) => [s.readyState, s.received]),
      Array.from({ length: SOURCES }, () => [1, ['to all ten']]),
    );
  });

  it('control: over plain HTTP/1.1 only six open and the other four stay CONNECTING', T, async () => {
    const hub = await startTestHub(['--anonymous', '--drain-timeout', '100ms']);
    hubs.push(hub);
    const page = await newPage();
    await page.goto(`${hub.url}/healthz`);
    assert.equal(await pageProtocol(page), 'http/1.1');

    await openSources(page);
    const b = browser as TestBrowser;
    await waitForCount(b, page, 'EventSources open', openCount, HTTP1_CONNECTIONS_PER_ORIGIN);
    const res = await hub.publish({ topic: TOPIC, data: 'to those connected' });
    assert.equal(res.status, 200, res.body);
    await waitForCount(b, page, 'EventSources with the update', receivedCount('to those connected'), HTTP1_CONNECTIONS_PER_ORIGIN);

    // Six connections carry six streams; the other four wait for a connection that never frees up.
    const now = await states(page);
    const open = now.filter((s) => s.readyState === 1);
    const connecting = now.filter((s) => s.readyState === 0);
    assert.equal(open.length, HTTP1_CONNECTIONS_PER_ORIGIN, JSON.stringify(now));
    assert.equal(connecting.length, SOURCES - HTTP1_CONNECTIONS_PER_ORIGIN, JSON.stringify(now));
    assert.ok(
      open.every((s) => s.opened && s.received.length === 1 && s.received[0] === 'to those connected'),
      JSON.stringify(now),
    );
    assert.ok(
      connecting.every((s) => !s.opened && s.received.length === 0),
      JSON.stringify(now),
    );
    assert.equal(hub.hub.streams.size, HTTP1_CONNECTIONS_PER_ORIGIN);
  });
});
