// Authorization (SPEC §3, Mercure draft-07): where the hub finds a token, which tokens it refuses
// and why, what each role's key may sign, `exp` during a stream, anonymous subscribers, and the
// CSRF check of cookie-authenticated publishes.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { SignJWT, exportJWK, exportSPKI, generateKeyPair } from 'jose';
import { pino } from 'pino';
import { loadConfig, startHub } from '../../src/hub/index.js';
import { signToken } from '../../src/hub/mercure/token.js';
import { TEST_KEY, type TestHub, startTestHub } from '../helpers/hub.js';
import { listen } from '../helpers/http.js';
import { assertNothingStored, metric, metricReaches, send } from '../helpers/hub-probes.js';
import { openSse } from '../helpers/sse-client.js';

const T = { timeout: 20_000 };
const BOOK = 'https://example.com/books/1';
const OTHER_KEY = 'another-secret-key-that-is-at-least-32-chars';

async function hubWith(flags: string[] = []): Promise<TestHub> {
  const hub = await startTestHub(['--drain-timeout', '0', ...flags]);
  after(() => hub.close());
  return hub;
}

/** Opens a subscription to BOOK with extra headers / query; returns its status and body so far. */
async function subscribe(hub: TestHub, headers: Record<string, string> = {}, query = ''): Promise<{ status: number; text: string }> {
  const sub = await openSse(`${hub.hubUrl}?topic=${encodeURIComponent(BOOK)}${query}`, headers);
  after(() => sub.close());
  if (sub.status !== 200) await sub.done;
  return { status: sub.status, text: sub.text };
}

function base64url(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

/** Signs arbitrary claims (for shapes `signToken` cannot make) with an HMAC key. */
function signClaims(claims: Record<string, unknown>): SignJWT {
  return new SignJWT(claims).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).setIssuedAt();
}

async function hmac(jwt: SignJWT, key = TEST_KEY): Promise<string> {
  return jwt.sign(new TextEncoder().encode(key));
}

const form = (fields: Record<string, string>) => new URLSearchParams(fields).toString();

describe('authorization: where the token is found', () => {
  it('reads a subscriber token from the Authorization header', T, async () => {
    const hub = await hubWith();
    assert.equal((await subscribe(hub)).status, 401);
    assert.equal((await subscribe(hub, { authorization: `Bearer ${hub.adminToken}` })).status, 200);
  });

  it('reads a token from the "authorization" query parameter, for subscribing and for publishing', T, async () => {
    const hub = await hubWith();
    assert.equal((await subscribe(hub, {}, `&authorization=${hub.adminToken}`)).status, 200);
    const res = await fetch(`${hub.hubUrl}?authorization=${hub.adminToken}`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: form({ topic: BOOK, data: 'x', id: 'q1' }) });
    assert.equal(res.status, 200);
    assert.equal(await res.text(), 'q1');
  });

  it('reads a token from the mercureAuthorization cookie', T, async () => {
    const hub = await hubWith();
    assert.equal((await subscribe(hub, { cookie: `theme=dark; mercureAuthorization=${hub.adminToken}` })).status, 200);
  });

  it('reads the token from the cookie named by --cookie-name, and no longer from mercureAuthorization', T, async () => {
    const hub = await hubWith(['--cookie-name', 'hubToken']);
    assert.equal((await subscribe(hub, { cookie: `hubToken=${hub.adminToken}` })).status, 200);
    const res = await subscribe(hub, { cookie: `mercureAuthorization=${hub.adminToken}` });
    assert.equal(res.status, 401);
    assert.match(res.text, /a subscriber token is required/);
  });

  it('prefers the Authorization header over the query parameter', T, async () => {
    const hub = await hubWith();
    assert.equal((await subscribe(hub, { authorization: `Bearer ${hub.adminToken}` }, '&authorization=garbage')).status, 200);
    const res = await subscribe(hub, { authorization: 'Bearer garbage' }, `&authorization=${hub.adminToken}`);
    assert.equal(res.status, 401);
    assert.match(res.text, /invalid subscriber token/);
  });

  it('answers 401 to an Authorization header that is not "Bearer <token>"', T, async () => {
    const hub = await hubWith();
    const res = await subscribe(hub, { authorization: `Basic ${Buffer.from('a:b').toString('base64')}` });
    assert.equal(res.status, 401);
    assert.match(res.text, /must be "Bearer <token>"/);
  });
});

describe('authorization: refused tokens (401)', () => {
  it('refuses a token with "alg": "none"', T, async () => {
    const hub = await hubWith();
    const unsigned = `${base64url({ alg: 'none', typ: 'JWT' })}.${base64url({ mercure: { publish: ['*'], subscribe: ['*'] } })}.`;
    const res = await hub.publish({ topic: BOOK, data: 'x', id: 'x1' }, unsigned);
    assert.equal(res.status, 401);
    assert.match(res.body, /invalid publisher token/);
    assert.equal((await subscribe(hub, { authorization: `Bearer ${unsigned}` })).status, 401);
    await assertNothingStored(hub);
  });

  it('refuses a token whose signature was made with another key', T, async () => {
    const hub = await hubWith();
    const forged = await signToken(OTHER_KEY, { publish: ['*'] });
    const res = await hub.publish({ topic: BOOK, data: 'x', id: 'x1' }, forged);
    assert.equal(res.status, 401);
    assert.match(res.body, /signature does not match the configured key/);
    await assertNothingStored(hub);
  });

  it('refuses an expired token at connect, saying "exp" is in the past', T, async () => {
    const hub = await hubWith();
    const expired = await hub.token({ publish: ['*'], subscribe: ['*'], expiresIn: -60_000 });
    const sub = await subscribe(hub, { authorization: `Bearer ${expired}` });
    assert.equal(sub.status, 401);
    assert.match(sub.text, /expired \("exp" is in the past\)/);
    const res = await hub.publish({ topic: BOOK, data: 'x', id: 'x1' }, expired);
    assert.equal(res.status, 401);
    assert.match(res.body, /"exp"/);
    await assertNothingStored(hub);
  });

  it('refuses a token that is not valid yet ("nbf" in the future)', T, async () => {
    const hub = await hubWith();
    const early = await hmac(signClaims({ mercure: { publish: ['*'], subscribe: ['*'] } }).setNotBefore(Math.floor(Date.now() / 1000) + 3600));
    const sub = await subscribe(hub, { authorization: `Bearer ${early}` });
    assert.equal(sub.status, 401);
    assert.match(sub.text, /claim "nbf" is not valid now/);
  });

  it('refuses a token whose mercure.publish is a string rather than an array', T, async () => {
    const hub = await hubWith();
    const token = await hmac(signClaims({ mercure: { publish: '*' } }));
    const res = await hub.publish({ topic: BOOK, data: 'x', id: 'x1' }, token);
    assert.equal(res.status, 401);
    assert.match(res.body, /claim "mercure.publish" must be an array of strings/);
    await assertNothingStored(hub);
  });

  it('refuses a token whose mercure claim is an array rather than an object', T, async () => {
    const hub = await hubWith();
    const token = await hmac(signClaims({ mercure: ['*'] }));
    const sub = await subscribe(hub, { authorization: `Bearer ${token}` });
    assert.equal(sub.status, 401);
    assert.match(sub.text, /claim "mercure" must be an object/);
  });

  it('refuses a token whose mercure.subscribe holds a malformed template', T, async () => {
    const hub = await hubWith();
    const token = await hub.token({ subscribe: ['https://example.com/{unclosed'] });
    const sub = await subscribe(hub, { authorization: `Bearer ${token}` });
    assert.equal(sub.status, 401);
    assert.match(sub.text, /mercure.subscribe/);
  });
});

describe('authorization: keys and algorithms', () => {
  it('with --jwt-alg RS256, refuses an HS256 token signed with the public key as HMAC secret and accepts an RS256 one', T, async () => {
    const { publicKey, privateKey } = await generateKeyPair('RS256', { extractable: true });
    const pem = await exportSPKI(publicKey);
    const hub = await hubWith(['--jwt-alg', 'RS256', '--jwt-key', pem]);
    const confused = await hmac(signClaims({ mercure: { publish: ['*'] } }), pem);
    const refused = await hub.publish({ topic: BOOK, data: 'x', id: 'confused' }, confused);
    assert.equal(refused.status, 401);
    assert.match(refused.body, /algorithm is not the configured one/);
    const genuine = await new SignJWT({ mercure: { publish: ['*'] } }).setProtectedHeader({ alg: 'RS256' }).sign(privateKey);
    const accepted = await hub.publish({ topic: BOOK, data: 'x', id: 'genuine' }, genuine);
    assert.equal(accepted.status, 200, accepted.body);
    assert.equal(await metric(hub, 'ssehub_updates_published_total'), 1);
  });

  it('with --jwks-url, accepts an ES256 token signed by a key of the set and refuses one signed by another key', T, async () => {
    const { publicKey, privateKey } = await generateKeyPair('ES256', { extractable: true });
    const stranger = await generateKeyPair('ES256', { extractable: true });
    const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
    const jwks = await listen((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [jwk] })));
    after(() => jwks.close());
    const config = loadConfig({ argv: ['--jwks-url', `${jwks.url}/jwks.json`, '--jwt-alg', 'ES256', '--listen', '127.0.0.1:0', '--transport', 'memory', '--drain-timeout', '0'], env: {} });
    const running = await startHub(config, { logger: pino({ level: 'silent' }) });
    after(() => running.close());
    const publishWith = (token: string) =>
      fetch(`${running.url}/.well-known/mercure`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/x-www-form-urlencoded' }, body: form({ topic: BOOK, data: 'x' }) });
    const claims = { mercure: { publish: ['*'] } };
    const good = await new SignJWT(claims).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).sign(privateKey);
    assert.equal((await publishWith(good)).status, 200);
    const forged = await new SignJWT(claims).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).sign(stranger.privateKey);
    const refused = await publishWith(forged);
    assert.equal(refused.status, 401);
    assert.match(await refused.text(), /signature does not match/);
    const unknownKid = await new SignJWT(claims).setProtectedHeader({ alg: 'ES256', kid: 'k2' }).sign(stranger.privateKey);
    const unknown = await publishWith(unknownKid);
    assert.equal(unknown.status, 401);
    assert.match(await unknown.text(), /no key of the JWKS matches it/);
  });

  it('with separate --publisher-jwt-key and --subscriber-jwt-key, each key signs for its own role only', T, async () => {
    const publisherKey = 'publisher-secret-that-is-at-least-32-characters';
    const subscriberKey = 'subscriber-secret-that-is-at-least-32-characters';
    const hub = await hubWith(['--publisher-jwt-key', publisherKey, '--subscriber-jwt-key', subscriberKey]);
    const claims = { publish: ['*'], subscribe: ['*'] };
    const byPublisherKey = await signToken(publisherKey, claims);
    const bySubscriberKey = await signToken(subscriberKey, claims);

    assert.equal((await hub.publish({ topic: BOOK, data: 'x', id: 'p1' }, byPublisherKey)).status, 200);
    const wrongPublish = await hub.publish({ topic: BOOK, data: 'x', id: 'p2' }, bySubscriberKey);
    assert.equal(wrongPublish.status, 401);
    assert.match(wrongPublish.body, /invalid publisher token: its signature/);
    // --jwt-key (the test key) is overridden for both roles.
    assert.equal((await hub.publish({ topic: BOOK, data: 'x', id: 'p3' }, hub.adminToken)).status, 401);

    assert.equal((await subscribe(hub, { authorization: `Bearer ${bySubscriberKey}` })).status, 200);
    const wrongSubscribe = await subscribe(hub, { authorization: `Bearer ${byPublisherKey}` });
    assert.equal(wrongSubscribe.status, 401);
    assert.match(wrongSubscribe.text, /invalid subscriber token: its signature/);
  });

  it('ends a stream by itself when its token expires, counting it as token-expired', T, async () => {
    const hub = await hubWith();
    // exp has a one-second resolution: this token expires 0.5 to 1.5 s from now.
    const token = await hub.token({ subscribe: ['*'], expiresIn: 1500 });
    const sub = await openSse(`${hub.hubUrl}?topic=${encodeURIComponent(BOOK)}`, { authorization: `Bearer ${token}` });
    after(() => sub.close());
    assert.equal(sub.status, 200);
    await sub.done;
    await metricReaches(hub, 'ssehub_connections_closed_total', '{reason="token-expired"}', 1);
    assert.equal(await metric(hub, 'ssehub_connections'), 0);
  });
});

describe('authorization: anonymous subscribers', () => {
  it('refuses a subscriber without a token with 401 unless --anonymous', T, async () => {
    const hub = await hubWith();
    const res = await subscribe(hub);
    assert.equal(res.status, 401);
    assert.match(res.text, /does not allow anonymous subscribers/);
  });

  it('lets a subscriber without a token in with --anonymous', T, async () => {
    const hub = await hubWith(['--anonymous']);
    assert.equal((await subscribe(hub)).status, 200);
  });

  it('still refuses an invalid token with --anonymous rather than treating it as anonymous', T, async () => {
    const hub = await hubWith(['--anonymous']);
    const res = await subscribe(hub, { authorization: `Bearer ${await signToken(OTHER_KEY, { subscribe: ['*'] })}` });
    assert.equal(res.status, 401);
    assert.match(res.text, /invalid subscriber token/);
  });
});

describe('authorization: CSRF check of cookie-authenticated publishes', () => {
  const APP = 'https://app.example.com';

  async function cookiePublish(hub: TestHub, id: string, headers: Record<string, string>) {
    return send(hub.hubUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: `mercureAuthorization=${hub.adminToken}`, ...headers },
      body: form({ topic: BOOK, data: 'x', id }),
    });
  }

  it('refuses a cookie-authenticated publish without Origin or Referer (403)', T, async () => {
    const hub = await hubWith(['--publish-origins', APP]);
    const res = await cookiePublish(hub, 'c1', {});
    assert.equal(res.status, 403);
    assert.match(res.body, /must carry an Origin or Referer header/);
    await assertNothingStored(hub);
  });

  it('refuses a cookie-authenticated publish from an Origin not in --publish-origins (403), naming it', T, async () => {
    const hub = await hubWith(['--publish-origins', APP]);
    const res = await cookiePublish(hub, 'c1', { origin: 'https://evil.example.com' });
    assert.equal(res.status, 403);
    assert.match(res.body, /origin https:\/\/evil.example.com may not publish with a cookie; add it to --publish-origins/);
    await assertNothingStored(hub);
  });

  it('accepts a cookie-authenticated publish from an allowed Origin', T, async () => {
    const hub = await hubWith(['--publish-origins', APP]);
    const res = await cookiePublish(hub, 'c1', { origin: APP });
    assert.equal(res.status, 200, res.body);
    assert.equal(res.body, 'c1');
  });

  it('accepts a cookie-authenticated publish whose Referer is on an allowed origin', T, async () => {
    const hub = await hubWith(['--publish-origins', APP]);
    const res = await cookiePublish(hub, 'c1', { referer: `${APP}/admin/books?page=2` });
    assert.equal(res.status, 200, res.body);
  });

  it('needs no Origin for a publish authenticated by the Authorization header', T, async () => {
    const hub = await hubWith(['--publish-origins', APP]);
    const res = await send(hub.hubUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Bearer ${hub.adminToken}` },
      body: form({ topic: BOOK, data: 'x', id: 'h1' }),
    });
    assert.equal(res.status, 200, res.body);
  });
});

describe('authorization: the cache of verified tokens', () => {
  it('answers a repeated token from the cache, but never past its exp, and never caches a refusal', async () => {
    const { Verifier } = await import('../../src/hub/core/tokens.js');
    const verifier = new Verifier('publisher', { key: TEST_KEY, alg: 'HS256' });
    const token = await signToken(TEST_KEY, { publish: ['*'], expiresIn: 2000 });
    const first = await verifier.verify(token);
    assert.equal(await verifier.verify(token), first, 'the same grant, from the cache');
    // Past exp the cached grant must not be used: the token is checked again and refused.
    await new Promise((resolve) => setTimeout(resolve, 100 + Math.max(0, (first.expiresAt ?? 0) - Date.now())));
    await assert.rejects(verifier.verify(token), /expired/);
    const forged = `${token.slice(0, -4)}AAAA`;
    await assert.rejects(verifier.verify(forged), /signature/);
    await assert.rejects(verifier.verify(forged), /signature/);
  });
});
