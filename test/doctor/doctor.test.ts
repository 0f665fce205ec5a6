// `ssehub doctor` against real servers: the hub directly, real nginx and HAProxy configured right
// and wrong in the ways that break streams in production, and servers answering HTML or 500.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { type DoctorReport, type Finding, formatReport, runDoctor } from '../../src/doctor/index.js';
import { type TestHub, startTestHub } from '../helpers/hub.js';
import { HAPROXY_BINARY, NGINX_BINARY, type Proxy, proxySkipReason, setHaproxyTimeout, setNginxDirective, startHaproxy, startNginx } from '../helpers/proxies.js';
import { makeCertificate } from '../helpers/tls.js';

const cli = new URL('../../dist/cli.js', import.meta.url).pathname;
const HUB_PATH = '/.well-known/mercure';

const problems = (r: DoctorReport): Finding[] => r.findings.filter((f) => f.severity === 'warn' || f.severity === 'fail');
const finding = (r: DoctorReport, check: string): Finding | undefined => r.findings.find((f) => f.check === check);
const describeReport = (r: DoctorReport) => r.findings.map((f) => `${f.severity} ${f.check}: ${f.title}`).join('\n');

/** Runs the CLI; resolves with its exit code and output. */
function runCli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [cli, 'doctor', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.once('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('doctor: directly against the hub', () => {
  let hub: TestHub;
  before(async () => {
    hub = await startTestHub(['--heartbeat', '1s', '--anonymous']);
  });
  after(() => hub.close());

  it('finds nothing wrong, measures latency from its own probes and checks resume', async () => {
    const report = await runDoctor({ url: hub.hubUrl, publish: true, token: hub.adminToken, duration: 3000 });
    assert.equal(report.ok, true, describeReport(report));
    assert.deepEqual(problems(report), []);
    assert.equal(report.probes.length, 5);
    assert.ok(report.probes.every((p) => p.status === 200 && p.receivedAt !== undefined), 'every probe arrived');
    assert.equal(finding(report, 'latency')?.severity, 'ok');
    assert.equal(finding(report, 'resume')?.severity, 'ok');
    assert.deepEqual(report.resume?.received, report.probes.slice(1).map((p) => p.id));
    assert.equal(finding(report, 'heartbeat')?.severity, 'ok');
    assert.ok(report.heartbeat.intervalMs !== undefined && report.heartbeat.intervalMs > 500 && report.heartbeat.intervalMs < 2000, `a 1 s heartbeat measured as ${report.heartbeat.intervalMs} ms`);
    assert.equal(report.httpVersion, '1.1');
  });

  it('the CLI exits 0 and prints JSON with --json', async () => {
    const { code, stdout } = await runCli([hub.hubUrl, '--publish', '--token', hub.adminToken, '--duration', '2s', '--json']);
    const report = JSON.parse(stdout) as DoctorReport;
    assert.equal(code, 0, stdout);
    assert.equal(report.ok, true);
    assert.equal(report.status, 200);
  });

  it('the CLI prints a readable report with a verdict', async () => {
    const { code, stdout } = await runCli([`${hub.hubUrl}?topic=x`, '--duration', '2s']);
    assert.equal(code, 0, stdout);
    assert.match(stdout, /\[ {2}ok {2}\] HTTP 200/);
    // Two seconds hold one or two heartbeats of a 1 s interval: either line says one was seen.
    assert.match(stdout, /\[ {2}ok {2}\] (heartbeat every 1\.0 s|a heartbeat came within 2\.0 s)/);
    assert.match(stdout, /verdict: nothing wrong found/);
  });

  it('reports a publish refused for a bad token', async () => {
    const report = await runDoctor({ url: hub.hubUrl, publish: true, token: 'not-a-jwt', duration: 1000 });
    assert.equal(report.ok, false);
    assert.match(finding(report, 'publish')?.title ?? '', /HTTP 401/);
  });
});

describe('doctor: over HTTPS', () => {
  let hub: TestHub;
  const cert = makeCertificate();
  before(async () => {
    hub = await startTestHub(['--heartbeat', '1s', '--anonymous', '--tls-cert', cert.certPath, '--tls-key', cert.keyPath]);
  });
  after(() => hub.close());

  it('connects with HTTP/2 by ALPN and reports it as fine', async () => {
    const report = await runDoctor({ url: hub.hubUrl, publish: true, token: hub.adminToken, duration: 2000, ca: cert.cert });
    assert.equal(report.ok, true, describeReport(report));
    assert.equal(report.httpVersion, '2');
    assert.equal(finding(report, 'http-version')?.severity, 'ok');
    assert.equal(finding(report, 'resume')?.severity, 'ok');
  });

  it('reports an untrusted certificate as a connection failure', async () => {
    const report = await runDoctor({ url: `${hub.hubUrl}?topic=x`, duration: 1000 });
    assert.equal(report.ok, false);
    assert.equal(finding(report, 'connect')?.severity, 'fail');
    assert.match(finding(report, 'connect')?.title ?? '', /certificate/i);
  });
});

describe('doctor: behind nginx', { skip: proxySkipReason(NGINX_BINARY) }, () => {
  let hub: TestHub;
  let quiet: TestHub;
  const proxies: Proxy[] = [];
  const nginx = async (upstream: TestHub, opts: Parameters<typeof startNginx>[1] = {}) => {
    const proxy = await startNginx(new URL(upstream.url).host, opts);
    proxies.push(proxy);
    return proxy;
  };
  before(async () => {
    hub = await startTestHub(['--heartbeat', '1s', '--anonymous']);
    quiet = await startTestHub(['--heartbeat', '0', '--anonymous']);
  });
  after(async () => {
    await Promise.all(proxies.map((p) => p.stop()));
    await Promise.all([hub.close(), quiet.close()]);
  });

  it('finds nothing wrong through deploy/nginx.conf', async () => {
    const proxy = await nginx(hub);
    const report = await runDoctor({ url: `${proxy.url}${HUB_PATH}`, publish: true, token: hub.adminToken, duration: 3000 });
    assert.equal(report.ok, true, `${describeReport(report)}\n${proxy.log()}`);
    assert.match(report.headers.server ?? '', /nginx/, 'the report came through nginx');
    assert.equal(finding(report, 'latency')?.severity, 'ok');
    assert.equal(finding(report, 'resume')?.severity, 'ok');
  });

  it('reports buffering when nginx buffers and ignores X-Accel-Buffering', async () => {
    // nginx's defaults (buffering on, HTTP/1.0 to the upstream) and the hub's header ignored.
    const proxy = await nginx(hub, {
      edit: (conf) => setNginxDirective(setNginxDirective(conf, 'proxy_buffering', 'on;\n        proxy_ignore_headers X-Accel-Buffering'), 'proxy_http_version', '1.0'),
    });
    const report = await runDoctor({ url: `${proxy.url}${HUB_PATH}`, publish: true, token: hub.adminToken, duration: 3000 });
    assert.equal(report.ok, false);
    const f = finding(report, 'buffering');
    assert.equal(f?.severity, 'fail', describeReport(report));
    assert.match(f?.advice ?? '', /proxy_buffering off/);
  });

  it('reports compression when nginx gzips the stream', async () => {
    const proxy = await nginx(hub, { edit: (conf) => setNginxDirective(conf, 'gzip', 'on'), http: 'gzip_types text/event-stream; gzip_min_length 0; gzip_proxied any;' });
    const report = await runDoctor({ url: `${proxy.url}${HUB_PATH}`, publish: true, token: hub.adminToken, duration: 2000 });
    assert.equal(report.ok, false);
    assert.equal(report.headers['content-encoding'], 'gzip');
    const f = finding(report, 'compression');
    assert.equal(f?.severity, 'fail', describeReport(report));
    assert.match(f?.advice ?? '', /gzip off/);
  });

  it('reports the cut of a 2 s read timeout with the heartbeat off, and advises a heartbeat below it', async () => {
    const proxy = await nginx(quiet, { edit: (conf) => setNginxDirective(conf, 'proxy_read_timeout', '2s') });
    const report = await runDoctor({ url: `${proxy.url}${HUB_PATH}?topic=quiet`, duration: 6000 });
    assert.equal(report.ok, false);
    const f = finding(report, 'truncation');
    assert.equal(f?.severity, 'fail', describeReport(report));
    assert.match(f?.title ?? '', /cut after (1\.9|2\.\d) s/);
    assert.match(f?.advice ?? '', /--heartbeat 1s/);
    assert.ok(report.timings.ended !== undefined && report.timings.ended < 6000, 'the stream ended before the window');
  });
});

describe('doctor: a server without heartbeat behind a buffering nginx', { skip: proxySkipReason(NGINX_BINARY) }, () => {
  let server: Server;
  let proxy: Proxy;
  before(async () => {
    // An SSE endpoint of the common kind: ": ok" at once, then nothing until its first event; no X-Accel-Buffering.
    server = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      res.write(': ok\n\n');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    // nginx's defaults (buffering on, HTTP/1.0 to the upstream) hold even the headers until the 5 s read timeout;
    // with the deploy file's HTTP/1.1, nginx 1.22 lets ": ok" through at once even with buffering on.
    const edit = (conf: string) => setNginxDirective(setNginxDirective(setNginxDirective(conf, 'proxy_buffering', 'on'), 'proxy_http_version', '1.0'), 'proxy_read_timeout', '5s');
    proxy = await startNginx(`127.0.0.1:${(server.address() as AddressInfo).port}`, { edit, ready: 'tcp' });
  });
  after(async () => {
    await proxy.stop();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('blames buffering held until the read timeout, not an idle timeout of a few milliseconds', async () => {
    const report = await runDoctor({ url: `${proxy.url}${HUB_PATH}`, duration: 8000 });
    assert.ok((report.timings.headers ?? 0) > 4500, `nginx held the headers back until its timeout: ${JSON.stringify(report.timings)}\n${proxy.log()}`);
    const f = finding(report, 'buffering');
    assert.equal(f?.severity, 'fail', describeReport(report));
    assert.equal(finding(report, 'truncation'), undefined, describeReport(report));
    assert.match(f?.advice ?? '', /proxy_buffering off/);
    assert.match(f?.advice ?? '', /X-Accel-Buffering: no/);
    assert.match(f?.advice ?? '', /below 5\.\d s, e\.g\. ssehub serve --heartbeat 2s/);
    const text = formatReport(report);
    assert.doesNotMatch(text, /0\.0 s/, text);
  });
});

describe('doctor: behind HAProxy', { skip: proxySkipReason(HAPROXY_BINARY) }, () => {
  let quiet: TestHub;
  let proxy: Proxy;
  before(async () => {
    quiet = await startTestHub(['--heartbeat', '0', '--anonymous']);
    proxy = await startHaproxy(new URL(quiet.url).host, { edit: (cfg) => setHaproxyTimeout(setHaproxyTimeout(cfg, 'server', '2s'), 'client', '2s') });
  });
  after(async () => {
    await proxy.stop();
    await quiet.close();
  });

  it('reports the cut of a 2 s idle timeout with the heartbeat off', async () => {
    const report = await runDoctor({ url: `${proxy.url}${HUB_PATH}?topic=quiet`, duration: 6000 });
    const f = finding(report, 'truncation');
    assert.equal(f?.severity, 'fail', describeReport(report));
    assert.match(f?.advice ?? '', /--heartbeat 1s/);
  });
});

describe('doctor: servers that are not SSE endpoints', () => {
  let server: Server;
  let base: string;
  before(async () => {
    server = createServer((req, res) => {
      if (req.url === '/login') res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end('<!doctype html><html><head><title>Please sign in</title></head><body><form></form></body></html>');
      else res.writeHead(500, { 'content-type': 'text/plain' }).end('database connection failed\n');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('reports text/html plainly, with the page title', async () => {
    const report = await runDoctor({ url: `${base}/login`, duration: 1000 });
    assert.equal(report.ok, false);
    const f = finding(report, 'content-type');
    assert.equal(f?.severity, 'fail');
    assert.match(f?.title ?? '', /"text\/html; charset=utf-8", not text\/event-stream: an HTML page titled "Please sign in"/);
  });

  it('reports a 500 plainly, with the body, and the CLI exits 1', async () => {
    const { code, stdout } = await runCli([`${base}/events`, '--duration', '1s']);
    assert.equal(code, 1);
    assert.match(stdout, /\[ FAIL \] answered HTTP 500, not 200/);
    assert.match(stdout, /database connection failed/);
  });

  it('reports a refused connection', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const report = await runDoctor({ url: `http://127.0.0.1:${port}/events`, duration: 1000 });
    assert.match(finding(report, 'connect')?.title ?? '', /ECONNREFUSED/);
  });
});

describe('doctor: command line', () => {
  it('exits 2 with a message on a usage error', async () => {
    for (const [args, message] of [
      [[], /give the URL/],
      [['not a url'], /is not a URL/],
      [['ftp://example.com/x'], /expected an http:\/\/, https:\/\/, ws:\/\/ or wss:\/\/ URL/],
      [['http://127.0.0.1:1/x', '--publish'], /--publish needs --token/],
      [['http://127.0.0.1:1/x', '--duration', 'soon'], /--duration: expected a duration/],
      [['http://127.0.0.1:1/x', '--header', 'no colon'], /--header expects "NAME: VALUE"/],
      [['http://127.0.0.1:1/x', '--bogus'], /unknown option --bogus/],
    ] as const) {
      const { code, stderr } = await runCli([...args]);
      assert.equal(code, 2, `${args.join(' ')}: ${stderr}`);
      assert.match(stderr, message);
    }
  });

  it('prints its help', async () => {
    const { code, stdout } = await runCli(['--help']);
    assert.equal(code, 0);
    assert.match(stdout, /--publish/);
    assert.match(stdout, /Exit code: 0 when nothing is wrong/);
  });
});
