// The `ssehub serve` and `ssehub token` commands as a user runs them: the built dist/cli.js in a
// child process (`npm test` builds first).
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { after, describe, it } from 'node:test';
import { SETTINGS, envName } from '../src/hub/index.js';
import { TEST_KEY, startTestHub } from './helpers/hub.js';
import { listen } from './helpers/http.js';
import { openSse } from './helpers/sse-client.js';

const T = { timeout: 20_000 };
const cli = new URL('../dist/cli.js', import.meta.url).pathname;

/** The environment without any SSEHUB_* variable, plus `extra`. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('SSEHUB_')));
  return { ...env, ...extra };
}

const run = (args: string[], env: Record<string, string> = {}) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', env: cleanEnv(env), timeout: 15_000 });

/** Like `run`, without blocking this process (which may be serving the other end). */
function runAsync(args: string[]): Promise<{ status: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cli, ...args], { env: cleanEnv(), stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.once('error', reject);
    child.once('close', (status) => resolve({ status, stderr }));
  });
}

function payloadOf(jwt: string): Record<string, unknown> {
  const [, payload] = jwt.split('.');
  return JSON.parse(Buffer.from(payload ?? '', 'base64url').toString('utf8')) as Record<string, unknown>;
}

describe('ssehub serve: start-up validation', () => {
  it('exits 78 naming a bad flag on stderr', T, () => {
    const r = run(['serve', '--jwt-key', TEST_KEY, '--transport', 'memory', '--heartbeat', 'soon']);
    assert.equal(r.status, 78);
    assert.match(r.stderr, /invalid setting --heartbeat: expected a duration/);
  });

  it('exits 78 naming a bad environment variable on stderr', T, () => {
    const r = run(['serve', '--transport', 'memory'], { SSEHUB_JWT_KEY: TEST_KEY, SSEHUB_MAX_CONNECTIONS: 'lots' });
    assert.equal(r.status, 78);
    assert.match(r.stderr, /invalid setting SSEHUB_MAX_CONNECTIONS: expected a whole number/);
  });

  it('exits 78 naming --jwt-key when no key is configured', T, () => {
    const r = run(['serve', '--transport', 'memory']);
    assert.equal(r.status, 78);
    assert.match(r.stderr, /--jwt-key: no key to verify publisher tokens/);
  });

  it('exits 78 naming --listen when the address is already in use', T, async () => {
    const taken = await listen(() => {});
    after(() => taken.close());
    const r = await runAsync(['serve', '--jwt-key', TEST_KEY, '--transport', 'memory', '--listen', new URL(taken.url).host]);
    assert.equal(r.status, 78);
    assert.match(r.stderr, /invalid setting --listen: cannot listen on 127\.0\.0\.1:\d+ \(.*EADDRINUSE/);
  });

  it('lists every setting and its environment variable in serve --help', T, () => {
    const r = run(['serve', '--help']);
    assert.equal(r.status, 0);
    for (const s of SETTINGS) {
      assert.ok(r.stdout.includes(`--${s.name} `), `--${s.name} missing from serve --help`);
      assert.ok(r.stdout.includes(envName(s.name)), `${envName(s.name)} missing from serve --help`);
    }
  });
});

describe('ssehub token', () => {
  it('prints a JWT with the requested mercure.publish selectors that the hub accepts for publishing', T, async () => {
    const r = run(['token', '--publish', '*', '--jwt-key', TEST_KEY]);
    assert.equal(r.status, 0, r.stderr);
    const jwt = r.stdout.trim();
    assert.match(r.stdout, /^[\w-]+\.[\w-]+\.[\w-]+\n$/);
    assert.deepEqual(payloadOf(jwt).mercure, { publish: ['*'] });

    const hub = await startTestHub();
    after(() => hub.close());
    const res = await hub.publish({ topic: 'https://example.com/books/1', data: 'x', id: 'from-cli' }, jwt);
    assert.equal(res.status, 200, res.body);
  });

  it('puts --subscribe, --sub and --exp in the token', T, () => {
    const r = run(['token', '--subscribe', 'https://example.com/{id}', '--sub', 'alice', '--exp', '1h'], { SSEHUB_JWT_KEY: TEST_KEY });
    assert.equal(r.status, 0, r.stderr);
    const payload = payloadOf(r.stdout.trim());
    assert.deepEqual(payload.mercure, { subscribe: ['https://example.com/{id}'] });
    assert.equal(payload.sub, 'alice');
    const lifetime = (payload.exp as number) - (payload.iat as number);
    assert.ok(lifetime >= 3599 && lifetime <= 3601, `exp - iat = ${lifetime}`);
  });

  it('exits non-zero naming --jwt-key when there is no key', T, () => {
    const r = run(['token', '--publish', '*']);
    assert.equal(r.status, 78);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /--jwt-key/);
  });

  it('exits non-zero naming --jwt-key for a secret the hub would refuse (under 32 characters)', T, () => {
    const r = run(['token', '--publish', '*', '--jwt-key', 'short']);
    assert.equal(r.status, 78);
    assert.match(r.stderr, /--jwt-key: .*at least 32 characters/);
  });

  it('exits non-zero naming --exp when its duration cannot be read', T, () => {
    const r = run(['token', '--publish', '*', '--jwt-key', TEST_KEY, '--exp', 'soon']);
    assert.equal(r.status, 78);
    assert.match(r.stderr, /--exp: expected a duration/);
  });
});

/** Collects a child's output line by line and resolves when a line matches. */
class Lines {
  text = '';
  #waiters: { re: RegExp; resolve: (m: RegExpMatchArray) => void; reject: (e: Error) => void }[] = [];
  constructor(stream: NodeJS.ReadableStream, child: ChildProcess, name: string) {
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      this.text += chunk;
      this.#waiters = this.#waiters.filter((w) => {
        const m = this.text.match(w.re);
        if (m !== null) w.resolve(m);
        return m === null;
      });
    });
    child.once('exit', (code) => {
      for (const w of this.#waiters.splice(0)) w.reject(new Error(`exited (${code}) before ${name} matched ${w.re}; ${name} was:\n${this.text}`));
    });
  }

  match(re: RegExp): Promise<RegExpMatchArray> {
    const m = this.text.match(re);
    if (m !== null) return Promise.resolve(m);
    return new Promise((resolve, reject) => this.#waiters.push({ re, resolve, reject }));
  }
}

describe('ssehub serve --dev', () => {
  it('prints DEVELOPMENT MODE, a publisher token that can publish and curl commands, then drains and exits 0 on SIGTERM', T, async () => {
    const child = spawn(process.execPath, [cli, 'serve', '--dev', '--listen', '127.0.0.1:0', '--transport', 'memory'], { env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    after(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    const stdout = new Lines(child.stdout, child, 'stdout');
    const stderr = new Lines(child.stderr, child, 'stderr');

    const listening = await stdout.match(/^.*"msg":"hub listening".*$/m);
    const url = (JSON.parse(listening[0]) as { url: string }).url;
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
    const hubUrl = `${url}/.well-known/mercure`;

    await stderr.match(/={20,}\n$/);
    assert.match(stderr.text, /DEVELOPMENT MODE/);
    const token = (await stderr.match(/Publisher token: +(\S+)/))[1] as string;
    assert.ok(stderr.text.includes(`curl -N -g '${hubUrl}?topic=`), stderr.text);
    assert.ok(stderr.text.includes(`-H 'Authorization: Bearer ${token}' ${hubUrl}`), stderr.text);

    // Anonymous subscribers are on in --dev; the printed token publishes.
    const sub = await openSse(`${hubUrl}?topic=${encodeURIComponent('https://example.com/books/{id}')}`);
    after(() => sub.close());
    assert.equal(sub.status, 200);
    const res = await fetch(hubUrl, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ topic: 'https://example.com/books/1', data: '{"title":"SSE"}' }),
    });
    assert.equal(res.status, 200);
    await sub.events_(1);
    assert.equal(sub.events[0]?.data, '{"title":"SSE"}');

    child.kill('SIGTERM');
    // The open stream is closed by the drain; the client sees it end.
    await sub.done;
    assert.equal(await exited, 0);
    assert.match(stdout.text, /"msg":"hub stopped"/);
  });

  it('prints tokens signed with the configured --jwt-alg', T, async () => {
    const child = spawn(process.execPath, [cli, 'serve', '--dev', '--jwt-alg', 'HS512', '--listen', '127.0.0.1:0', '--transport', 'memory'], { env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    after(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    const stdout = new Lines(child.stdout, child, 'stdout');
    const stderr = new Lines(child.stderr, child, 'stderr');
    const url = (JSON.parse((await stdout.match(/^.*"msg":"hub listening".*$/m))[0]) as { url: string }).url;
    const token = (await stderr.match(/Publisher token: +(\S+)/))[1] as string;
    const header = JSON.parse(Buffer.from(token.split('.')[0] ?? '', 'base64url').toString('utf8')) as { alg: string };
    assert.equal(header.alg, 'HS512');
    const res = await fetch(`${url}/.well-known/mercure`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ topic: 'https://example.com/books/1', data: 'x' }),
    });
    assert.equal(res.status, 200, await res.text());
    child.kill('SIGTERM');
    assert.equal(await exited, 0);
  });
});
