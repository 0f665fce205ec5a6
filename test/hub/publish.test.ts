// Publishing (SPEC §3, Mercure draft-07): what an accepted update becomes on the wire, and every
// refusal with its status and a message naming what was wrong. A refused request stores nothing.
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, describe, it } from 'node:test';
import { type TestHub, startTestHub } from '../helpers/hub.js';
import { assertNothingStored, metric, send, storedIds } from '../helpers/hub-probes.js';
import { type SseRecorder, openSse } from '../helpers/sse-client.js';

const T = { timeout: 20_000 };
const BOOK = 'https://example.com/books/1';

async function hubWith(flags: string[] = []): Promise<TestHub> {
  // No drain window: closing the hub closes its streams at once.
  const hub = await startTestHub(['--drain-timeout', '0', ...flags]);
  after(() => hub.close());
  return hub;
}

async function subscribe(hub: TestHub, topics: string[], token: string | null = hub.adminToken): Promise<SseRecorder> {
  const query = new URLSearchParams(topics.map((t): [string, string] => ['topic', t]));
  const sub = await openSse(`${hub.hubUrl}?${query}`, token === null ? {} : { authorization: `Bearer ${token}` });
  after(() => sub.close());
  assert.equal(sub.status, 200);
  return sub;
}

describe('publish: accepted updates', () => {
  it('answers 200 with the update ID as a text/plain body', T, async () => {
    const hub = await hubWith();
    const res = await hub.publish({ topic: BOOK, data: 'x', id: 'book-1-v1' });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
    assert.equal(res.body, 'book-1-v1');
  });

  it('sends a custom id as the event id', T, async () => {
    const hub = await hubWith();
    const sub = await subscribe(hub, [BOOK]);
    await hub.publish({ topic: BOOK, data: 'x', id: 'custom-42' });
    await sub.events_(1);
    assert.equal(sub.events[0]?.lastEventId, 'custom-42');
  });

  it('generates an id of the form urn:uuid:<UUIDv7> when none is given, and sends it as the event id', T, async () => {
    const hub = await hubWith();
    const sub = await subscribe(hub, [BOOK]);
    const res = await hub.publish({ topic: BOOK, data: 'x' });
    assert.equal(res.status, 200);
    // Version nibble 7, variant bits 10xx.
    assert.match(res.body, /^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    const second = await hub.publish({ topic: BOOK, data: 'y' });
    assert.notEqual(second.body, res.body);
    await sub.events_(2);
    assert.deepEqual(sub.events.map((e) => e.lastEventId), [res.body, second.body]);
  });

  it('delivers an update to a subscriber of one of its alternate topics, with the same id', T, async () => {
    const hub = await hubWith();
    const subOfB = await subscribe(hub, ['https://example.com/b']);
    const res = await hub.publish({ topic: ['https://example.com/a', 'https://example.com/b'], data: 'both', id: 'ab-1' });
    assert.equal(res.status, 200);
    await subOfB.events_(1);
    assert.deepEqual(subOfB.events[0], { type: 'message', data: 'both', lastEventId: 'ab-1' });
  });

  it('keeps an update with a "private" field from anonymous subscribers and gives it to a subscriber whose token allows its topic', T, async () => {
    const hub = await hubWith(['--anonymous']);
    const anonymous = await subscribe(hub, [BOOK], null);
    const reader = await subscribe(hub, [BOOK], await hub.token({ subscribe: ['https://example.com/books/{id}'] }));
    const stranger = await subscribe(hub, [BOOK], await hub.token({ subscribe: ['https://example.com/authors/{id}'] }));
    // An empty value still counts: presence makes it private.
    assert.equal((await hub.publish({ topic: BOOK, data: 'secret', id: 'p1', private: '' })).status, 200);
    assert.equal((await hub.publish({ topic: BOOK, data: 'public', id: 'p2' })).status, 200);
    await reader.events_(2);
    await anonymous.events_(1);
    await stranger.events_(1);
    assert.deepEqual(reader.events.map((e) => e.data), ['secret', 'public']);
    assert.deepEqual(anonymous.events.map((e) => e.data), ['public']);
    assert.deepEqual(stranger.events.map((e) => e.data), ['public']);
  });

  it('sends "type" as the event: field', T, async () => {
    const hub = await hubWith();
    const sub = await subscribe(hub, [BOOK]);
    await hub.publish({ topic: BOOK, data: 'x', id: 't1', type: 'book-updated' });
    await sub.events_(1);
    assert.match(sub.text, /\nevent: book-updated\n/);
    assert.equal(sub.events[0]?.type, 'book-updated');
  });

  it('sends "retry" as the retry: field', T, async () => {
    const hub = await hubWith();
    const sub = await subscribe(hub, [BOOK]);
    await hub.publish({ topic: BOOK, data: 'x', id: 'r1', retry: '12345' });
    await sub.events_(1);
    assert.match(sub.text, /\nretry: 12345\n(?:[^\n]+\n)*data: x\n\n/);
    assert.ok(sub.retries.includes(12345), `retries seen: ${sub.retries.join(', ')}`);
  });

  it('delivers data holding newlines intact', T, async () => {
    const hub = await hubWith();
    const sub = await subscribe(hub, [BOOK]);
    const data = 'first line\n\n  third line\n{"json": true}\n';
    await hub.publish({ topic: BOOK, data, id: 'n1' });
    await sub.events_(1);
    assert.equal(sub.events[0]?.data, data);
  });

  it('accepts exactly 1000 topics', T, async () => {
    const hub = await hubWith();
    const topics = Array.from({ length: 1000 }, (_, i) => `https://example.com/t/${i}`);
    const sub = await subscribe(hub, ['https://example.com/t/999']);
    const res = await hub.publish({ topic: topics, data: 'many', id: 'k1' });
    assert.equal(res.status, 200, res.body);
    await sub.events_(1);
    assert.equal(sub.events[0]?.lastEventId, 'k1');
  });
});

describe('publish: bad requests (400) store nothing', () => {
  it('refuses an update without a topic', T, async () => {
    const hub = await hubWith();
    const res = await hub.publish({ data: 'no topic', id: 'x1' });
    assert.equal(res.status, 400);
    assert.match(res.body, /"topic" field is required/);
    await assertNothingStored(hub);
  });

  it('refuses an update with more than 1000 topics, saying how many it had', T, async () => {
    const hub = await hubWith();
    const topics = Array.from({ length: 1001 }, (_, i) => `https://example.com/t/${i}`);
    const res = await hub.publish({ topic: topics, data: 'too many', id: 'x1' });
    assert.equal(res.status, 400);
    assert.match(res.body, /at most 1000 topics, got 1001/);
    await assertNothingStored(hub);
  });

  for (const retry of ['-1', '1.5', 'abc', '', '1e3']) {
    it(`refuses retry=${JSON.stringify(retry)}, which is not a non-negative integer`, T, async () => {
      const hub = await hubWith();
      const res = await hub.publish({ topic: BOOK, data: 'x', id: 'x1', retry });
      assert.equal(res.status, 400);
      assert.match(res.body, /"retry" field/);
      assert.ok(res.body.includes(`"${retry}"`), `the message quotes the value: ${res.body}`);
      await assertNothingStored(hub);
    });
  }

  for (const field of ['id', 'type'] as const) {
    for (const [name, bad] of [['CR', 'a\rb'], ['LF', 'a\nb'], ['NUL', 'a\0b']] as const) {
      it(`refuses ${name} in "${field}" (it would inject SSE fields)`, T, async () => {
        const hub = await hubWith();
        const res = await hub.publish({ topic: BOOK, data: 'x', ...(field === 'type' ? { id: 'x1' } : {}), [field]: bad });
        assert.equal(res.status, 400);
        assert.match(res.body, new RegExp(`"${field}" field must not contain CR, LF or NUL`));
        await assertNothingStored(hub);
      });
    }
  }

  it('refuses an empty topic', T, async () => {
    const hub = await hubWith();
    const res = await hub.publish({ topic: [BOOK, ''], data: 'x', id: 'x1' });
    assert.equal(res.status, 400);
    assert.match(res.body, /"topic" field is empty/);
    await assertNothingStored(hub);
  });

  it('refuses an empty id', T, async () => {
    const hub = await hubWith();
    const res = await hub.publish({ topic: BOOK, data: 'x', id: '' });
    assert.equal(res.status, 400);
    assert.match(res.body, /"id" field must not be empty/);
    await assertNothingStored(hub);
  });

  it('refuses the id "earliest", which means "from the start" to a resuming subscriber', T, async () => {
    const hub = await hubWith();
    const res = await hub.publish({ topic: BOOK, data: 'x', id: 'earliest' });
    assert.equal(res.status, 400);
    assert.match(res.body, /"id" field must not be "earliest"/);
    await assertNothingStored(hub);
  });
});

describe('publish: refusals store nothing', () => {
  for (const topic of ['/.well-known/mercure/subscriptions/x', 'https://example.com/.well-known/mercure', 'https://example.com/.well-known/mercure/subscriptions/a/b']) {
    it(`answers 403 to topic ${topic}, inside the hub's reserved /.well-known/mercure`, T, async () => {
      const hub = await hubWith();
      const res = await hub.publish({ topic: [BOOK, topic], data: 'x', id: 'x1' });
      assert.equal(res.status, 403);
      assert.ok(res.body.includes(`topic "${topic}"`), res.body);
      assert.match(res.body, /reserved/);
      await assertNothingStored(hub);
    });
  }

  it('answers 413 to a body over --max-body declared by Content-Length', T, async () => {
    const hub = await hubWith(['--max-body', '1kb']);
    const body = new URLSearchParams({ topic: BOOK, id: 'big', data: 'x'.repeat(2000) }).toString();
    const res = await send(hub.hubUrl, { method: 'POST', headers: { authorization: `Bearer ${hub.adminToken}`, 'content-type': 'application/x-www-form-urlencoded' }, body });
    assert.equal(res.status, 413);
    assert.match(res.body, /at most 1024 .*--max-body/);
    await assertNothingStored(hub);
  });

  it('answers 413 to a chunked body that grows over --max-body', T, async () => {
    const hub = await hubWith(['--max-body', '1kb']);
    const body = new URLSearchParams({ topic: BOOK, id: 'big', data: 'x'.repeat(2000) }).toString();
    const chunks = [body.slice(0, 600), body.slice(600, 1200), body.slice(1200)];
    const res = await send(hub.hubUrl, { method: 'POST', headers: { authorization: `Bearer ${hub.adminToken}`, 'content-type': 'application/x-www-form-urlencoded' }, body: chunks });
    assert.equal(res.status, 413);
    assert.match(res.body, /larger than 1024 bytes.*--max-body/);
    await assertNothingStored(hub);
  });

  it('accepts a body of exactly --max-body bytes', T, async () => {
    const hub = await hubWith(['--max-body', '1kb']);
    const prefix = new URLSearchParams({ topic: BOOK, id: 'fits' }).toString() + '&data=';
    const res = await hub.publish(new URLSearchParams(prefix + 'x'.repeat(1024 - prefix.length)));
    assert.equal(res.status, 200, res.body);
  });

  it('answers 415 to a body that is not application/x-www-form-urlencoded, naming the type it got', T, async () => {
    const hub = await hubWith();
    const res = await send(hub.hubUrl, { method: 'POST', headers: { authorization: `Bearer ${hub.adminToken}`, 'content-type': 'application/json' }, body: JSON.stringify({ topic: BOOK, data: 'x' }) });
    assert.equal(res.status, 415);
    assert.match(res.body, /application\/x-www-form-urlencoded, got application\/json/);
    await assertNothingStored(hub);
  });

  it('answers 409 to an id already in history, and keeps the first update', T, async () => {
    const hub = await hubWith();
    assert.equal((await hub.publish({ topic: BOOK, data: 'first', id: 'dup' })).status, 200);
    const res = await hub.publish({ topic: BOOK, data: 'second', id: 'dup' });
    assert.equal(res.status, 409);
    assert.match(res.body, /id "dup" is already in history/);
    await assertNothingStored(hub, 1, ['dup']);
  });

  it('answers 401 to a publish without a token, naming where a token is looked for', T, async () => {
    const hub = await hubWith();
    const res = await hub.publish({ topic: BOOK, data: 'x', id: 'x1' }, null);
    assert.equal(res.status, 401);
    assert.match(res.headers.get('www-authenticate') ?? '', /^Bearer/);
    assert.match(res.body, /needs a token with a "mercure.publish" claim/);
    await assertNothingStored(hub);
  });

  it('answers 401 to a publish with a token that is not a valid JWT', T, async () => {
    const hub = await hubWith();
    const res = await hub.publish({ topic: BOOK, data: 'x', id: 'x1' }, 'not-a-jwt');
    assert.equal(res.status, 401);
    assert.match(res.body, /invalid publisher token: it is malformed/);
    await assertNothingStored(hub);
  });

  it('answers 403 to a token without a mercure.publish claim', T, async () => {
    const hub = await hubWith();
    const res = await hub.publish({ topic: BOOK, data: 'x', id: 'x1' }, await hub.token({ subscribe: ['*'] }));
    assert.equal(res.status, 403);
    assert.match(res.body, /no "mercure.publish" claim/);
    await assertNothingStored(hub);
  });

  it('answers 403 naming the topic the token may not publish to, even when it is an alternate topic', T, async () => {
    const hub = await hubWith();
    const token = await hub.token({ publish: ['https://example.com/books/{id}'] });
    assert.equal((await hub.publish({ topic: BOOK, data: 'allowed', id: 'ok-1' }, token)).status, 200);
    const res = await hub.publish({ topic: [BOOK, 'https://example.com/authors/7'], data: 'x', id: 'x1' }, token);
    assert.equal(res.status, 403);
    assert.match(res.body, /does not allow topic "https:\/\/example.com\/authors\/7"/);
    await assertNothingStored(hub, 1, ['ok-1']);
  });

  it('answers 429 with Retry-After past --publish-rate, counting per token subject', T, async () => {
    const hub = await hubWith(['--publish-rate', '2']);
    const alice = await hub.token({ publish: ['*'], subject: 'alice' });
    const aliceAgain = await hub.token({ publish: ['*'], subject: 'alice', payload: { device: 'phone' } });
    const bob = await hub.token({ publish: ['*'], subject: 'bob' });
    // The burst is the rate: two at once pass.
    assert.equal((await hub.publish({ topic: BOOK, data: 'x', id: 'a1' }, alice)).status, 200);
    assert.equal((await hub.publish({ topic: BOOK, data: 'x', id: 'a2' }, alice)).status, 200);
    const limited = await hub.publish({ topic: BOOK, data: 'x', id: 'a3' }, aliceAgain);
    assert.equal(limited.status, 429);
    assert.match(limited.headers.get('retry-after') ?? '', /^[1-9]\d*$/);
    assert.match(limited.body, /rate limit exceeded \(--publish-rate\)/);
    // Another subject has its own budget.
    assert.equal((await hub.publish({ topic: BOOK, data: 'x', id: 'b1' }, bob)).status, 200);
    await assertNothingStored(hub, 3, ['a1', 'a2', 'b1']);
  });

  it('counts publishes of tokens without a subject per client address under --publish-rate', T, async () => {
    const hub = await hubWith(['--publish-rate', '1']);
    const first = await hub.token({ publish: ['*'] });
    const second = await hub.token({ publish: ['*'], payload: { other: true } });
    assert.equal((await hub.publish({ topic: BOOK, data: 'x', id: 'n1' }, first)).status, 200);
    const limited = await hub.publish({ topic: BOOK, data: 'x', id: 'n2' }, second);
    assert.equal(limited.status, 429);
    assert.ok(limited.headers.has('retry-after'));
    assert.equal(await metric(hub, 'ssehub_updates_published_total'), 1);
  });

  it('answers 503, never 200, when the transport cannot store the update', T, async () => {
    const hub = await hubWith();
    await hub.hub.transport.close();
    const res = await hub.publish({ topic: BOOK, data: 'x', id: 'x1' });
    assert.equal(res.status, 503);
    assert.match(res.body, /the update may not have been stored/);
    assert.ok(res.headers.has('retry-after'));
    assert.equal(await metric(hub, 'ssehub_updates_published_total'), 0);
    // No sentinel can be published on a closed transport: read its history directly.
    const history = await hub.hub.transport.history('earliest', () => true);
    assert.deepEqual(history.updates, []);
  });
});

/**
 * Sends a publish head with `Expect: 100-continue` on a raw socket and reads what the hub answers
 * before any body byte is sent; the body follows only after `100 Continue` (as curl does).
 */
async function expectContinue(hub: TestHub, headers: Record<string, string>, body: string): Promise<{ beforeBody: string; all: string }> {
  const { port } = new URL(hub.url);
  const socket = connect(Number(port), '127.0.0.1');
  const lines = Object.entries({ host: 'x', expect: '100-continue', 'content-type': 'application/x-www-form-urlencoded', ...headers }).map(([k, v]) => `${k}: ${v}\r\n`);
  socket.write(`POST /.well-known/mercure HTTP/1.1\r\n${lines.join('')}\r\n`);
  let received = '';
  let beforeBody: string | undefined;
  return new Promise((resolve, reject) => {
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString('latin1');
      if (beforeBody === undefined) {
        // The first answer comes before any body byte was sent.
        beforeBody = received;
        if (received.startsWith('HTTP/1.1 100 Continue\r\n')) socket.write(body);
      }
      // Done once a final (non-1xx) response is complete: chunked, or with a Content-Length.
      const at = received.search(/^HTTP\/1\.1 [2-5]\d\d /m);
      if (at === -1) return;
      const final = received.slice(at);
      const headEnd = final.indexOf('\r\n\r\n');
      if (headEnd === -1) return;
      const length = /\r\ncontent-length: (\d+)/i.exec(final.slice(0, headEnd));
      const complete = length === null ? final.endsWith('\r\n0\r\n\r\n') : final.length - headEnd - 4 >= Number(length[1]);
      if (complete) {
        socket.destroy();
        resolve({ beforeBody: beforeBody ?? '', all: received });
      }
    });
    socket.on('end', () => resolve({ beforeBody: beforeBody ?? '', all: received }));
    socket.once('error', reject);
  });
}

describe('publish: Expect: 100-continue', () => {
  it('answers 413 from the head alone when Content-Length is over --max-body, without 100 Continue', T, async () => {
    const hub = await hubWith(['--max-body', '1kb']);
    const { beforeBody } = await expectContinue(hub, { authorization: `Bearer ${hub.adminToken}`, 'content-length': '5000000' }, '');
    assert.match(beforeBody, /^HTTP\/1\.1 413 /);
    await assertNothingStored(hub);
  });

  it('answers 401 from the head alone when there is no token, without 100 Continue', T, async () => {
    const hub = await hubWith();
    const { beforeBody } = await expectContinue(hub, { 'content-length': '20' }, 'topic=urn:x&data=abc');
    assert.match(beforeBody, /^HTTP\/1\.1 401 /);
    await assertNothingStored(hub);
  });

  it('sends 100 Continue to an acceptable head, then stores the body that follows', T, async () => {
    const hub = await hubWith();
    const body = 'topic=urn:x&data=abc&id=continued';
    const { beforeBody, all } = await expectContinue(hub, { authorization: `Bearer ${hub.adminToken}`, 'content-length': String(body.length) }, body);
    assert.match(beforeBody, /^HTTP\/1\.1 100 Continue\r\n/);
    assert.match(all, /HTTP\/1\.1 200 OK\r\n[^]*\bcontinued\r\n/);
    assert.deepEqual(await storedIds(hub), ['continued']);
  });
});
