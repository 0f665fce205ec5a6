/**
 * One observed SSE connection, as a browser would open it: `Accept: text/event-stream`, the
 * `Accept-Encoding` a browser sends (so a compressing proxy shows itself), HTTP/2 when the server
 * offers it by ALPN. Records when each byte arrived; decisions about what that means are in checks.ts.
 */
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { type ClientHttp2Session, connect as http2Connect } from 'node:http2';
import { request as httpsRequest } from 'node:https';
import { type TLSSocket, connect as tlsConnect } from 'node:tls';
import { performance } from 'node:perf_hooks';
import type { Readable } from 'node:stream';
import { createBrotliDecompress, createGunzip, createInflate, constants as zlib } from 'node:zlib';
import { EventStreamParser } from '../protocol/index.js';

/** An event as the doctor saw it, with the time it was parsed (ms since the request started). */
export interface SeenEvent {
  at: number;
  type: string;
  data: string;
  /** The event's own `id:` field, when it had one. */
  id: string | undefined;
  /** Index in `reads` of the read that completed it (events of one read came together). */
  read: number;
}

/** Everything recorded about one connection. Times are milliseconds since the request was sent. */
export interface Observation {
  url: string;
  /** `'1.1'` or `'2'`, once known. */
  httpVersion: string | undefined;
  /** The TLS ALPN protocol, for https. */
  alpn: string | undefined;
  status: number | undefined;
  /** When the TCP (and TLS) connection was established. */
  connectedAt: number | undefined;
  /** Response headers, names in lower case, repeated ones joined with `, `. */
  headers: Record<string, string>;
  headersAt: number | undefined;
  /** Every read of the (decompressed) body: when, how many bytes, and what it held. */
  reads: { at: number; text: string }[];
  events: SeenEvent[];
  /** Comment lines, with the index in `reads` of the read that held them. */
  comments: { at: number; text: string; read: number }[];
  retry: number | undefined;
  /** The start of a body that is not an event stream (an error page), for the report. */
  bodyPreview: string;
  endedAt: number | undefined;
  /** Who ended it: the other side (`server`, which includes every proxy in between), a network `error`, or the doctor itself. */
  endedBy: 'server' | 'error' | 'doctor' | undefined;
  error: string | undefined;
}

/** How to connect. */
export interface ConnectOptions {
  headers?: Record<string, string>;
  lastEventId?: string;
  /** Accept any TLS certificate (self-signed test set-ups). */
  insecure?: boolean;
  /** Extra trusted CA certificates (PEM). */
  ca?: string;
}

const PREVIEW_BYTES = 512;

/** A connection being observed. */
export class ObservedStream {
  readonly observation: Observation;
  /** Resolves once response headers arrived (or the connection failed). */
  readonly headers: Promise<void>;
  /** Resolves once the connection ended, for whatever reason. */
  readonly ended: Promise<void>;
  #start = performance.now();
  #close: () => void = () => {};
  #onHeaders!: () => void;
  #onEnded!: () => void;
  #listeners = new Set<() => void>();

  constructor(url: URL, options: ConnectOptions = {}) {
    this.observation = {
      url: url.href,
      httpVersion: undefined,
      alpn: undefined,
      status: undefined,
      connectedAt: undefined,
      headers: {},
      headersAt: undefined,
      reads: [],
      events: [],
      comments: [],
      retry: undefined,
      bodyPreview: '',
      endedAt: undefined,
      endedBy: undefined,
      error: undefined,
    };
    this.headers = new Promise((resolve) => (this.#onHeaders = resolve));
    this.ended = new Promise((resolve) => (this.#onEnded = resolve));
    void this.#open(url, options).catch((error: unknown) => this.#end('error', error));
  }

  /** Milliseconds since the request was sent. */
  now(): number {
    return performance.now() - this.#start;
  }

  /** Closes the connection (recorded as ended by the doctor unless it had already ended). */
  close(): void {
    this.#end('doctor');
    this.#close();
  }

  /** Resolves `true` once `check` holds (re-checked on every read), `false` after `ms` or when the stream ends first. */
  waitFor(check: () => boolean, ms: number): Promise<boolean> {
    if (check()) return Promise.resolve(true);
    if (this.observation.endedAt !== undefined) return Promise.resolve(false);
    return new Promise((resolve) => {
      const done = (result: boolean) => {
        clearTimeout(timer);
        this.#listeners.delete(listener);
        resolve(result);
      };
      const listener = () => {
        if (check()) done(true);
        else if (this.observation.endedAt !== undefined) done(false);
      };
      const timer = setTimeout(() => done(check()), ms);
      this.#listeners.add(listener);
    });
  }

  #notify(): void {
    for (const listener of [...this.#listeners]) listener();
  }

  #end(by: 'server' | 'error' | 'doctor', error?: unknown): void {
    const o = this.observation;
    if (o.endedAt !== undefined) return;
    o.endedAt = this.now();
    o.endedBy = by;
    if (error !== undefined) {
      const code = (error as NodeJS.ErrnoException).code;
      const message = error instanceof Error ? error.message : String(error);
      o.error = code === undefined || message.includes(code) ? message : `${code}: ${message}`;
    }
    this.#onHeaders();
    this.#onEnded();
    this.#notify();
  }

  #requestHeaders(options: ConnectOptions): Record<string, string> {
    const headers: Record<string, string> = {
      accept: 'text/event-stream',
      'accept-encoding': 'gzip, deflate, br',
      'cache-control': 'no-cache',
      'user-agent': 'ssehub-doctor',
      ...options.headers,
    };
    if (options.lastEventId !== undefined) headers['last-event-id'] = options.lastEventId;
    return headers;
  }

  async #open(url: URL, options: ConnectOptions): Promise<void> {
    const headers = this.#requestHeaders(options);
    const tls = { rejectUnauthorized: options.insecure !== true, ...(options.ca !== undefined ? { ca: options.ca } : {}) };
    if (url.protocol === 'http:') {
      this.#http1(httpRequest(url, { headers, agent: false }));
      return;
    }
    // Ask for h2 like a browser; a server that only speaks HTTP/1.1 over TLS picks that.
    const socket = await new Promise<TLSSocket>((resolve, reject) => {
      const s = tlsConnect({ host: url.hostname.replace(/^\[|\]$/g, ''), port: Number(url.port || 443), servername: /^[\d.]+$|:/.test(url.hostname) ? undefined : url.hostname, ALPNProtocols: ['h2', 'http/1.1'], ...tls });
      s.once('secureConnect', () => {
        this.observation.connectedAt = this.now();
        resolve(s);
      });
      s.once('error', reject);
      this.#close = () => s.destroy();
    });
    this.observation.alpn = socket.alpnProtocol || undefined;
    if (socket.alpnProtocol === 'h2') {
      this.#http2(url, headers, socket);
      return;
    }
    this.#http1(httpsRequest(url, { headers, agent: false, createConnection: () => socket, ...tls }));
  }

  #http1(req: ReturnType<typeof httpRequest>): void {
    this.#close = () => req.destroy();
    req.once('error', (error) => this.#end('error', error));
    req.once('socket', (socket) => {
      if (!socket.connecting) this.observation.connectedAt ??= this.now();
      else socket.once('connect', () => (this.observation.connectedAt ??= this.now()));
    });
    req.once('response', (res) => {
      this.observation.httpVersion = res.httpVersion;
      this.#gotHeaders(res.statusCode ?? 0, res.headers);
      res.once('error', (error) => this.#end('error', error));
      // 'aborted' (Node 20) or an error: the connection broke mid-body rather than ending cleanly.
      res.once('aborted', () => this.#end('error', new Error('the connection closed mid-body, without the end of the response')));
      this.#body(res);
    });
    req.end();
  }

  #http2(url: URL, headers: Record<string, string>, socket: TLSSocket): void {
    const session: ClientHttp2Session = http2Connect(url, { createConnection: () => socket });
    session.on('error', (error) => this.#end('error', error));
    const req = session.request({ ':method': 'GET', ':path': `${url.pathname}${url.search}`, ...headers });
    this.#close = () => {
      req.close();
      session.destroy();
    };
    req.once('error', (error) => this.#end('error', error));
    req.once('response', (h) => {
      this.observation.httpVersion = '2';
      const plain: IncomingHttpHeaders = {};
      for (const [name, value] of Object.entries(h)) if (!name.startsWith(':')) plain[name] = value as string | string[];
      this.#gotHeaders(Number(h[':status']), plain);
      this.#body(req);
    });
    req.once('close', () => {
      if (req.rstCode !== undefined && req.rstCode !== 0 && this.observation.endedAt === undefined) this.#end('error', new Error(`stream reset by the server (HTTP/2 error code ${req.rstCode})`));
      session.close();
    });
  }

  #gotHeaders(status: number, headers: IncomingHttpHeaders): void {
    const o = this.observation;
    o.status = status;
    o.headersAt = this.now();
    for (const [name, value] of Object.entries(headers)) if (value !== undefined) o.headers[name.toLowerCase()] = Array.isArray(value) ? value.join(', ') : value;
    this.#onHeaders();
    this.#notify();
  }

  #body(res: Readable): void {
    const o = this.observation;
    const isStream = (o.headers['content-type'] ?? '').toLowerCase().startsWith('text/event-stream');
    const parser = new EventStreamParser({
      onEvent: (event, hasId) => o.events.push({ at: this.now(), type: event.type, data: event.data, id: hasId ? event.lastEventId : undefined, read: o.reads.length - 1 }),
      onComment: (text) => o.comments.push({ at: this.now(), text, read: o.reads.length - 1 }),
      onRetry: (ms) => (o.retry = ms),
    });
    const decoder = new TextDecoder();
    let body: Readable = res;
    const encoding = (o.headers['content-encoding'] ?? '').trim().toLowerCase();
    // Decompressed as it arrives (flushing whatever is complete), so read times stay what the network gave.
    const flush = { flush: zlib.Z_SYNC_FLUSH, finishFlush: zlib.Z_SYNC_FLUSH };
    if (encoding === 'gzip' || encoding === 'x-gzip') body = res.pipe(createGunzip(flush));
    else if (encoding === 'deflate') body = res.pipe(createInflate(flush));
    else if (encoding === 'br') body = res.pipe(createBrotliDecompress());
    if (body !== res) body.once('error', (error) => this.#end('error', error));
    body.on('data', (chunk: Buffer) => {
      const text = decoder.decode(chunk, { stream: true });
      o.reads.push({ at: this.now(), text });
      if (o.bodyPreview.length < PREVIEW_BYTES) o.bodyPreview = (o.bodyPreview + text).slice(0, PREVIEW_BYTES);
      if (isStream) parser.feed(chunk);
      this.#notify();
    });
    body.once('end', () => this.#end('server'));
  }
}
