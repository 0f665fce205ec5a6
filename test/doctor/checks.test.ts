// The doctor's rules as plain functions over recorded observations: each rule's pass and fail.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type Finding, type Observation, type Probe, checkProbes, checkResponse, checkResume, checkStream, heartbeatOf } from '../../src/doctor/index.js';

const SSE_HEADERS = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache, no-transform',
  'x-accel-buffering': 'no',
};

/** A healthy stream over HTTP/2: headers at 10 ms, ": ok" at 11 ms, a heartbeat every second until 5 s. */
function healthy(overrides: Partial<Observation> = {}): Observation {
  const reads = [{ at: 11, text: ': ok\n\nretry: 3000\n\n' }];
  const comments = [{ at: 11, text: ' ok', read: 0 }];
  for (let s = 1; s <= 4; s++) {
    reads.push({ at: 11 + s * 1000, text: ':\n\n' });
    comments.push({ at: 11 + s * 1000, text: '', read: s });
  }
  return {
    url: 'https://hub.example/.well-known/mercure?topic=x',
    httpVersion: '2',
    alpn: 'h2',
    status: 200,
    connectedAt: 5,
    headers: { ...SSE_HEADERS },
    headersAt: 10,
    reads,
    events: [],
    comments,
    retry: 3000,
    bodyPreview: ': ok\n\n',
    endedAt: 5000,
    endedBy: 'doctor',
    error: undefined,
    ...overrides,
  };
}

const find = (findings: Finding[], check: string) => findings.filter((f) => f.check === check);
const severityOf = (findings: Finding[], check: string) => find(findings, check).map((f) => f.severity);

describe('checkResponse', () => {
  it('passes a correct stream over HTTP/2', () => {
    const findings = checkResponse(healthy());
    assert.deepEqual(
      findings.map((f) => [f.check, f.severity]),
      [
        ['status', 'ok'],
        ['content-type', 'ok'],
        ['compression', 'ok'],
        ['caching', 'ok'],
        ['x-accel-buffering', 'ok'],
        ['http-version', 'ok'],
      ],
    );
  });

  it('reports a refused connection with the error', () => {
    const findings = checkResponse(healthy({ status: undefined, connectedAt: undefined, headersAt: undefined, reads: [], error: 'connect ECONNREFUSED 127.0.0.1:1' }));
    assert.equal(findings.length, 1);
    assert.equal(findings[0]?.check, 'connect');
    assert.match(findings[0]?.title ?? '', /ECONNREFUSED/);
  });

  it('calls a connection without headers a buffered response, not a connect failure', () => {
    const findings = checkResponse(healthy({ status: undefined, headersAt: undefined, reads: [], endedAt: 3005 }));
    assert.deepEqual(severityOf(findings, 'buffering'), ['fail']);
    assert.match(findings[0]?.title ?? '', /no response headers came in 3\.0 s/);
    assert.match(findings[0]?.advice ?? '', /proxy_buffering off/);
  });

  it('reports a 500 plainly, with the body, and stops there', () => {
    const findings = checkResponse(healthy({ status: 500, headers: { 'content-type': 'text/plain' }, bodyPreview: 'upstream exploded\n' }));
    assert.equal(findings.length, 1);
    assert.equal(findings[0]?.severity, 'fail');
    assert.match(findings[0]?.title ?? '', /HTTP 500, not 200/);
    assert.match(findings[0]?.detail ?? '', /upstream exploded/);
  });

  it('explains a 401 and a 204', () => {
    assert.match(checkResponse(healthy({ status: 401 }))[0]?.advice ?? '', /Authorization: Bearer/);
    assert.match(checkResponse(healthy({ status: 204 }))[0]?.advice ?? '', /stop reconnecting/);
  });

  it('reports text/html with the page title', () => {
    const findings = checkResponse(healthy({ headers: { 'content-type': 'text/html; charset=utf-8' }, bodyPreview: '<html><head><title>Sign in</title></head>' }));
    const f = find(findings, 'content-type')[0];
    assert.equal(f?.severity, 'fail');
    assert.match(f?.title ?? '', /"text\/html; charset=utf-8", not text\/event-stream: an HTML page titled "Sign in"/);
    assert.equal(findings.length, 2, 'nothing is checked after a wrong content type');
  });

  it('fails a compressed stream and names nginx gzip when nginx answers', () => {
    const findings = checkResponse(healthy({ headers: { ...SSE_HEADERS, 'content-encoding': 'gzip', server: 'nginx/1.22.1' } }));
    const f = find(findings, 'compression')[0];
    assert.equal(f?.severity, 'fail');
    assert.match(f?.advice ?? '', /gzip off/);
  });

  it('warns about missing no-cache and missing X-Accel-Buffering, but not behind nginx (which strips it)', () => {
    const bare = checkResponse(healthy({ headers: { 'content-type': 'text/event-stream' } }));
    assert.deepEqual(severityOf(bare, 'caching'), ['warn']);
    assert.deepEqual(severityOf(bare, 'x-accel-buffering'), ['warn']);
    const nginx = checkResponse(healthy({ headers: { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', server: 'nginx' } }));
    assert.deepEqual(severityOf(nginx, 'x-accel-buffering'), ['info']);
  });

  it('notes HTTP/1.1 and its six-connection limit as information, not a problem', () => {
    const f = find(checkResponse(healthy({ httpVersion: '1.1', alpn: undefined, url: 'http://hub/' })), 'http-version')[0];
    assert.equal(f?.severity, 'info');
    assert.match(f?.detail ?? '', /six/);
  });
});

describe('checkStream', () => {
  it('passes a stream with a 1 s heartbeat and a retry', () => {
    const findings = checkStream(healthy(), 5000);
    assert.deepEqual(severityOf(findings, 'first-byte'), ['ok']);
    assert.deepEqual(severityOf(findings, 'heartbeat'), ['ok']);
    assert.deepEqual(severityOf(findings, 'retry'), ['ok']);
    assert.equal(findings.filter((f) => f.severity === 'warn' || f.severity === 'fail').length, 0);
    assert.equal(heartbeatOf(healthy(), 5000).interval, 1000);
  });

  it('fails when headers came but no body byte in the window', () => {
    const findings = checkStream(healthy({ reads: [], comments: [], retry: undefined }), 5000);
    assert.deepEqual(severityOf(findings, 'buffering'), ['fail']);
  });

  it('warns when the first byte comes long after the headers', () => {
    const o = healthy();
    o.reads[0] = { at: 3000, text: ': ok\n\n' };
    assert.deepEqual(severityOf(checkStream(o, 5000), 'first-byte'), ['warn']);
  });

  it('warns about heartbeats arriving in bursts', () => {
    const o = healthy({
      reads: [
        { at: 11, text: ': ok\n\n' },
        { at: 2500, text: ':\n\n:\n\n' },
        { at: 4500, text: ':\n\n:\n\n' },
      ],
      comments: [
        { at: 11, text: ' ok', read: 0 },
        { at: 2500, text: '', read: 1 },
        { at: 2500, text: '', read: 1 },
        { at: 4500, text: '', read: 2 },
        { at: 4500, text: '', read: 2 },
      ],
    });
    assert.deepEqual(severityOf(checkStream(o, 5000), 'bursts'), ['warn']);
  });

  it('reports a cut idle stream and advises a heartbeat below the cut', () => {
    const o = healthy({ reads: [{ at: 11, text: ': ok\n\n' }], comments: [{ at: 11, text: ' ok', read: 0 }], endedAt: 2012, endedBy: 'error', error: 'closed mid-body' });
    const f = find(checkStream(o, 2012), 'truncation')[0];
    assert.equal(f?.severity, 'fail');
    assert.match(f?.title ?? '', /cut after 2\.0 s/);
    assert.match(f?.advice ?? '', /below 2\.0 s, e\.g\. ssehub serve --heartbeat 1s/);
  });

  it('measures an idle cut from the last byte, not from the headers, and advises a heartbeat below it', () => {
    // ": ok", one event a second later, then 3 s of silence until the proxy's idle timeout.
    const o = healthy({
      reads: [
        { at: 11, text: ': ok\n\n' },
        { at: 1011, text: 'data: x\n\n' },
      ],
      comments: [{ at: 11, text: ' ok', read: 0 }],
      events: [{ at: 1011, type: 'message', data: 'x', id: undefined, read: 1 }],
      endedAt: 4011,
      endedBy: 'error',
      error: 'closed mid-body',
    });
    const f = find(checkStream(o, 4011), 'truncation')[0];
    assert.match(f?.title ?? '', /cut after 4\.0 s/);
    assert.match(f?.detail ?? '', /idle timeout of about 3\.0 s/);
    assert.match(f?.advice ?? '', /below 3\.0 s, e\.g\. ssehub serve --heartbeat 1s/);
  });

  it('advises half the idle timeout as the report shows it, in milliseconds below 2 s', () => {
    const cutAfter = (silence: number) => find(checkStream(healthy({ reads: [{ at: 11, text: ': ok\n\n' }], comments: [{ at: 11, text: ' ok', read: 0 }], endedAt: 11 + silence, endedBy: 'server' }), 11 + silence), 'truncation')[0]?.advice ?? '';
    assert.match(cutAfter(1999), /below 2\.0 s, e\.g\. ssehub serve --heartbeat 1s/);
    assert.match(cutAfter(1500), /below 1\.5 s, e\.g\. ssehub serve --heartbeat 700ms/);
    assert.match(cutAfter(60_000), /below 60 s, e\.g\. ssehub serve --heartbeat 30s/);
  });

  it('calls a cut with events flowing until it an absolute limit, not an idle timeout', () => {
    const reads = Array.from({ length: 30 }, (_, i) => ({ at: 11 + i * 100, text: 'data: x\n\n' }));
    const o = healthy({ reads, comments: [], events: reads.map((r, i) => ({ at: r.at, type: 'message', data: 'x', id: undefined, read: i })), endedAt: 2950, endedBy: 'server' });
    const f = find(checkStream(o, 2950), 'truncation')[0];
    assert.match(f?.detail ?? '', /absolute time limit/);
    assert.doesNotMatch(f?.advice ?? '', /--heartbeat/);
  });

  it('blames buffering, not an idle timeout, when the headers came only with the end of the stream', () => {
    // A buffering nginx with proxy_read_timeout 5s in front of a server that sent ": ok" and then nothing.
    const o = healthy({ headers: { ...SSE_HEADERS, server: 'nginx/1.22.1' }, headersAt: 5014, reads: [], comments: [], retry: undefined, endedAt: 5021, endedBy: 'error', error: 'closed mid-body' });
    const findings = checkStream(o, 5021);
    assert.deepEqual(find(findings, 'truncation'), []);
    const f = find(findings, 'buffering')[0];
    assert.equal(f?.severity, 'fail');
    assert.match(f?.title ?? '', /held back until the stream was cut, 5\.0 s after the request/);
    assert.match(f?.detail ?? '', /read timeout cut it off about 5\.0 s after the request/);
    assert.match(f?.advice ?? '', /"proxy_buffering off;".*"X-Accel-Buffering: no"/);
    assert.match(f?.advice ?? '', /heartbeat .* below 5\.0 s, e\.g\. ssehub serve --heartbeat 2s/);
    assert.doesNotMatch(JSON.stringify(findings), /0\.0 s/);
  });

  it('blames buffering when the held bytes came out together with the end, and does not call the first byte prompt', () => {
    const o = healthy({ headersAt: 5014, reads: [{ at: 5015, text: ': ok\n\n' }], comments: [{ at: 5015, text: ' ok', read: 0 }], retry: undefined, endedAt: 5021, endedBy: 'server' });
    const findings = checkStream(o, 5021);
    assert.deepEqual(severityOf(findings, 'buffering'), ['fail']);
    assert.deepEqual(find(findings, 'first-byte'), []);
    assert.deepEqual(find(findings, 'truncation'), []);
  });

  it('blames buffering when the headers came at once but no body byte before the cut, and says a silent server looks the same', () => {
    const o = healthy({ reads: [], comments: [], retry: undefined, endedAt: 5010, endedBy: 'error', error: 'closed mid-body' });
    const f = find(checkStream(o, 5010), 'buffering')[0];
    assert.equal(f?.severity, 'fail');
    assert.match(f?.detail ?? '', /no byte of the body before the end, 5\.0 s after the request/);
    assert.match(f?.detail ?? '', /run the doctor against the server directly/);
    assert.match(f?.advice ?? '', /below 5\.0 s, e\.g\. ssehub serve --heartbeat 2s/);
  });

  it('advises no heartbeat when the held response carried heartbeats: the server was not silent', () => {
    const text = ': ok\n\n:\n\n:\n\n';
    const o = healthy({ headersAt: 5014, reads: [{ at: 5015, text }], comments: [0, 1, 2].map((k) => ({ at: 5015, text: k === 0 ? ' ok' : '', read: 0 })), endedAt: 5021, endedBy: 'server' });
    const f = find(checkStream(o, 5021), 'buffering')[0];
    assert.equal(f?.severity, 'fail');
    assert.doesNotMatch(f?.advice ?? '', /--heartbeat/);
  });

  it('reports a stream its server ended at once as a cut in milliseconds, not as buffering', () => {
    const o = healthy({ reads: [{ at: 11, text: ': ok\n\ndata: bye\n\n' }], comments: [{ at: 11, text: ' ok', read: 0 }], endedAt: 12, endedBy: 'server' });
    const findings = checkStream(o, 12);
    assert.deepEqual(find(findings, 'buffering'), []);
    assert.match(find(findings, 'truncation')[0]?.title ?? '', /cut after 12 ms/);
  });

  it('tells an absolute limit from an idle timeout when heartbeats flowed', () => {
    const f = find(checkStream(healthy({ endedBy: 'server', endedAt: 4100 }), 4100), 'truncation')[0];
    assert.match(f?.detail ?? '', /absolute time limit/);
  });

  it('warns about a heartbeat longer than common proxy timeouts', () => {
    const o = healthy({
      reads: [
        { at: 11, text: ': ok\n\n' },
        { at: 45_011, text: ':\n\n' },
        { at: 90_011, text: ':\n\n' },
      ],
      comments: [
        { at: 11, text: ' ok', read: 0 },
        { at: 45_011, text: '', read: 1 },
        { at: 90_011, text: '', read: 2 },
      ],
      endedAt: 95_000,
    });
    const f = find(checkStream(o, 95_000), 'heartbeat')[0];
    assert.equal(f?.severity, 'warn');
    assert.match(f?.detail ?? '', /HAProxy/);
    assert.doesNotMatch(f?.detail ?? '', /Cloudflare/);
  });

  it('counts the longest silence from the request, so a response held back shows as silence', () => {
    const o = healthy({ headersAt: 5014, reads: [], comments: [], endedAt: 5021, endedBy: 'error' });
    assert.equal(heartbeatOf(o, 5021).longestSilence, 5021);
  });

  it('warns when no heartbeat came in a window of 20 s, and only informs after a shorter one', () => {
    const o = healthy({ reads: [{ at: 11, text: ': ok\n\n' }], comments: [{ at: 11, text: ' ok', read: 0 }], endedAt: 21_000 });
    assert.deepEqual(severityOf(checkStream(o, 21_000), 'heartbeat'), ['warn']);
    const short = find(checkStream({ ...o, endedAt: 5000 }, 5000), 'heartbeat')[0];
    assert.equal(short?.severity, 'info');
    assert.match(short?.advice ?? '', /--duration 20s/);
  });

  it('says nothing about a response that is not a stream', () => {
    assert.deepEqual(checkStream(healthy({ status: 500 }), 5000), []);
  });
});

describe('checkProbes', () => {
  const probe = (k: number, receivedAfter: number | undefined, sameRead = 0): Probe => ({
    id: `id-${k}`,
    publishedAt: k * 1000,
    answeredAt: k * 1000 + 5,
    status: 200,
    answer: `id-${k}`,
    receivedAt: receivedAfter === undefined ? undefined : k * 1000 + receivedAfter,
    sameRead,
  });

  it('reports publish-to-receive latency when every probe arrived promptly', () => {
    const findings = checkProbes(healthy(), [probe(1, 3), probe(2, 4), probe(3, 9)]);
    assert.equal(findings[0]?.severity, 'ok');
    assert.match(findings[0]?.title ?? '', /p50 4 ms, max 9 ms/);
  });

  it('fails buffering when probes arrive late in one read', () => {
    const findings = checkProbes(healthy({ headers: { ...SSE_HEADERS, server: 'nginx' } }), [probe(1, 3200, 2), probe(2, 2100, 2), probe(3, 20, 2)]);
    assert.equal(findings[0]?.check, 'buffering');
    assert.equal(findings[0]?.severity, 'fail');
    assert.match(findings[0]?.detail ?? '', /up to 3 arrived in one read/);
    assert.match(findings[0]?.advice ?? '', /proxy_buffering off/);
  });

  it('fails buffering when no probe arrived', () => {
    const findings = checkProbes(healthy(), [probe(1, undefined), probe(2, undefined)]);
    assert.match(findings[0]?.title ?? '', /none of 2 probe updates arrived/);
  });

  it('reports a refused publish with its status', () => {
    const findings = checkProbes(healthy(), [{ ...probe(1, undefined), status: 401, answer: 'invalid token' }]);
    assert.equal(findings[0]?.check, 'publish');
    assert.match(findings[0]?.title ?? '', /HTTP 401: invalid token/);
  });
});

describe('checkResume', () => {
  it('passes when exactly the updates after the ID come back in order', () => {
    assert.equal(checkResume({ sentId: 'a', expected: ['b', 'c'], received: ['b', 'c'], status: 200, error: undefined })[0]?.severity, 'ok');
  });
  it('fails on a loss, a duplicate or nothing replayed', () => {
    assert.match(checkResume({ sentId: 'a', expected: ['b', 'c'], received: ['c'], status: 200, error: undefined })[0]?.title ?? '', /1 missing/);
    assert.match(checkResume({ sentId: 'a', expected: ['b', 'c'], received: ['b', 'b', 'c'], status: 200, error: undefined })[0]?.title ?? '', /out of order or repeated/);
    assert.match(checkResume({ sentId: 'a', expected: ['b'], received: [], status: 200, error: undefined })[0]?.detail ?? '', /Last-Event-ID header/);
  });
  it('is information only when there was nothing to resume from', () => {
    assert.equal(checkResume(undefined)[0]?.severity, 'info');
  });
});
