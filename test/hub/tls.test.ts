// HTTPS and HTTP/2 (`--tls-cert` / `--tls-key`): ALPN offers h2 with an HTTP/1.1 fallback, the
// hub's routes work over both, many SSE streams share one HTTP/2 connection, a refused body resets
// only its own stream, resume and graceful shutdown work over HTTP/2, and a bad certificate or key
// is refused at start-up naming the setting. Real TLS on loopback with a throw-away certificate that
// the clients trust as their CA (no certificate checks are turned off).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import type { ClientHttp2Session } from 'node:http2';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ConfigError, loadConfig } from '../../src/hub/index.js';
import { HUB_PATH, TEST_KEY, type TestHub, startTestHub } from '../helpers/hub.js';
import { Cleanups, subscribeUrl } from '../helpers/hub-streams.js';
import type { SseRecorder } from '../helpers/sse-client.js';
import { type TestCertificate, h2Publish, h2Request, h2Session, h2Sse, https1Publish, https1Request, https1Sse, makeCertificate } from '../helpers/tls.js';

const T = { timeout: 20_000 };
const TOPIC = 'https://example.com/books/1';
const cli = new URL('../../dist/cli.js', import.meta.url).pathname;

/** Path and query of a subscription to `topics` (for an HTTP/2 `:path`). */
function subscribePath(topics: string[], extra: Record<string, string> = {}): string {
  const url = new URL(subscribeUrl(`https://h${HUB_PATH}`, topics, extra));
  return `${url.pathname}${url.search}`;
}

/** Resolves when `promise` does, or fails naming `what` after `ms` (a safety net against a hang, not a timing assertion). */
async function within<V>(promise: Promise<V>, ms: number, what: string): Promise<V> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Waits until `sub` has an event with this id and returns its data. */
async function eventData(sub: SseRecorder, id: string): Promise<string> {
  await sub.until((r) => r.events.some((e) => e.lastEventId === id), `the update ${id}`);
  return sub.events.find((e) => e.lastEventId === id)?.data ?? '';
}

describe('the hub over HTTPS with HTTP/2', () => {
  const cleanups = new Cleanups();
  let certificate: TestCertificate;
  before(() => {
    certificate = makeCertificate();
  });
  after(async () => {
    await cleanups.run();
    rmSync(certificate.dir, { recursive: true, force: true });
  });

  /**
   * A hub on TLS with `flags`, closed after the suite. A short drain window: the drain's batch timers
   * outlive streams that closed by themselves, and would keep this process alive for the whole window.
   */
  async function tlsHub(flags: string[] = []): Promise<TestHub> {
    const hub = await startTestHub(['--tls-cert', certificate.certPath, '--tls-key', certificate.keyPath, '--drain-timeout', '100ms', ...flags]);
    cleanups.add(hub, (h) => h.close());
    return hub;
  }
  /** An HTTP/2 session to `hub`, destroyed after the suite. */
  async function session(hub: TestHub): Promise<ClientHttp2Session> {
    return cleanups.add(await h2Session(hub.url, certificate.cert), (s) => s.destroy());
  }

  it('negotiates h2 by ALPN, and HTTP/1.1 with a client that offers only that; /healthz answers over both', T, async () => {
    const hub = await tlsHub();
    assert.match(hub.url, /^https:\/\/127\.0\.0\.1:\d+$/);

    const h2 = await session(hub);
    assert.equal(h2.alpnProtocol, 'h2');
    const viaH2 = await h2Request(h2, { ':path': '/healthz' });
    assert.equal(viaH2.status, 200);
    assert.equal(viaH2.body, 'ok\n');

    const viaH1 = await https1Request(`${hub.url}/healthz`, certificate.cert);
    assert.equal(viaH1.alpnProtocol, 'http/1.1');
    assert.equal(viaH1.httpVersion, '1.1');
    assert.equal(viaH1.status, 200);
    assert.equal(viaH1.body, 'ok\n');
  });

  it('streams over HTTP/2 (no connection header, no compression) and delivers updates published over HTTP/2 and over HTTP/1.1', T, async () => {
    const hub = await tlsHub();
    const h2 = await session(hub);
    const sub = cleanups.add(await h2Sse(h2, subscribePath([TOPIC]), { authorization: `Bearer ${hub.adminToken}`, 'accept-encoding': 'gzip, deflate, br' }), (s) => s.close());
    assert.equal(sub.status, 200);
    assert.match(String(sub.headers['content-type']), /^text\/event-stream/);
    assert.equal(sub.headers.connection, undefined, 'HTTP/2 forbids the connection header');
    assert.equal(sub.headers['content-encoding'], undefined, 'an event stream is never compressed');
    await sub.until((r) => r.comments.length > 0, 'the first comment');
    assert.equal(sub.comments[0]?.trim(), 'ok');
    assert.equal(sub.events.length, 0);

    const first = await h2Publish(h2, HUB_PATH, { topic: TOPIC, data: 'over h2' }, hub.adminToken);
    assert.equal(first.status, 200, first.body);
    assert.equal(await eventData(sub, first.body), 'over h2');

    const second = await https1Publish(hub.hubUrl, certificate.cert, { topic: TOPIC, data: 'over http/1.1' }, hub.adminToken);
    assert.equal(second.alpnProtocol, 'http/1.1');
    assert.equal(second.status, 200, second.body);
    assert.equal(await eventData(sub, second.body), 'over http/1.1');
    assert.deepEqual(
      sub.events.map((e) => e.data),
      ['over h2', 'over http/1.1'],
    );
  });

  it('serves an SSE stream over HTTP/1.1 with TLS too', T, async () => {
    const hub = await tlsHub();
    const sub = cleanups.add(await https1Sse(subscribeUrl(hub.hubUrl, [TOPIC]), certificate.cert, { authorization: `Bearer ${hub.adminToken}` }), (s) => s.close());
    assert.equal(sub.status, 200);
    assert.match(String(sub.headers['content-type']), /^text\/event-stream/);
    await sub.until((r) => r.comments.length > 0, 'the first comment');
    const res = await https1Publish(hub.hubUrl, certificate.cert, { topic: TOPIC, data: 'tls http/1.1' }, hub.adminToken);
    assert.equal(res.status, 200, res.body);
    assert.equal(await eventData(sub, res.body), 'tls http/1.1');
  });

  it('multiplexes 10 streams on one HTTP/2 connection, and all of them receive the update', T, async () => {
    const hub = await tlsHub();
    let connections = 0;
    hub.server.on('secureConnection', () => connections++);
    const h2 = await session(hub);
    const subs: SseRecorder[] = [];
    for (let i = 0; i < 10; i++) subs.push(cleanups.add(await h2Sse(h2, subscribePath([TOPIC]), { authorization: `Bearer ${hub.adminToken}` }), (s) => s.close()));
    await Promise.all(subs.map((s) => s.until((r) => r.comments.length > 0, 'the first comment')));
    assert.equal(hub.hub.streams.size, 10);
    assert.equal(connections, 1, 'all streams share one TLS connection');

    const res = await h2Publish(h2, HUB_PATH, { topic: TOPIC, data: 'to everyone' }, hub.adminToken);
    assert.equal(res.status, 200, res.body);
    const data = await Promise.all(subs.map((s) => eventData(s, res.body)));
    assert.deepEqual(data, Array<string>(10).fill('to everyone'));
    assert.equal(connections, 1);
  });

  it('answers 413 to a too-large body on an HTTP/2 stream and keeps the other streams of that connection open', T, async () => {
    const hub = await tlsHub(['--max-body', '1kb']);
    const h2 = await session(hub);
    const sub = cleanups.add(await h2Sse(h2, subscribePath([TOPIC]), { authorization: `Bearer ${hub.adminToken}` }), (s) => s.close());
    await sub.until((r) => r.comments.length > 0, 'the first comment');

    const big = new URLSearchParams({ topic: TOPIC, data: 'x'.repeat(4096) }).toString();
    const headers = { ':method': 'POST', ':path': HUB_PATH, authorization: `Bearer ${hub.adminToken}`, 'content-type': 'application/x-www-form-urlencoded' };
    // Refused by its declared length, and (no content-length) by counting the bytes as they come.
    const declared = await h2Request(h2, { ...headers, 'content-length': Buffer.byteLength(big) }, big);
    assert.equal(declared.status, 413, declared.body);
    assert.equal(declared.headers.connection, undefined);
    assert.match(declared.body, /the body is \d+ bytes/);
    const counted = await h2Request(h2, headers, big);
    assert.equal(counted.status, 413, counted.body);
    assert.match(counted.body, /larger than 1024 bytes/);

    assert.equal(h2.closed || h2.destroyed, false, 'the HTTP/2 connection is still open');
    assert.equal(sub.ended, false, 'the other stream on the connection is still open');
    const res = await h2Publish(h2, HUB_PATH, { topic: TOPIC, data: 'still here' }, hub.adminToken);
    assert.equal(res.status, 200, res.body);
    assert.equal(await eventData(sub, res.body), 'still here');
    assert.deepEqual(
      sub.events.map((e) => e.data),
      ['still here'],
      'nothing of the refused bodies was published',
    );
  });

  it('resumes from Last-Event-ID over HTTP/2 with the missed updates, once and in order', T, async () => {
    const hub = await tlsHub();
    const h2 = await session(hub);
    const ids: string[] = [];
    for (const data of ['one', 'two', 'three']) {
      const res = await h2Publish(h2, HUB_PATH, { topic: TOPIC, data }, hub.adminToken);
      assert.equal(res.status, 200, res.body);
      ids.push(res.body);
    }
    const sub = cleanups.add(await h2Sse(h2, subscribePath([TOPIC]), { authorization: `Bearer ${hub.adminToken}`, 'last-event-id': ids[0] as string }), (s) => s.close());
    await sub.events_(2);
    const live = await h2Publish(h2, HUB_PATH, { topic: TOPIC, data: 'four' }, hub.adminToken);
    await eventData(sub, live.body);
    assert.deepEqual(
      sub.events.map((e) => [e.lastEventId, e.data]),
      [
        [ids[1], 'two'],
        [ids[2], 'three'],
        [live.body, 'four'],
      ],
    );
  });

  it('on graceful close ends the open HTTP/2 (and HTTP/1.1) streams, closes the connection, and resolves', T, async () => {
    const hub = await startTestHub(['--tls-cert', certificate.certPath, '--tls-key', certificate.keyPath, '--drain-timeout', '200ms']);
    let closed = false;
    cleanups.add(hub, (h) => (closed ? undefined : h.close()));
    const h2 = await session(hub);
    const sessionClosed = new Promise<void>((resolve) => h2.once('close', resolve));
    const subs: SseRecorder[] = [];
    for (let i = 0; i < 3; i++) subs.push(await h2Sse(h2, subscribePath([TOPIC]), { authorization: `Bearer ${hub.adminToken}` }));
    const h1 = await https1Sse(subscribeUrl(hub.hubUrl, [TOPIC]), certificate.cert, { authorization: `Bearer ${hub.adminToken}` });
    cleanups.add(h1, (s) => s.close());
    await Promise.all([...subs, h1].map((s) => s.until((r) => r.comments.length > 0, 'the first comment')));
    assert.equal(hub.hub.streams.size, 4);

    await within(
      hub.close().then(() => (closed = true)),
      10_000,
      'hub.close()',
    );
    await within(Promise.all([...subs, h1].map((s) => s.done)), 10_000, 'the end of every stream');
    await within(sessionClosed, 10_000, 'the HTTP/2 session closing');
    assert.equal(hub.hub.streams.size, 0);
    for (const s of [...subs, h1]) assert.match(s.text, /retry: \d+\n/, 'a stream ends with a retry hint');
    assert.equal(h2.closed || h2.destroyed, true);
  });
});

describe('--tls-cert / --tls-key validation', () => {
  let a: TestCertificate;
  let b: TestCertificate;
  let missingDir: string;
  before(() => {
    a = makeCertificate();
    b = makeCertificate();
    missingDir = join(a.dir, 'a-directory');
    mkdirSync(missingDir);
  });
  after(() => {
    rmSync(a.dir, { recursive: true, force: true });
    rmSync(b.dir, { recursive: true, force: true });
  });

  const load = (argv: string[], env: NodeJS.ProcessEnv = {}) => loadConfig({ argv: ['--jwt-key', TEST_KEY, ...argv], env });

  /** Expects loading to throw a ConfigError naming `setting` (and matching `message`). */
  function refused(argv: string[], setting: string, message: RegExp, env: NodeJS.ProcessEnv = {}): void {
    let caught: unknown;
    try {
      load(argv, env);
    } catch (error) {
      caught = error;
    }
    assert.ok(caught instanceof ConfigError, `expected a ConfigError naming ${setting} for ${argv.join(' ')}, got ${String(caught)}`);
    assert.equal(caught.setting, setting, caught.message);
    assert.ok(caught.message.startsWith(`${setting}: `), caught.message);
    assert.match(caught.message, message);
  }

  it('accepts a matching pair', () => {
    const config = load(['--tls-cert', a.certPath, '--tls-key', a.keyPath]);
    assert.equal(config.tlsCert, a.certPath);
    assert.equal(config.tlsKey, a.keyPath);
    assert.equal(load([]).tlsCert, undefined);
  });

  it('needs both files', () => {
    refused(['--tls-cert', a.certPath], '--tls-cert', /--tls-key/);
    refused(['--tls-key', a.keyPath], '--tls-key', /--tls-cert/);
    refused([], 'SSEHUB_TLS_KEY', /--tls-cert/, { SSEHUB_TLS_KEY: a.keyPath });
  });

  it('refuses a file it cannot read', () => {
    refused(['--tls-cert', join(a.dir, 'no-such.pem'), '--tls-key', a.keyPath], '--tls-cert', /no-such\.pem.*ENOENT/);
    refused(['--tls-cert', a.certPath, '--tls-key', join(a.dir, 'no-such.pem')], '--tls-key', /no-such\.pem.*ENOENT/);
    refused(['--tls-cert', missingDir, '--tls-key', a.keyPath], '--tls-cert', /EISDIR/);
  });

  it('refuses a key given as the certificate, and a certificate given as the key', () => {
    refused(['--tls-cert', a.keyPath, '--tls-key', a.keyPath], '--tls-cert', /no PEM certificate/);
    refused(['--tls-cert', a.certPath, '--tls-key', a.certPath], '--tls-key', /no PEM private key/);
  });

  it('refuses a key that does not belong to the certificate', () => {
    refused(['--tls-cert', a.certPath, '--tls-key', b.keyPath], '--tls-key', /cannot be used together/);
    refused(['--tls-cert', b.certPath, '--tls-key', a.keyPath], '--tls-key', /cannot be used together/);
  });

  it('ssehub serve exits 78 naming --tls-cert when the key is missing', T, async () => {
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('SSEHUB_')));
    const child = spawn(process.execPath, [cli, 'serve', '--tls-cert', a.certPath, '--listen', '127.0.0.1:0', '--dev'], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.once('close', (c, s) => resolve([c, s])));
    clearTimeout(timer);
    assert.equal(signal, null, `the process did not exit by itself; stderr: ${stderr}`);
    assert.equal(code, 78, stderr);
    assert.match(stderr, /invalid setting --tls-cert: needs --tls-key/);
  });
});
