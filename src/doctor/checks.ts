/**
 * What the doctor concludes from what it observed. Plain functions over recorded observations, so
 * every rule is tested without a network; connection.ts and doctor.ts do the I/O.
 */
import type { Observation } from './connection.js';

/** How bad a finding is. `warn` and `fail` make `ssehub doctor` exit non-zero. */
export type Severity = 'ok' | 'info' | 'warn' | 'fail';

/** One conclusion, in words a user can act on. */
export interface Finding {
  /** Stable identifier, for machines (`--json`). */
  check: string;
  severity: Severity;
  /** One line: what was found. */
  title: string;
  /** Why it matters, or the evidence. */
  detail?: string;
  /** What to change. */
  advice?: string;
}

/** One probe update published with `--publish` and what became of it. Times as in Observation. */
export interface Probe {
  /** The ID the hub gave it. */
  id: string | undefined;
  publishedAt: number;
  /** When the publish request was answered, and how. */
  answeredAt: number | undefined;
  status: number | undefined;
  answer: string;
  /** When the subscriber received it (undefined: never, within the window). */
  receivedAt: number | undefined;
  /** How many other probes the same read delivered (a burst means something held them back). */
  sameRead: number;
}

/** The result of reconnecting with `Last-Event-ID`. */
export interface ResumeResult {
  sentId: string;
  /** The probe IDs expected after it, in order. */
  expected: string[];
  /** The IDs that arrived, in order. */
  received: string[];
  status: number | undefined;
  error: string | undefined;
}

/**
 * Idle timeouts that commonly cut streams, in seconds: a heartbeat must come more often than each.
 * (Limits on a response's whole duration, such as Google Cloud's backend service timeout, are not
 * here: no heartbeat helps against them; they must be above the server's stream lifetime.)
 */
export const COMMON_TIMEOUTS: readonly { what: string; seconds: number }[] = [
  { what: 'HAProxy timeout client/server (often 30 s)', seconds: 30 },
  { what: 'Heroku router (55 s)', seconds: 55 },
  { what: 'nginx proxy_read_timeout (default 60 s)', seconds: 60 },
  { what: 'AWS ALB idle timeout (default 60 s)', seconds: 60 },
  { what: 'Cloudflare proxy read timeout (100 s)', seconds: 100 },
];

/** Watching for this long without a heartbeat is evidence there is none (the doctor's default --duration). */
export const CONCLUSIVE_WINDOW_MS = 20_000;
/** A probe later than this after its publish was answered counts as held back. */
export const LATE_MS = 1000;

/**
 * Bytes that came this close to the end of a stream came with it: a proxy that gives up lets go of
 * what it held and closes at once (7 ms apart through nginx), while idle timeouts are seconds long.
 */
export const TOGETHER_MS = 500;

const seconds = (ms: number): string => `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)} s`;
/** Like `seconds`, but below a second in milliseconds: for times that are no interval, where "0.0 s" would say nothing. */
const elapsed = (ms: number): string => (ms < 1000 ? `${Math.round(ms)} ms` : seconds(ms));

/** A heartbeat interval comfortably below an idle timeout of `ms` (half of it), as `--heartbeat` takes it. */
function heartbeatBelow(ms: number): string {
  // Halves the timeout as the report shows it (to 0.1 s): a 2 s timeout measured as 1,999 ms still gets 1s, not 900ms.
  const half = (Math.round(ms / 100) * 100) / 2;
  return half >= 1000 ? `${Math.floor(half / 1000)}s` : `${Math.max(100, Math.floor(half / 100) * 100)}ms`;
}

/** Whether the response is an event stream at all (status 200 and the right content type). */
export function isEventStream(o: Observation): boolean {
  return o.status === 200 && (o.headers['content-type'] ?? '').toLowerCase().startsWith('text/event-stream');
}

/** Checks of the response itself: reachability, status, content type, headers, HTTP version. */
export function checkResponse(o: Observation): Finding[] {
  const findings: Finding[] = [];
  if (o.status === undefined) {
    if (o.connectedAt !== undefined && o.error === undefined) {
      const waited = seconds((o.endedAt ?? 0) - o.connectedAt);
      findings.push({
        check: 'buffering',
        severity: 'fail',
        title: `connected, but no response headers came in ${waited}`,
        detail: 'The whole response is being held back. A buffering proxy does this to a stream: nginx with proxy_buffering on (the default) sends neither headers nor events until its buffer fills, and ignores the server\'s X-Accel-Buffering: no if told to (proxy_ignore_headers). A server that never flushes its headers looks the same.',
        advice: 'nginx: "proxy_buffering off;" and "proxy_http_version 1.1;" in the stream\'s location (see docs/deployment.md); other proxies: turn response buffering off for text/event-stream. Check the server directly (ssehub doctor http://server:port/...) to tell the two apart.',
      });
      return findings;
    }
    findings.push({ check: 'connect', severity: 'fail', title: `no response: ${o.error ?? 'could not connect in the time allowed'}`, advice: 'Check the URL, that the server runs, and (for https) its certificate (--insecure accepts a self-signed one).' });
    return findings;
  }
  const preview = o.bodyPreview.replace(/\s+/g, ' ').trim().slice(0, 200);
  if (o.status !== 200) {
    findings.push({
      check: 'status',
      severity: 'fail',
      title: `answered HTTP ${o.status}, not 200`,
      detail: preview === '' ? undefined : `body: ${preview}`,
      advice:
        o.status === 401 || o.status === 403
          ? 'The endpoint wants credentials: pass --header "Authorization: Bearer TOKEN" (or --subscriber-token).'
          : o.status === 204
            ? 'A 204 tells EventSource to stop reconnecting for good.'
            : o.status >= 500
              ? 'The server (or a proxy in front of it: 502/504 are usually the proxy) failed; its log says why.'
              : 'EventSource treats any status but 200 as fatal and does not reconnect.',
    });
    return findings;
  }
  findings.push({ check: 'status', severity: 'ok', title: 'HTTP 200' });

  const type = o.headers['content-type'];
  const title = /<title[^>]*>([^<]{1,120})<\/title>/i.exec(o.bodyPreview)?.[1]?.trim();
  if (type === undefined || !type.toLowerCase().startsWith('text/event-stream')) {
    findings.push({
      check: 'content-type',
      severity: 'fail',
      title: `Content-Type is ${type === undefined ? 'missing' : `"${type}"`}, not text/event-stream${title === undefined ? '' : `: an HTML page titled "${title}"`}`,
      detail: preview !== '' ? `body: ${preview}` : undefined,
      advice: 'EventSource refuses any other type and does not reconnect. An HTML answer is usually a login page, an error page or a front-end route answering instead of the stream.',
    });
    return findings;
  }
  findings.push({ check: 'content-type', severity: 'ok', title: `Content-Type: ${type}` });

  const encoding = o.headers['content-encoding'];
  if (encoding !== undefined && encoding.toLowerCase() !== 'identity') {
    const nginx = /nginx/i.test(o.headers.server ?? '');
    findings.push({
      check: 'compression',
      severity: 'fail',
      title: `the stream is compressed (Content-Encoding: ${encoding})`,
      detail: 'A compressor holds bytes until its buffer fills, so events arrive late and in bursts; heartbeats vanish inside it.',
      advice: nginx
        ? 'nginx: "gzip off;" in the stream\'s location, or remove text/event-stream from gzip_types.'
        : 'Turn compression off for text/event-stream in the proxy or middleware (ssehub sends Cache-Control: no-transform, which well-behaved ones respect).',
    });
  } else findings.push({ check: 'compression', severity: 'ok', title: 'not compressed' });

  const cacheControl = (o.headers['cache-control'] ?? '').toLowerCase();
  if (/no-cache|no-store/.test(cacheControl)) findings.push({ check: 'caching', severity: 'ok', title: `Cache-Control: ${o.headers['cache-control']}` });
  else findings.push({ check: 'caching', severity: 'warn', title: `Cache-Control ${cacheControl === '' ? 'missing' : `"${o.headers['cache-control']}"`} has no no-cache`, advice: 'Send Cache-Control: no-cache so no cache between holds or replays the stream.' });

  const accel = o.headers['x-accel-buffering'];
  if (accel?.toLowerCase() === 'no') findings.push({ check: 'x-accel-buffering', severity: 'ok', title: 'X-Accel-Buffering: no' });
  else if (/nginx/i.test(o.headers.server ?? '')) {
    findings.push({ check: 'x-accel-buffering', severity: 'info', title: 'X-Accel-Buffering not visible (nginx in front removes it)', detail: 'nginx consumes the header; whether it buffers is shown by the buffering check.' });
  } else {
    findings.push({ check: 'x-accel-buffering', severity: 'warn', title: `X-Accel-Buffering is ${accel === undefined ? 'missing' : `"${accel}"`}`, advice: 'Send X-Accel-Buffering: no, so an nginx in front passes each event on at once.' });
  }

  if (o.httpVersion === '2') findings.push({ check: 'http-version', severity: 'ok', title: 'HTTP/2', detail: 'All of a page\'s streams share one connection.' });
  else {
    findings.push({
      check: 'http-version',
      severity: 'info',
      title: `HTTP/${o.httpVersion ?? '1.1'}${o.alpn === undefined && o.url.startsWith('https:') ? '' : o.alpn !== undefined ? ` (TLS, ALPN ${o.alpn})` : ''}`,
      detail: 'Browsers open at most six HTTP/1.1 connections per origin: a seventh EventSource (tab) waits until one closes.',
      advice: 'Serve the stream over HTTP/2 (TLS) to lift the limit: ssehub serve --tls-cert/--tls-key, or HTTP/2 on the proxy in front.',
    });
  }
  return findings;
}

/** Gaps between reads: the longest silence, and the heartbeat interval when comments came regularly. */
export function heartbeatOf(o: Observation, windowEnd: number): { interval: number | undefined; beats: number; longestSilence: number } {
  // Comments in the first read are the stream's opening (ssehub's ": ok"), not heartbeats.
  const beats = o.comments.filter((c) => c.read > 0);
  const times = [...new Set(beats.map((b) => b.at))];
  const gaps: number[] = [];
  for (let i = 1; i < times.length; i++) gaps.push((times[i] as number) - (times[i - 1] as number));
  gaps.sort((a, b) => a - b);
  const interval = gaps.length > 0 ? gaps[Math.floor(gaps.length / 2)] : undefined;
  let longestSilence = 0;
  // From the request, not the headers: a buffering proxy sends the headers only when it lets go.
  let last = 0;
  for (const read of o.reads) {
    longestSilence = Math.max(longestSilence, read.at - last);
    last = read.at;
  }
  longestSilence = Math.max(longestSilence, (o.endedAt ?? windowEnd) - last);
  return { interval, beats: beats.length, longestSilence };
}

/** How a stream that the other side ended came to its end. Times are from the request. */
interface Cut {
  /** When the stream ended. */
  at: number;
  /** No body byte came before an end at least LATE_MS after the request (none, or only together with it): a proxy held the response back until it gave up. */
  held: boolean;
  /** The silence before the end: from the last body byte, or from the request when none came. */
  silence: number;
  /** The longest gap between two reads before that. */
  longestGap: number;
  /** Whether an idle timeout explains the cut: not held, at least LATE_MS of silence, and longer than every gap between earlier reads (an idle timeout would have ended one of those). */
  idle: boolean;
}

/** How the stream ended, when the other side (or the network) ended it; `undefined` when the doctor closed it. */
function cutOf(o: Observation): Cut | undefined {
  if (o.endedBy !== 'server' && o.endedBy !== 'error') return undefined;
  const at = o.endedAt ?? 0;
  const first = o.reads[0];
  const silence = at - (o.reads[o.reads.length - 1]?.at ?? 0);
  let longestGap = 0;
  for (let i = 1; i < o.reads.length; i++) longestGap = Math.max(longestGap, (o.reads[i]?.at ?? 0) - (o.reads[i - 1]?.at ?? 0));
  // A stream that ends within LATE_MS of the request was not held back: its server ended it at once.
  const held = at >= LATE_MS && (first === undefined || at - first.at <= TOGETHER_MS);
  return { at, held, silence, longestGap, idle: !held && silence >= LATE_MS && silence > longestGap };
}

/** The finding for a response held back until the stream was cut: buffering is the cause, whatever timeout ended it. */
function heldUntilCut(o: Observation, cut: Cut, nginx: boolean): Finding {
  const headersAt = o.headersAt ?? 0;
  const headersLate = cut.at - headersAt <= TOGETHER_MS;
  // Held bytes with more than the opening comment mean the server was not silent: no read timeout then.
  const quiet = o.events.length === 0 && o.comments.length <= 1;
  const seen = headersLate
    ? `The response headers came ${seconds(headersAt)} after the request, together with the end of the stream`
    : `The response headers came at once, but no byte of the body before the end, ${seconds(cut.at)} after the request`;
  const cause = quiet
    ? `: a buffering proxy held the response back, and the server sent nothing more (no heartbeat), so the proxy's read timeout cut it off about ${seconds(cut.at)} after the request.`
    : `: a buffering proxy held the response back until something cut the stream ${seconds(cut.at)} after the request.`;
  const alike = headersLate ? '' : ' A server that sends nothing until its first event, cut by an idle timeout, looks the same: run the doctor against the server directly to tell them apart.';
  const unbuffer = nginx
    ? 'nginx: "proxy_buffering off;" in the stream\'s location, or "X-Accel-Buffering: no" from the server (and not in proxy_ignore_headers)'
    : 'Turn response buffering off for text/event-stream in the proxy (nginx: "proxy_buffering off;", or "X-Accel-Buffering: no" from the server)';
  return {
    check: 'buffering',
    severity: 'fail',
    title: `the response was held back until the stream was cut, ${seconds(cut.at)} after the request${o.error !== undefined ? ` (${o.error})` : ''}`,
    detail: `${seen}${cause}${alike}`,
    advice: quiet
      ? `${unbuffer}; and send a heartbeat more often than the proxy's read timeout: below ${seconds(cut.at)}, e.g. ssehub serve --heartbeat ${heartbeatBelow(cut.at)}.`
      : `${unbuffer}.`,
  };
}

/** The finding for a stream cut after bytes had come: an idle timeout, measured from the last byte, or an absolute limit. */
function truncated(o: Observation, cut: Cut): Finding {
  return {
    check: 'truncation',
    severity: 'fail',
    title: `the stream was cut after ${elapsed(cut.at)}${o.error !== undefined ? ` (${o.error})` : ''}`,
    detail: cut.idle
      ? `Nothing came for ${seconds(cut.silence)} before the cut, longer than any gap before it: an idle timeout of about ${seconds(cut.silence)} (a proxy's read/idle timeout, or the server's) ended it.`
      : `${cut.silence < LATE_MS ? `Bytes came until the cut (the last ${elapsed(cut.silence)} before it)` : `It ended ${seconds(cut.silence)} after the last bytes, but a longer silence (${seconds(cut.longestGap)}) had passed before without a cut`}: an absolute time limit rather than an idle one (or the server's own stream lifetime).`,
    advice: cut.idle
      ? `Send a heartbeat more often than the timeout: below ${seconds(cut.silence)}, e.g. ssehub serve --heartbeat ${heartbeatBelow(cut.silence)}, or raise the proxy's timeout (nginx proxy_read_timeout, HAProxy timeout server/client, the load balancer's idle timeout).`
      : 'If a proxy or load balancer limits how long a response may last (e.g. Google Cloud\'s backend service timeout), raise it above the server\'s stream lifetime (ssehub: --write-timeout); clients resume with Last-Event-ID, but each cut costs a reconnect.',
  };
}

/** Checks of the stream over time: first bytes, heartbeats, bursts, and whether something cut it. */
export function checkStream(o: Observation, windowEnd: number): Finding[] {
  if (!isEventStream(o)) return [];
  const findings: Finding[] = [];
  const headersAt = o.headersAt ?? 0;
  const first = o.reads[0];
  const nginx = /nginx/i.test(o.headers.server ?? '');
  const bufferAdvice = nginx
    ? 'nginx: "proxy_buffering off;" in the stream\'s location (and X-Accel-Buffering must not be in proxy_ignore_headers); see docs/deployment.md.'
    : 'A proxy or middleware between you and the server buffers the response: turn buffering off for text/event-stream (nginx: proxy_buffering off; compression off).';
  const cut = cutOf(o);

  if (cut?.held === true) findings.push(heldUntilCut(o, cut, nginx));
  else if (first === undefined) {
    // A cut here came within LATE_MS of the request: an empty response its server ended at once (truncation, below).
    if (cut === undefined) {
      findings.push({
        check: 'buffering',
        severity: 'fail',
        title: `headers arrived, then not one byte of the body in ${seconds(windowEnd - headersAt)}`,
        detail: 'An SSE server should send something at once (ssehub sends ": ok"); a proxy that buffers holds it back until its buffer fills.',
        advice: bufferAdvice,
      });
    }
  } else if (first.at - headersAt > LATE_MS) {
    findings.push({ check: 'first-byte', severity: 'warn', title: `the first body byte came ${seconds(first.at - headersAt)} after the headers`, detail: 'Until then the browser shows the stream as still connecting (the "first frame" problem).', advice: `Flush a comment when the stream opens. ${bufferAdvice}` });
  } else findings.push({ check: 'first-byte', severity: 'ok', title: `first body byte ${Math.round(first.at - headersAt)} ms after the headers` });

  const hb = heartbeatOf(o, windowEnd);
  const bursts = o.reads.filter((r, i) => i > 0 && (r.text.match(/^:/gm) ?? []).length >= 2).length;
  if (bursts > 0 && bursts * 2 >= o.reads.length) {
    findings.push({ check: 'bursts', severity: 'warn', title: `heartbeats arrive in bursts (${bursts} of ${o.reads.length} reads held several)`, detail: 'Something between buffers the stream and lets it through in lumps.', advice: bufferAdvice });
  }

  if (cut !== undefined) {
    // A held response was reported above, as buffering.
    if (!cut.held) findings.push(truncated(o, cut));
  } else if (hb.interval !== undefined) {
    const exceeded = COMMON_TIMEOUTS.filter((t) => hb.interval !== undefined && hb.interval >= t.seconds * 1000);
    if (exceeded.length > 0) {
      findings.push({ check: 'heartbeat', severity: 'warn', title: `heartbeat every ${seconds(hb.interval)}: longer than common proxy timeouts`, detail: `It would be cut by: ${exceeded.map((t) => t.what).join('; ')}.`, advice: 'Send a heartbeat every 15–25 s (ssehub serve --heartbeat 15s, the default).' });
    } else findings.push({ check: 'heartbeat', severity: 'ok', title: `heartbeat every ${seconds(hb.interval)}`, detail: `Below common proxy idle timeouts (${COMMON_TIMEOUTS[0]?.seconds ?? 30} s and more).` });
  } else if (hb.beats === 1) {
    findings.push({ check: 'heartbeat', severity: 'ok', title: `a heartbeat came within ${seconds(windowEnd - headersAt)}` });
  } else if (first !== undefined && hb.longestSilence >= LATE_MS) {
    // A window shorter than the usual heartbeat (15–20 s) cannot tell a missing heartbeat from a slow one.
    const conclusive = windowEnd - headersAt >= CONCLUSIVE_WINDOW_MS;
    findings.push({
      check: 'heartbeat',
      severity: conclusive ? 'warn' : 'info',
      title: `no heartbeat in ${seconds(windowEnd - headersAt)} (longest silence ${seconds(hb.longestSilence)})${conclusive ? '' : ': too short a window to judge'}`,
      detail: 'Without heartbeats a quiet stream is cut by the first proxy idle timeout shorter than the gap between events, and a dead connection goes unnoticed.',
      advice: conclusive
        ? 'Send a comment line every 15–25 s (ssehub serve --heartbeat 15s).'
        : `Run again with --duration ${CONCLUSIVE_WINDOW_MS / 1000}s or more to see whether the server sends one.`,
    });
  }

  if (o.retry !== undefined) findings.push({ check: 'retry', severity: 'ok', title: `retry: ${o.retry} ms` });
  else findings.push({ check: 'retry', severity: 'info', title: 'no retry field', detail: 'Browsers then reconnect after their own default (about 3 s in Chromium and Firefox).' });
  return findings;
}

/** Checks from the probe updates published with `--publish`: publish-to-receive latency, and buffering measured precisely. */
export function checkProbes(o: Observation, probes: Probe[]): Finding[] {
  if (probes.length === 0) return [];
  const refused = probes.find((p) => p.status !== 200);
  if (refused !== undefined) {
    return [
      {
        check: 'publish',
        severity: 'fail',
        title: refused.status === undefined ? `the probe could not be published: ${refused.answer}` : `publishing the probe answered HTTP ${refused.status}: ${refused.answer.trim().slice(0, 200)}`,
        advice: refused.status === 401 || refused.status === 403 ? 'Give --token a publisher JWT allowed to publish the probe topic (e.g. ssehub token --publish "*").' : undefined,
      },
    ];
  }
  const nginx = /nginx/i.test(o.headers.server ?? '');
  // Publish-to-receive: from sending the publish (the update may arrive before the publisher's answer).
  const latencies = probes.filter((p) => p.receivedAt !== undefined).map((p) => (p.receivedAt as number) - p.publishedAt);
  const lost = probes.filter((p) => p.receivedAt === undefined);
  const late = probes.filter((p) => p.receivedAt !== undefined && (p.receivedAt as number) - (p.answeredAt as number) > LATE_MS);
  const sorted = [...latencies].sort((a, b) => a - b);
  const ms = (v: number | undefined) => `${Math.round(Math.max(v ?? 0, 0))} ms`;
  const advice = nginx
    ? 'nginx: "proxy_buffering off;" in the stream\'s location, and X-Accel-Buffering must not be in proxy_ignore_headers (see docs/deployment.md).'
    : 'Turn response buffering off for text/event-stream in every proxy in front (nginx: proxy_buffering off), and compression too.';
  if (lost.length > 0 || late.length > 0) {
    const burst = Math.max(0, ...probes.map((p) => p.sameRead));
    return [
      {
        check: 'buffering',
        severity: 'fail',
        title:
          lost.length === probes.length
            ? `the stream is buffered: none of ${probes.length} probe updates arrived (each publish was answered 200)`
            : `the stream is buffered: ${late.length + lost.length} of ${probes.length} probe updates arrived late or not at all`,
        detail: [
          late.length > 0 ? `late by up to ${ms(Math.max(...late.map((p) => (p.receivedAt as number) - (p.answeredAt as number))))}` : '',
          burst > 0 ? `up to ${burst + 1} arrived in one read` : '',
          lost.length > 0 && lost.length < probes.length ? `${lost.length} never arrived in the window` : '',
        ]
          .filter((s) => s !== '')
          .join('; ') || undefined,
        advice,
      },
    ];
  }
  return [{ check: 'latency', severity: 'ok', title: `${probes.length} probe updates arrived one by one: publish-to-receive p50 ${ms(sorted[Math.floor(sorted.length / 2)])}, max ${ms(sorted[sorted.length - 1])}` }];
}

/** Checks the reconnect with `Last-Event-ID`. */
export function checkResume(result: ResumeResult | undefined): Finding[] {
  if (result === undefined) return [{ check: 'resume', severity: 'info', title: 'Last-Event-ID resume not checked', detail: 'Run with --publish (and --token) so the doctor has updates to resume from.' }];
  if (result.status !== 200) return [{ check: 'resume', severity: 'fail', title: `reconnecting with Last-Event-ID answered ${result.status ?? result.error ?? 'nothing'}`, advice: 'The endpoint must accept a reconnect carrying Last-Event-ID.' }];
  const got = result.received.join(',');
  if (got === result.expected.join(',')) return [{ check: 'resume', severity: 'ok', title: `Last-Event-ID resume: the ${result.expected.length} updates after ${result.sentId} arrived, in order, once` }];
  const missing = result.expected.filter((id) => !result.received.includes(id));
  return [
    {
      check: 'resume',
      severity: 'fail',
      title: `Last-Event-ID resume lost updates: expected ${result.expected.length} after ${result.sentId}, got ${result.received.length}${missing.length > 0 ? ` (${missing.length} missing)` : ' (out of order or repeated)'}`,
      detail: result.received.length === 0 ? 'Nothing was replayed: a proxy may drop the Last-Event-ID header, or the server keeps no history.' : undefined,
      advice: 'Let the Last-Event-ID request header through every proxy, and keep enough history on the server (ssehub: --history-size, --history-ttl).',
    },
  ];
}
