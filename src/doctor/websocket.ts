/**
 * `ssehub doctor ws://…`: a WebSocket endpoint of the Centrifugo protocol, through whatever stands
 * in front of it. It upgrades like the SDK does, connects, measures a ping round trip (the
 * protocol's and the WebSocket's own), then stays idle for `duration`, answering the server's
 * pings, to see whether something in between cuts an idle connection — and says what a proxy that
 * does not pass `Upgrade` looks like, and the fix. `checkWebSocket` is the pure part: what the
 * observations mean.
 */
import WebSocket from 'ws';
import { COMMON_TIMEOUTS, type Finding } from './checks.js';

/** What to diagnose and how. Durations in milliseconds. */
export interface WebSocketDoctorOptions {
  /** `ws://` or `wss://`, e.g. `wss://hub.example.com/connection/websocket`. */
  url: string;
  /** How long to stay idle, watching for a cut (default 20 s). */
  duration?: number;
  /** The connection token of the connect command (the hub may allow none: --anonymous). */
  token?: string;
  /** Extra request headers on the upgrade. */
  headers?: Record<string, string>;
  /** Accept any TLS certificate. */
  insecure?: boolean;
  /** Extra CA certificates (PEM). */
  ca?: string;
  /** How long the upgrade and each reply may take (default 10 s). */
  timeout?: number;
}

/** What happened, in milliseconds from the start. */
export interface WebSocketObservation {
  url: string;
  /** The answer to the upgrade request: 101, or what came instead (status, headers, the start of the body), or the error. */
  upgrade: { status: number | undefined; headers: Record<string, string>; body: string; error: string | undefined; at: number | undefined };
  /** The connect command's reply: its result (ping interval in seconds, whether pongs are expected) or error. */
  connect: { at: number; ping: number | undefined; pong: boolean; client: string | undefined; error: { code: number; message: string } | undefined } | undefined;
  /** Round trip of the protocol's ping command, and of a WebSocket ping frame. */
  roundTrip: number | undefined;
  frameRoundTrip: number | undefined;
  /** When the server's pings arrived. */
  pings: number[];
  /** How the connection ended, if it did before the watch was over (1006: no close frame, it was cut). */
  closed: { at: number; code: number; reason: string } | undefined;
  /** When the idle watch began and ended. */
  watchedFrom: number | undefined;
  watchedUntil: number;
}

/** The WebSocket doctor's report; `ok` is false when any finding is a warning or a failure. */
export interface WebSocketDoctorReport {
  url: string;
  ok: boolean;
  observation: WebSocketObservation;
  findings: Finding[];
  summary: { fail: number; warn: number };
}

const seconds = (ms: number): string => `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)} s`;

/** What an nginx in front needs for WebSocket, the fix for an upgrade that does not get through. */
export const UPGRADE_FIX =
  'nginx: in the location of /connection/websocket, "proxy_http_version 1.1; proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection $connection_upgrade;" with "map $http_upgrade $connection_upgrade { default upgrade; \'\' \'\'; }" in the http block (deploy/nginx.conf has it); HAProxy passes upgrades in mode http by itself; a CDN or load balancer needs WebSocket switched on. Meanwhile the SDKs fall back to /connection/sse or /connection/http_stream if they are given those transports.';

/** What the observations mean. Pure. */
export function checkWebSocket(o: WebSocketObservation): Finding[] {
  const findings: Finding[] = [];
  const u = o.upgrade;
  if (u.status === undefined) {
    findings.push({ check: 'ws-connect', severity: 'fail', title: `could not open a connection: ${u.error ?? 'no answer'}`, advice: 'check the host and port, and that the hub (or the proxy in front) listens there' });
    return findings;
  }
  if (u.status !== 101) {
    if (u.headers['x-ssehub-upgrade'] === 'missing') {
      findings.push({
        check: 'ws-upgrade-missing',
        severity: 'fail',
        title: `the hub got the request without its Upgrade header (${u.status}): something in between does not pass WebSocket upgrades`,
        detail: 'A proxy that does not pass WebSocket sends the request on as a plain GET: the hub then answers 400 instead of 101 Switching Protocols.',
        advice: UPGRADE_FIX,
      });
    } else {
      const why =
        u.status === 404 ? 'nothing serves WebSocket at this path (the hub\'s is /connection/websocket), or a proxy routes it elsewhere'
        : u.status === 502 || u.status === 504 ? 'a proxy could not reach the hub'
        : u.status === 503 ? 'the hub (or a proxy) is unavailable: draining, over --max-connections, or down'
        : u.status === 429 ? 'too many connections from this address (--max-connections-per-ip)'
        : u.status === 400 || u.status === 426 ? 'the upgrade was refused: a proxy may have dropped Upgrade and answered itself'
        : 'whatever answered is not a WebSocket endpoint, or a proxy answered in its place';
      const advice = u.status === 400 || u.status === 426 ? UPGRADE_FIX : u.status === 404 ? 'the hub serves WebSocket at /connection/websocket: check the URL, and that a proxy in front routes /connection/ to the hub' : undefined;
      findings.push({ check: 'ws-upgrade', severity: 'fail', title: `the server answered ${u.status} instead of 101 Switching Protocols: ${why}`, detail: u.body === '' ? undefined : `the answer began: ${u.body.slice(0, 200).replace(/\s+/g, ' ').trim()}`, advice });
    }
    return findings;
  }
  findings.push({ check: 'ws-upgrade', severity: 'ok', title: `upgraded to WebSocket (101 Switching Protocols) in ${Math.round(u.at ?? 0)} ms` });
  const c = o.connect;
  if (c === undefined) {
    const closed = o.closed;
    findings.push({
      check: 'ws-connect-reply',
      severity: 'fail',
      title: closed !== undefined ? `the connection closed before the connect reply (${closed.code}${closed.reason === '' ? '' : ` ${closed.reason}`})` : 'no reply to the connect command',
      advice: closed?.code === 3500 ? 'the token is not valid for this hub (--token)' : 'is this a Centrifugo-protocol endpoint? The hub\'s is /connection/websocket',
    });
    return findings;
  }
  if (c.error !== undefined) {
    findings.push({ check: 'ws-connect-reply', severity: c.error.code === 101 || c.error.code === 109 ? 'warn' : 'fail', title: `the connect command was refused: ${c.error.code} ${c.error.message}`, advice: c.error.code === 101 ? 'the hub wants a connection token: give one with --token' : c.error.code === 109 ? 'the token has expired' : undefined });
    return findings;
  }
  findings.push({ check: 'ws-connect-reply', severity: 'ok', title: `connected as client ${c.client ?? '?'} in ${Math.round(c.at - (u.at ?? 0))} ms after the upgrade` });
  if (o.roundTrip !== undefined) findings.push({ check: 'ws-round-trip', severity: 'ok', title: `ping round trip ${Math.round(o.roundTrip)} ms (protocol), ${o.frameRoundTrip === undefined ? 'no answer to a WebSocket ping frame' : `${Math.round(o.frameRoundTrip)} ms (WebSocket frame)`}` });
  const intervalMs = (c.ping ?? 0) * 1000;
  if (intervalMs === 0) {
    findings.push({ check: 'ws-pings', severity: 'warn', title: 'the server sends no pings: an idle connection carries nothing, and proxies cut silent connections', advice: 'set --centrifugo-ping (25 s by default) below every idle timeout in between' });
  } else {
    const shorter = COMMON_TIMEOUTS.filter((t) => t.seconds * 1000 <= intervalMs);
    findings.push(
      shorter.length > 0
        ? { check: 'ws-pings', severity: 'warn', title: `the server pings every ${seconds(intervalMs)}: not below ${shorter.map((t) => t.what).join(', ')}`, advice: 'lower --centrifugo-ping below every idle timeout in between (25 s is below the common ones)' }
        : { check: 'ws-pings', severity: 'ok', title: `the server pings every ${seconds(intervalMs)}, below the common proxy idle timeouts` },
    );
  }
  const watched = o.watchedUntil - (o.watchedFrom ?? o.watchedUntil);
  const closed = o.closed;
  if (closed !== undefined) {
    const after = closed.at - (o.watchedFrom ?? closed.at);
    if (closed.code === 1006) {
      const pinged = o.pings.length > 0;
      findings.push({
        check: 'ws-idle-cut',
        severity: 'fail',
        title: `the connection was cut after ${seconds(after)} of idleness, without a close frame: something in between has an idle timeout of about ${seconds(after)}`,
        detail: pinged ? `${o.pings.length} ping(s) came before the cut, every ${seconds(intervalMs)}` : `no ping came before it (the server pings every ${intervalMs === 0 ? '—' : seconds(intervalMs)})`,
        advice: intervalMs >= after ? `lower --centrifugo-ping below ${seconds(after)} (about half of it), or raise the idle timeout (nginx: proxy_read_timeout and proxy_send_timeout)` : 'the pings did not keep it open: a limit on a connection\'s whole life (a load balancer\'s), not an idle timeout; raise it',
      });
    } else {
      findings.push({ check: 'ws-closed', severity: closed.code >= 3000 && closed.code < 3500 ? 'info' : 'warn', title: `the server closed the connection after ${seconds(after)}: ${closed.code} ${closed.reason}`, detail: closed.code === 3011 ? 'force reconnect: the hub\'s --write-timeout (a connection\'s maximum life); the SDKs reconnect and recover' : undefined });
    }
  } else if (watched > 0) {
    findings.push({ check: 'ws-idle', severity: 'ok', title: `stayed open through ${seconds(watched)} of idleness, with ${o.pings.length} ping(s) answered` });
    if (intervalMs > 0 && watched > 2 * intervalMs && o.pings.length === 0) {
      findings.push({ check: 'ws-pings-held', severity: 'fail', title: `no ping arrived in ${seconds(watched)} although the server pings every ${seconds(intervalMs)}: something in between holds frames back`, advice: 'look for a proxy buffering the connection' });
    }
    if (watched < 60_000) findings.push({ check: 'ws-idle-window', severity: 'info', title: `watched for ${seconds(watched)}; idle timeouts of 60 s and more (nginx, load balancers) show with --duration 90s` });
  }
  return findings;
}

/** Runs the checks against `options.url`. Never throws for a network problem: that is a finding. */
export async function runWebSocketDoctor(options: WebSocketDoctorOptions): Promise<WebSocketDoctorReport> {
  const timeout = options.timeout ?? 10_000;
  const duration = options.duration ?? 20_000;
  const start = performance.now();
  const now = () => performance.now() - start;
  const o: WebSocketObservation = { url: options.url, upgrade: { status: undefined, headers: {}, body: '', error: undefined, at: undefined }, connect: undefined, roundTrip: undefined, frameRoundTrip: undefined, pings: [], closed: undefined, watchedFrom: undefined, watchedUntil: 0 };
  const ws = new WebSocket(options.url, { headers: options.headers, handshakeTimeout: timeout, rejectUnauthorized: options.insecure !== true, ca: options.ca, perMessageDeflate: false });
  const replies = new Map<number, (reply: Record<string, unknown>) => void>();
  let closedAlready: () => void = () => {};
  const closed = new Promise<void>((resolve) => (closedAlready = resolve));
  ws.on('upgrade', (res) => {
    o.upgrade = { status: res.statusCode, headers: headersOf(res.headers), body: '', error: undefined, at: now() };
  });
  ws.on('unexpected-response', (_req, res) => {
    o.upgrade = { status: res.statusCode, headers: headersOf(res.headers), body: '', error: undefined, at: now() };
    res.on('data', (chunk: Buffer) => {
      if (o.upgrade.body.length < 2000) o.upgrade.body += chunk.toString('utf8');
    });
    res.on('end', () => closedAlready());
    res.on('error', () => closedAlready());
  });
  ws.on('error', (error) => {
    if (o.upgrade.status === undefined) o.upgrade.error = error.message;
    closedAlready();
  });
  ws.on('close', (code, reason) => {
    if (o.upgrade.status === 101) o.closed = { at: now(), code, reason: reason.toString() };
    closedAlready();
  });
  ws.on('message', (data: Buffer) => {
    for (const line of data.toString('utf8').split('\n')) {
      if (line.trim() === '') continue;
      let reply: Record<string, unknown>;
      try {
        reply = JSON.parse(line) as Record<string, unknown>;
      } catch {
        continue;
      }
      if (Object.keys(reply).length === 0) {
        o.pings.push(now());
        if (o.connect?.pong === true) ws.send('{}');
        continue;
      }
      const id = typeof reply.id === 'number' ? reply.id : 0;
      replies.get(id)?.(reply);
    }
  });
  const opened = await Promise.race([new Promise<boolean>((resolve) => ws.once('open', () => resolve(true))), closed.then(() => false)]);
  if (!opened) {
    o.watchedUntil = now();
    return reportOf(o);
  }
  const command = (id: number, body: Record<string, unknown>): Promise<Record<string, unknown> | undefined> =>
    Promise.race([
      new Promise<Record<string, unknown>>((resolve) => {
        replies.set(id, resolve);
        ws.send(JSON.stringify({ id, ...body }));
      }),
      closed.then(() => undefined),
      sleep(timeout).then(() => undefined),
    ]);
  const connect = await command(1, { connect: options.token === undefined ? {} : { token: options.token } });
  if (connect !== undefined) {
    const result = connect.connect as Record<string, unknown> | undefined;
    const error = connect.error as { code: number; message: string } | undefined;
    o.connect = { at: now(), ping: typeof result?.ping === 'number' ? result.ping : undefined, pong: result?.pong === true, client: typeof result?.client === 'string' ? result.client : undefined, error };
  }
  if (o.connect !== undefined && o.connect.error === undefined) {
    const sent = now();
    if ((await command(2, { ping: {} })) !== undefined) o.roundTrip = now() - sent;
    const frameSent = now();
    const pong = new Promise<boolean>((resolve) => ws.once('pong', () => resolve(true)));
    ws.ping();
    if (await Promise.race([pong, sleep(timeout).then(() => false), closed.then(() => false)])) o.frameRoundTrip = now() - frameSent;
    o.watchedFrom = now();
    await Promise.race([closed, sleep(duration)]);
  }
  o.watchedUntil = now();
  if (ws.readyState === WebSocket.OPEN) ws.close(1000);
  else ws.terminate();
  return reportOf(o);
}

const MARK = { ok: '  ok  ', info: ' info ', warn: ' WARN ', fail: ' FAIL ' } as const;

/** The report as text for a terminal (`--json` prints the report itself). */
export function formatWebSocketReport(report: WebSocketDoctorReport): string {
  const lines = [`ssehub doctor ${report.url}`, ''];
  for (const f of report.findings) {
    lines.push(`[${MARK[f.severity]}] ${f.title}`);
    if (f.detail !== undefined && f.severity !== 'ok') lines.push(`         ${f.detail}`);
    if (f.advice !== undefined && f.severity !== 'ok') lines.push(`         → ${f.advice}`);
  }
  const { fail, warn } = report.summary;
  lines.push('', report.ok ? 'verdict: nothing wrong found' : `verdict: ${fail} problem${fail === 1 ? '' : 's'}, ${warn} warning${warn === 1 ? '' : 's'}`, '');
  return lines.join('\n');
}

function reportOf(o: WebSocketObservation): WebSocketDoctorReport {
  const findings = checkWebSocket(o);
  const fail = findings.filter((f) => f.severity === 'fail').length;
  const warn = findings.filter((f) => f.severity === 'warn').length;
  return { url: o.url, ok: fail === 0 && warn === 0, observation: o, findings, summary: { fail, warn } };
}

function headersOf(headers: Record<string, string | string[] | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) if (value !== undefined) out[name] = Array.isArray(value) ? value.join(', ') : value;
  return out;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
