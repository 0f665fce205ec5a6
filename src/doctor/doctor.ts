/**
 * `ssehub doctor URL`: connects to an SSE endpoint like a browser, watches the stream for a while,
 * optionally publishes its own probe updates to a Mercure hub, and reports what is wrong and what
 * to change. Works through any proxies in front; it tells a buffering nginx from a correct one.
 */
import { randomUUID } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { type Finding, type Probe, type ResumeResult, checkProbes, checkResponse, checkResume, checkStream, heartbeatOf, isEventStream } from './checks.js';
import { type ConnectOptions, type Observation, ObservedStream } from './connection.js';

/** What to diagnose and how. Durations in milliseconds. */
export interface DoctorOptions {
  /** The SSE endpoint (for `publish`, the hub's URL, e.g. `https://host/.well-known/mercure`). */
  url: string;
  /** How long to watch the stream (default 20 s: longer than a 15 s heartbeat). */
  duration?: number;
  /** Publish probe updates to the hub and measure publish-to-receive latency and resume. */
  publish?: boolean;
  /** Publisher JWT for the probes. */
  token?: string;
  /** Subscriber JWT, sent as `Authorization: Bearer` on the stream. */
  subscriberToken?: string;
  /** Topic of the probe updates (default: a fresh `urn:ssehub:doctor:UUID`). */
  topic?: string;
  /** Extra request headers on the stream. */
  headers?: Record<string, string>;
  /** Accept any TLS certificate. */
  insecure?: boolean;
  /** Extra CA certificates (PEM). */
  ca?: string;
  /** Number of probe updates (default 5). */
  probes?: number;
  /** How long to wait for response headers (default 10 s, and never longer than `duration`). */
  connectTimeout?: number;
}

/** The doctor's report; `ok` is false when any finding is a warning or a failure. */
export interface DoctorReport {
  url: string;
  ok: boolean;
  status: number | undefined;
  httpVersion: string | undefined;
  headers: Record<string, string>;
  /** Milliseconds from sending the request. */
  timings: { headers: number | undefined; firstByte: number | undefined; firstEvent: number | undefined; ended: number | undefined };
  heartbeat: { intervalMs: number | undefined; beats: number; longestSilenceMs: number };
  probes: Probe[];
  resume: ResumeResult | undefined;
  findings: Finding[];
  summary: { fail: number; warn: number };
}

/** How long a probe may take before the doctor moves on to the next one. */
const PROBE_WAIT_MS = 2000;
/** Pause between probes, so that probes are not mistaken for one burst by a healthy stream. */
const PROBE_GAP_MS = 200;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, Math.max(0, ms)));

/** `true` if `promise` settles within `ms`; the timer is cleared either way, so it never keeps the process alive. */
async function within(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), Math.max(0, ms))));
  try {
    return await Promise.race([promise.then(() => true), expired]);
  } finally {
    clearTimeout(timer);
  }
}

/** Runs every check against `options.url` and returns the report. Never throws for a network problem: that is a finding. */
export async function runDoctor(options: DoctorOptions): Promise<DoctorReport> {
  const base = new URL(options.url);
  if (base.protocol !== 'http:' && base.protocol !== 'https:') throw new TypeError(`expected an http:// or https:// URL, got ${options.url}`);
  const duration = options.duration ?? 20_000;
  const topic = options.topic ?? `urn:ssehub:doctor:${randomUUID()}`;
  const streamUrl = new URL(base);
  // A Mercure 1.0 URL (match…) subscribes to the probe topic with `match`; a draft-07 one with `topic`.
  const v1 = [...streamUrl.searchParams.keys()].some((name) => name.toLowerCase().startsWith('match'));
  if (options.publish === true) streamUrl.searchParams.append(v1 ? 'match' : 'topic', topic);
  const connect: ConnectOptions = { headers: { ...(options.subscriberToken !== undefined ? { authorization: `Bearer ${options.subscriberToken}` } : {}), ...options.headers }, insecure: options.insecure, ca: options.ca };

  const stream = new ObservedStream(streamUrl, connect);
  const o = stream.observation;
  const gotHeaders = (await within(stream.headers, Math.min(options.connectTimeout ?? 10_000, duration))) && o.status !== undefined;
  if (!gotHeaders) {
    stream.close();
    return report(o, stream.now(), [], undefined);
  }
  if (!isEventStream(o)) {
    // Enough of the body to quote the error page.
    await stream.waitFor(() => o.bodyPreview.length >= 200, 1000);
    stream.close();
    return report(o, stream.now(), [], undefined);
  }

  const deadline = stream.now() + duration;
  const probes: Probe[] = [];
  if (options.publish === true) {
    const count = options.probes ?? 5;
    for (let k = 1; k <= count && o.endedAt === undefined; k++) {
      const probe: Probe = { id: undefined, publishedAt: stream.now(), answeredAt: undefined, status: undefined, answer: '', receivedAt: undefined, sameRead: 0 };
      probes.push(probe);
      const data = JSON.stringify({ doctor: k, of: count });
      try {
        const answer = await post(base, { topic, data }, options);
        probe.status = answer.status;
        probe.answer = answer.body;
        if (answer.status === 200) probe.id = answer.body.trim();
      } catch (error) {
        probe.answer = (error as Error).message;
      }
      probe.answeredAt = stream.now();
      if (probe.status !== 200) break;
      await stream.waitFor(() => o.events.some((e) => e.id === probe.id), PROBE_WAIT_MS);
      await sleep(PROBE_GAP_MS);
    }
  }
  await within(stream.ended, deadline - stream.now());
  const windowEnd = stream.now();
  stream.close();

  for (const probe of probes) {
    const seen = o.events.find((e) => probe.id !== undefined && e.id === probe.id);
    if (seen === undefined) continue;
    probe.receivedAt = seen.at;
    probe.sameRead = o.events.filter((e) => e !== seen && e.read === seen.read && probes.some((p) => p.id === e.id)).length;
  }

  let resume: ResumeResult | undefined;
  const ids = probes.map((p) => p.id).filter((id): id is string => id !== undefined);
  const healthy = probes.length > 1 && probes.every((p) => p.status === 200 && p.receivedAt !== undefined && p.receivedAt - (p.answeredAt as number) <= 1000);
  if (healthy) resume = await checkResumeFrom(streamUrl, connect, ids);
  return report(o, windowEnd, probes, resume);
}

/** Reconnects with `Last-Event-ID` set to the first probe and collects what is replayed. */
async function checkResumeFrom(url: URL, connect: ConnectOptions, ids: string[]): Promise<ResumeResult> {
  const [sentId, ...expected] = ids as [string, ...string[]];
  const again = new ObservedStream(url, { ...connect, lastEventId: sentId });
  const o = again.observation;
  await within(again.headers, 10_000);
  if (isEventStream(o)) await again.waitFor(() => o.events.filter((e) => e.id !== undefined && ids.includes(e.id)).length >= expected.length, 3000);
  // A little longer, to see a duplicate arrive if there is one.
  await sleep(100);
  again.close();
  return { sentId, expected, received: o.events.filter((e) => e.id !== undefined && ids.includes(e.id)).map((e) => e.id as string), status: o.status, error: o.error };
}

function report(o: Observation, windowEnd: number, probes: Probe[], resume: ResumeResult | undefined): DoctorReport {
  const findings = [...checkResponse(o), ...checkStream(o, windowEnd), ...checkProbes(o, probes)];
  if (isEventStream(o) && o.endedBy !== 'error') {
    const buffered = findings.some((f) => f.check === 'buffering' && f.severity === 'fail');
    findings.push(...(buffered && probes.length > 0 ? [{ check: 'resume', severity: 'info' as const, title: 'Last-Event-ID resume not checked: the stream is buffered' }] : checkResume(resume)));
  }
  const hb = heartbeatOf(o, windowEnd);
  const fail = findings.filter((f) => f.severity === 'fail').length;
  const warn = findings.filter((f) => f.severity === 'warn').length;
  return {
    url: o.url,
    ok: fail === 0 && warn === 0,
    status: o.status,
    httpVersion: o.httpVersion,
    headers: o.headers,
    timings: { headers: o.headersAt, firstByte: o.reads[0]?.at, firstEvent: o.events[0]?.at, ended: o.endedBy === 'doctor' ? undefined : o.endedAt },
    heartbeat: { intervalMs: hb.interval, beats: hb.beats, longestSilenceMs: hb.longestSilence },
    probes,
    resume,
    findings,
    summary: { fail, warn },
  };
}

/** POSTs a publish form to the hub (node:http, so `insecure` and `ca` apply as on the stream). */
function post(url: URL, fields: Record<string, string>, options: DoctorOptions): Promise<{ status: number; body: string }> {
  const target = new URL(url.pathname, url);
  const body = new URLSearchParams(fields).toString();
  const headers = { 'content-type': 'application/x-www-form-urlencoded', 'content-length': String(Buffer.byteLength(body)), ...(options.token !== undefined ? { authorization: `Bearer ${options.token}` } : {}) };
  const tls = { rejectUnauthorized: options.insecure !== true, ...(options.ca !== undefined ? { ca: options.ca } : {}) };
  return new Promise((resolve, reject) => {
    const req = (target.protocol === 'https:' ? httpsRequest(target, { method: 'POST', headers, ...tls }) : httpRequest(target, { method: 'POST', headers })).once('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error('no answer within 10 s')));
    req.once('response', (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.once('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      res.once('error', reject);
    });
    req.end(body);
  });
}
