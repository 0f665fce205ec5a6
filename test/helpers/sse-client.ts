// A test client that records exactly what arrives on an SSE response: raw chunks in arrival
// order, and what our parser makes of them. Real sockets, no mocks.
import { type IncomingHttpHeaders, type IncomingMessage, request as httpRequest } from 'node:http';
import { type ClientHttp2Session, type OutgoingHttpHeaders, connect as http2Connect } from 'node:http2';
import { EventStreamParser, type ParsedEvent } from '../../src/protocol/index.js';

export class SseRecorder {
  status = 0;
  headers: IncomingHttpHeaders = {};
  chunks: Buffer[] = [];
  events: ParsedEvent[] = [];
  comments: string[] = [];
  retries: number[] = [];
  ended = false;
  readonly done: Promise<void>;
  #resolveDone!: () => void;
  #waiters: { check: () => boolean; resolve: () => void; reject: (e: Error) => void; what: string }[] = [];
  #parser = new EventStreamParser({
    onEvent: (e) => this.events.push(e),
    onComment: (c) => this.comments.push(c),
    onRetry: (r) => this.retries.push(r),
  });
  /** Closes the underlying connection. */
  close: () => void = () => {};

  constructor() {
    this.done = new Promise((resolve) => (this.#resolveDone = resolve));
  }

  /** The whole body so far, as text. */
  get text(): string {
    return Buffer.concat(this.chunks).toString('utf8');
  }

  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.#parser.feed(chunk);
    this.#check();
  }

  finish(): void {
    if (this.ended) return;
    this.ended = true;
    this.#parser.end();
    this.#check();
    for (const w of this.#waiters.splice(0)) w.reject(new Error(`stream ended before: ${w.what}`));
    this.#resolveDone();
  }

  /** Resolves when `check` holds (checked after every chunk); rejects if the stream ends first. */
  until(check: (r: this) => boolean, what = 'condition'): Promise<void> {
    if (check(this)) return Promise.resolve();
    if (this.ended) return Promise.reject(new Error(`stream already ended before: ${what}`));
    return new Promise((resolve, reject) => this.#waiters.push({ check: () => check(this), resolve, reject, what }));
  }

  /** Resolves once `n` events have been parsed. */
  events_(n: number): Promise<void> {
    return this.until((r) => r.events.length >= n, `${n} events`);
  }

  #check(): void {
    this.#waiters = this.#waiters.filter((w) => {
      if (!w.check()) return true;
      w.resolve();
      return false;
    });
  }
}

/** Feeds an HTTP/1.1 response (node:http or node:https) into a recorder. */
export function recordResponse(res: IncomingMessage, recorder = new SseRecorder()): SseRecorder {
  recorder.status = res.statusCode ?? 0;
  recorder.headers = res.headers;
  recorder.close = () => res.destroy();
  res.on('data', (chunk: Buffer) => recorder.push(chunk));
  res.on('end', () => recorder.finish());
  res.on('close', () => recorder.finish());
  res.on('error', () => recorder.finish());
  return recorder;
}

/** Opens an SSE request over HTTP/1.1; resolves once the response headers have arrived. */
export function openSse(url: string, headers: Record<string, string> = {}): Promise<SseRecorder> {
  const recorder = new SseRecorder();
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { headers: { accept: 'text/event-stream', ...headers }, agent: false }, (res) => resolve(recordResponse(res, recorder)));
    req.on('error', reject);
    req.end();
  });
}

/** Opens an SSE request over cleartext HTTP/2 on a session of its own (closed with the stream). */
export async function openSseH2(origin: string, path: string, headers: Record<string, string> = {}): Promise<SseRecorder> {
  const session = http2Connect(origin);
  const failed = new Promise<never>((_, reject) => session.once('error', reject));
  const recorder = await Promise.race([h2Sse(session, path, headers), failed]);
  void recorder.done.then(() => session.close());
  recorder.close = () => session.destroy();
  return recorder;
}

/** Opens an SSE stream on an HTTP/2 session; resolves once its response headers arrived. */
export function h2Sse(session: ClientHttp2Session, path: string, headers: OutgoingHttpHeaders = {}): Promise<SseRecorder> {
  const recorder = new SseRecorder();
  return new Promise((resolve, reject) => {
    const stream = session.request({ ':path': path, accept: 'text/event-stream', ...headers });
    recorder.close = () => stream.close();
    stream.on('response', (h) => {
      recorder.status = Number(h[':status']);
      recorder.headers = h as IncomingHttpHeaders;
      resolve(recorder);
    });
    stream.on('data', (chunk: Buffer) => recorder.push(chunk));
    stream.on('end', () => recorder.finish());
    stream.on('close', () => {
      recorder.finish();
      reject(new Error(`HTTP/2 stream closed before its response headers (RST code ${stream.rstCode})`));
    });
    stream.on('error', () => recorder.finish());
  });
}
