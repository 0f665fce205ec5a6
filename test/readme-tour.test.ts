// The README's two-minute tour, run as a newcomer runs it: `ssehub serve --dev`, the `export`
// lines its banner prints pasted into a shell, then each `sh` block of the tour, with curl, as
// written (only the port differs). What the README says the output is, the hub must print.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { onProcessExit } from './helpers/exit-hook.js';
import { makeCertificate } from './helpers/tls.js';
import { freePort } from './helpers/ports.js';
import { tempDb } from './helpers/hub.js';

const T = { timeout: 30_000 };
const root = new URL('..', import.meta.url).pathname;
const cli = new URL('../dist/cli.js', import.meta.url).pathname;
const README_URL = 'http://127.0.0.1:3000';

/** The fenced blocks of README.md's "The hub in two minutes", in order, by language. */
function tourBlocks(): { sh: string[]; text: string[] } {
  const readme = readFileSync(`${root}README.md`, 'utf8');
  const start = readme.indexOf('## The hub in two minutes');
  const section = readme.slice(start, readme.indexOf('\n### The dashboard', start));
  const sh: string[] = [];
  const text: string[] = [];
  for (const m of section.matchAll(/```(sh|text)\n([^]*?)```/g)) (m[1] === 'sh' ? sh : text).push(m[2] as string);
  return { sh, text };
}

function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('SSEHUB_'))), ...extra };
}

/** A shell command running in the background, its output collected. */
class Shell {
  /** stdout (what the README shows). */
  out = '';
  /** stderr (curl's progress meter, errors). */
  err = '';
  readonly child: ChildProcess;
  readonly exited: Promise<number | null>;
  constructor(script: string, env: NodeJS.ProcessEnv) {
    this.child = spawn('bash', ['-c', script], { env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    this.child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (this.out += chunk));
    this.child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (this.err += chunk));
    this.exited = new Promise((resolve) => this.child.once('exit', (code) => resolve(code)));
    // However this test process ends (a timeout, Ctrl-C), no hub or curl is left behind.
    onProcessExit(() => this.stop());
  }

  /** Waits until `check` holds for stdout (or, with `stream` 'err', stderr). */
  async until(check: (out: string) => boolean, what: string, stream: 'out' | 'err' = 'out'): Promise<void> {
    while (!check(stream === 'out' ? this.out : this.err)) {
      if (this.child.exitCode !== null) throw new Error(`the command ended before ${what}:\n${this.out}\n${this.err}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  stop(): void {
    // The whole process group: bash and its curl.
    if (this.child.exitCode !== null || this.child.pid === undefined) return;
    try {
      process.kill(-this.child.pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
}

/** Runs a command to its end; resolves with its output. */
async function run(script: string, env: NodeJS.ProcessEnv): Promise<string> {
  const shell = new Shell(script, env);
  const code = await shell.exited;
  assert.equal(code, 0, `${script}\n→ ${shell.out}\n${shell.err}`);
  return shell.out;
}

describe('the README tour, pasted into a shell', T, () => {
  const shells: Shell[] = [];
  let hub: Shell;
  let env: NodeJS.ProcessEnv;
  let port: number;
  const blocks = tourBlocks();
  const local = (script: string) => script.replaceAll(README_URL, `http://127.0.0.1:${port}`);

  before(async () => {
    port = await freePort();
    hub = new Shell(`exec node '${cli}' serve --dev --listen 127.0.0.1:${port} --transport 'sqlite:${tempDb()}' --log-level warn`, cleanEnv());
    shells.push(hub);
    await hub.until((err) => /={20,}\n$/.test(err), 'the banner', 'err');
    // What the reader pastes: the banner's export lines, as printed.
    const exports = [...hub.err.matchAll(/^ *(export [A-Z_]+=\S+)$/gm)].map((m) => m[1] as string);
    assert.deepEqual(
      exports.map((line) => line.split('=')[0]),
      ['export PUBLISHER_TOKEN', 'export SUBSCRIBER_TOKEN'],
    );
    env = cleanEnv(Object.fromEntries(exports.map((line) => line.slice('export '.length).split(/=(.*)/s).slice(0, 2) as [string, string])));
  });
  after(() => {
    for (const shell of shells) shell.stop();
  });

  it('subscribes, publishes with $PUBLISHER_TOKEN, resumes, and explains a resume from an unknown ID as written', async () => {
    assert.equal(blocks.sh.length, 5, 'subscribe, publish, resume, unknown-ID resume, production');
    const [subscribeCmd, publishCmd, resumeCmd, unknownCmd] = blocks.sh as [string, string, string, string];
    const [seesText, unknownText] = blocks.text as [string, string];

    const subscriber = new Shell(local(subscribeCmd), env);
    shells.push(subscriber);
    // The stream's opening comment: from here on the subscriber receives what is published.
    await subscriber.until((out) => out.startsWith(':'), 'the stream opening');
    const published = await run(local(publishCmd), env);
    const id = published.trim();
    const sampleId = /^# (urn:uuid:\S+)$/m.exec(publishCmd)?.[1] as string;
    assert.match(id, /^urn:uuid:[0-9a-f-]{36}$/, published);
    const expected = seesText.replaceAll(sampleId, id);
    await subscriber.until((out) => out.includes(expected), `the subscriber printing:\n${expected}`);
    subscriber.stop();

    // Resuming from that ID: what was published after it, and not it again.
    const second = (await run(local(publishCmd).replace('SSE in production', 'second edition'), env)).trim();
    const resumed = new Shell(local(resumeCmd).replaceAll(sampleId, id), env);
    shells.push(resumed);
    await resumed.until((out) => out.includes(`id: ${second}`), 'the resume replaying the update published after the ID');
    resumed.stop();
    assert.ok(!resumed.out.includes(`id: ${id}\n`), resumed.out);

    // An unknown ID: every line the README shows (its "…" stands for headers left out).
    const unknown = new Shell(local(unknownCmd), env);
    shells.push(unknown);
    const lines = unknownText.replaceAll(sampleId, id).split('\n').filter((line) => line !== '' && line !== '…');
    await unknown.until((out) => out.replaceAll('\r\n', '\n').includes(`id: ${second}`), 'the replay after the resync event');
    unknown.stop();
    const out = unknown.out.replaceAll('\r\n', '\n');
    for (const line of lines) assert.ok(out.split('\n').includes(line), `the README shows "${line}", curl printed:\n${out}`);
    assert.ok(out.indexOf('event: ssehub-resync') < out.indexOf(`id: ${id}`), 'the resync event comes before the replay');
  });

  it('the production snippet: a subscriber without a token gets 401, one with `ssehub token --subscribe` is served, as the README says', async () => {
    const production = (blocks.sh[4] as string).split('\n').filter((line) => line.trim() !== '');
    assert.match(production[0] as string, /^export SSEHUB_JWT_KEY=/);
    const prodPort = await freePort();
    const node = (line: string) => line.replace(/^npx ssehub /, `node '${cli}' `).replace('0.0.0.0:3000', `127.0.0.1:${prodPort}`);
    const serveLine = node(production.find((line) => line.startsWith('npx ssehub serve')) as string);
    const subscribeTokenLine = node((production.find((line) => line.includes('token --subscribe')) as string).replace(/\s*#.*$/, ''));
    const key = 'a-production-key-of-at-least-32-characters!';
    const prodEnv = cleanEnv({ SSEHUB_JWT_KEY: key });
    const server = new Shell(`exec ${serveLine} --transport memory --log-level warn`, prodEnv);
    shells.push(server);
    const url = `http://127.0.0.1:${prodPort}/.well-known/mercure?topic=https://example.com/books/1`;
    while ((await fetch(`http://127.0.0.1:${prodPort}/readyz`).then((r) => r.status, () => 0)) !== 200) await new Promise((r) => setTimeout(r, 50));
    const anonymous = await fetch(url);
    assert.equal(anonymous.status, 401);
    await anonymous.body?.cancel();
    const token = (await run(subscribeTokenLine, prodEnv)).trim();
    const served = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(served.status, 200);
    await served.body?.cancel();
    const readme = readFileSync(`${root}README.md`, 'utf8');
    assert.match(readme, /Outside `--dev`, subscribers need a token too[^]*`--anonymous`/);
  });
});

describe('the --dev banner with a self-signed certificate', T, () => {
  let hub: Shell | undefined;
  after(() => hub?.stop());

  it('prints curl commands that trust it (--cacert), and they work as printed', async () => {
    const cert = makeCertificate();
    const port = await freePort();
    hub = new Shell(`exec node '${cli}' serve --dev --listen 127.0.0.1:${port} --transport memory --log-level warn --tls-cert '${cert.certPath}' --tls-key '${cert.keyPath}'`, cleanEnv());
    await hub.until((err) => /={20,}\n$/.test(err), 'the banner', 'err');
    const subscribe = /^Subscribe: +(curl .*)$/m.exec(hub.err)?.[1] as string;
    const publish = /^Publish: +(curl .*\\\n.*)$/m.exec(hub.err)?.[1] as string;
    assert.ok(subscribe.includes(`--cacert '${cert.certPath}'`), subscribe);
    assert.ok(publish.includes(`--cacert '${cert.certPath}'`), publish);
    const subscriber = new Shell(subscribe, cleanEnv());
    try {
      await subscriber.until((out) => out.startsWith(':'), 'the stream opening');
      const id = (await run(publish, cleanEnv())).trim();
      assert.match(id, /^urn:uuid:/);
      await subscriber.until((out) => out.includes(`id: ${id}`), 'the subscriber receiving the update over HTTPS');
    } finally {
      subscriber.stop();
    }
  });
});
