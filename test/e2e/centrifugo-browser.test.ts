// The Centrifugo SDK's browser build (node_modules/centrifuge/dist/centrifuge.js, served by a test
// server) in headless Chromium, against the hub: over the browser's WebSocket, its native
// EventSource (the sse transport) and fetch streaming (http_stream), beside a native EventSource
// subscribed the Mercure way on the same page. One topic, one history, both protocols.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { type TestBrowser, chromiumSkipReason, launchBrowser } from '../helpers/browser.js';
import { type TestServer, listen } from '../helpers/http.js';
import { type TestHub, startTestHub } from '../helpers/hub.js';

const T = { timeout: 60_000 };
const SDK = new URL('../../node_modules/centrifuge/dist/centrifuge.js', import.meta.url);

/** What the page keeps (the project's tsconfig has no DOM lib, so the page's globals are typed here). */
interface PageState {
  transport: string;
  publications: { data: unknown; id: string | undefined }[];
  events: { data: string; id: string }[];
  errors: string[];
}
interface PageGlobals {
  state: PageState;
  Centrifuge: new (endpoint: unknown, options: Record<string, unknown>) => {
    on(event: string, listener: (ctx: { transport?: string; error?: unknown }) => void): void;
    newSubscription(channel: string): {
      on(event: string, listener: (ctx: { data: unknown; tags?: Record<string, string> }) => void): void;
      subscribe(): void;
      ready(timeout: number): Promise<void>;
      publish(data: unknown): Promise<unknown>;
    };
    connect(): void;
  };
  EventSource: new (url: string) => { onmessage: ((event: { data: string; lastEventId: string }) => void) | null; onopen: (() => void) | null };
  sub: { publish(data: unknown): Promise<unknown> };
}

describe('the Centrifugo SDK\'s browser build in headless Chromium', { skip: chromiumSkipReason() }, () => {
  let hub: TestHub;
  let assets: TestServer;
  let browser: TestBrowser;
  before(async () => {
    hub = await startTestHub(['--anonymous']);
    const sdk = readFileSync(SDK);
    assets = await listen((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/javascript' }).end(sdk);
    });
    browser = await launchBrowser();
  }, T);
  after(async () => {
    await browser?.close();
    await assets?.close();
    await hub?.close();
  });

  for (const transport of ['websocket', 'sse', 'http_stream'] as const) {
    it(`over ${transport}: a Mercure publish reaches the SDK, and an SDK publication reaches the page's native EventSource`, T, async () => {
      const channel = `https://example.com/browser/${transport}`;
      const page = browser.page;
      // The hub's origin: the SDK's requests and the EventSource need no CORS.
      await page.goto(`${hub.url}/healthz`);
      await page.addScriptTag({ url: `${assets.url}/centrifuge.js` });
      const token = await hub.token({ subscribe: ['*'], publish: [channel] });
      await page.evaluate(
        async ({ base, transport, channel, token }) => {
          const g = globalThis as unknown as PageGlobals;
          g.state = { transport: '', publications: [], events: [], errors: [] };
          const ws = base.replace(/^http/, 'ws');
          const endpoint = transport === 'websocket' ? `${ws}/connection/websocket` : [{ transport, endpoint: `${base}/connection/${transport}` }];
          const client = new g.Centrifuge(endpoint, { token, emulationEndpoint: `${base}/emulation` });
          client.on('connected', (ctx) => (g.state.transport = ctx.transport ?? ''));
          client.on('error', (ctx) => g.state.errors.push(JSON.stringify(ctx.error)));
          const sub = client.newSubscription(channel);
          sub.on('publication', (ctx) => g.state.publications.push({ data: ctx.data, id: ctx.tags?.id }));
          sub.subscribe();
          client.connect();
          await sub.ready(20_000);
          g.sub = sub;
          const source = new g.EventSource(`${base}/.well-known/mercure?topic=${encodeURIComponent(channel)}`);
          await new Promise<void>((resolve) => (source.onopen = () => resolve()));
          source.onmessage = (event) => g.state.events.push({ data: event.data, id: event.lastEventId });
        },
        { base: hub.url, transport, channel, token },
      );
      assert.equal((await hub.publish({ topic: channel, data: '{"from":"mercure"}' })).status, 200);
      await page.evaluate(() => (globalThis as unknown as PageGlobals).sub.publish({ from: 'the browser' }));
      await page.waitForFunction(() => {
        const s = (globalThis as unknown as PageGlobals).state;
        return s.publications.length >= 2 && s.events.length >= 2;
      }, undefined, { timeout: 30_000, polling: 50 });
      const state = await page.evaluate(() => (globalThis as unknown as PageGlobals).state);
      assert.equal(state.transport, transport);
      assert.deepEqual(state.publications.map((p) => p.data), [{ from: 'mercure' }, { from: 'the browser' }]);
      assert.deepEqual(state.events.map((e) => JSON.parse(e.data) as unknown), [{ from: 'mercure' }, { from: 'the browser' }]);
      assert.deepEqual(state.events.map((e) => e.id), state.publications.map((p) => p.id), 'the same IDs on both protocols');
      assert.deepEqual(state.errors, []);
    });
  }
});
