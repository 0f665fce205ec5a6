// The /ui dashboard in headless Chromium: the page gets a dev token, tails a topic through
// ssehub/client, publishes through its form, and its counters, chart and topics table follow.
// Also who may read it: the state needs a token with `ssehub.ui: true` outside --dev, the token
// generator exists only in --dev, and without --ui or --dev there is no /ui at all.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { SignJWT } from 'jose';
import { type TestBrowser, chromiumSkipReason, launchBrowser } from '../helpers/browser.js';
import { TEST_KEY, type TestHub, startTestHub } from '../helpers/hub.js';
import { openSse } from '../helpers/sse-client.js';

const SCREENSHOT = join(dirname(fileURLToPath(import.meta.url)), '../../docs/img/ui.png');
const CHART_BASELINE = 136; // the page draws a rate of 0 at y = 140 - 4

/** The bits of the DOM the page checks touch (the project's tsconfig has no DOM lib). */
interface PageDocument {
  getElementById(id: string): { textContent: string; classList: { contains(name: string): boolean }; getAttribute(name: string): string | null };
  querySelectorAll(selector: string): ArrayLike<{ textContent: string }>;
}
interface PageGlobals {
  document: PageDocument;
}

/**
 * Waits for `check` in the page (a safety net, not an assertion), explaining a failure with the
 * page's log. `check` must be a function, not a string: the page's CSP has no 'unsafe-eval', which
 * Playwright needs to evaluate a string predicate.
 */
async function waitInPage(browser: TestBrowser, what: string, check: (arg: number) => boolean, arg = 0): Promise<void> {
  try {
    await browser.page.waitForFunction(check, arg, { timeout: 20_000, polling: 50 });
  } catch (error) {
    const header = await browser.page.locator('header').innerText().catch(() => '?');
    throw new Error(`the page never showed ${what} (${(error as Error).message.split('\n')[0]}) (header: ${JSON.stringify(header)}); page log: ${JSON.stringify(browser.log)}`, { cause: error });
  }
}

/** The text of the element with this id. */
function text(browser: TestBrowser, id: string): Promise<string> {
  return browser.page.locator(`#${id}`).innerText();
}

/** The highest rate a chart line has drawn: 0 when every point sits on the baseline. */
function chartPeak(points: string | null): number {
  const ys = (points ?? '').split(' ').filter(Boolean).map((p) => Number(p.split(',')[1]));
  return ys.length === 0 ? 0 : CHART_BASELINE - Math.min(...ys);
}

describe('/ui dashboard in headless Chromium', () => {
  it(
    'in --dev, tails a topic, publishes through the form, and shows the update, its id, the connection, the topic and the rates',
    { skip: chromiumSkipReason(), timeout: 90_000 },
    async () => {
      const hub = await startTestHub(['--dev']);
      after(() => hub.close());
      const browser = await launchBrowser();
      after(() => browser.close());
      const { page } = browser;
      await page.setViewportSize({ width: 1280, height: 900 });
      await page.goto(`${hub.url}/ui`);

      // Dev mode: the page fetched a token and shows the generator; its first poll filled the header.
      await waitInPage(browser, 'the token generator', () => ((d: PageDocument) => !d.getElementById('generator').classList.contains('hidden'))((globalThis as unknown as PageGlobals).document));
      await waitInPage(browser, 'a connection count', () => ((d: PageDocument) => /^\d+$/.test(d.getElementById('count-connections').textContent))((globalThis as unknown as PageGlobals).document));

      await page.fill('#tail-topics', 'demo');
      await page.click('#tail-button');
      await waitInPage(browser, 'the tail open', () => ((d: PageDocument) => d.getElementById('tail-status').textContent.startsWith('tailing'))((globalThis as unknown as PageGlobals).document));

      await page.fill('#publish-topic', 'demo');
      await page.fill('#publish-data', 'hello-ui');
      await page.click('#publish-button');
      await waitInPage(browser, 'a publish result', () => ((d: PageDocument) => !['', 'publishing…'].includes(d.getElementById('publish-result').textContent))((globalThis as unknown as PageGlobals).document));
      const id = await text(browser, 'publish-result');
      assert.match(id, /^urn:uuid:[0-9a-f-]{36}$/, `the publish form shows the update's id, not an error (page log: ${JSON.stringify(browser.log)})`);

      await waitInPage(browser, 'hello-ui in the tail', () => ((d: PageDocument) => d.getElementById('tail').textContent.includes('hello-ui'))((globalThis as unknown as PageGlobals).document));
      const tail = page.locator('#tail li');
      assert.equal(await tail.count(), 1, 'exactly the one update is in the tail');
      assert.match(await tail.first().innerText(), new RegExp(`id=${id}[\\s\\S]*hello-ui`), 'the tail shows the id and the data of the update published');

      // The tail is a connection subscribed to "demo"; the publish and its delivery show in the chart.
      await waitInPage(browser, 'a connection and the topic demo', () => ((d: PageDocument) => Number(d.getElementById('count-connections').textContent) >= 1 && Array.from(d.querySelectorAll('#topics td:first-child')).some((td) => td.textContent === 'demo'))((globalThis as unknown as PageGlobals).document));
      const demoRow = page.locator('#topics tr', { hasText: 'demo' });
      assert.equal(await demoRow.locator('td').nth(1).innerText(), '1', 'one subscriber on demo: the tail');
      await waitInPage(browser, 'updates/s and deliveries/s above 0 in the chart', (base) => ((d: PageDocument) => ['chart-updates', 'chart-deliveries'].every((line) => (d.getElementById(line).getAttribute('points') ?? '').split(' ').some((p) => Number(p.split(',')[1]) < base)))((globalThis as unknown as PageGlobals).document), CHART_BASELINE);
      assert.ok(chartPeak(await page.getAttribute('#chart-updates', 'points')) > 0);
      assert.ok(chartPeak(await page.getAttribute('#chart-deliveries', 'points')) > 0);

      if (process.env.UPDATE_SCREENSHOT === '1' || !existsSync(SCREENSHOT)) {
        // A fuller picture: more topics, a subscriber that came and went, a few seconds of traffic.
        const auth = { authorization: `Bearer ${hub.adminToken}` };
        const books = await openSse(`${hub.hubUrl}?topic=${encodeURIComponent('https://example.com/books/{id}')}`, auth);
        const orders = await openSse(`${hub.hubUrl}?topic=orders&topic=demo`, auth);
        const gone = await openSse(`${hub.hubUrl}?topic=orders`, auth);
        after(() => {
          books.close();
          orders.close();
        });
        gone.close();
        const samples = async () => ((await page.getAttribute('#chart-updates', 'points')) ?? '').split(' ').filter(Boolean).length;
        const traffic: [string, string][] = [['demo', ''], ['orders', 'order 42 shipped'], ['https://example.com/books/1', 'new edition'], ['orders', 'order 43 paid']];
        for (let second = 0; second < 8; second++) {
          for (let k = 0; k < 1 + (second % 4) * 2; k++) {
            const [topic, data] = traffic[(second + k) % traffic.length]!;
            assert.equal((await hub.publish({ topic, data: topic === 'demo' ? `{"hello":"world","n":${second}}` : data })).status, 200);
          }
          // One burst per sample the page draws.
          await waitInPage(browser, 'one more chart sample', (n) => ((d: PageDocument) => (d.getElementById('chart-updates').getAttribute('points') ?? '').split(' ').filter(Boolean).length > n)((globalThis as unknown as PageGlobals).document), await samples());
        }
        await waitInPage(browser, 'a recent connection end', () => ((d: PageDocument) => d.querySelectorAll('#ends tr td.num').length > 0)((globalThis as unknown as PageGlobals).document));
        mkdirSync(dirname(SCREENSHOT), { recursive: true });
        await page.screenshot({ path: SCREENSHOT, fullPage: true });
      }
      assert.deepEqual(browser.log.filter((line) => line.startsWith('pageerror')), [], 'the page threw no error');
    },
  );
});

describe('/ui access', () => {
  let hub: TestHub;
  after(() => hub?.close());

  it('with --ui but not --dev, the state needs a token with the ssehub.ui claim, and there is no token generator', async () => {
    hub = await startTestHub(['--ui']);
    const page = await fetch(`${hub.url}/ui`);
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type') ?? '', /^text\/html/);
    assert.match(await page.text(), /id="publish-button"/);

    const anonymous = await fetch(`${hub.url}/ui/api/state`);
    assert.equal(anonymous.status, 401);
    await anonymous.body?.cancel();

    const withoutClaim = await fetch(`${hub.url}/ui/api/state`, { headers: { authorization: `Bearer ${hub.adminToken}` } });
    assert.equal(withoutClaim.status, 403, 'a publish/subscribe token without ssehub.ui may not read the dashboard');
    await withoutClaim.body?.cancel();

    const uiToken = await new SignJWT({ ssehub: { ui: true } }).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).setIssuedAt().sign(new TextEncoder().encode(TEST_KEY));
    const res = await fetch(`${hub.url}/ui/api/state`, { headers: { authorization: `Bearer ${uiToken}` } });
    assert.equal(res.status, 200);
    const state = (await res.json()) as Record<string, unknown>;
    assert.equal(state.dev, false);
    assert.equal(state.hubPath, '/.well-known/mercure');
    for (const key of ['connections', 'subscriptions', 'updatesPublished', 'deliveries', 'templateSubscribers', 'uptimeMs', 'now']) {
      assert.equal(typeof state[key], 'number', `${key} is a number`);
    }
    assert.ok(Array.isArray(state.topics) && Array.isArray(state.recentEnds));

    const generator = await fetch(`${hub.url}/ui/api/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"publish":["*"]}' });
    assert.equal(generator.status, 404, 'no token generator outside --dev');
    await generator.body?.cancel();

    const bundle = await fetch(`${hub.url}/ui/client.js`);
    assert.equal(bundle.status, 200);
    assert.match(await bundle.text(), /EventSource/);
  });

  it('the state counts a subscriber, its topic, a publish and its delivery', async () => {
    const counted = await startTestHub(['--ui']);
    after(() => counted.close());
    const uiToken = await new SignJWT({ ssehub: { ui: true } }).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).sign(new TextEncoder().encode(TEST_KEY));
    const state = async () => (await (await fetch(`${counted.url}/ui/api/state`, { headers: { authorization: `Bearer ${uiToken}` } })).json()) as { connections: number; updatesPublished: number; deliveries: number; topics: { topic: string; subscribers: number }[] };
    const before = await state();
    const sse = await openSse(`${counted.hubUrl}?topic=counted`, { authorization: `Bearer ${counted.adminToken}` });
    after(() => sse.close());
    assert.equal((await counted.publish({ topic: 'counted', data: 'x' })).status, 200);
    await sse.events_(1);
    const now = await state();
    assert.equal(now.connections, before.connections + 1);
    assert.deepEqual(now.topics.find((t) => t.topic === 'counted'), { topic: 'counted', subscribers: 1 });
    assert.equal(now.updatesPublished, before.updatesPublished + 1);
    assert.equal(now.deliveries, before.deliveries + 1);
  });

  it('without --ui or --dev, there is no /ui', async () => {
    const plain = await startTestHub([]);
    after(() => plain.close());
    for (const path of ['/ui', '/ui/api/state', '/ui/client.js']) {
      const res = await fetch(`${plain.url}${path}`);
      assert.equal(res.status, 404, `${path} is not served`);
      await res.body?.cancel();
    }
  });
});
