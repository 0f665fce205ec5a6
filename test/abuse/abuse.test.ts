// Abuse suite (issue 9 item 3): hostile input against a real in-process hub. Each attack must get
// its precise 4xx (or a closed socket), store nothing, leave the hub ready, and be counted in
// ssehub_requests_rejected_total{status,reason}. Loops and waits are bounded; no timing assertions.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { type Socket, connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { SignJWT, base64url } from 'jose';
import { type TestHub, TEST_KEY, startTestHub } from '../helpers/hub.js';
import { assertNothingStored, metric, send, sendRaw, storedIds } from '../helpers/hub-probes.js';
import { subscribeUrl } from '../helpers/hub-streams.js';
import { type SseRecorder, openSse } from '../helpers/sse-client.js';

const REJECTED = 'ssehub_requests_rejected_total';
const PUBLISHED = 'ssehub_updates_published_total';

function rejected(hub: TestHub, status: number, reason: string): Promise<number> {
  return metric(hub, REJECTED, `{status="${status}",reason="${reason}"}`);
}

async function assertReady(hub: TestHub): Promise<void> {
  const res = await fetch(`${hub.url}/readyz`);
  assert.equal(res.status, 200, `/readyz answered ${res.status}: ${await res.text()}`);
}

/** Runs `attack`, then checks the counter moved by exactly one, nothing was stored and the hub is ready. */
async function expectRejected(hub: TestHub, status: number, reason: string, attack: () => Promise<void>, ids: string[] = []): Promise<void> {
  const before = await rejected(hub, status, reason);
  const published = await metric(hub, PUBLISHED);
  await attack();
  assert.equal(await rejected(hub, status, reason), before + 1, `${REJECTED}{status="${status}",reason="${reason}"} did not move by one`);
  await assertNothingStoredSince(hub, published, ids);
  await assertReady(hub);
}

/**
 * assertNothingStored for a hub probed before: the published counter did not move since it read
 * `published`, and history holds exactly `ids` besides the sentinels earlier probes left there.
 */
async function assertNothingStoredSince(hub: TestHub, published: number, ids: string[]): Promise<void> {
  assert.equal(await metric(hub, PUBLISHED), published, `${PUBLISHED} moved`);
  assert.deepEqual(await history(hub), ids, 'history changed');
}

/** IDs in history, without the probes' sentinels. */
async function history(hub: TestHub): Promise<string[]> {
  return (await storedIds(hub)).filter((id) => !id.startsWith('sentinel-'));
}

const b64json = (value: unknown) => base64url.encode(JSON.stringify(value));
const ADMIN_CLAIMS = { mercure: { publish: ['*'], subscribe: ['*'] } };

async function hs256(secret: string, payload: Record<string, unknown>, edit: (jwt: SignJWT) => SignJWT = (j) => j): Promise<string> {
  return edit(new SignJWT(payload).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).setIssuedAt()).sign(new TextEncoder().encode(secret));
}

/** Publishes with `token` and subscribes with it: both must be refused with 401 and `reason`. */
async function refusedBothWays(hub: TestHub, token: string, reason: string, messagePart: RegExp): Promise<void> {
  await expectRejected(hub, 401, reason, async () => {
    const res = await hub.publish({ topic: 'urn:abuse:jwt', id: `forged-${reason}-${Math.random()}`, data: 'x' }, token);
    assert.equal(res.status, 401, res.body);
    assert.match(res.body, messagePart);
    assert.match(res.headers.get('www-authenticate') ?? '', /error="invalid_token"/);
  });
  await expectRejected(hub, 401, reason, async () => {
    const res = await send(subscribeUrl(hub.hubUrl, ['*']), { headers: { authorization: `Bearer ${token}` } });
    assert.equal(res.status, 401, res.body);
    assert.match(res.body, messagePart);
  });
}

describe('abuse: JWT attacks (HS256 hub)', () => {
  let hub: TestHub;
  before(async () => (hub = await startTestHub()));
  after(() => hub.close());

  it('control: a token built like the forgeries below but genuine passes verification', async () => {
    const good = await hs256(TEST_KEY, ADMIN_CLAIMS);
    // A reserved topic makes it refused after verification (403), so nothing is stored.
    const res = await hub.publish({ topic: '/.well-known/mercure/x' }, good);
    assert.equal(res.status, 403, res.body);
    await assertNothingStored(hub);
  });

  it('alg: none is refused (401 invalid-token)', async () => {
    const token = `${b64json({ alg: 'none', typ: 'JWT' })}.${b64json(ADMIN_CLAIMS)}.`;
    await refusedBothWays(hub, token, 'invalid-token', /invalid (publisher|subscriber) token/);
  });

  it('alg: none with the configured key in the signature slot is refused', async () => {
    const token = `${b64json({ alg: 'none' })}.${b64json(ADMIN_CLAIMS)}.${base64url.encode(TEST_KEY)}`;
    await refusedBothWays(hub, token, 'invalid-token', /invalid (publisher|subscriber) token/);
  });

  it('an expired token is refused', async () => {
    const token = await hs256(TEST_KEY, ADMIN_CLAIMS, (j) => j.setExpirationTime(Math.floor(Date.now() / 1000) - 3600));
    await refusedBothWays(hub, token, 'invalid-token', /expired/);
  });

  it('a not-yet-valid token (nbf in the future) is refused', async () => {
    const token = await hs256(TEST_KEY, ADMIN_CLAIMS, (j) => j.setNotBefore(Math.floor(Date.now() / 1000) + 3600));
    await refusedBothWays(hub, token, 'invalid-token', /"nbf"/);
  });

  it('a token signed with another key is refused', async () => {
    const token = await hs256(`${TEST_KEY}-but-not-quite`, ADMIN_CLAIMS);
    await refusedBothWays(hub, token, 'invalid-token', /signature/);
  });

  it('a token with a tampered payload (signature of another payload) is refused', async () => {
    const genuine = await hs256(TEST_KEY, { mercure: { publish: [], subscribe: [] } });
    const [head, , sig] = genuine.split('.');
    await refusedBothWays(hub, `${head}.${b64json(ADMIN_CLAIMS)}.${sig}`, 'invalid-token', /signature/);
  });

  it('an oversized token (> 16 KiB) is refused before verification', async () => {
    const token = await hs256(TEST_KEY, { mercure: { publish: ['*'], subscribe: ['*'], payload: 'x'.repeat(17 * 1024) } });
    assert.ok(token.length > 16 * 1024);
    await refusedBothWays(hub, token, 'invalid-token', /longer than 16384/);
  });

  it('claims of the wrong type are refused (401 invalid-claim)', async () => {
    await refusedBothWays(hub, await hs256(TEST_KEY, { mercure: { publish: '*', subscribe: '*' } }), 'invalid-claim', /must be an array of strings/);
    await refusedBothWays(hub, await hs256(TEST_KEY, { mercure: ['publish', '*'] }), 'invalid-claim', /"mercure" must be an object/);
    await refusedBothWays(hub, await hs256(TEST_KEY, { mercure: { publish: [1, 2], subscribe: [{}] } }), 'invalid-claim', /must be an array of strings/);
  });
});

describe('abuse: HS/RS key confusion (RS256 hub)', () => {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const publicPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  let hub: TestHub;
  before(async () => {
    const running = await startTestHub(['--jwt-alg', 'RS256', '--jwt-key', publicPem]);
    const adminToken = await new SignJWT(ADMIN_CLAIMS).setProtectedHeader({ alg: 'RS256', typ: 'JWT' }).setIssuedAt().sign(privateKey);
    // The probes (storedIds, assertNothingStored) publish and read with hub.adminToken: make it an RS256 one.
    hub = { ...running, adminToken, publish: (fields, token = adminToken, headers) => running.publish(fields, token, headers) };
  });
  after(() => hub.close());

  it('control: a genuine RS256 token publishes', async () => {
    const res = await hub.publish({ topic: 'urn:abuse:rs', id: 'rs-genuine', data: 'ok' });
    assert.equal(res.status, 200, res.body);
    assert.deepEqual(await history(hub), ['rs-genuine']);
  });

  it('an HS256 token signed with the public key PEM as the HMAC secret is refused', async () => {
    const forged = await new SignJWT(ADMIN_CLAIMS).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).setIssuedAt().sign(new TextEncoder().encode(publicPem));
    await expectRejected(
      hub,
      401,
      'invalid-token',
      async () => {
        const res = await hub.publish({ topic: 'urn:abuse:rs', id: 'confused', data: 'x' }, forged);
        assert.equal(res.status, 401, res.body);
        assert.match(res.body, /algorithm is not the configured one/);
      },
      ['rs-genuine'],
    );
    await expectRejected(
      hub,
      401,
      'invalid-token',
      async () => {
        const res = await send(subscribeUrl(hub.hubUrl, ['*']), { headers: { authorization: `Bearer ${forged}` } });
        assert.equal(res.status, 401, res.body);
      },
      ['rs-genuine'],
    );
  });
});

describe('abuse: SSE and header injection, sizes, topics', () => {
  let hub: TestHub;
  before(async () => (hub = await startTestHub(['--max-body', '64kb'])));
  after(() => hub.close());

  for (const [name, char] of [
    ['CR', '\r'],
    ['LF', '\n'],
    ['CRLF', '\r\n'],
    ['NUL', '\0'],
  ] as const) {
    it(`an id containing ${name} is refused (400 invalid-id)`, async () => {
      await expectRejected(hub, 400, 'invalid-id', async () => {
        const res = await hub.publish({ topic: 'urn:abuse:inj', id: `a${char}event: evil${char}data: injected`, data: 'x' });
        assert.equal(res.status, 400, res.body);
      });
    });
    it(`a type containing ${name} is refused (400 invalid-type)`, async () => {
      await expectRejected(hub, 400, 'invalid-type', async () => {
        const res = await hub.publish({ topic: 'urn:abuse:inj', type: `message${char}id: evil${char}data: injected`, data: 'x' });
        assert.equal(res.status, 400, res.body);
      });
    });
  }

  it('data with CR/LF is split into data lines: a subscriber sees no injected field', async () => {
    const sub = await openSse(subscribeUrl(hub.hubUrl, ['urn:abuse:data']), { authorization: `Bearer ${hub.adminToken}` });
    try {
      assert.equal(sub.status, 200);
      const data = 'hello\nid: injected\r\nevent: evil\rretry: 1\n\ndata: after-blank';
      const res = await hub.publish({ topic: 'urn:abuse:data', id: 'data-injection', data });
      assert.equal(res.status, 200, res.body);
      await sub.until((r) => r.events.some((e) => e.lastEventId === 'data-injection'), 'the data-injection event');
      const event = sub.events.find((e) => e.lastEventId === 'data-injection');
      assert.equal(event?.type, 'message');
      assert.equal(event?.data, data.replace(/\r\n|\r/g, '\n'));
      assert.ok(!sub.retries.includes(1), 'a retry: 1 field was injected');
      const lines = sub.text.split(/\r\n|\r|\n/);
      assert.ok(!lines.some((l) => /^id: injected|^event: evil|^retry: 1$/.test(l)), `injected field on the wire:\n${sub.text}`);
      assert.ok(lines.includes('data: id: injected') && lines.includes('data: event: evil') && lines.includes('data: '), `data lines not prefixed:\n${sub.text}`);
    } finally {
      sub.close();
    }
    // Clean history for the next tests' "nothing stored" checks: this legitimate update stays.
    assert.deepEqual(await history(hub), ['data-injection']);
  });

  it('a Last-Event-ID with bare CR / NUL in a header (raw socket) is refused by the parser (400, closed)', async () => {
    const stored = ['data-injection'];
    for (const evil of ['abc\rset-cookie: pwned=1', 'abc\0set-cookie: pwned=1']) {
      await expectRejected(
        hub,
        400,
        'bad-request',
        async () => {
          const { pathname, search } = new URL(subscribeUrl(hub.hubUrl, ['*']));
          const out = await sendRaw(hub.url, `GET ${pathname}${search} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${hub.adminToken}\r\nLast-Event-ID: ${evil}\r\n\r\n`);
          assert.match(out, /^HTTP\/1\.1 400 /, JSON.stringify(out));
          assert.doesNotMatch(out, /pwned/i);
        },
        stored,
      );
    }
  });

  it('a Last-Event-ID with CR/LF (query parameter) is never echoed with control characters', async () => {
    const evil = 'nope\r\nset-cookie: pwned=1\r\n\r\nid: injected';
    const published = await metric(hub, PUBLISHED);
    const { pathname, search } = new URL(subscribeUrl(hub.hubUrl, ['urn:abuse:data'], { lastEventID: evil }));
    const raw = connect(Number(new URL(hub.url).port), '127.0.0.1');
    let out = '';
    raw.setEncoding('utf8');
    raw.on('data', (chunk: string) => (out += chunk));
    raw.write(`GET ${pathname}${search} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${hub.adminToken}\r\nAccept: text/event-stream\r\n\r\n`);
    try {
      // Bounded by the test runner's timeout: the resync event arrives at once.
      while (!out.includes('\n\n', out.indexOf('\r\n\r\n') + 4) && !raw.destroyed) await new Promise((r) => setTimeout(r, 10));
      const [head = '', body = ''] = out.split('\r\n\r\n');
      assert.match(head, /^HTTP\/1\.1 200 /);
      assert.doesNotMatch(head, /pwned/i, 'the Last-Event-ID was echoed into the response head');
      assert.match(head, /\r\nlast-event-id: earliest\r\n/i);
      const lines = body.split(/\r\n|\r|\n/);
      assert.ok(!lines.some((l) => /^id: injected|^set-cookie/i.test(l)), `injected on the wire:\n${body}`);
      assert.ok(lines.some((l) => l.startsWith('event: ') && l.includes('resync')) || body.includes('resync'), `no resync event:\n${body}`);
    } finally {
      raw.destroy();
    }
    await assertNothingStoredSince(hub, published, ['data-injection']);
    await assertReady(hub);
  });

  it('a stored id with non-ASCII text is echoed without control characters', async () => {
    const res = await hub.publish({ topic: 'urn:abuse:data', id: 'é-ü\u2028', data: 'x' });
    assert.equal(res.status, 200, res.body);
    const sub = await openSse(subscribeUrl(hub.hubUrl, ['urn:abuse:data']), { authorization: `Bearer ${hub.adminToken}`, 'last-event-id': 'data-injection' });
    sub.close();
    assert.equal(sub.status, 200);
    const echoed = String(sub.headers['last-event-id']);
    // eslint-disable-next-line no-control-regex
    assert.doesNotMatch(echoed, /[\x00-\x1f\x7f]/);
    assert.equal(echoed, 'data-injection');
  });

  it('an oversized body gets 413 (Content-Length, and chunked), nothing stored', async () => {
    const ids = await history(hub);
    const big = new URLSearchParams({ topic: 'urn:abuse:big', id: 'big', data: 'x'.repeat(70 * 1024) }).toString();
    const headers = { authorization: `Bearer ${hub.adminToken}`, 'content-type': 'application/x-www-form-urlencoded' };
    await expectRejected(
      hub,
      413,
      'body-too-large',
      async () => {
        const res = await send(hub.hubUrl, { method: 'POST', headers, body: big });
        assert.equal(res.status, 413, res.body);
      },
      ids,
    );
    await expectRejected(
      hub,
      413,
      'body-too-large',
      async () => {
        const chunks = Array.from({ length: 10 }, (_, i) => big.slice(i * 8 * 1024, (i + 1) * 8 * 1024)).filter((c) => c !== '');
        const res = await send(hub.hubUrl, { method: 'POST', headers, body: chunks });
        assert.equal(res.status, 413, res.body);
      },
      ids,
    );
  });

  it('an oversized query string gets 414 (431 past the head limit), nothing stored', async () => {
    const ids = await history(hub);
    await expectRejected(
      hub,
      414,
      'uri-too-long',
      async () => {
        const res = await send(`${hub.hubUrl}?topic=urn:a&pad=${'a'.repeat(70 * 1024)}`, { headers: { authorization: `Bearer ${hub.adminToken}` } });
        assert.equal(res.status, 414, res.body);
      },
      ids,
    );
    await expectRejected(
      hub,
      414,
      'uri-too-long',
      async () => {
        const res = await send(`${hub.hubUrl}?pad=${'a'.repeat(70 * 1024)}`, { method: 'POST', headers: { authorization: `Bearer ${hub.adminToken}`, 'content-type': 'application/x-www-form-urlencoded' }, body: 'topic=urn:abuse:q&id=q414' });
        assert.equal(res.status, 414, res.body);
      },
      ids,
    );
    await expectRejected(
      hub,
      431,
      'headers-too-large',
      async () => {
        const out = await sendRaw(hub.url, `GET ${new URL(hub.hubUrl).pathname}?topic=urn:a&pad=${'a'.repeat(100 * 1024)} HTTP/1.1\r\nHost: x\r\n\r\n`);
        assert.match(out, /^HTTP\/1\.1 431 /);
      },
      ids,
    );
  });

  it('1,001 topics are refused (400 too-many-topics) for publish and subscribe', async () => {
    const ids = await history(hub);
    const topics = Array.from({ length: 1001 }, (_, i) => `urn:t:${i}`);
    await expectRejected(
      hub,
      400,
      'too-many-topics',
      async () => {
        const res = await hub.publish({ topic: topics, id: 'many', data: 'x' });
        assert.equal(res.status, 400, res.body);
      },
      ids,
    );
    await expectRejected(
      hub,
      400,
      'too-many-topics',
      async () => {
        const res = await send(subscribeUrl(hub.hubUrl, topics), { headers: { authorization: `Bearer ${hub.adminToken}` } });
        assert.equal(res.status, 400, res.body);
      },
      ids,
    );
    // Control: 1,000 is accepted.
    const ok = await hub.publish({ topic: topics.slice(0, 1000), id: 'thousand', data: 'x' });
    assert.equal(ok.status, 200, ok.body);
  });
});

/** A raw connection; the test destroys it. */
function rawSocket(hub: TestHub): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(Number(new URL(hub.url).port), '127.0.0.1', () => resolve(socket));
    socket.once('error', reject);
    socket.on('error', () => {});
  });
}

/** Publishes one update and resolves once `sub` has it: the hub serves clients end to end. */
async function serves(hub: TestHub, id: string): Promise<void> {
  await assertReady(hub);
  const sub = await openSse(subscribeUrl(hub.hubUrl, ['urn:abuse:alive']), { authorization: `Bearer ${hub.adminToken}` });
  try {
    assert.equal(sub.status, 200);
    const res = await hub.publish({ topic: 'urn:abuse:alive', id, data: 'alive' });
    assert.equal(res.status, 200, res.body);
    await sub.until((r) => r.events.some((e) => e.lastEventId === id), `update ${id}`);
  } finally {
    sub.close();
  }
}

/** Everything the hub sends on `socket` until it closes it. */
function answerOf(socket: Socket): Promise<string> {
  return new Promise((resolve) => {
    let out = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (out += chunk));
    socket.on('close', () => resolve(out));
  });
}

describe('abuse: slowloris and half-open requests (--request-timeout 1s)', () => {
  let hub: TestHub;
  before(async () => (hub = await startTestHub(['--request-timeout', '1s'])));
  after(() => hub.close());

  it('clients sending their head one byte at a time get 408 and are closed at the timeout, while others are served', async () => {
    // Far longer than can arrive in time at one byte every 20 ms.
    const head = `GET /readyz HTTP/1.1\r\nHost: x\r\nX-Pad: ${'a'.repeat(4000)}\r\n\r\n`;
    const before = await rejected(hub, 408, 'request-timeout');
    const published = await metric(hub, PUBLISHED);
    const sockets = await Promise.all(Array.from({ length: 5 }, () => rawSocket(hub)));
    const answers = sockets.map(answerOf);
    let served = 0;
    try {
      // Bounded: the head never completes; the hub must close the sockets long before it would.
      for (let i = 0; i < head.length && sockets.some((s) => !s.destroyed && s.writable); i++) {
        for (const s of sockets) if (s.writable) s.write(head[i] as string);
        await new Promise((r) => setTimeout(r, 20));
        if (i % 10 === 0) {
          await serves(hub, `slowloris-${i}`);
          served++;
        }
      }
      const got = await Promise.all(answers);
      for (const out of got) assert.match(out, /^HTTP\/1\.1 408 Request Timeout\r\n/, `answer: ${JSON.stringify(out.slice(0, 80))}`);
    } finally {
      for (const s of sockets) s.destroy();
    }
    assert.ok(served >= 2, `served ${served} other clients meanwhile`);
    assert.equal(await rejected(hub, 408, 'request-timeout'), before + 5);
    // Only the probes' own publishes were stored.
    assert.equal(await metric(hub, PUBLISHED), published + served);
    assert.deepEqual((await history(hub)).filter((id) => !id.startsWith('slowloris-')), []);
    await assertReady(hub);
  });

  it('a head that came in time but waited unread while the event loop was busy is served, not answered 408', async () => {
    const before = await rejected(hub, 408, 'request-timeout');
    const accepted = new Promise<void>((resolve) => hub.server.once('connection', () => resolve()));
    const socket = await rawSocket(hub);
    const answer = answerOf(socket);
    await accepted;
    // The whole head reaches the hub's socket at once; then the event loop (this process's, the
    // hub's) is held for longer than the 1 s timeout, as a worker taking a storm may be. When it
    // turns again, Node's request timer runs before the loop reads the socket.
    socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1600);
    assert.match(await answer, /^HTTP\/1\.1 200 OK\r\n/);
    assert.equal(await rejected(hub, 408, 'request-timeout'), before);
  });

  it('a stream, and a keep-alive connection idle between requests, outlive the request timeout', async () => {
    const sub = await openSse(subscribeUrl(hub.hubUrl, ['urn:abuse:long']), { authorization: `Bearer ${hub.adminToken}` });
    const idle = await rawSocket(hub);
    const answers = answerOf(idle);
    try {
      idle.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
      // Three timeouts long: neither may be cut.
      await new Promise((r) => setTimeout(r, 3000));
      idle.end('GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
      const res = await hub.publish({ topic: 'urn:abuse:long', id: 'long-1', data: 'x' });
      assert.equal(res.status, 200, res.body);
      await sub.until((r) => r.events.some((e) => e.lastEventId === 'long-1'), 'the update on the 3 s old stream');
      assert.ok(!sub.ended, 'the stream is still open');
      assert.deepEqual((await answers).match(/HTTP\/1\.1 \d{3}/g), ['HTTP/1.1 200', 'HTTP/1.1 200']);
    } finally {
      sub.close();
      idle.destroy();
    }
  });

  it('200 half-open requests (heads and publish bodies never finished): others are served, then each gets 408 and nothing is stored', async () => {
    const before = await rejected(hub, 408, 'request-timeout');
    const sockets: Socket[] = [];
    const answers: Promise<string>[] = [];
    try {
      for (let i = 0; i < 200; i++) {
        const s = await rawSocket(hub);
        answers.push(answerOf(s));
        s.write(i % 2 === 0 ? 'GET /readyz HTTP/1.1\r\nHost: x\r\n' : `POST /.well-known/mercure HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\nContent-Type: application/x-www-form-urlencoded\r\nAuthorization: Bearer ${hub.adminToken}\r\n\r\ntopic=urn:abuse:half&id=half-${i}&da`);
        sockets.push(s);
      }
      await serves(hub, 'after-half-open');
      const got = await Promise.all(answers);
      const not408 = got.filter((out) => !out.startsWith('HTTP/1.1 408 Request Timeout\r\n'));
      assert.deepEqual(not408, [], 'every half-open request is answered 408 and closed');
    } finally {
      for (const s of sockets) s.destroy();
    }
    // One count per request: a publish cut in its body is not counted again as an aborted body.
    assert.equal(await rejected(hub, 408, 'request-timeout'), before + 200);
    assert.equal(await rejected(hub, 400, 'bad-body'), 0);
    const ids = await history(hub);
    assert.ok(!ids.some((id) => id.startsWith('half-')), `a half-open publish was stored: ${ids.join(',')}`);
    await assertReady(hub);
  });
});

describe('abuse: request smuggling (raw sockets)', () => {
  let hub: TestHub;
  before(async () => (hub = await startTestHub()));
  after(() => hub.close());

  function smuggled(hub: TestHub, id: string): string {
    const body = `topic=urn:abuse:smuggled&id=${id}&data=x`;
    return `POST /.well-known/mercure HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${hub.adminToken}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
  }

  const variants: [string, (inner: string) => string][] = [
    ['Content-Length and Transfer-Encoding: chunked', (inner) => `POST /.well-known/mercure HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${inner}`],
    ['Transfer-Encoding: chunked, identity', (inner) => `POST /.well-known/mercure HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n${inner}`],
    ['Transfer-Encoding: xchunked with Content-Length', (inner) => `POST /.well-known/mercure HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n${inner}`],
    ['Transfer-Encoding with a space before the colon', (inner) => `POST /.well-known/mercure HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n${inner}`],
    ['two Content-Length headers that differ', (inner) => `POST /.well-known/mercure HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: ${inner.length}\r\n\r\n${inner}`],
    ['Transfer-Encoding: chunked twice, Content-Length', (inner) => `POST /.well-known/mercure HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n${inner}`],
  ];

  for (const [name, build] of variants) {
    it(`${name}: 400 and closed, the smuggled publish is not processed`, async () => {
      const id = `smuggled-${name.replace(/\W+/g, '-')}`;
      await expectRejected(hub, 400, 'bad-request', async () => {
        const out = await sendRaw(hub.url, build(smuggled(hub, id)));
        const statuses = out.match(/HTTP\/1\.1 \d{3}/g) ?? [];
        assert.deepEqual(statuses, ['HTTP/1.1 400'], `answers: ${JSON.stringify(out)}`);
        assert.ok(!out.includes(id));
      });
    });
  }
});

describe('abuse: per-address connection cap', () => {
  let hub: TestHub;
  before(async () => (hub = await startTestHub(['--max-connections-per-ip', '3'])));
  after(() => hub.close());

  it('the 4th stream from one address gets 429 with Retry-After; a closed slot is given back', async () => {
    const streams: SseRecorder[] = [];
    try {
      for (let i = 0; i < 3; i++) {
        const sub = await openSse(subscribeUrl(hub.hubUrl, ['urn:abuse:cap']), { authorization: `Bearer ${hub.adminToken}` });
        streams.push(sub);
        assert.equal(sub.status, 200);
      }
      const before = await rejected(hub, 429, 'too-many-connections');
      const fourth = await send(subscribeUrl(hub.hubUrl, ['urn:abuse:cap']), { headers: { authorization: `Bearer ${hub.adminToken}` } });
      assert.equal(fourth.status, 429, fourth.body);
      assert.ok(Number(fourth.headers['retry-after']) >= 1, `Retry-After: ${String(fourth.headers['retry-after'])}`);
      assert.equal(await rejected(hub, 429, 'too-many-connections'), before + 1);
      await assertReady(hub);
      // Close one: the slot comes back (bounded by the test timeout).
      streams.shift()?.close();
      let again: SseRecorder | undefined;
      for (let attempt = 0; attempt < 200; attempt++) {
        const sub = await openSse(subscribeUrl(hub.hubUrl, ['urn:abuse:cap']), { authorization: `Bearer ${hub.adminToken}` });
        if (sub.status === 200) {
          again = sub;
          break;
        }
        sub.close();
        await new Promise((r) => setTimeout(r, 10));
      }
      assert.ok(again !== undefined, 'the closed slot never came back');
      streams.push(again);
    } finally {
      for (const s of streams) s.close();
    }
    // Streams are closed: the probe's own subscriber fits again.
    for (let attempt = 0; attempt < 200 && (await metric(hub, 'ssehub_connections')) > 0; attempt++) await new Promise((r) => setTimeout(r, 10));
    await assertNothingStored(hub);
  });
});

describe('abuse: publish rate limit', () => {
  let hub: TestHub;
  before(async () => (hub = await startTestHub(['--publish-rate', '5'])));
  after(() => hub.close());

  it('a burst over the rate gets 429 with Retry-After, and only accepted publishes are stored', async () => {
    // A subject of its own, so the probes' publishes (keyed by address) have their own bucket.
    const token = await hub.token({ publish: ['*'], subject: 'flooder' });
    const before = await rejected(hub, 429, 'rate-limited');
    const results = await Promise.all(Array.from({ length: 25 }, (_, i) => hub.publish({ topic: 'urn:abuse:rate', id: `rate-${i}`, data: 'x' }, token).then((r) => ({ ...r, id: `rate-${i}` }))));
    const accepted = results.filter((r) => r.status === 200);
    const limited = results.filter((r) => r.status === 429);
    assert.equal(accepted.length + limited.length, results.length, `unexpected statuses: ${results.map((r) => r.status).join(',')}`);
    assert.ok(limited.length > 0, 'no publish was rate limited');
    assert.ok(accepted.length >= 5, `only ${accepted.length} accepted`);
    for (const r of limited) assert.ok(Number(r.headers.get('retry-after')) >= 1, `Retry-After: ${r.headers.get('retry-after')}`);
    assert.equal(await rejected(hub, 429, 'rate-limited'), before + limited.length);
    assert.equal(await metric(hub, PUBLISHED), accepted.length);
    assert.deepEqual((await history(hub)).sort(), accepted.map((r) => r.id).sort());
    await assertReady(hub);
  });
});
