// Operating the hub (SPEC §3 "Operating it"): health and readiness probes, connection limits,
// Prometheus metrics, CORS, and the answers to requests the hub does not serve.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { type TestHub, startTestHub } from '../helpers/hub.js';
import { metric, metricReaches, send, sendRaw } from '../helpers/hub-probes.js';
import { type SseRecorder, openSse } from '../helpers/sse-client.js';

const T = { timeout: 20_000 };
const APP = 'https://app.example.com';

async function hubWith(flags: string[] = []): Promise<TestHub> {
  const hub = await startTestHub(['--drain-timeout', '0', ...flags]);
  after(() => hub.close());
  return hub;
}

async function stream(hub: TestHub, headers: Record<string, string> = {}): Promise<SseRecorder> {
  const sub = await openSse(`${hub.hubUrl}?topic=*`, { authorization: `Bearer ${hub.adminToken}`, ...headers });
  after(() => sub.close());
  return sub;
}

async function get(url: string, headers: Record<string, string> = {}) {
  return send(url, { headers });
}

describe('operations: probes', () => {
  it('answers /healthz with 200', T, async () => {
    const hub = await hubWith();
    const res = await get(`${hub.url}/healthz`);
    assert.equal(res.status, 200);
    assert.equal(res.body, 'ok\n');
  });

  it('answers /readyz with 200 while it can serve', T, async () => {
    const hub = await hubWith();
    const res = await get(`${hub.url}/readyz`);
    assert.equal(res.status, 200);
    assert.equal(res.body, 'ready\n');
  });

  it('answers /readyz and new subscribers with 503 "draining" once close() has begun', T, async () => {
    // Two open streams and a drain window keep the hub draining for a while after close() begins.
    const hub = await hubWith(['--drain-timeout', '2s']);
    const streams = [await stream(hub), await stream(hub)];
    const closing = hub.close();
    const ready = await get(`${hub.url}/readyz`);
    assert.equal(ready.status, 503);
    assert.equal(ready.body, 'not ready: draining\n');
    assert.equal(ready.headers['retry-after'], '1');
    const late = await stream(hub);
    await late.done;
    assert.equal(late.status, 503);
    assert.match(late.text, /shutting down/);
    for (const s of streams) s.close();
    await closing;
  });

  it('answers /readyz with 503 when the transport is down', T, async () => {
    const hub = await hubWith();
    await hub.hub.transport.close();
    const res = await get(`${hub.url}/readyz`);
    assert.equal(res.status, 503);
    assert.equal(res.body, 'not ready: transport-unavailable\n');
  });

  it('answers /readyz with 503 while the connection budget is used up, and 200 again once a stream ends', T, async () => {
    const hub = await hubWith(['--max-connections', '2']);
    await stream(hub);
    const second = await stream(hub);
    const res = await get(`${hub.url}/readyz`);
    assert.equal(res.status, 503);
    assert.equal(res.body, 'not ready: over-connection-budget\n');
    second.close();
    await metricReaches(hub, 'ssehub_connections', '', 1);
    assert.equal((await get(`${hub.url}/readyz`)).status, 200);
  });
});

describe('operations: connection limits', () => {
  it('answers a subscriber over --max-connections with 503 and Retry-After', T, async () => {
    const hub = await hubWith(['--max-connections', '2']);
    assert.equal((await stream(hub)).status, 200);
    assert.equal((await stream(hub)).status, 200);
    const third = await stream(hub);
    await third.done;
    assert.equal(third.status, 503);
    assert.match(String(third.headers['retry-after']), /^[1-9]\d*$/);
    assert.match(third.text, /at most 2 streams \(--max-connections\)/);
  });

  it('answers a second stream from the same address with 429 and Retry-After under --max-connections-per-ip 1', T, async () => {
    const hub = await hubWith(['--max-connections-per-ip', '1']);
    assert.equal((await stream(hub)).status, 200);
    const second = await stream(hub);
    await second.done;
    assert.equal(second.status, 429);
    assert.match(String(second.headers['retry-after']), /^[1-9]\d*$/);
    assert.match(second.text, /address 127\.0\.0\.1 already has 1 streams open \(--max-connections-per-ip\)/);
  });

  it('lets an address open a stream again once its previous one ended under --max-connections-per-ip 1', T, async () => {
    const hub = await hubWith(['--max-connections-per-ip', '1']);
    const first = await stream(hub);
    first.close();
    await metricReaches(hub, 'ssehub_connections', '', 0);
    assert.equal((await stream(hub)).status, 200);
  });
});

describe('operations: /metrics', () => {
  it('serves Prometheus text with connections, updates, deliveries, closes, rejections, latency and event-loop lag', T, async () => {
    const hub = await hubWith();
    const sub = await stream(hub);
    const leaving = await stream(hub);
    assert.equal((await hub.publish({ topic: 'https://example.com/a', data: 'x', id: 'm1' })).status, 200);
    await sub.events_(1);
    await leaving.events_(1);
    leaving.close();
    await metricReaches(hub, 'ssehub_connections_closed_total', '{reason="client-closed"}', 1);
    assert.equal((await hub.publish({ topic: 'https://example.com/a', data: 'x' }, null)).status, 401);

    const res = await fetch(`${hub.url}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    assert.match(text, /^# TYPE ssehub_connections gauge$/m);
    assert.match(text, /^ssehub_connections 1$/m);
    assert.match(text, /^ssehub_updates_published_total 1$/m);
    assert.match(text, /^ssehub_deliveries_total 2$/m);
    assert.match(text, /^ssehub_connections_closed_total\{reason="client-closed"\} 1$/m);
    assert.match(text, /^ssehub_requests_rejected_total\{status="401",reason="missing-token"\} 1$/m);
    assert.match(text, /^ssehub_delivery_latency_seconds_count 1$/m);
    assert.match(text, /^ssehub_delivery_latency_seconds_bucket\{le="\+Inf"\} 1$/m);
    assert.match(text, /^nodejs_eventloop_lag_seconds \d/m);
  });

  it('counts every rejected request by its status', T, async () => {
    const hub = await hubWith();
    await get(`${hub.url}/nowhere`);
    await get(`${hub.url}/nowhere/else`);
    await send(hub.hubUrl, { method: 'PUT' });
    assert.equal(await metric(hub, 'ssehub_requests_rejected_total', '{status="404"}'), 2);
    assert.equal(await metric(hub, 'ssehub_requests_rejected_total', '{status="405"}'), 1);
  });
});

describe('operations: CORS', () => {
  it('echoes an allowed origin with credentials allowed and Vary: Origin, on a stream', T, async () => {
    const hub = await hubWith(['--cors-origins', `https://other.example.com,${APP}`]);
    const sub = await stream(hub, { origin: APP });
    assert.equal(sub.status, 200);
    assert.equal(sub.headers['access-control-allow-origin'], APP);
    assert.equal(sub.headers['access-control-allow-credentials'], 'true');
    assert.match(String(sub.headers.vary), /\bOrigin\b/i);
  });

  it('sends CORS headers on error answers too, so a page can read why it was refused', T, async () => {
    const hub = await hubWith(['--cors-origins', APP]);
    const res = await get(`${hub.hubUrl}?topic=x`, { origin: APP });
    assert.equal(res.status, 401);
    assert.equal(res.headers['access-control-allow-origin'], APP);
  });

  it('sends no CORS headers to an origin not in --cors-origins', T, async () => {
    const hub = await hubWith(['--cors-origins', APP]);
    const sub = await stream(hub, { origin: 'https://evil.example.com' });
    assert.equal(sub.status, 200);
    assert.deepEqual(Object.keys(sub.headers).filter((h) => h.startsWith('access-control-')), []);
  });

  it('answers a preflight from an allowed origin with 204 and the allowed methods and headers', T, async () => {
    const hub = await hubWith(['--cors-origins', APP]);
    const res = await send(hub.hubUrl, { method: 'OPTIONS', headers: { origin: APP, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type' } });
    assert.equal(res.status, 204);
    assert.equal(res.headers['access-control-allow-origin'], APP);
    assert.equal(res.headers['access-control-allow-credentials'], 'true');
    const methods = String(res.headers['access-control-allow-methods']).split(/,\s*/);
    for (const m of ['GET', 'POST']) assert.ok(methods.includes(m), `allow-methods: ${methods.join(', ')}`);
    const allowed = String(res.headers['access-control-allow-headers']).toLowerCase().split(/,\s*/);
    for (const h of ['authorization', 'content-type', 'last-event-id']) assert.ok(allowed.includes(h), `allow-headers: ${allowed.join(', ')}`);
  });

  it('answers a preflight from an origin not in --cors-origins with 403', T, async () => {
    const hub = await hubWith(['--cors-origins', APP]);
    const res = await send(hub.hubUrl, { method: 'OPTIONS', headers: { origin: 'https://evil.example.com', 'access-control-request-method': 'POST' } });
    assert.equal(res.status, 403);
    assert.equal(res.headers['access-control-allow-origin'], undefined);
    assert.match(res.body, /origin https:\/\/evil.example.com is not allowed \(--cors-origins\)/);
  });

  it('with --cors-origins "*", answers any origin with "*" and without credentials', T, async () => {
    const hub = await hubWith(['--cors-origins', '*']);
    const sub = await stream(hub, { origin: 'https://anywhere.example.net' });
    assert.equal(sub.status, 200);
    assert.equal(sub.headers['access-control-allow-origin'], '*');
    assert.equal(sub.headers['access-control-allow-credentials'], undefined);
  });
});

describe('operations: requests the hub does not serve', () => {
  it('answers PUT on the hub URL with 405 and an Allow header', T, async () => {
    const hub = await hubWith();
    const res = await send(hub.hubUrl, { method: 'PUT', body: 'x' });
    assert.equal(res.status, 405);
    assert.equal(res.headers.allow, 'GET, POST, OPTIONS');
    assert.match(res.body, /PUT is not supported here: GET subscribes, POST publishes/);
  });

  it('answers an unknown path with 404 naming it', T, async () => {
    const hub = await hubWith();
    const res = await get(`${hub.url}/no/such/thing?x=1`);
    assert.equal(res.status, 404);
    assert.match(res.body, /no such resource: \/no\/such\/thing\n/);
  });

  it('answers a URL over 64 KiB with 414', T, async () => {
    const hub = await hubWith();
    const res = await get(`${hub.hubUrl}?topic=${'a'.repeat(64 * 1024)}`);
    assert.equal(res.status, 414);
    assert.match(res.body, /longer than 65536 characters/);
  });

  it('answers a malformed request line with 400 and stays ready', T, async () => {
    const hub = await hubWith();
    const answer = await sendRaw(hub.url, 'THIS IS NOT HTTP\r\n\r\n');
    assert.match(answer, /^HTTP\/1.1 400 Bad Request\r\n/);
    assert.equal(await metric(hub, 'ssehub_requests_rejected_total', '{status="400"}'), 1);
    assert.equal((await get(`${hub.url}/readyz`)).status, 200);
  });
});
