// Mercure 1.0 in a real browser (headless Debian Chromium, its own EventSource, no library): a page
// on another origin subscribes with match= and withCredentials, the access token in the
// __Secure-mercure_access_token cookie (HttpOnly: the page never sees it), through the hub's CORS
// allow-list; a draft-07 EventSource beside it, with the draft-07 cookie, receives the same private
// update; and fetch() can read the 1.0 response headers the hub exposes.
import assert from 'node:assert/strict';
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import { type TestBrowser, chromiumSkipReason, launchBrowser } from '../helpers/browser.js';
import { ISSUER, accessToken, detail } from '../helpers/access-token.js';
import { type TestHub, startTestHub } from '../helpers/hub.js';
import { freePort } from '../helpers/ports.js';

const TOPIC = 'https://example.com/inbox/42';

interface MessageLike {
  data: string;
  lastEventId: string;
}
interface Source {
  onopen: (() => void) | null;
  onerror: (() => void) | null;
  onmessage: ((event: MessageLike) => void) | null;
}
/** The page's globals this test touches (the project's tsconfig has no DOM lib). */
interface PageGlobals {
  got: Record<string, string[]>;
  opened: Record<string, boolean>;
  errors: Record<string, number>;
  EventSource: new (url: string, init?: { withCredentials?: boolean }) => Source;
  fetch: (url: string, init?: { credentials?: string; signal?: unknown }) => Promise<{ status: number; headers: { get(name: string): string | null }; body: { cancel(): Promise<void> } | null }>;
}

describe('Mercure 1.0 in headless Chromium', () => {
  it(
    'a cross-origin native EventSource with match= and the access-token cookie receives a private update, as does a draft-07 one beside it; CORS exposes the 1.0 headers',
    { skip: chromiumSkipReason(), timeout: 60_000 },
    async () => {
      // The page and the hub are two origins of one site (localhost, two ports): the cookie, set
      // for localhost, goes to the hub; CORS decides whether the page may read the stream.
      const page: Server = createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><title>app</title>'));
      await new Promise<void>((resolve) => page.listen(0, '127.0.0.1', resolve));
      after(() => page.close());
      const pageOrigin = `http://localhost:${(page.address() as AddressInfo).port}`;
      const port = await freePort();
      const hub: TestHub = await startTestHub(['--listen', `127.0.0.1:${port}`, '--token-issuers', ISSUER, '--cors-origins', pageOrigin, '--drain-timeout', '0']);
      after(() => hub.close());
      const hubUrl = `http://localhost:${port}/.well-known/mercure`;

      const browser: TestBrowser = await launchBrowser();
      after(() => browser.close());
      // The audience is the hub as the browser reaches it.
      const v1 = await accessToken(hubUrl, [detail(['subscribe'], [{ urlpattern: 'https://example.com/inbox/:id' }])]);
      const draft07 = await hub.token({ subscribe: ['https://example.com/inbox/{id}'] });
      await browser.context.addCookies([
        { name: '__Secure-mercure_access_token', value: v1, domain: 'localhost', path: '/.well-known/mercure', secure: true, httpOnly: true, sameSite: 'Strict' },
        { name: 'mercureAuthorization', value: draft07, domain: 'localhost', path: '/.well-known/mercure', httpOnly: true, sameSite: 'Strict' },
      ]);
      await browser.page.goto(pageOrigin);
      assert.equal(await browser.page.evaluate(() => (globalThis as unknown as { document: { cookie: string } }).document.cookie), '', 'the tokens are HttpOnly: the page cannot read them');

      await browser.page.evaluate(
        ({ v1Url, draft07Url }) => {
          const g = globalThis as unknown as PageGlobals;
          g.got = { v1: [], draft07: [] };
          g.opened = {};
          g.errors = { v1: 0, draft07: 0 };
          for (const [name, url] of [['v1', v1Url], ['draft07', draft07Url]] as const) {
            const source = new g.EventSource(url, { withCredentials: true });
            source.onopen = () => {
              g.opened[name] = true;
            };
            source.onerror = () => {
              g.errors[name] = (g.errors[name] ?? 0) + 1;
            };
            source.onmessage = (event) => {
              g.got[name]?.push(`${event.lastEventId} ${event.data}`);
            };
          }
        },
        { v1Url: `${hubUrl}?match_urlpattern=${encodeURIComponent('https://example.com/inbox/:id')}`, draft07Url: `${hubUrl}?topic=${encodeURIComponent('https://example.com/inbox/{id}')}` },
      );
      try {
        await browser.page.waitForFunction(() => (globalThis as unknown as PageGlobals).opened.v1 === true && (globalThis as unknown as PageGlobals).opened.draft07 === true, undefined, { timeout: 10_000, polling: 50 });
      } catch (error) {
        throw new Error(`the EventSources did not open: ${JSON.stringify(await browser.page.evaluate(() => (globalThis as unknown as PageGlobals).errors))}; ${JSON.stringify(browser.log)}`, { cause: error });
      }

      // Private, published by a 1.0 publisher: both generations' subscribers are allowed it.
      const publisher = await accessToken(hub.hubUrl, [detail(['publish'], ['*'])]);
      const res = await hub.publish({ topic: TOPIC, data: 'for 42 only', private: 'on', id: 'private-42' }, publisher);
      assert.equal(res.status, 200, res.body);
      await browser.page.waitForFunction(() => Object.values((globalThis as unknown as PageGlobals).got).every((list) => list.length >= 1), undefined, { timeout: 10_000, polling: 50 });
      assert.deepEqual(await browser.page.evaluate(() => (globalThis as unknown as PageGlobals).got), { v1: ['private-42 for 42 only'], draft07: ['private-42 for 42 only'] });

      // fetch() with credentials reads what the hub exposes to the allowed origin.
      const seen = await browser.page.evaluate(async (url) => {
        const g = globalThis as unknown as PageGlobals & { AbortController: new () => { signal: unknown; abort(): void } };
        const controller = new g.AbortController();
        const r = await g.fetch(url, { credentials: 'include', signal: controller.signal });
        const cursor = r.headers.get('mercure-last-event-id');
        controller.abort();
        return { status: r.status, cursor };
      }, `${hubUrl}?match=${encodeURIComponent(TOPIC)}&last_event_id=earliest`);
      assert.deepEqual(seen, { status: 200, cursor: 'earliest' });
    },
  );

  it('an origin outside --cors-origins cannot read a 1.0 stream', { skip: chromiumSkipReason(), timeout: 30_000 }, async () => {
    const port = await freePort();
    const hub = await startTestHub(['--listen', `127.0.0.1:${port}`, '--token-issuers', ISSUER, '--anonymous', '--cors-origins', 'http://allowed.example', '--drain-timeout', '0']);
    after(() => hub.close());
    const page: Server = createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html>'));
    await new Promise<void>((resolve) => page.listen(0, '127.0.0.1', resolve));
    after(() => page.close());
    const browser = await launchBrowser();
    after(() => browser.close());
    await browser.page.goto(`http://localhost:${(page.address() as AddressInfo).port}`);
    const outcome = await browser.page.evaluate(async (url) => {
      const g = globalThis as unknown as PageGlobals;
      try {
        await g.fetch(url, {});
        return 'read';
      } catch {
        return 'blocked';
      }
    }, `http://localhost:${port}/.well-known/mercure?match=x`);
    assert.equal(outcome, 'blocked');
  });
});
