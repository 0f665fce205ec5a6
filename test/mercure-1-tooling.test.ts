// The tools with Mercure 1.0: `ssehub token --access-token`, the `--dev` banner's two kinds of
// token, `ssehub doctor` on a 1.0 URL, the /ui token generator, the settings, and the client's
// 1.0 URL helpers.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { after, describe, it } from 'node:test';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import { mercureMatchUrl, mercureQueryBody } from '../src/client/index.js';
import { runDoctor } from '../src/doctor/index.js';
import { ConfigError, DEV_TOKEN_ISSUER, loadConfig } from '../src/hub/config.js';
import { ISSUER, accessToken, detail } from './helpers/access-token.js';
import { TEST_KEY, startTestHub } from './helpers/hub.js';
import { openSse } from './helpers/sse-client.js';

const T = { timeout: 30_000 };
const cli = new URL('../dist/cli.js', import.meta.url).pathname;
const env = (extra: Record<string, string> = {}) => ({ PATH: process.env.PATH ?? '', ...extra });
const run = (args: string[], extra: Record<string, string> = {}) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', env: env(extra), timeout: 15_000 });

describe('ssehub token --access-token', () => {
  it('signs an RFC 9068 access token with authorization_details that the hub accepts for publishing and subscribing', T, async () => {
    const hub = await startTestHub(['--token-issuers', ISSUER, '--drain-timeout', '0']);
    after(() => hub.close());
    const r = run(['token', '--access-token', '--iss', ISSUER, '--aud', hub.hubUrl, '--publish', 'urn:cli', '--subscribe-urlpattern', 'https://example.com/cli/:id', '--payload', '{"user":"alice"}', '--jwt-key', TEST_KEY]);
    assert.equal(r.status, 0, r.stderr);
    const jwt = r.stdout.trim();
    assert.equal(decodeProtectedHeader(jwt).typ, 'at+jwt');
    const claims = decodeJwt(jwt);
    assert.equal(claims.iss, ISSUER);
    assert.equal(claims.aud, hub.hubUrl);
    for (const name of ['sub', 'client_id', 'iat', 'exp', 'jti']) assert.ok(claims[name] !== undefined, `${name} missing`);
    assert.ok((claims.exp as number) - (claims.iat as number) === 3600, 'an hour by default');
    assert.deepEqual(claims.authorization_details, [detail(['publish'], ['urn:cli']), detail(['subscribe'], [{ urlpattern: 'https://example.com/cli/:id' }], { user: 'alice' })]);

    const sub = await openSse(`${hub.hubUrl}?match_urlpattern=${encodeURIComponent('https://example.com/cli/:id')}`, { authorization: `Bearer ${jwt}` });
    after(() => sub.close());
    assert.equal(sub.status, 200, sub.text);
    assert.equal((await hub.publish({ topic: 'urn:cli', data: 'x' }, jwt)).status, 200);
    assert.equal((await hub.publish({ topic: 'urn:other', data: 'x' }, jwt)).status, 403);
  });

  it('takes --iss and --aud from SSEHUB_TOKEN_ISSUERS and SSEHUB_TOKEN_AUDIENCE', T, () => {
    const r = run(['token', '--access-token', '--subscribe', '*'], { SSEHUB_JWT_KEY: TEST_KEY, SSEHUB_TOKEN_ISSUERS: 'https://a.example,https://b.example', SSEHUB_TOKEN_AUDIENCE: 'https://hub.example/.well-known/mercure' });
    assert.equal(r.status, 0, r.stderr);
    const claims = decodeJwt(r.stdout.trim());
    assert.deepEqual([claims.iss, claims.aud], ['https://a.example', 'https://hub.example/.well-known/mercure']);
  });

  for (const [name, args, why] of [
    ['no issuer', ['--access-token', '--publish', '*', '--aud', 'https://h/.well-known/mercure'], /--iss: an access token needs an issuer/],
    ['no audience', ['--access-token', '--publish', '*', '--iss', ISSUER], /--aud: an access token needs an audience/],
    ['a 1.0 option without --access-token', ['--publish-urlpattern', 'https://x/:id'], /--publish-urlpattern: is for Mercure 1.0 access tokens: add --access-token/],
    ['a payload that is not an object', ['--access-token', '--iss', ISSUER, '--aud', 'https://h/x', '--subscribe', '*', '--payload', '[1]'], /--payload: expected a JSON object/],
  ] as const) {
    it(`exits non-zero naming the option for ${name}`, T, () => {
      const r = run(['token', ...args, '--jwt-key', TEST_KEY]);
      assert.equal(r.status, 78, r.stdout);
      assert.match(r.stderr, why);
    });
  }

  it('--help documents the option', T, () => {
    assert.match(run(['token', '--help']).stdout, /--access-token +sign an access token/);
  });
});

describe('ssehub serve --dev', () => {
  it('prints both kinds of token, and each works with either kind of client', T, async () => {
    const child = spawn(process.execPath, [cli, 'serve', '--dev', '--listen', '127.0.0.1:0', '--transport', 'memory'], { env: env(), stdio: ['ignore', 'pipe', 'pipe'] });
    after(() => {
      if (child.exitCode === null) child.kill('SIGKILL');
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    while (!/={20,}\n$/.test(err) || !out.includes('hub listening')) await new Promise((r) => setTimeout(r, 20));
    const url = (JSON.parse(out.split('\n').find((l) => l.includes('hub listening')) as string) as { url: string }).url;
    const hubUrl = `${url}/.well-known/mercure`;
    const v1Publisher = (/publisher: +(\S+)/.exec(err) as RegExpExecArray)[1] as string;
    const v1Subscriber = (/subscriber: +(\S+)/.exec(err) as RegExpExecArray)[1] as string;
    const draft07Publisher = (/Publisher token: +(\S+)/.exec(err) as RegExpExecArray)[1] as string;
    assert.match(err, new RegExp(`iss ${DEV_TOKEN_ISSUER}, aud ${hubUrl.replace(/[.]/g, '\\.')}`));
    assert.ok(err.includes(`curl -N '${hubUrl}?match_urlpattern=https://example.com/books/:id'`), err);
    assert.equal(decodeProtectedHeader(v1Publisher).typ, 'at+jwt');

    // A 1.0 subscriber with a 1.0 token, a private update from the draft-07 publisher token, and back.
    const sub = await openSse(`${hubUrl}?match_urlpattern=${encodeURIComponent('https://example.com/books/:id')}`, { authorization: `Bearer ${v1Subscriber}` });
    after(() => sub.close());
    assert.equal(sub.status, 200, sub.text);
    const post = (token: string, id: string) => fetch(hubUrl, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/x-www-form-urlencoded' }, body: `topic=https://example.com/books/1&private=on&id=${id}` });
    assert.equal((await post(draft07Publisher, 'dev-1')).status, 200);
    assert.equal((await post(v1Publisher, 'dev-2')).status, 200);
    await sub.events_(2);
    assert.deepEqual(sub.events.map((e) => e.lastEventId), ['dev-1', 'dev-2']);
  });
});

describe('ssehub doctor on a Mercure 1.0 URL', () => {
  it('subscribes its probes with match, publishes them with an access token, and finds nothing wrong', T, async () => {
    const hub = await startTestHub(['--heartbeat', '1s', '--anonymous', '--token-issuers', ISSUER, '--drain-timeout', '0']);
    after(() => hub.close());
    const token = await accessToken(hub.hubUrl, [detail(['publish'], ['*'])]);
    const report = await runDoctor({ url: `${hub.hubUrl}?match=urn:doctor:other`, publish: true, token, duration: 3000 });
    assert.equal(report.ok, true, report.findings.map((f) => `${f.severity} ${f.check}: ${f.title}`).join('\n'));
    assert.ok(report.probes.length > 1 && report.probes.every((p) => p.status === 200 && p.receivedAt !== undefined));
    assert.equal(report.findings.find((f) => f.check === 'resume')?.severity, 'ok');
  });
});

describe('the /ui token generator', () => {
  it('signs a Mercure 1.0 access token for the hub as the browser reaches it, and a draft-07 token by default', T, async () => {
    const hub = await startTestHub(['--dev', '--drain-timeout', '0']);
    after(() => hub.close());
    const generate = async (body: unknown) => {
      const res = await fetch(`${hub.url}/ui/api/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      assert.equal(res.status, 200);
      return ((await res.json()) as { token: string }).token;
    };
    const v1 = await generate({ kind: 'access-token', publish: ['urn:ui'], subscribeUrlpattern: ['https://example.com/ui/:id'] });
    assert.equal(decodeProtectedHeader(v1).typ, 'at+jwt');
    assert.equal(decodeJwt(v1).aud, hub.hubUrl);
    assert.equal(decodeJwt(v1).iss, DEV_TOKEN_ISSUER);
    assert.equal((await hub.publish({ topic: 'urn:ui' }, v1)).status, 200);
    assert.equal((await hub.publish({ topic: 'urn:other' }, v1)).status, 403);
    const draft07 = await generate({ publish: ['*'] });
    assert.notEqual(decodeProtectedHeader(draft07).typ, 'at+jwt');
    const bad = await fetch(`${hub.url}/ui/api/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"kind":"saml"}' });
    assert.equal(bad.status, 400);
  });
});

describe('settings', () => {
  const load = (argv: string[], e: Record<string, string> = {}) => loadConfig({ argv: ['--jwt-key', TEST_KEY, ...argv], env: e });

  it('--token-issuers is a list, --token-audience a URL, --access-token-cookie a name', () => {
    const c = load(['--token-issuers', 'https://a.example, https://b.example', '--token-audience', 'https://hub.example/.well-known/mercure', '--access-token-cookie', 'hub_token']);
    assert.deepEqual(c.tokenIssuers, ['https://a.example', 'https://b.example']);
    assert.equal(c.tokenAudience, 'https://hub.example/.well-known/mercure');
    assert.equal(c.accessTokenCookie, 'hub_token');
    assert.deepEqual(load([], { SSEHUB_TOKEN_ISSUERS: 'https://env.example' }).tokenIssuers, ['https://env.example']);
  });

  it('defaults: no issuer trusted (access tokens refused), the audience from each request, the __Secure- cookie; --dev trusts its own issuer', () => {
    const c = load([]);
    assert.deepEqual(c.tokenIssuers, []);
    assert.equal(c.tokenAudience, undefined);
    assert.equal(c.accessTokenCookie, '__Secure-mercure_access_token');
    assert.deepEqual(load(['--dev']).tokenIssuers, [DEV_TOKEN_ISSUER]);
  });

  it('a --token-audience that is not a URL stops the hub, naming the setting', () => {
    assert.throws(() => load(['--token-audience', 'hub.example']), (e: unknown) => e instanceof ConfigError && e.setting === '--token-audience');
  });
});

describe('ssehub/client Mercure 1.0 helpers', () => {
  it('mercureMatchUrl: match for exact topics, match_urlpattern for patterns, last_event_id, encoded as URLSearchParams does', () => {
    assert.equal(mercureMatchUrl('https://hub.example/.well-known/mercure', { exact: ['a&b', '*'], urlpattern: '/books/:id' }, { lastEventId: 'urn:uuid:1' }), 'https://hub.example/.well-known/mercure?match=a%26b&match=*&match_urlpattern=%2Fbooks%2F%3Aid&last_event_id=urn%3Auuid%3A1');
  });

  it('mercureQueryBody: the same parameters as a QUERY body', () => {
    assert.equal(mercureQueryBody({ urlpattern: ['https://x/:a', 'https://y/:b'] }), 'match_urlpattern=https%3A%2F%2Fx%2F%3Aa&match_urlpattern=https%3A%2F%2Fy%2F%3Ab');
  });

  it('refuses an empty subscription', () => {
    assert.throws(() => mercureMatchUrl('https://hub.example/', {}), /at least one topic/);
  });
});
