// The hub under random and hostile requests (SPEC §7: bad input of every kind gets a clear 4xx and
// changes nothing; the process never crashes on input; an update answered 200 is in history).
// One hub serves the whole run; the tests after the random run check what it left behind.
// A failure prints fast-check's seed: FUZZ_SEED=<seed> replays it, FUZZ_RUNS=<n> runs longer.
import assert from 'node:assert/strict';
import { type IncomingHttpHeaders, request } from 'node:http';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { SignJWT } from 'jose';
import { EventStreamParser, type ParsedEvent } from '../../src/protocol/index.js';
import { HUB_PATH, TEST_KEY, type TestHub, startTestHub } from '../helpers/hub.js';
import { openSse } from '../helpers/sse-client.js';

const MAX_BODY = 4096;
const NUM_RUNS = Number(process.env.FUZZ_RUNS ?? 300);
const SEED = process.env.FUZZ_SEED === undefined ? undefined : Number(process.env.FUZZ_SEED);

// ---------------------------------------------------------------------------------------------
// What a generated request is made of. Values may point into the pool of IDs the hub accepted so
// far, so that resumes (Last-Event-ID, lastEventID) name IDs that are really in history.

type Value = string | { pool: number };
type Token =
  | { kind: 'admin' }
  | { kind: 'garbage'; value: string }
  | { kind: 'jwt-looking'; parts: [string, string, string] }
  | { kind: 'alg-none'; claims: Record<string, unknown> }
  | { kind: 'signed'; claims: Record<string, unknown>; alg: 'HS256' | 'HS512'; wrongKey: boolean };
type Placement = 'bearer' | 'bearer-lowercase' | 'other-scheme' | 'query' | 'cookie';

interface RequestSpec {
  method: string;
  path: string;
  query: { key: string; value: Value; raw: boolean }[];
  token: { token: Token; placement: Placement } | null;
  lastEventId: Value | null;
  cookie: string | null;
  origin: string | null;
  contentType: string | null;
  extraHeader: [string, string] | null;
  /** `raw`: joined without encoding; `chunked`: sent with Transfer-Encoding: chunked (the hub counts the bytes). */
  body: { fields: { key: string; value: Value }[]; raw: boolean; chunked: boolean } | null;
}

/** A request with every random part resolved: exactly what goes on the wire. */
interface Resolved {
  method: string;
  target: string;
  headers: [string, string][];
  body: Buffer;
  chunked: boolean;
}

interface Answer {
  status: number;
  body: string;
  via: 'http' | 'raw';
  /** Set when no HTTP answer arrived (connection reset or closed first). */
  error?: string;
}

const PIECES = [
  '\r', '\n', '\r\n', '\0', ' ', '\t', '\x01', '\x08', '\x0b', '\x0c', '\x15', '\x1b', '\x7f', ':', '{', '}', '{id}', '{+path}', '{/x*}', '{?a,b}', '{=x}', '%', '%zz', '%0', '%E2%82', '%00', '%0D%0A',
  '&', '=', '+', '#', '?', '/', '*', ';', ',', '"', "'", '<script>', '\\', 'é', '€', '😀', '\uD800', '\u2028', '\uFEFF', '\u00FF', '\u0085',
  'data: injected', 'id: injected', 'event: injected', 'retry: 1', '\n\nid: injected\n\ndata: injected\n\n', ': comment', 'earliest',
  '/.well-known/mercure', 'https://example.com/books/1', 'urn:fuzz:a', 'urn:uuid:', '..', '%2e%2e', 'Bearer ', '__proto__',
];

/** `null` (absent) `absent` times out of `absent + 1`, else a value. */
function sometimes<T>(arb: fc.Arbitrary<T>, absent = 3): fc.Arbitrary<T | null> {
  return fc.oneof({ weight: absent, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: arb });
}
/** `true` one time in four: unencoded values mostly end at the HTTP parser, so they are the minority. */
const rarely = fc.oneof({ weight: 3, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) });

const piece = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...PIECES) },
  { weight: 2, arbitrary: fc.string({ maxLength: 6 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 4 }) },
);
/** Short hostile strings, and now and then a very long one. */
const hostile: fc.Arbitrary<string> = fc.oneof(
  { weight: 12, arbitrary: fc.array(piece, { maxLength: 8 }).map((p) => p.join('')) },
  { weight: 1, arbitrary: fc.tuple(fc.integer({ min: 1_000, max: 20_000 }), fc.constantFrom('a', '€', '%', '{', '\n')).map(([n, c]) => c.repeat(n)) },
);
const fromPool: fc.Arbitrary<Value> = fc.nat().map((pool) => ({ pool }));
const value: fc.Arbitrary<Value> = fc.oneof({ weight: 6, arbitrary: hostile }, { weight: 1, arbitrary: fromPool });
const selector = fc.oneof(fc.constantFrom('*', 'urn:fuzz:a', 'https://example.com/books/{id}', '{', '}', '{+x}', 'https://example.com/{=x}'), hostile);
const selectors = fc.array(selector, { maxLength: 4 });

const claims: fc.Arbitrary<Record<string, unknown>> = fc.record(
  {
    mercure: fc.oneof(
      fc.record({ publish: fc.oneof(selectors, fc.jsonValue()), subscribe: fc.oneof(selectors, fc.jsonValue()), payload: fc.jsonValue() }, { requiredKeys: [] }),
      fc.jsonValue(),
    ),
    exp: fc.oneof(
      fc.integer({ min: -1_000, max: 1_000 }).map((d) => Math.floor(Date.now() / 1000) + d),
      fc.constantFrom(0, -1, 1e20, 2 ** 53, 1.5),
      fc.jsonValue(),
    ),
    nbf: fc.oneof(fc.integer({ min: -1_000, max: 1_000 }).map((d) => Math.floor(Date.now() / 1000) + d), fc.jsonValue()),
    sub: fc.oneof(hostile, fc.jsonValue()),
  },
  { requiredKeys: [] },
);
const base64url = (s: string) => Buffer.from(s).toString('base64url');
const token: fc.Arbitrary<Token> = fc.oneof(
  { weight: 3, arbitrary: fc.constant<Token>({ kind: 'admin' }) },
  { weight: 2, arbitrary: hostile.map((v): Token => ({ kind: 'garbage', value: v })) },
  {
    weight: 2,
    arbitrary: fc
      .tuple(fc.oneof(hostile, fc.json()), fc.oneof(hostile, fc.json()), hostile)
      .map(([h, p, s]): Token => ({ kind: 'jwt-looking', parts: [base64url(h), base64url(p), base64url(s)] })),
  },
  { weight: 1, arbitrary: claims.map((c): Token => ({ kind: 'alg-none', claims: c })) },
  {
    weight: 4,
    arbitrary: fc
      .record({ claims, alg: fc.constantFrom<'HS256' | 'HS512'>('HS256', 'HS256', 'HS512'), wrongKey: fc.boolean() })
      .map((t): Token => ({ kind: 'signed', ...t })),
  },
);
const placement = fc.constantFrom<Placement>('bearer', 'bearer', 'bearer', 'bearer-lowercase', 'other-scheme', 'query', 'cookie');
const contentType = fc.oneof(
  fc.constantFrom(
    'application/x-www-form-urlencoded',
    'application/x-www-form-urlencoded; charset=utf-8',
    'APPLICATION/X-WWW-FORM-URLENCODED',
    'text/plain',
    'multipart/form-data; boundary=x',
    'application/json',
    '',
  ),
  hostile,
);
const formKey = fc.oneof({ weight: 8, arbitrary: fc.constantFrom('topic', 'topic', 'topic', 'id', 'type', 'retry', 'data', 'data', 'private') }, { weight: 1, arbitrary: hostile });
const formValue = fc.oneof({ weight: 8, arbitrary: value }, { weight: 1, arbitrary: fc.constantFrom<Value>('urn:fuzz:a', '3000', '', '-1', '1e3', '99999999999999999') });
const form = fc.record({ fields: fc.array(fc.record({ key: formKey, value: formValue }), { maxLength: 8 }), raw: rarely, chunked: fc.boolean() });

/** Any request at all. */
const anyRequest: fc.Arbitrary<RequestSpec> = fc.record({
  method: fc.constantFrom('GET', 'GET', 'POST', 'POST', 'PUT', 'OPTIONS', 'DELETE'),
  path: fc.oneof(
    { weight: 8, arbitrary: fc.constant(HUB_PATH) },
    { weight: 1, arbitrary: hostile.map((s) => `${HUB_PATH}/subscriptions/${s}`) },
    { weight: 1, arbitrary: fc.constantFrom('/', '/healthz', '/readyz', '/metrics', '/nope', `${HUB_PATH}/`, `/${HUB_PATH}`, '/.well-known/mercure%2F', '*') },
    { weight: 1, arbitrary: hostile.map((s) => `/${s}`) },
  ),
  query: fc.array(
    fc.record({ key: fc.oneof(fc.constantFrom('topic', 'topic', 'topic', 'lastEventID', 'lastEventId', 'authorization', 'match'), hostile), value: fc.oneof(selector, value), raw: rarely }),
    { maxLength: 5 },
  ),
  token: sometimes(fc.record({ token, placement }), 1),
  lastEventId: sometimes(value),
  cookie: sometimes(hostile),
  origin: sometimes(fc.oneof(fc.constantFrom('https://example.com', 'null'), hostile)),
  contentType: sometimes(contentType, 1),
  extraHeader: sometimes(fc.tuple(fc.oneof(fc.constantFrom('cache-control', 'referer', 'x-forwarded-for', 'accept'), hostile), hostile)),
  body: sometimes(form, 1),
});

/** Printable Unicode, as IDs and types a publisher may legitimately use (a number makes IDs rarely collide). */
const printable = fc.tuple(fc.string({ unit: 'grapheme', minLength: 1, maxLength: 12 }), fc.nat()).map(([s, n]) => `${s}${n}`);

/** A publish with every header right and hostile fields, so that a good share gets accepted. */
const wellFormedPublish: fc.Arbitrary<RequestSpec> = fc
  .record({
    topics: fc.array(fc.oneof({ weight: 4, arbitrary: fc.constantFrom('urn:fuzz:a', 'https://example.com/books/1') }, { weight: 1, arbitrary: hostile }), { minLength: 1, maxLength: 3 }),
    id: fc.option(fc.oneof({ weight: 3, arbitrary: printable }, { weight: 1, arbitrary: hostile })),
    type: fc.option(fc.oneof({ weight: 3, arbitrary: printable }, { weight: 1, arbitrary: hostile })),
    retry: fc.option(fc.oneof({ weight: 3, arbitrary: fc.nat().map(String) }, { weight: 1, arbitrary: hostile })),
    data: fc.option(hostile),
    private: fc.boolean(),
    token: fc.oneof(
      { weight: 4, arbitrary: fc.constant<Token>({ kind: 'admin' }) },
      { weight: 1, arbitrary: claims.map((c): Token => ({ kind: 'signed', claims: { ...c, mercure: { publish: ['*'] } }, alg: 'HS256', wrongKey: false })) },
    ),
    raw: fc.boolean(),
    chunked: fc.boolean(),
  })
  .map(publishSpec);

function publishSpec(p: { topics: string[]; id: string | null; type: string | null; retry: string | null; data: string | null; private: boolean; token: Token; raw: boolean; chunked: boolean }): RequestSpec {
  const fields: { key: string; value: Value }[] = p.topics.map((t) => ({ key: 'topic', value: t }));
  if (p.id !== null) fields.push({ key: 'id', value: p.id });
  if (p.type !== null) fields.push({ key: 'type', value: p.type });
  if (p.retry !== null) fields.push({ key: 'retry', value: p.retry });
  if (p.data !== null) fields.push({ key: 'data', value: p.data });
  if (p.private) fields.push({ key: 'private', value: 'on' });
  return {
    method: 'POST',
    path: HUB_PATH,
    query: [],
    token: { token: p.token, placement: 'bearer' },
    lastEventId: null,
    cookie: null,
    origin: null,
    contentType: 'application/x-www-form-urlencoded',
    extraHeader: null,
    body: { fields, raw: p.raw, chunked: p.chunked },
  };
}

/** A subscriber resuming from an ID in history (or a hostile one), by header or query. */
const resume: fc.Arbitrary<RequestSpec> = fc
  .record({
    topics: fc.oneof(
      { weight: 20, arbitrary: fc.array(fc.oneof({ weight: 3, arbitrary: fc.constantFrom('*', 'urn:fuzz:a', 'https://example.com/books/{id}') }, { weight: 1, arbitrary: selector }), { minLength: 1, maxLength: 3 }) },
      // Around the limit of 1000 selectors per subscription.
      { weight: 1, arbitrary: fc.integer({ min: 999, max: 1001 }).map((n) => Array.from({ length: n }, (_, i) => `urn:fuzz:${i}`)) },
    ),
    last: fc.oneof({ weight: 3, arbitrary: fromPool }, { weight: 1, arbitrary: hostile }),
    inHeader: fc.boolean(),
    token: fc.oneof({ weight: 3, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: fc.record({ token, placement }) }),
  })
  .map(resumeSpec);

function resumeSpec(p: { topics: string[]; last: Value; inHeader: boolean; token: RequestSpec['token'] }): RequestSpec {
  return {
    method: 'GET',
    path: HUB_PATH,
    query: [...p.topics.map((t) => ({ key: 'topic', value: t, raw: false })), ...(p.inHeader ? [] : [{ key: 'lastEventID', value: p.last, raw: false }])],
    token: p.token,
    lastEventId: p.inHeader ? p.last : null,
    cookie: null,
    origin: null,
    contentType: null,
    extraHeader: null,
    body: null,
  };
}

/**
 * Inputs that once broke the hub, tried first on every run: IDs a publisher may use (non-Latin-1,
 * C0 controls, DEL) echoed in the Last-Event-ID response header of a resume. They land in the
 * pool at positions 0–2, which the resumes name.
 */
const EXAMPLES: [RequestSpec][] = [
  ...['resume-€-😀', 'resume-ctl-\x01\x15\x1b', 'resume-del-\x7f'].map((id): [RequestSpec] => [
    publishSpec({ topics: ['urn:fuzz:a'], id, type: null, retry: null, data: 'x', private: false, token: { kind: 'admin' }, raw: false, chunked: false }),
  ]),
  ...[0, 1, 2].flatMap((pool) => [true, false].map((inHeader): [RequestSpec] => [resumeSpec({ topics: ['*'], last: { pool }, inHeader, token: null })])),
];

const requests = fc.oneof({ weight: 3, arbitrary: wellFormedPublish }, { weight: 2, arbitrary: resume }, { weight: 5, arbitrary: anyRequest });

// ---------------------------------------------------------------------------------------------
// Sending: node:http when it accepts the request, else a raw socket (node:http refuses some
// hostile header values and paths that a real client could still send).

/** Percent-encodes the UTF-8 bytes of `s` (a lone surrogate becomes U+FFFD, where encodeURIComponent would throw). */
function percentEncode(s: string): string {
  let out = '';
  for (const byte of Buffer.from(s, 'utf8')) out += /[A-Za-z0-9\-_.~]/.test(String.fromCharCode(byte)) ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  return out;
}

function resolveValue(v: Value, pool: string[]): string {
  if (typeof v === 'string') return v;
  return pool.length === 0 ? 'not-in-history' : (pool[v.pool % pool.length] as string);
}

async function signedToken(t: Token, hub: TestHub): Promise<string> {
  switch (t.kind) {
    case 'admin':
      return hub.adminToken;
    case 'garbage':
      return t.value;
    case 'jwt-looking':
      return t.parts.join('.');
    case 'alg-none':
      return `${base64url(JSON.stringify({ alg: 'none', typ: 'JWT' }))}.${base64url(JSON.stringify(t.claims))}.`;
    case 'signed': {
      const key = new TextEncoder().encode(t.wrongKey ? `${TEST_KEY}-but-not-quite` : TEST_KEY);
      return new SignJWT(t.claims).setProtectedHeader({ alg: t.alg, typ: 'JWT' }).sign(key);
    }
  }
}

async function resolve(spec: RequestSpec, hub: TestHub, pool: string[]): Promise<Resolved> {
  const query = spec.query.map(({ key, value: v, raw }) => {
    const s = resolveValue(v, pool);
    return raw ? `${key}=${s}` : `${percentEncode(key)}=${percentEncode(s)}`;
  });
  const headers: [string, string][] = [];
  if (spec.token !== null) {
    const t = await signedToken(spec.token.token, hub);
    switch (spec.token.placement) {
      case 'bearer':
        headers.push(['authorization', `Bearer ${t}`]);
        break;
      case 'bearer-lowercase':
        headers.push(['authorization', `bearer ${t}`]);
        break;
      case 'other-scheme':
        headers.push(['authorization', `Basic ${t}`]);
        break;
      case 'query':
        query.push(`authorization=${percentEncode(t)}`);
        break;
      case 'cookie':
        headers.push(['cookie', `mercureAuthorization=${percentEncode(t)}${spec.cookie === null ? '' : `; ${spec.cookie}`}`]);
        break;
    }
  }
  if (spec.cookie !== null && spec.token?.placement !== 'cookie') headers.push(['cookie', spec.cookie]);
  if (spec.lastEventId !== null) headers.push(['last-event-id', resolveValue(spec.lastEventId, pool)]);
  if (spec.origin !== null) headers.push(['origin', spec.origin]);
  if (spec.contentType !== null) headers.push(['content-type', spec.contentType]);
  if (spec.extraHeader !== null && !headers.some(([k]) => k === spec.extraHeader?.[0].toLowerCase())) headers.push(spec.extraHeader);
  let body: Buffer = Buffer.alloc(0);
  if (spec.body !== null) {
    const { fields, raw } = spec.body;
    if (raw) {
      body = Buffer.from(fields.map(({ key, value: v }) => `${key}=${resolveValue(v, pool)}`).join('&'));
    } else {
      const params = new URLSearchParams();
      for (const { key, value: v } of fields) params.append(key, resolveValue(v, pool));
      body = Buffer.from(params.toString());
    }
  }
  return { method: spec.method, target: query.length === 0 ? spec.path : `${spec.path}?${query.join('&')}`, headers, body, chunked: spec.body?.chunked === true };
}

/** Reads a stream's first bytes (the opening comment) and hangs up; reads any other body whole. */
function sendHttp(port: number, r: Resolved): Promise<Answer> {
  return new Promise((resolvePromise, reject) => {
    let req;
    try {
      // Framing always explicit: without it node:http sends a GET's body unframed, as the start of a next request.
      const framing: [string, string][] = r.chunked ? [['transfer-encoding', 'chunked']] : r.body.length > 0 ? [['content-length', String(r.body.length)]] : [];
      req = request({ host: '127.0.0.1', port, method: r.method, path: r.target, headers: Object.fromEntries([...r.headers, ...framing]), agent: false });
    } catch (error) {
      reject(error);
      return;
    }
    req.on('response', (res) => {
      const status = res.statusCode ?? 0;
      const chunks: Buffer[] = [];
      if (String(res.headers['content-type']).startsWith('text/event-stream')) {
        const safety = setTimeout(() => res.destroy(), 1_000);
        res.once('data', () => {
          clearTimeout(safety);
          res.destroy();
        });
        res.once('close', () => resolvePromise({ status, body: '', via: 'http' }));
        return;
      }
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolvePromise({ status, body: Buffer.concat(chunks).toString('utf8'), via: 'http' }));
      res.on('error', (error) => resolvePromise({ status, body: '', via: 'http', error: error.message }));
    });
    req.on('error', (error) => resolvePromise({ status: 0, body: '', via: 'http', error: error.message }));
    req.end(r.body);
  });
}

/** The same request written byte for byte on a socket (header values and path as UTF-8). */
function sendRaw(port: number, r: Resolved): Promise<Answer> {
  return new Promise((resolvePromise) => {
    const socket = connect(port, '127.0.0.1');
    const framing = r.chunked ? 'transfer-encoding: chunked' : `content-length: ${r.body.length}`;
    const head = [`${r.method} ${r.target} HTTP/1.1`, `host: 127.0.0.1:${port}`, 'connection: close', framing, ...r.headers.map(([k, v]) => `${k}: ${v}`)];
    const body = !r.chunked ? r.body : Buffer.concat([Buffer.from(r.body.length === 0 ? '' : `${r.body.length.toString(16)}\r\n`), r.body, Buffer.from(r.body.length === 0 ? '0\r\n\r\n' : '\r\n0\r\n\r\n')]);
    // write, not end: a half-closed client makes node:http abort the request before answering.
    socket.write(Buffer.concat([Buffer.from(`${head.join('\r\n')}\r\n\r\n`), body]));
    let received = Buffer.alloc(0);
    let done = false;
    const finish = (error?: string) => {
      if (done) return;
      done = true;
      clearTimeout(safety);
      socket.destroy();
      const end = received.indexOf('\r\n\r\n');
      const statusLine = /^HTTP\/1\.[01] (\d{3})/.exec(received.toString('latin1'));
      if (statusLine === null || end === -1) {
        resolvePromise({ status: 0, body: '', via: 'raw', error: error ?? `no HTTP answer: ${JSON.stringify(received.toString('latin1').slice(0, 200))}` });
        return;
      }
      const headerText = received.subarray(0, end).toString('latin1').toLowerCase();
      let body: Buffer = received.subarray(end + 4);
      if (/\r\ntransfer-encoding: *chunked/.test(headerText)) body = dechunk(body);
      resolvePromise({ status: Number(statusLine[1]), body: body.toString('utf8'), via: 'raw' });
    };
    const safety = setTimeout(() => finish('no answer within 2 s'), 2_000);
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      // A stream never ends by itself: its headers are all this needs.
      const end = received.indexOf('\r\n\r\n');
      if (end !== -1 && /\r\ncontent-type: *text\/event-stream/i.test(received.subarray(0, end).toString('latin1'))) finish();
    });
    socket.on('close', () => finish());
    socket.on('error', (error) => finish(error.message));
  });
}

function dechunk(body: Buffer): Buffer {
  const parts: Buffer[] = [];
  let pos = 0;
  while (pos < body.length) {
    const eol = body.indexOf('\r\n', pos);
    if (eol === -1) break;
    const size = parseInt(body.subarray(pos, eol).toString('latin1'), 16);
    if (!(size > 0)) break;
    parts.push(body.subarray(eol + 2, eol + 2 + size));
    pos = eol + 2 + size + 2;
  }
  return Buffer.concat(parts);
}

async function send(port: number, r: Resolved): Promise<Answer> {
  try {
    return await sendHttp(port, r);
  } catch {
    return sendRaw(port, r);
  }
}

function get(url: string): Promise<{ status: number; body: string; headers: IncomingHttpHeaders }> {
  return new Promise((resolvePromise, reject) => {
    const req = request(url, { agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolvePromise({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), headers: res.headers }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** The request as a reader can replay it: JSON keeps CR, LF, NUL and lone surrogates visible. */
function describeRequest(r: Resolved): string {
  const body = r.body.toString('utf8');
  return JSON.stringify({ method: r.method, target: r.target.length > 300 ? `${r.target.slice(0, 300)}… (${r.target.length} chars)` : r.target, headers: r.headers.map(([k, v]) => [k, v.length > 300 ? `${v.slice(0, 300)}… (${v.length} chars)` : v]), body: body.length > 300 ? `${body.slice(0, 300)}… (${r.body.length} bytes)` : body });
}

// ---------------------------------------------------------------------------------------------

/** What an accepted publish must show up as on the wire. */
interface Accepted {
  id: string;
  type: string | undefined;
  retry: number | undefined;
  data: string;
}

/** Reads the body of an accepted publish the way the hub does (UTF-8, then form decoding). */
function acceptedFrom(id: string, body: Buffer): Accepted {
  const form = new URLSearchParams(body.toString('utf8'));
  const retry = form.get('retry');
  return { id, type: form.get('type') ?? undefined, retry: retry === null ? undefined : Number(retry), data: form.get('data') ?? '' };
}

async function publishedTotal(hub: TestHub): Promise<number> {
  return (await hub.hub.metrics.updatesPublished.get()).values[0]?.value ?? 0;
}

describe('hub under random and hostile requests (fuzz)', () => {
  let hub: TestHub;
  let port: number;
  /** Accepted publishes, in the order the hub answered 200 (the order of its history: requests are sent one at a time). */
  const accepted: Accepted[] = [];
  const pool: string[] = [];

  before(async () => {
    // A short heartbeat: its liveness check is the safety net that closes a stream whose close event got lost.
    hub = await startTestHub(['--anonymous', '--max-body', '4kb', '--heartbeat', '200ms']);
    port = Number(new URL(hub.url).port);
  });
  after(() => hub.close());

  it('answers every request below 500, stays up and ready, and stores an update only when it answers 200', { timeout: 60_000 }, async () => {
    let runs = 0;
    await fc.assert(
      fc.asyncProperty(requests, async (spec) => {
        runs++;
        const r = await resolve(spec, hub, pool);
        const answer = await send(port, r);
        const what = `${describeRequest(r)} → ${answer.status} via ${answer.via} ${JSON.stringify(answer.error ?? answer.body.slice(0, 300))}`;
        assert.ok(answer.status < 500, `a 5xx: ${what}`);
        // A refused oversized body may be cut by a reset before its 413 is read; anything else must be answered.
        assert.ok(answer.status !== 0 || r.body.length > MAX_BODY, `no answer: ${what}`);
        if (r.method === 'POST' && answer.status === 200) {
          accepted.push(acceptedFrom(answer.body, r.body));
          pool.push(answer.body);
        }
        assert.equal(hub.server.listening, true, `the hub stopped listening after ${what}`);
        assert.equal((await get(`${hub.url}/healthz`)).status, 200, `/healthz failed after ${what}`);
        const ready = await get(`${hub.url}/readyz`);
        assert.equal(ready.status, 200, `/readyz answered ${ready.status} ${ready.body} after ${what}`);
        assert.equal(await publishedTotal(hub), accepted.length, `updates stored (ssehub_updates_published_total) differ from publishes answered 200 after ${what}`);
      }),
      { numRuns: NUM_RUNS, seed: SEED, examples: EXAMPLES, includeErrorInReport: true, plugins: [fc.interruptAfterTimeLimit(25_000)] },
    );
    const metrics = await get(`${hub.url}/metrics`);
    const published = /^ssehub_updates_published_total (\d+)$/m.exec(metrics.body)?.[1];
    assert.equal(Number(published), accepted.length, '/metrics reports as many stored updates as publishes answered 200');
    // Enough runs ran, and enough of them published, for the checks after this one to mean something.
    assert.ok(runs >= Math.min(NUM_RUNS, 100), `only ${runs} runs`);
    assert.ok(accepted.length >= Math.min(20, NUM_RUNS / 10), `only ${accepted.length} publishes were accepted`);
  });

  it('replays from earliest every update it answered 200 to, once each, in order, with no field a publisher injected', { timeout: 20_000 }, async () => {
    const sub = await openSse(`${hub.hubUrl}?topic=*&lastEventID=earliest`, { authorization: `Bearer ${hub.adminToken}` });
    after(() => sub.close());
    assert.equal(sub.status, 200);
    // A live update after the run marks the end of the replay (history is written before live updates).
    const sentinel = `fuzz-end-${Date.now()}`;
    assert.equal((await hub.publish({ topic: 'urn:fuzz:end', id: sentinel, data: 'end' })).status, 200);
    await sub.until((s) => s.events.some((e) => e.lastEventId === sentinel), 'the end-of-run update');
    sub.close();

    const expected: Accepted[] = [...accepted, { id: sentinel, type: undefined, retry: undefined, data: 'end' }];
    const events: ParsedEvent[] = [];
    const fields: [string, string][] = [];
    const parser = new EventStreamParser({ onEvent: (e) => events.push(e), onField: (name, v) => fields.push([name, v]) });
    parser.feed(Buffer.concat(sub.chunks));

    assert.deepEqual(
      events.map((e) => e.lastEventId),
      expected.map((a) => a.id),
      'the IDs replayed are exactly the IDs answered 200',
    );
    assert.deepEqual(
      events,
      expected.map((a) => ({ type: a.type === undefined || a.type === '' ? 'message' : a.type, data: a.data.replace(/\r\n|\r/g, '\n'), lastEventId: a.id })),
    );
    // Field by field: the stream's own `retry:` hint first, then for each update exactly the lines the encoder writes.
    const wire = expected.flatMap((a): [string, string][] => [
      ...(a.type === undefined ? [] : [['event', a.type] as [string, string]]),
      ...(a.retry === undefined ? [] : [['retry', String(a.retry)] as [string, string]]),
      ['id', a.id],
      ...a.data.split(/\r\n|\r|\n/).map((line): [string, string] => ['data', line]),
    ]);
    const preamble = fields.slice(0, fields.length - wire.length);
    assert.ok(
      preamble.every(([name]) => name === 'retry'),
      `before the first update only the stream's retry hint: ${JSON.stringify(preamble.slice(0, 5))}`,
    );
    assert.deepEqual(fields.slice(fields.length - wire.length), wire);
  });

  it('keeps no subscriber once every client that subscribed has gone', { timeout: 20_000 }, async () => {
    // Streams close asynchronously after a client hangs up: wait (safety net) for them to go.
    const deadline = Date.now() + 5_000;
    while ((hub.hub.streams.size > 0 || hub.hub.subscribers.size > 0) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const left = [...hub.hub.subscribers].map((s) => ({ selectors: s.selectors.slice(0, 3), lastEventId: s.stream?.lastEventId, open: s.stream?.open, bytes: s.stream?.bytesWritten, queued: s.stream?.queuedBytes, blocked: s.stream?.blocked }));
    assert.equal(hub.hub.streams.size, 0, `open streams: ${JSON.stringify(left)}`);
    assert.equal(hub.hub.subscribers.size, 0, 'subscribers still registered');
  });
});
