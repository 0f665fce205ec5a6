// Black-box probes of a running hub for the publish, authorization and operations tests: read a
// metric from /metrics, list what history holds, and send requests whose bytes we control.
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import type { TestHub } from './hub.js';
import { openSse } from './sse-client.js';

/** A response read to its end. */
export interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/**
 * Sends one request over node:http with exactly the given headers (no Origin or cookie added or
 * removed). `body` as an array of chunks is sent with `Transfer-Encoding: chunked`.
 */
export function send(url: string, options: { method?: string; headers?: Record<string, string>; body?: string | string[] } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const chunked = Array.isArray(options.body);
    const headers: Record<string, string> = { ...options.headers };
    if (typeof options.body === 'string') headers['content-length'] = String(Buffer.byteLength(options.body));
    if (chunked) headers['transfer-encoding'] = 'chunked';
    const req = httpRequest(url, { method: options.method ?? 'GET', headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      res.on('error', reject);
    });
    // The hub may answer (413) and close before the whole body is written; the answer is what counts.
    req.on('error', reject);
    if (chunked) for (const chunk of options.body as string[]) req.write(chunk);
    else if (typeof options.body === 'string') req.write(options.body);
    req.end();
  });
}

/** Writes raw bytes on a new TCP connection and resolves with everything the hub answers until it closes. */
export function sendRaw(hubOrigin: string, bytes: string): Promise<string> {
  const { hostname, port } = new URL(hubOrigin);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => socket.end(bytes));
    let out = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (out += chunk));
    socket.on('close', () => resolve(out));
    socket.on('error', reject);
  });
}

/** The value of one sample of `/metrics` (`labels` as written in the exposition, e.g. `{reason="token-expired"}`); 0 when absent. */
export async function metric(hub: TestHub, name: string, labels = ''): Promise<number> {
  const text = await (await fetch(`${hub.url}/metrics`)).text();
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const space = line.lastIndexOf(' ');
    const series = line.slice(0, space);
    if (series === `${name}${labels}`) return Number(line.slice(space + 1));
    // prom-client orders labels as they were declared; accept a subset match for convenience.
    if (labels !== '' && series.startsWith(`${name}{`) && labels.slice(1, -1).split(',').every((l) => series.includes(l))) return Number(line.slice(space + 1));
  }
  return 0;
}

/** Resolves once the metric reads `value` (metrics of ended streams are counted when the server notices the end). */
export async function metricReaches(hub: TestHub, name: string, labels: string, value: number): Promise<void> {
  while ((await metric(hub, name, labels)) !== value) await new Promise((resolve) => setTimeout(resolve, 10));
}

let sentinels = 0;

/**
 * IDs of every update history holds, oldest first, as a subscriber resuming from `earliest`
 * (with a token that may read private updates too) receives them. A sentinel update is
 * published last so the read knows where history ends; it is not in the result.
 */
export async function storedIds(hub: TestHub): Promise<string[]> {
  const sub = await openSse(`${hub.hubUrl}?topic=*&lastEventID=earliest`, { authorization: `Bearer ${hub.adminToken}` });
  try {
    assert.equal(sub.status, 200);
    const sentinel = `sentinel-${++sentinels}-${Date.now()}`;
    const res = await hub.publish({ topic: 'urn:test:sentinel', id: sentinel, data: '' });
    assert.equal(res.status, 200, `the sentinel publish failed: ${res.body}`);
    await sub.until((r) => r.events.some((e) => e.lastEventId === sentinel), 'the sentinel update');
    return sub.events.map((e) => e.lastEventId).filter((id) => id !== sentinel);
  } finally {
    sub.close();
  }
}

/**
 * Asserts that a rejected request stored nothing: the published counter still reads
 * `published` and history holds exactly `ids`.
 */
export async function assertNothingStored(hub: TestHub, published = 0, ids: string[] = []): Promise<void> {
  assert.equal(await metric(hub, 'ssehub_updates_published_total'), published, 'ssehub_updates_published_total moved');
  assert.deepEqual(await storedIds(hub), ids, 'history changed');
}
