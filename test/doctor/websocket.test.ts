// `ssehub doctor ws://…`: against the hub directly, through a real nginx that does not pass Upgrade,
// and through one whose idle timeout is shorter than the hub's pings; and the rules alone.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { type WebSocketObservation, checkWebSocket, runWebSocketDoctor } from '../../src/doctor/index.js';
import { type TestHub, startTestHub } from '../helpers/hub.js';
import { NGINX_BINARY, proxySkipReason, setNginxDirective, startNginx } from '../helpers/proxies.js';

const T = { timeout: 60_000 };
const cli = new URL('../../dist/cli.js', import.meta.url).pathname;

/** Runs `ssehub doctor` (asynchronously: the hub runs in this process). */
function doctor(...args: string[]): Promise<{ status: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [cli, 'doctor', ...args], { encoding: 'utf8' }, (error, stdout, stderr) => resolve({ status: error === null ? 0 : Number((error as { code?: number }).code ?? 1), stdout, stderr }));
  });
}

const checks = (findings: { check: string; severity: string }[]) => Object.fromEntries(findings.map((f) => [f.check, f.severity]));

describe('ssehub doctor ws://', () => {
  let hub: TestHub;
  before(async () => {
    hub = await startTestHub(['--anonymous', '--centrifugo-ping', '1s']);
  });
  after(async () => {
    await hub.close();
  });
  const wsUrl = (base: string) => `${base.replace(/^http/, 'ws')}/connection/websocket`;

  it('finds nothing wrong with the hub itself: upgraded, connected, a ping round trip, open through the idle watch with the pings answered', T, async () => {
    const report = await runWebSocketDoctor({ url: wsUrl(hub.url), duration: 2500 });
    assert.equal(report.ok, true, JSON.stringify(report.findings, null, 2));
    assert.deepEqual(checks(report.findings), { 'ws-upgrade': 'ok', 'ws-connect-reply': 'ok', 'ws-round-trip': 'ok', 'ws-pings': 'ok', 'ws-idle': 'ok', 'ws-idle-window': 'info' });
    assert.ok(report.observation.pings.length >= 1);
    assert.ok(report.observation.roundTrip !== undefined && report.observation.frameRoundTrip !== undefined);
  });

  it('exits 0 from the command line, and 1 with the finding for a path that is not a WebSocket endpoint', T, async () => {
    const good = await doctor(wsUrl(hub.url), '--duration', '1s');
    assert.equal(good.status, 0, good.stdout + good.stderr);
    assert.match(good.stdout, /upgraded to WebSocket/);
    const bad = await doctor(`${hub.url.replace(/^http/, 'ws')}/elsewhere`, '--json', '--duration', '1s');
    assert.equal(bad.status, 1);
    assert.equal((JSON.parse(bad.stdout) as { findings: { check: string }[] }).findings[0]?.check, 'ws-upgrade');
    assert.equal((await doctor(wsUrl(hub.url), '--publish', '--token', 'x')).status, 2);
  });

  describe('through nginx', { skip: proxySkipReason(NGINX_BINARY) }, () => {
    it('shows what a proxy that does not pass Upgrade looks like: the hub got a plain GET, and the fix', T, async () => {
      const nginx = await startNginx(new URL(hub.url).host, { edit: (conf) => conf.replace(/^[ \t]*proxy_set_header (Upgrade|Connection \$connection_upgrade).*$/gm, '        # (removed for the test)') });
      try {
        const report = await runWebSocketDoctor({ url: wsUrl(nginx.url), duration: 1000 });
        assert.equal(report.ok, false);
        const finding = report.findings.find((f) => f.check === 'ws-upgrade-missing');
        assert.equal(finding?.severity, 'fail');
        assert.match(finding?.advice ?? '', /proxy_set_header Upgrade \$http_upgrade/);
      } finally {
        await nginx.stop();
      }
    });

    it('passes through deploy/nginx.conf as it is', T, async () => {
      const nginx = await startNginx(new URL(hub.url).host);
      try {
        const report = await runWebSocketDoctor({ url: wsUrl(nginx.url), duration: 1500 });
        assert.equal(report.ok, true, JSON.stringify(report.findings, null, 2));
      } finally {
        await nginx.stop();
      }
    });

    it('tells an idle cut from a proxy timeout shorter than the hub\'s pings, and what to lower', T, async () => {
      const slowPings = await startTestHub(['--anonymous', '--centrifugo-ping', '30s']);
      const nginx = await startNginx(new URL(slowPings.url).host, { edit: (conf) => setNginxDirective(setNginxDirective(conf, 'proxy_read_timeout', '2s'), 'proxy_send_timeout', '2s') });
      try {
        const report = await runWebSocketDoctor({ url: wsUrl(nginx.url), duration: 10_000 });
        const cut = report.findings.find((f) => f.check === 'ws-idle-cut');
        assert.equal(cut?.severity, 'fail', JSON.stringify(report.findings, null, 2));
        assert.match(cut?.advice ?? '', /lower --centrifugo-ping/);
      } finally {
        await nginx.stop();
        await slowPings.close();
      }
    });
  });
});

describe('the WebSocket doctor\'s rules', () => {
  const base = (): WebSocketObservation => ({
    url: 'ws://h/connection/websocket',
    upgrade: { status: 101, headers: {}, body: '', error: undefined, at: 5 },
    connect: { at: 10, ping: 25, pong: true, client: 'c', error: undefined },
    roundTrip: 1,
    frameRoundTrip: 1,
    pings: [],
    closed: undefined,
    watchedFrom: 20,
    watchedUntil: 20_020,
  });

  it('fails a connection that could not be made, and an upgrade answered by something else', () => {
    assert.equal(checks(checkWebSocket({ ...base(), upgrade: { status: undefined, headers: {}, body: '', error: 'ECONNREFUSED', at: undefined } }))['ws-connect'], 'fail');
    assert.match(checkWebSocket({ ...base(), upgrade: { status: 502, headers: {}, body: 'Bad Gateway', error: undefined, at: 3 } })[0]?.title ?? '', /could not reach the hub/);
  });

  it('warns of a hub that sends no pings, or pings less often than a common idle timeout', () => {
    assert.equal(checks(checkWebSocket({ ...base(), connect: { ...(base().connect as NonNullable<WebSocketObservation['connect']>), ping: undefined } }))['ws-pings'], 'warn');
    assert.equal(checks(checkWebSocket({ ...base(), connect: { ...(base().connect as NonNullable<WebSocketObservation['connect']>), ping: 60 } }))['ws-pings'], 'warn');
  });

  it('says the hub wants a token when the connect is refused 101', () => {
    const findings = checkWebSocket({ ...base(), connect: { at: 10, ping: undefined, pong: false, client: undefined, error: { code: 101, message: 'unauthorized' } } });
    assert.match(findings.at(-1)?.advice ?? '', /--token/);
  });

  it('takes a cut despite answered pings for a limit on a connection\'s life, not an idle timeout', () => {
    const findings = checkWebSocket({ ...base(), connect: { ...(base().connect as NonNullable<WebSocketObservation['connect']>), ping: 1 }, pings: [1020, 2020, 3020], closed: { at: 5020, code: 1006, reason: '' } });
    assert.match(findings.find((f) => f.check === 'ws-idle-cut')?.advice ?? '', /whole life/);
  });

  it('fails pings that never arrive although the hub sends them', () => {
    assert.equal(checks(checkWebSocket({ ...base(), connect: { ...(base().connect as NonNullable<WebSocketObservation['connect']>), ping: 1 } }))['ws-pings-held'], 'fail');
  });
});
