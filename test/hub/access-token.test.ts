// Mercure 1.0 access tokens in the core: what authorization_details grant, how an access token is
// validated (typ at+jwt, a trusted iss, an aud naming the hub, exp), and that a grant from one
// means what the equivalent draft-07 claim means.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SignJWT } from 'jose';
import { MAX_DETAILS, readAuthorizationDetails } from '../../src/hub/core/access-token.js';
import { InvalidTokenError } from '../../src/hub/core/errors.js';
import { type Grant, assertMayPublish, grantMatchers, payloadOf } from '../../src/hub/core/grant.js';
import { matchesAny } from '../../src/hub/core/selector.js';
import { Verifier, isAccessToken, readGrant } from '../../src/hub/core/tokens.js';
import { DETAIL, ISSUER, accessToken, detail } from '../helpers/access-token.js';
import { TEST_KEY } from '../helpers/hub.js';

const HUB = 'https://hub.example/.well-known/mercure';
const verifier = () => new Verifier('subscriber', { key: TEST_KEY, alg: 'HS256', issuers: [ISSUER, 'https://other.example'] });
const refused = (pattern: RegExp) => (e: unknown) => e instanceof InvalidTokenError && pattern.test(e.message);

describe('authorization_details', () => {
  it('publish and subscribe actions become the grant’s selectors, typed', () => {
    const g = readAuthorizationDetails([detail(['publish'], ['https://example.com/a']), detail(['subscribe', 'publish'], [{ urlpattern: 'https://example.com/books/:id' }, '*'])], HUB);
    assert.deepEqual(g.publish?.map((s) => typeof s !== 'string' && s.kind), ['exact', 'urlpattern', 'any']);
    assert.deepEqual(g.subscribe?.map((s) => typeof s !== 'string' && s.kind), ['urlpattern', 'any']);
  });

  it('an exact matcher holding "{" stays exact', () => {
    const g = readAuthorizationDetails([detail(['subscribe'], ['https://example.com/{id}'])], HUB);
    const m = grantMatchers(g.subscribe, 'x');
    assert.equal(matchesAny(['https://example.com/1'], m), false);
    assert.equal(matchesAny(['https://example.com/{id}'], m), true);
  });

  it('no claim, or only details of other types, grants nothing', () => {
    assert.deepEqual(readAuthorizationDetails(undefined, HUB), { publish: undefined, subscribe: undefined, payloads: [] });
    const g = readAuthorizationDetails([{ type: 'https://other.example/detail', actions: ['anything'] }], HUB);
    assert.equal(g.publish, undefined);
    assert.equal(g.subscribe, undefined);
  });

  it('an unknown action grants nothing and does not invalidate the token', () => {
    const g = readAuthorizationDetails([detail(['moderate'], ['*'])], HUB);
    assert.equal(g.publish, undefined);
    assert.equal(g.subscribe, undefined);
  });

  for (const [name, claim, why] of [
    ['a claim that is not an array', { type: DETAIL }, /must be an array/],
    ['a detail that is not an object', ['x'], /\[1\] must be an object/],
    ['empty actions', [{ type: DETAIL, actions: [], topics: [{ match: '*' }] }], /actions must be a non-empty array of strings/],
    ['a non-string action', [{ type: DETAIL, actions: ['publish', 1], topics: [{ match: '*' }] }], /actions must be a non-empty array of strings/],
    ['no topics', [{ type: DETAIL, actions: ['publish'], topics: [] }], /topics must be a non-empty array/],
    ['a bare-string topic', [{ type: DETAIL, actions: ['publish'], topics: ['https://example.com/a'] }], /topics\[0\] must be an object/],
    ['an unknown match_type', [{ type: DETAIL, actions: ['publish'], topics: [{ match: 'x', match_type: 'URLPattern' }] }], /match_type must be "exact" or "urlpattern"/],
    ['a malformed URL pattern', [{ type: DETAIL, actions: ['publish'], topics: [{ match: 'https://x/{', match_type: 'urlpattern' }] }], /not a valid URL pattern/],
    ['a control character in a matcher', [{ type: DETAIL, actions: ['publish'], topics: [{ match: 'a\u0001b' }] }], /control or invisible/],
    ['a payload that is not an object', [{ type: DETAIL, actions: ['subscribe'], topics: [{ match: '*' }], payload: 'x' }], /payload must be a JSON object/],
    ['too many details', Array.from({ length: MAX_DETAILS + 1 }, () => detail(['publish'], ['*'])), /more than 100/],
  ] as const) {
    it(`rejects the whole token for ${name}`, () => {
      // The valid detail before the bad one must not be acted on either.
      const claim2 = Array.isArray(claim) ? [detail(['publish'], ['*']), ...claim] : claim;
      assert.throws(() => readAuthorizationDetails(claim2, HUB), refused(why));
    });
  }

  it('the payload of a subscription is that of the first subscribe detail whose matchers match its own matcher', () => {
    const g: Grant = {
      ...readAuthorizationDetails([detail(['subscribe'], ['https://example.com/foo'], { n: 1 }), detail(['subscribe'], [{ urlpattern: 'https://example.com/bar/:id' }], { n: 2 }), detail(['subscribe'], ['*'], { n: 3 })], HUB),
      payload: undefined,
      expiresAt: undefined,
      subject: undefined,
      ui: false,
      tokenType: 'at+jwt',
    };
    assert.deepEqual(payloadOf(g, { kind: 'exact', value: 'https://example.com/foo' }), { n: 1 });
    // The pattern taken as a topic: the detail's own pattern matches it (as the spec's example says).
    assert.deepEqual(payloadOf(g, { kind: 'urlpattern', value: 'https://example.com/bar/:id' }), { n: 2 });
    assert.deepEqual(payloadOf(g, { kind: 'exact', value: 'https://example.com/bar/7' }), { n: 2 });
    assert.deepEqual(payloadOf(g, { kind: 'exact', value: 'urn:other' }), { n: 3 });
  });
});

describe('access token validation', () => {
  it('accepts typ at+jwt, application/at+jwt, in any case', async () => {
    for (const typ of ['at+jwt', 'application/at+jwt', 'AT+JWT']) {
      const token = await accessToken(HUB, [detail(['subscribe'], ['*'])], { typ });
      assert.equal(isAccessToken(token), true, typ);
      const g = await verifier().verify(token, { audiences: [HUB] });
      assert.equal(g.tokenType, 'at+jwt');
    }
  });

  it('accepts an aud array holding the hub', async () => {
    const token = await accessToken(HUB, [], { aud: ['https://elsewhere.example', HUB] });
    assert.deepEqual((await verifier().verify(token, { audiences: [HUB] })).audience, ['https://elsewhere.example', HUB]);
  });

  it('refuses an aud that does not name the hub, checked on every use (also from the cache)', async () => {
    const token = await accessToken(HUB, []);
    const v = verifier();
    await v.verify(token, { audiences: [HUB] });
    await assert.rejects(v.verify(token, { audiences: ['https://other-hub.example/.well-known/mercure'] }), refused(/"aud" .* does not name this hub/));
  });

  it('refuses an untrusted issuer, or none', async () => {
    await assert.rejects(verifier().verify(await accessToken(HUB, [], { iss: 'https://evil.example' }), { audiences: [HUB] }), refused(/issuer \("iss"\) is not one this hub trusts/));
    await assert.rejects(verifier().verify(await accessToken(HUB, [], { iss: undefined }), { audiences: [HUB] }), refused(/claim "iss" is missing/));
  });

  it('refuses every access token when no issuer is trusted', async () => {
    const v = new Verifier('subscriber', { key: TEST_KEY, alg: 'HS256' });
    await assert.rejects(v.verify(await accessToken(HUB, []), { audiences: [HUB] }), refused(/trusts no issuer of access tokens \(--token-issuers\)/));
  });

  it('requires exp, and enforces exp and nbf', async () => {
    await assert.rejects(verifier().verify(await accessToken(HUB, [], { exp: undefined }), { audiences: [HUB] }), refused(/claim "exp" is missing/));
    await assert.rejects(verifier().verify(await accessToken(HUB, [], { exp: -10 }), { audiences: [HUB] }), refused(/expired/));
    await assert.rejects(verifier().verify(await accessToken(HUB, [], { nbf: 600 }), { audiences: [HUB] }), refused(/"nbf"/));
  });

  it('refuses a signature by another key, and alg none', async () => {
    await assert.rejects(verifier().verify(await accessToken(HUB, [], { key: 'another-secret-key-that-is-at-least-32-chars' }), { audiences: [HUB] }), refused(/signature/));
    const none = `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'at+jwt' })).toString('base64url')}.${Buffer.from(JSON.stringify({ iss: ISSUER, aud: HUB, exp: 9e9 })).toString('base64url')}.`;
    await assert.rejects(verifier().verify(none, { audiences: [HUB] }), InvalidTokenError);
  });

  it('reads a draft-07 token (no typ at+jwt) as before, without iss or aud', async () => {
    const token = await new SignJWT({ mercure: { subscribe: ['*'] } }).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).sign(new TextEncoder().encode(TEST_KEY));
    const g = await verifier().verify(token);
    assert.equal(g.tokenType, 'jwt');
    assert.deepEqual(g.subscribe, ['*']);
  });
});

describe('one meaning for both kinds of token', () => {
  const topics = [['https://example.com/books/1'], ['https://example.com/books/2', 'https://example.com/users/42/books/2'], ['https://example.com/authors/1'], ['urn:x']];

  it('a draft-07 claim and the equivalent authorization_details allow the same private updates', () => {
    const draft07 = readGrant({ mercure: { subscribe: ['https://example.com/books/1', 'https://example.com/users/42/{+rest}'] } });
    const v1 = readAuthorizationDetails([detail(['subscribe'], ['https://example.com/books/1', { urlpattern: 'https://example.com/users/42/*' }])], HUB);
    const a = grantMatchers(draft07.subscribe, 'a');
    const b = grantMatchers(v1.subscribe, 'b');
    for (const t of topics) assert.equal(matchesAny(t, a), matchesAny(t, b), t.join(' '));
  });

  it('publishing needs every topic allowed, whichever kind of token', () => {
    const v1: Grant = { ...readAuthorizationDetails([detail(['publish'], [{ urlpattern: 'https://example.com/books/:id' }])], HUB), payload: undefined, expiresAt: undefined, subject: undefined, ui: false, tokenType: 'at+jwt' };
    assert.doesNotThrow(() => assertMayPublish(v1, ['https://example.com/books/1']));
    assert.throws(() => assertMayPublish(v1, ['https://example.com/books/1', 'https://example.com/authors/1']), /authorization_details "publish" action does not allow topic "https:\/\/example.com\/authors\/1"/);
    const none: Grant = { ...v1, publish: undefined };
    assert.throws(() => assertMayPublish(none, []), /no authorization detail with the "publish" action/);
  });
});
