// Presence and webhooks on one node: each event once, in the Standard Webhooks shape, signed,
// retried with the same ID, and a topic that empties for less than the vacate delay does not flap.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ConfigError, loadConfig } from '../../src/hub/index.js';
import { TEST_KEY, type TestHub, startTestHub } from '../helpers/hub.js';
import { subscribeUrl } from '../helpers/hub-streams.js';
import { metric } from '../helpers/hub-probes.js';
import { openSse } from '../helpers/sse-client.js';
import { type Received, WEBHOOK_SECRET, type WebhookReceiver, startWebhookReceiver } from '../helpers/webhook-receiver.js';

const T = { timeout: 30_000 };
const of = (received: Received[], type: string) => received.filter((r) => r.type === type);

describe('webhook settings', () => {
  it('refuses --webhook-url without --webhook-secret, naming --webhook-url', () => {
    assert.throws(
      () => loadConfig({ argv: ['--jwt-key', TEST_KEY, '--webhook-url', 'http://127.0.0.1:9/hooks'] }),
      (error: unknown) => error instanceof ConfigError && error.setting === '--webhook-url' && /--webhook-secret/.test(error.message),
    );
  });

  it('takes --webhook-url more than once', () => {
    const config = loadConfig({ argv: ['--jwt-key', TEST_KEY, '--webhook-secret', WEBHOOK_SECRET, '--webhook-url', 'http://127.0.0.1:9/a', '--webhook-url', 'https://backend.example.com/b'] });
    assert.deepEqual(config.webhookUrls, ['http://127.0.0.1:9/a', 'https://backend.example.com/b']);
  });
});

describe('webhooks of one node', T, () => {
  let receiver: WebhookReceiver;
  let hub: TestHub;
  before(async () => {
    receiver = await startWebhookReceiver();
    hub = await startTestHub(['--anonymous', '--webhook-url', `${receiver.url}/hooks`, '--webhook-secret', WEBHOOK_SECRET, '--webhook-vacate-delay', '300ms']);
  });
  after(async () => {
    await hub.close();
    await receiver.close();
  });

  it('tells a subscriber connected, each topic occupied once, then disconnected and vacated, signed and shaped as Standard Webhooks', async () => {
    const first = await openSse(subscribeUrl(hub.hubUrl, ['urn:wh:a', 'urn:wh:b']));
    await receiver.until((r) => of(r, 'topic.occupied').length === 2, 'two topics occupied');
    const second = await openSse(subscribeUrl(hub.hubUrl, ['urn:wh:a']));
    await receiver.until((r) => of(r, 'subscriber.connected').length === 2, 'the second subscriber');
    first.close();
    await receiver.until((r) => of(r, 'topic.vacated').length === 1, 'urn:wh:b vacated');
    second.close();
    await receiver.until((r) => of(r, 'topic.vacated').length === 2, 'urn:wh:a vacated');

    const connected = of(receiver.received, 'subscriber.connected');
    assert.deepEqual(connected[0]?.data.topics, ['urn:wh:a', 'urn:wh:b']);
    assert.match(String(connected[0]?.data.subscriber), /^urn:uuid:/);
    assert.equal(typeof connected[0]?.data.node, 'string');
    assert.ok(!Number.isNaN(Date.parse(String(connected[0]?.timestamp))));
    assert.deepEqual(of(receiver.received, 'topic.occupied').map((r) => r.data.topic).sort(), ['urn:wh:a', 'urn:wh:b']);
    assert.deepEqual(of(receiver.received, 'subscriber.disconnected').map((r) => r.data.reason), ['client-closed', 'client-closed']);
    assert.deepEqual(of(receiver.received, 'topic.vacated').map((r) => r.data.topic), ['urn:wh:b', 'urn:wh:a']);
    // Each event once: no ID twice, nothing refused by the signature check.
    assert.equal(new Set(receiver.received.map((r) => r.id)).size, receiver.received.length);
    assert.equal(receiver.rejected, 0);
    assert.equal(await metric(hub, 'ssehub_webhooks_total', '{event="topic.vacated",result="sent"}'), 2);
  });

  it('does not vacate a topic whose subscriber comes back within the delay', async () => {
    const before = receiver.received.length;
    const one = await openSse(subscribeUrl(hub.hubUrl, ['urn:wh:flap']));
    await receiver.until((r) => of(r.slice(before), 'topic.occupied').length === 1, 'urn:wh:flap occupied');
    one.close();
    const again = await openSse(subscribeUrl(hub.hubUrl, ['urn:wh:flap']));
    await receiver.until((r) => of(r.slice(before), 'subscriber.connected').length === 2, 'the reconnection');
    // Past the delay, with a marker: a vacate of urn:wh:flap would have come before the marker's.
    const marker = await openSse(subscribeUrl(hub.hubUrl, ['urn:wh:marker']));
    marker.close();
    await receiver.until((r) => of(r.slice(before), 'topic.vacated').some((e) => e.data.topic === 'urn:wh:marker'), 'the marker vacated');
    assert.deepEqual(of(receiver.received.slice(before), 'topic.vacated').map((e) => e.data.topic), ['urn:wh:marker']);
    assert.equal(of(receiver.received.slice(before), 'topic.occupied').filter((e) => e.data.topic === 'urn:wh:flap').length, 1);
    again.close();
  });

  it('retries a webhook the receiver refused, with the same webhook-id, and counts the retries', async () => {
    const before = receiver.received.length;
    const retriesBefore = await metric(hub, 'ssehub_webhook_retries_total');
    receiver.failNext(2);
    const one = await openSse(subscribeUrl(hub.hubUrl, ['urn:wh:retry']));
    await receiver.until((r) => r.slice(before).some((e) => e.type === 'topic.occupied' && e.data.topic === 'urn:wh:retry'), 'the occupied event after retries');
    assert.ok((await metric(hub, 'ssehub_webhook_retries_total')) >= retriesBefore + 2);
    const ids = receiver.received.slice(before).map((r) => r.id);
    assert.equal(new Set(ids).size, ids.length, 'each accepted once');
    one.close();
  });
});

describe('the subscriptions API of one node', T, () => {
  it('lists a subscriber from its first byte, before presence has it', async () => {
    const hub = await startTestHub(['--anonymous', '--subscriptions']);
    after(() => hub.close());
    const sub = await openSse(subscribeUrl(hub.hubUrl, ['urn:list:x']));
    after(() => sub.close());
    const token = await hub.token({ subscribe: ['/.well-known/mercure/subscriptions{/topic}{/subscriber}'] });
    const res = await fetch(`${hub.hubUrl}/subscriptions/${encodeURIComponent('urn:list:x')}`, { headers: { authorization: `Bearer ${token}` } });
    const body = (await res.json()) as { subscriptions: { topic: string }[] };
    assert.deepEqual(body.subscriptions.map((s) => s.topic), ['urn:list:x']);
  });
});
