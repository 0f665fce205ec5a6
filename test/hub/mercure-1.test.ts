// Mercure 1.0 (draft-dunglas-mercure-08) beside draft-07 on one hub: match / match_urlpattern,
// QUERY, last_event_id and Mercure-Last-Event-ID, access tokens and where they are presented,
// RFC 6750 errors, RFC 9728 metadata, 1.0 publishing, 1.0 subscription events and API — and both
// generations of clients on one hub at once.
//
// "Not delivered" is never asserted by waiting: a public marker update is published after the one
// that must not arrive, and once the marker is there, an earlier update would have been too.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { EventSource } from '../../src/client/index.js';
import { mercureMatchUrl, mercureQueryBody } from '../../src/client/mercure.js';
import { ISSUER, accessToken, detail } from '../helpers/access-token.js';
import { type TestHub, startTestHub } from '../helpers/hub.js';
import { Cleanups, subscribeUrl } from '../helpers/hub-streams.js';
import { type SseRecorder, openSse } from '../helpers/sse-client.js';

const T = { timeout: 20_000 };
const BOOKS = 'https://example.com/books/:id';
const ALL = [detail(['publish', 'subscribe'], ['*'])];

describe('Mercure 1.0', () => {
  const cleanups = new Cleanups();
  after(() => cleanups.run());
  let hub: TestHub;
  let anonymous: TestHub;
  let admin: string;
  let markers = 0;

  before(async () => {
    hub = cleanups.add(await startTestHub(['--token-issuers', `${ISSUER},https://second.example`, '--subscriptions', '--drain-timeout', '0']), (h) => h.close());
    anonymous = cleanups.add(await startTestHub(['--token-issuers', ISSUER, '--anonymous', '--drain-timeout', '0']), (h) => h.close());
    admin = await accessToken(hub.hubUrl, ALL);
  });

  /** The query of `pairs` (URLSearchParams encodes as the spec asks clients to). */
  const q = (pairs: [string, string][]) => new URLSearchParams(pairs).toString();

  async function open(query: string, token: string | null = admin, on = hub, headers: Record<string, string> = {}): Promise<SseRecorder> {
    return cleanups.add(await openSse(`${on.hubUrl}?${query}`, { ...(token === null ? {} : { authorization: `Bearer ${token}` }), ...headers }), (s) => s.close());
  }

  async function subscribe(pairs: [string, string][], token: string | null = admin, on = hub, headers: Record<string, string> = {}): Promise<SseRecorder> {
    const sub = await open(q(pairs), token, on, headers);
    assert.equal(sub.status, 200, sub.text);
    return sub;
  }

  /** Publishes a public update on `topic` and waits until `sub` has it. */
  async function marker(sub: SseRecorder, topic: string, on = hub): Promise<void> {
    const id = `marker-${++markers}`;
    assert.equal((await on.publish({ topic, id, data: 'marker' })).status, 200);
    await sub.until((r) => r.events.some((e) => e.lastEventId === id), `marker ${id}`);
  }

  const ids = (sub: SseRecorder) => sub.events.map((e) => e.lastEventId).filter((id) => !id.startsWith('marker-'));

  /** The `www-authenticate` of an answer, parsed into its parameters. */
  function challenge(headers: Headers | Record<string, unknown>): Record<string, string> {
    const value = headers instanceof Headers ? headers.get('www-authenticate') : (headers['www-authenticate'] as string | undefined);
    assert.ok(value !== null && value !== undefined, 'no WWW-Authenticate');
    assert.match(value, /^Bearer /);
    return Object.fromEntries([...value.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1] as string, m[2] as string]));
  }

  const get = (query: string, headers: Record<string, string> = {}, on = hub) => fetch(`${on.hubUrl}?${query}`, { headers });

  describe('subscribing with match', () => {
    it('match selects an exact topic, byte for byte', T, async () => {
      const sub = await subscribe([['match', 'https://example.com/exact/1']]);
      await hub.publish({ topic: 'https://example.com/exact/10', id: 'm-10' });
      await hub.publish({ topic: 'https://example.com/EXACT/1', id: 'm-case' });
      await hub.publish({ topic: 'https://example.com/exact/1', id: 'm-1' });
      await marker(sub, 'https://example.com/exact/1');
      assert.deepEqual(ids(sub), ['m-1']);
    });

    it('match_exact is the explicit spelling of match', T, async () => {
      const sub = await subscribe([['match_exact', 'https://example.com/exact/2']]);
      await hub.publish({ topic: 'https://example.com/exact/2', id: 'me-2' });
      await marker(sub, 'https://example.com/exact/2');
      assert.deepEqual(ids(sub), ['me-2']);
    });

    it('an exact match holding "{" is that very topic, not a URI template', T, async () => {
      const sub = await subscribe([['match', 'https://example.com/t/{id}']]);
      await hub.publish({ topic: 'https://example.com/t/1', id: 'tpl-expansion' });
      await hub.publish({ topic: 'https://example.com/t/{id}', id: 'tpl-literal' });
      await marker(sub, 'https://example.com/t/{id}');
      assert.deepEqual(ids(sub), ['tpl-literal']);
    });

    it('match_urlpattern selects the topics a URL Pattern matches', T, async () => {
      const sub = await subscribe([['match_urlpattern', BOOKS]]);
      await hub.publish({ topic: 'https://example.com/books/1/reviews', id: 'up-reviews' });
      await hub.publish({ topic: 'https://example.com/books/7', id: 'up-7' });
      await marker(sub, 'https://example.com/books/99');
      assert.deepEqual(ids(sub), ['up-7']);
    });

    it('match=* selects every topic', T, async () => {
      const sub = await subscribe([['match', '*']]);
      await hub.publish({ topic: 'urn:anything:at-all', id: 'star-1' });
      await marker(sub, 'urn:m');
      // (With a token allowing every private update, it also receives subscription events.)
      assert.deepEqual(ids(sub).filter((id) => id.startsWith('star-')), ['star-1']);
    });

    it('several matchers of both types: an update matching any one arrives once', T, async () => {
      const sub = await subscribe([['match', 'https://example.com/books/3'], ['match_urlpattern', BOOKS], ['match', 'urn:other']]);
      await hub.publish({ topic: 'https://example.com/books/3', id: 'several-3' });
      await hub.publish({ topic: 'urn:other', id: 'several-other' });
      await marker(sub, 'urn:other');
      assert.deepEqual(ids(sub), ['several-3', 'several-other']);
    });
  });

  describe('refused subscriptions (400, nothing opened)', () => {
    for (const [name, pairs, why] of [
      ['an unknown match_ type, named', [['match_regexp', 'x']], /unknown parameter "match_regexp"/],
      ['a name in the match namespace in another case', [['Match', 'x']], /unknown parameter "Match".*case-sensitive/],
      ['an unrelated parameter starting with match', [['matches', 'x']], /unknown parameter "matches"/],
      ['an empty matcher', [['match', '']], /is empty/],
      ['a control character in a matcher', [['match', 'a\u0007b']], /control or invisible/],
      ['an invisible formatting character', [['match', 'a\u200bb']], /control or invisible/],
      ['a malformed URL pattern', [['match_urlpattern', 'https://example.com/{']], /not a valid URL pattern/],
      ['a URL pattern over 2048 characters', [['match_urlpattern', `https://example.com/${'a'.repeat(2048)}`]], /longer than 2048/],
      ['a URL pattern too costly to evaluate', [['match_urlpattern', 'https://example.com/:a((?:a+)+)']], /group inside a regular-expression group/],
      ['1001 matchers', Array.from({ length: 1001 }, (_, i) => ['match', `t${i}`]), /at most 1000 topic matchers, got 1001/],
    ] as [string, [string, string][], RegExp][]) {
      it(`refuses ${name}`, T, async () => {
        const res = await get(q(pairs), { authorization: `Bearer ${admin}` });
        assert.equal(res.status, 400);
        const body = await res.text();
        assert.match(body, why);
        assert.equal(challenge(res.headers).error, 'invalid_request');
      });
    }

    it('refuses a request mixing topic with match, saying so', T, async () => {
      const res = await get(q([['topic', 'a'], ['match', 'b']]), { authorization: `Bearer ${admin}` });
      assert.equal(res.status, 400);
      assert.match(await res.text(), /mixes "topic" \(Mercure draft-07\) with "match" parameters \(Mercure 1.0\)/);
    });

    it('refuses percent-encoded bytes that are not UTF-8', T, async () => {
      const res = await get('match=%FF%FE', { authorization: `Bearer ${admin}` });
      assert.equal(res.status, 400);
      assert.match(await res.text(), /not UTF-8/);
    });

    it('accepts 1000 matchers', T, async () => {
      const sub = await subscribe(Array.from({ length: 1000 }, (_, i) => ['match', `urn:many:${i}`] as [string, string]));
      await hub.publish({ topic: 'urn:many:999', id: 'many-999' });
      await marker(sub, 'urn:many:0');
      assert.deepEqual(ids(sub), ['many-999']);
    });
  });

  describe('QUERY', () => {
    const query = (body: string, path = '', headers: Record<string, string> = {}) =>
      fetch(`${hub.hubUrl}${path}`, { method: 'QUERY', body, headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Bearer ${admin}`, ...headers } });

    it('takes the matchers from a form body, with the project’s own client', T, async () => {
      const es = cleanups.add(new EventSource(hub.hubUrl, { method: 'QUERY', body: mercureQueryBody({ exact: 'https://example.com/q/1', urlpattern: 'https://example.com/qp/:id' }), headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/x-www-form-urlencoded' } }), (e) => e.close());
      const got: string[] = [];
      es.addEventListener('message', (e) => got.push(e.lastEventId));
      await new Promise<void>((resolve) => es.addEventListener('open', () => resolve(), { once: true }));
      await hub.publish({ topic: 'https://example.com/q/1', id: 'q-1' });
      await hub.publish({ topic: 'https://example.com/qp/9', id: 'q-p9' });
      await hub.publish({ topic: 'https://example.com/q/2', id: 'q-2' });
      await hub.publish({ topic: 'https://example.com/qp/9', id: 'q-after' });
      while (!got.includes('q-after')) await new Promise((r) => setTimeout(r, 10));
      assert.deepEqual(got, ['q-1', 'q-p9', 'q-after']);
    });

    it('merges the query component with the body: a subscription for each, last_event_id from the query first', T, async () => {
      const first = await hub.publish({ topic: 'urn:merge:a', id: 'merge-1' });
      assert.equal(first.status, 200);
      await hub.publish({ topic: 'urn:merge:b', id: 'merge-2' });
      await hub.publish({ topic: 'urn:merge:a', id: 'merge-3' });
      const res = await query(q([['match', 'urn:merge:b'], ['last_event_id', 'earliest']]), `?${q([['match', 'urn:merge:a'], ['last_event_id', 'merge-1']])}`);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('mercure-last-event-id'), 'merge-1');
      const reader = (res.body as ReadableStream<Uint8Array>).getReader();
      let text = '';
      while (!text.includes('merge-3')) text += new TextDecoder().decode((await reader.read()).value);
      await reader.cancel();
      assert.deepEqual([...text.matchAll(/^id: (.*)$/gm)].map((m) => m[1]), ['merge-2', 'merge-3']);
    });

    it('the Last-Event-ID header wins over a last_event_id in the body', T, async () => {
      await hub.publish({ topic: 'urn:hdr', id: 'hdr-1' });
      await hub.publish({ topic: 'urn:hdr', id: 'hdr-2' });
      const res = await query(q([['match', 'urn:hdr'], ['last_event_id', 'earliest']]), '', { 'last-event-id': 'hdr-1' });
      assert.equal(res.headers.get('mercure-last-event-id'), 'hdr-1');
      await res.body?.cancel();
    });

    it('refuses a body that is not a form (415), and topic in a QUERY (400)', T, async () => {
      const json = await query('{"match":"x"}', '', { 'content-type': 'application/json' });
      assert.equal(json.status, 415);
      assert.equal((await query(q([['topic', 'x']]))).status, 400);
    });

    it('applies the same rules to matchers in the body', T, async () => {
      const res = await query(q([['match_Urlpattern', 'x']]));
      assert.equal(res.status, 400);
      assert.match(await res.text(), /unknown parameter "match_Urlpattern"/);
    });
  });

  describe('reconnecting', () => {
    it('last_event_id replays what came after it, and Mercure-Last-Event-ID says where the stream resumed', T, async () => {
      await hub.publish({ topic: 'urn:resume', id: 'r-1' });
      await hub.publish({ topic: 'urn:resume', id: 'r-2' });
      await hub.publish({ topic: 'urn:resume', id: 'r-3' });
      const sub = await subscribe([['match', 'urn:resume'], ['last_event_id', 'r-1']]);
      assert.equal(sub.headers['mercure-last-event-id'], 'r-1');
      await sub.events_(2);
      assert.deepEqual(ids(sub).slice(0, 2), ['r-2', 'r-3']);
    });

    it('the Last-Event-ID header wins over last_event_id', T, async () => {
      await hub.publish({ topic: 'urn:resume2', id: 'r2-1' });
      await hub.publish({ topic: 'urn:resume2', id: 'r2-2' });
      const sub = await subscribe([['match', 'urn:resume2'], ['last_event_id', 'earliest']], admin, hub, { 'last-event-id': 'r2-1' });
      assert.equal(sub.headers['mercure-last-event-id'], 'r2-1');
      await sub.events_(1);
      assert.equal(ids(sub)[0], 'r2-2');
    });

    it('earliest replays all history, and answers Mercure-Last-Event-ID: earliest', T, async () => {
      await hub.publish({ topic: 'urn:resume3', id: 'r3-1' });
      const sub = await subscribe([['match', 'urn:resume3'], ['last_event_id', 'earliest']]);
      assert.equal(sub.headers['mercure-last-event-id'], 'earliest');
      await sub.events_(1);
      assert.equal(ids(sub)[0], 'r3-1');
    });

    it('an unknown ID answers Mercure-Last-Event-ID: earliest (events may have been missed)', T, async () => {
      const sub = await subscribe([['match', 'urn:resume4'], ['last_event_id', 'never-published']]);
      assert.equal(sub.headers['mercure-last-event-id'], 'earliest');
      assert.equal(sub.headers['last-event-id'], undefined, 'the draft-07 response header is for draft-07 requests');
    });

    it('a 1.0 request ignores draft-07’s lastEventID (no resume, no cursor header)', T, async () => {
      const sub = await subscribe([['match', 'urn:resume5'], ['lastEventID', 'earliest']]);
      assert.equal(sub.headers['mercure-last-event-id'], undefined);
    });

    it('a draft-07 request keeps lastEventID and the Last-Event-ID response header', T, async () => {
      await hub.publish({ topic: 'urn:resume6', id: 'r6-1' });
      const sub = cleanups.add(await openSse(subscribeUrl(hub.hubUrl, ['urn:resume6'], { lastEventID: 'earliest' }), { authorization: `Bearer ${hub.adminToken}` }), (s) => s.close());
      assert.equal(sub.headers['last-event-id'], 'earliest');
      assert.equal(sub.headers['mercure-last-event-id'], undefined);
    });
  });

  describe('access tokens and RFC 6750 errors', () => {
    it('a subscriber without a token gets 401 with a bare challenge pointing at the metadata', T, async () => {
      const res = await get(q([['match', 'x']]));
      assert.equal(res.status, 401);
      const c = challenge(res.headers);
      assert.equal(c.error, undefined);
      assert.equal(c.resource_metadata, `${hub.url}/.well-known/oauth-protected-resource/.well-known/mercure`);
    });

    for (const [name, make, why] of [
      ['a token for another hub (aud)', () => accessToken('https://other-hub.example/.well-known/mercure', ALL), /["']aud["'] .* does not name this hub/],
      ['an untrusted issuer', () => accessToken(hub.hubUrl, ALL, { iss: 'https://evil.example' }), /issuer/],
      ['no exp', () => accessToken(hub.hubUrl, ALL, { exp: undefined }), /["']exp["'] is missing/],
      ['an expired token', () => accessToken(hub.hubUrl, ALL, { exp: -5 }), /expired/],
      ['a detail that does not validate', () => accessToken(hub.hubUrl, [...ALL, detail(['subscribe'], [{ urlpattern: 'https://x/{' }])]), /not a valid URL pattern/],
    ] as [string, () => Promise<string>, RegExp][]) {
      it(`${name}: 401 invalid_token with an error_description`, T, async () => {
        const res = await get(q([['match', 'x']]), { authorization: `Bearer ${await make()}` });
        assert.equal(res.status, 401);
        const c = challenge(res.headers);
        assert.equal(c.error, 'invalid_token');
        assert.match(c.error_description ?? '', why);
        assert.ok(c.resource_metadata !== undefined);
      });
    }

    it('a second trusted issuer is accepted too', T, async () => {
      await subscribe([['match', 'x']], await accessToken(hub.hubUrl, ALL, { iss: 'https://second.example' }));
    });

    it('a token in the URL is a 400 invalid_request (never accepted: RFC 9700)', T, async () => {
      for (const name of ['authorization', 'access_token']) {
        const res = await get(q([['match', 'x'], [name, admin]]));
        assert.equal(res.status, 400);
        assert.equal(challenge(res.headers).error, 'invalid_request');
        assert.match(await res.text(), /does not accept a token in the URL/);
      }
    });

    it('a malformed Authorization header is a 400 invalid_request', T, async () => {
      const res = await get(q([['match', 'x']]), { authorization: 'Basic abc' });
      assert.equal(res.status, 400);
      assert.equal(challenge(res.headers).error, 'invalid_request');
    });

    it('the __Secure-mercure_access_token cookie carries a token; the header wins over it', T, async () => {
      const token = await accessToken(hub.hubUrl, [detail(['subscribe'], ['urn:cookie'])]);
      const sub = await subscribe([['match', 'urn:cookie']], null, hub, { cookie: `other=1; __Secure-mercure_access_token=${token}` });
      await hub.publish({ topic: 'urn:cookie', id: 'cookie-private', private: 'on' });
      await marker(sub, 'urn:cookie');
      assert.deepEqual(ids(sub), ['cookie-private']);
      const bad = await get(q([['match', 'x']]), { cookie: `__Secure-mercure_access_token=${token}`, authorization: 'Bearer not-a-token' });
      assert.equal(bad.status, 401);
    });

    it('a 1.0 request does not read the draft-07 cookie', T, async () => {
      const res = await get(q([['match', 'x']]), { cookie: `mercureAuthorization=${hub.adminToken}` });
      assert.equal(res.status, 401);
    });

    it('a draft-07 token is accepted by a 1.0 request, and an access token by a draft-07 request', T, async () => {
      await subscribe([['match', 'x']], hub.adminToken);
      const sub = cleanups.add(await openSse(subscribeUrl(hub.hubUrl, ['x']), { authorization: `Bearer ${admin}` }), (s) => s.close());
      assert.equal(sub.status, 200);
    });

    it('--token-audience pins the audience; the request’s own URL is then not enough', T, async () => {
      const pinned = cleanups.add(await startTestHub(['--token-issuers', ISSUER, '--token-audience', 'https://hub.example.com/.well-known/mercure', '--drain-timeout', '0']), (h) => h.close());
      const good = await accessToken('https://hub.example.com/.well-known/mercure', ALL);
      const own = await accessToken(pinned.hubUrl, ALL);
      assert.equal((await get(q([['match', 'x']]), { authorization: `Bearer ${own}` }, pinned)).status, 401);
      const ok = await get(q([['match', 'x']]), { authorization: `Bearer ${good}` }, pinned);
      assert.equal(ok.status, 200);
      await ok.body?.cancel();
      const meta = (await (await fetch(`${pinned.url}/.well-known/oauth-protected-resource/.well-known/mercure`)).json()) as Record<string, unknown>;
      assert.equal(meta.resource, 'https://hub.example.com/.well-known/mercure');
    });

    it('an anonymous subscriber on a hub that allows them receives public updates only', T, async () => {
      const sub = await subscribe([['match', 'urn:anon']], null, anonymous);
      await anonymous.publish({ topic: 'urn:anon', id: 'anon-private', private: 'on' });
      await anonymous.publish({ topic: 'urn:anon', id: 'anon-public' });
      await marker(sub, 'urn:anon', anonymous);
      assert.deepEqual(ids(sub), ['anon-public']);
    });
  });

  describe('protected resource metadata (RFC 9728)', () => {
    it('is served at /.well-known/oauth-protected-resource/.well-known/mercure', T, async () => {
      const res = await fetch(`${hub.url}/.well-known/oauth-protected-resource/.well-known/mercure`);
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
      assert.deepEqual(await res.json(), {
        resource: hub.hubUrl,
        bearer_methods_supported: ['header'],
        authorization_details_types_supported: ['https://mercure.rocks/authorization-detail'],
        mercure_cookie: '__Secure-mercure_access_token',
        mercure_matcher_types_supported: ['exact', 'urlpattern'],
        mercure_subscriptions: true,
      });
    });
  });

  describe('publishing with an access token', () => {
    const publish = (fields: Record<string, string | string[]>, token = admin) => hub.publish(fields, token);

    it('publishes with the same form fields, and answers the ID as text/plain', T, async () => {
      const sub = await subscribe([['match', 'urn:pub1']]);
      const res = await publish({ topic: 'urn:pub1', data: 'hello', id: 'pub1-1', type: 'greeting', retry: '5000' });
      assert.equal(res.status, 200);
      assert.equal(res.body, 'pub1-1');
      assert.match(res.headers.get('content-type') ?? '', /^text\/plain; charset=utf-8/);
      await sub.events_(1);
      assert.deepEqual(sub.events[0], { type: 'greeting', data: 'hello', lastEventId: 'pub1-1' });
    });

    for (const [name, fields, status, why] of [
      ['the topic "*"', { topic: '*' }, 400, /topic "\*" is reserved/],
      ['a topic in the hub namespace', { topic: 'https://example.com/.well-known/mercure/subscriptions/x' }, 400, /reserved for the hub/],
      ['a topic reaching the namespace through dot-segments', { topic: '/books/../.well-known/mercure/subscriptions/exact/a/b' }, 400, /reserved for the hub/],
      ['a topic reaching it through percent-encoding', { topic: 'https://x.example/.well-known/%6Dercure/subscriptions/a' }, 400, /reserved for the hub/],
      ['a control character in a topic', { topic: 'urn:a\u0001' }, 400, /control or invisible/],
      ['an id starting with "#"', { topic: 'urn:x', id: '#1' }, 400, /must not start with "#"/],
      ['the id "earliest"', { topic: 'urn:x', id: 'earliest' }, 400, /earliest/],
      ['an invisible character in the id', { topic: 'urn:x', id: 'a\u202eb' }, 400, /control or invisible/],
      ['the type "mercure"', { topic: 'urn:x', type: 'mercure' }, 400, /"mercure" is reserved/],
      ['a retry that is not digits', { topic: 'urn:x', retry: '1e3' }, 400, /ASCII digits/],
      ['no topic', { data: 'x' }, 400, /"topic" field is required/],
      ['1001 topics', { topic: Array.from({ length: 1001 }, (_, i) => `urn:t${i}`) }, 413, /at most 1000 topics/],
    ] as [string, Record<string, string | string[]>, number, RegExp][]) {
      it(`refuses ${name} (${status}) and stores nothing`, T, async () => {
        const before = await hub.hub.transport.lastId?.();
        const res = await publish({ data: 'x', ...fields });
        assert.equal(res.status, status, res.body);
        assert.match(res.body, why);
        if (status === 400) assert.equal(challenge(res.headers).error, 'invalid_request');
        assert.equal(await hub.hub.transport.lastId?.(), before);
      });
    }

    it('refuses a topic its details do not grant: 403 insufficient_scope, even if another topic is granted', T, async () => {
      const token = await accessToken(hub.hubUrl, [detail(['publish'], [{ urlpattern: BOOKS }])]);
      assert.equal((await publish({ topic: 'https://example.com/books/1' }, token)).status, 200);
      const res = await publish({ topic: ['https://example.com/books/1', 'https://example.com/authors/1'] }, token);
      assert.equal(res.status, 403);
      const c = challenge(res.headers);
      assert.equal(c.error, 'insufficient_scope');
      assert.match(c.error_description ?? '', /does not allow topic 'https:\/\/example.com\/authors\/1'/);
    });

    it('a token with only subscribe details may not publish (403 insufficient_scope)', T, async () => {
      const res = await publish({ topic: 'urn:x' }, await accessToken(hub.hubUrl, [detail(['subscribe'], ['*'])]));
      assert.equal(res.status, 403);
      assert.equal(challenge(res.headers).error, 'insufficient_scope');
    });

    it('an invalid access token is a 401 invalid_token; none at all a 401 bare challenge (draft-07 wording kept)', T, async () => {
      const invalid = await publish({ topic: 'urn:x' }, await accessToken(hub.hubUrl, ALL, { exp: -1 }));
      assert.equal(invalid.status, 401);
      assert.equal(challenge(invalid.headers).error, 'invalid_token');
      const none = await hub.publish({ topic: 'urn:x' }, null);
      assert.equal(none.status, 401);
    });

    it('an access token in the authorization query parameter is refused (400)', T, async () => {
      const res = await fetch(`${hub.hubUrl}?authorization=${admin}`, { method: 'POST', body: 'topic=urn:x', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
      assert.equal(res.status, 400);
      assert.match(await res.text(), /not accepted in the URL/);
    });

    it('a draft-07 publisher may not use the type "mercure" either (1.0 subscribers listen for it)', T, async () => {
      const res = await hub.publish({ topic: 'urn:x', type: 'mercure' });
      assert.equal(res.status, 400);
      assert.match(res.body, /reserved/);
    });

    it('a draft-07 publisher reaching the namespace through dot-segments is refused with draft-07’s 403', T, async () => {
      const res = await hub.publish({ topic: '/x/../.well-known/mercure/subscriptions/a/b' });
      assert.equal(res.status, 403);
    });
  });

  describe('both generations on one hub at once', () => {
    it('a draft-07 subscriber and a 1.0 subscriber receive the same update', T, async () => {
      const old = cleanups.add(await openSse(subscribeUrl(hub.hubUrl, ['https://example.com/books/{id}']), { authorization: `Bearer ${hub.adminToken}` }), (s) => s.close());
      const modern = await subscribe([['match_urlpattern', BOOKS]]);
      await hub.publish({ topic: 'https://example.com/books/42', id: 'both-42', data: 'same' });
      await old.events_(1);
      await modern.events_(1);
      assert.deepEqual(old.events[0], modern.events[0]);
      assert.deepEqual(modern.events[0], { type: 'message', data: 'same', lastEventId: 'both-42' });
    });

    it('a private update published with an access token reaches a draft-07 subscriber whose claim allows it, and no other', T, async () => {
      const allowed = cleanups.add(await openSse(subscribeUrl(hub.hubUrl, ['https://example.com/secret/{n}']), { authorization: `Bearer ${await hub.token({ subscribe: ['https://example.com/secret/{n}'] })}` }), (s) => s.close());
      const refused = cleanups.add(await openSse(subscribeUrl(hub.hubUrl, ['https://example.com/secret/{n}']), { authorization: `Bearer ${await hub.token({ subscribe: ['https://example.com/other'] })}` }), (s) => s.close());
      const publisher = await accessToken(hub.hubUrl, [detail(['publish'], [{ urlpattern: 'https://example.com/secret/:n' }, 'https://example.com/marker-s'])]);
      assert.equal((await hub.publish({ topic: 'https://example.com/secret/1', id: 'x-private-1', private: 'on' }, publisher)).status, 200);
      await marker(allowed, 'https://example.com/secret/0');
      await marker(refused, 'https://example.com/secret/0');
      assert.deepEqual(ids(allowed), ['x-private-1']);
      assert.deepEqual(ids(refused), []);
    });

    it('and the other way round: a private update published with a draft-07 token reaches a 1.0 subscriber whose details allow it, and no other', T, async () => {
      const allowed = await subscribe([['match_urlpattern', 'https://example.com/vault/:n']], await accessToken(hub.hubUrl, [detail(['subscribe'], [{ urlpattern: 'https://example.com/vault/:n' }])]));
      const refused = await subscribe([['match_urlpattern', 'https://example.com/vault/:n']], await accessToken(hub.hubUrl, [detail(['subscribe'], ['https://example.com/vault/2'])]));
      const publisher = await hub.token({ publish: ['https://example.com/vault/{n}'] });
      assert.equal((await hub.publish({ topic: 'https://example.com/vault/1', id: 'y-private-1', private: 'on' }, publisher)).status, 200);
      await marker(allowed, 'https://example.com/vault/0');
      await marker(refused, 'https://example.com/vault/0');
      assert.deepEqual(ids(allowed), ['y-private-1']);
      assert.deepEqual(ids(refused), []);
    });

    it('an alternate topic granted to a 1.0 subscriber delivers the update (the audience is the union of the topics’)', T, async () => {
      const reader = await subscribe([['match_urlpattern', BOOKS]], await accessToken(hub.hubUrl, [detail(['subscribe'], [{ urlpattern: 'https://example.com/users/42/*' }])]));
      await hub.publish({ topic: ['https://example.com/books/5', 'https://example.com/users/42/books/5'], id: 'alt-5', private: 'on' });
      await hub.publish({ topic: 'https://example.com/books/6', id: 'alt-6', private: 'on' });
      await marker(reader, 'https://example.com/books/0');
      assert.deepEqual(ids(reader), ['alt-5']);
    });

    it('the client helpers build what the hub reads', T, async () => {
      const url = mercureMatchUrl(hub.hubUrl, { exact: 'urn:helper', urlpattern: 'https://example.com/helper/:id' }, { lastEventId: 'earliest' });
      assert.equal(new URL(url).search, `?match=urn%3Ahelper&match_urlpattern=https%3A%2F%2Fexample.com%2Fhelper%2F%3Aid&last_event_id=earliest`);
      const sub = await open(new URL(url).search.slice(1));
      assert.equal(sub.status, 200);
      assert.equal(sub.headers['mercure-last-event-id'], 'earliest');
    });
  });

  describe('active subscriptions in both forms', () => {
    const V1_EVENTS = '/.well-known/mercure/subscriptions/:match_type/:match/:subscriber';
    const V0_EVENTS = '/.well-known/mercure/subscriptions/{topic}/{subscriber}';
    interface V1Doc {
      id: string;
      type: string;
      match_type: string;
      match: string;
      subscriber: string;
      active: boolean;
      payload?: unknown;
    }
    const docs = (watcher: SseRecorder) => watcher.events.map((e) => ({ event: e.type, doc: JSON.parse(e.data) as V1Doc & { topic?: string } }));

    it('a 1.0 watcher gets the 1.0 form (event mercure, match_type, match, payload) for draft-07 and 1.0 subscribers alike, and no draft-07 form', T, async () => {
      const watcher = await subscribe([['match_urlpattern', V1_EVENTS]], await accessToken(hub.hubUrl, [detail(['subscribe'], [{ urlpattern: V1_EVENTS }])]));
      const modern = await subscribe([['match_urlpattern', 'https://example.com/watched/:id']], await accessToken(hub.hubUrl, [detail(['subscribe'], [{ urlpattern: 'https://example.com/watched/:id' }], { user: 'alice' })]));
      const old = cleanups.add(await openSse(subscribeUrl(hub.hubUrl, ['https://example.com/watched/{id}']), { authorization: `Bearer ${await hub.token({ subscribe: [], payload: { user: 'bob' } })}` }), (s) => s.close());
      assert.equal(old.status, 200);
      await watcher.until((w) => docs(w).filter((d) => d.doc.match?.startsWith('https://example.com/watched/')).length >= 2, 'two active events');
      const about = docs(watcher).filter((d) => d.doc.match?.startsWith('https://example.com/watched/'));
      assert.ok(about.every((d) => d.event === 'mercure'));
      const urlpattern = about.find((d) => d.doc.match_type === 'urlpattern')?.doc as V1Doc;
      assert.deepEqual(urlpattern, { id: `/.well-known/mercure/subscriptions/urlpattern/https%3A%2F%2Fexample.com%2Fwatched%2F%3Aid/${encodeURIComponent(urlpattern.subscriber)}`, type: 'subscription', match_type: 'urlpattern', match: 'https://example.com/watched/:id', subscriber: urlpattern.subscriber, active: true, payload: { user: 'alice' } });
      const template = about.find((d) => d.doc.match_type === 'uritemplate')?.doc as V1Doc;
      assert.deepEqual({ match: template.match, payload: template.payload }, { match: 'https://example.com/watched/{id}', payload: { user: 'bob' } });
      assert.ok(!docs(watcher).some((d) => d.doc.topic !== undefined), 'no draft-07 document');
      modern.close();
      await watcher.until((w) => docs(w).some((d) => d.doc.match === 'https://example.com/watched/:id' && !d.doc.active), 'inactive event');
    });

    it('a draft-07 watcher gets the draft-07 form for 1.0 subscribers too, and no 1.0 form', T, async () => {
      const watcher = cleanups.add(await openSse(subscribeUrl(hub.hubUrl, [V0_EVENTS, '*']), { authorization: `Bearer ${await hub.token({ subscribe: ['*'] })}` }), (s) => s.close());
      await subscribe([['match_urlpattern', 'https://example.com/seen/:id']], await accessToken(hub.hubUrl, [detail(['subscribe'], ['*'], { who: 'dave' })]));
      await watcher.until((w) => w.events.some((e) => e.data.includes('https://example.com/seen/:id')), 'the draft-07 event');
      await marker(watcher, 'urn:after-seen');
      const about = watcher.events.filter((e) => e.data.includes('https://example.com/seen/:id'));
      assert.equal(about.length, 1);
      assert.equal(about[0]?.type, 'message');
      const doc = JSON.parse(about[0]?.data ?? '{}') as { '@context': string; type: string; topic: string; payload: unknown };
      assert.deepEqual([doc['@context'], doc.type, doc.topic, doc.payload], ['https://mercure.rocks/', 'Subscription', 'https://example.com/seen/:id', { who: 'dave' }]);
    });

    it('the subscription API answers a 1.0 request in the 1.0 form, with the cursor in a Link header', T, async () => {
      const sub = await subscribe([['match', 'https://example.com/api/1']], await accessToken(hub.hubUrl, [detail(['subscribe'], ['*'], { who: 'carol' })]));
      assert.equal(sub.status, 200);
      const reader = await accessToken(hub.hubUrl, [detail(['subscribe'], [{ urlpattern: '/.well-known/mercure/subscriptions{/*}?' }])]);
      const path = `/.well-known/mercure/subscriptions/exact/${encodeURIComponent('https://example.com/api/1')}`;
      const res = await fetch(`${hub.url}${path}`, { headers: { authorization: `Bearer ${reader}` } });
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
      assert.match(res.headers.get('link') ?? '', new RegExp(`^<${hub.hubUrl}>; rel="mercure"; last-event-id="[^"]+"; type="mercure"; content-type="application/json"$`));
      const body = (await res.json()) as { id: string; type: string; subscriptions: V1Doc[] };
      assert.equal(body.id, path);
      assert.equal(body.type, 'subscriptions');
      assert.equal(body.subscriptions.length, 1);
      const one = body.subscriptions[0] as V1Doc;
      assert.deepEqual({ match_type: one.match_type, match: one.match, payload: one.payload }, { match_type: 'exact', match: 'https://example.com/api/1', payload: { who: 'carol' } });
      const single = await fetch(`${hub.url}${one.id}`, { headers: { authorization: `Bearer ${reader}` } });
      assert.deepEqual(await single.json(), one);
      const missing = await fetch(`${hub.url}${path}/urn%3Auuid%3Anobody`, { headers: { authorization: `Bearer ${reader}` } });
      assert.equal(missing.status, 404);
    });

    it('the subscription API answers a draft-07 token in the draft-07 form', T, async () => {
      const res = await fetch(`${hub.url}/.well-known/mercure/subscriptions`, { headers: { authorization: `Bearer ${await hub.token({ subscribe: ['*'] })}` } });
      assert.equal(res.status, 200);
      const body = (await res.json()) as { '@context': string; type: string };
      assert.deepEqual([body['@context'], body.type], ['https://mercure.rocks/', 'Subscriptions']);
    });

    it('the subscription API refuses a 1.0 token without a subscribe grant on the URL: 403 insufficient_scope', T, async () => {
      const res = await fetch(`${hub.url}/.well-known/mercure/subscriptions`, { headers: { authorization: `Bearer ${await accessToken(hub.hubUrl, [detail(['subscribe'], ['urn:x'])])}` } });
      assert.equal(res.status, 403);
      assert.equal(challenge(res.headers).error, 'insufficient_scope');
    });
  });
});
