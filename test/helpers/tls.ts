// Throw-away TLS material and small HTTPS / HTTP/2 clients for the hub's TLS tests. The certificate
// is self-signed and made by the openssl CLI (scripts/ci-setup.sh installs it); clients trust it by
// passing it as their only CA, so nothing disables certificate checks.
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync } from 'node:fs';
import { type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http';
import { type ClientHttp2Session, connect as http2Connect } from 'node:http2';
import { type RequestOptions, request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ConnectionOptions, TLSSocket } from 'node:tls';
import { type SseRecorder, h2Sse, recordResponse } from './sse-client.js';
export { h2Sse };

export interface TestCertificate {
  /** The temporary directory holding both files (the caller removes it). */
  dir: string;
  /** PEM certificate. */
  cert: string;
  /** PEM private key. */
  key: string;
  certPath: string;
  keyPath: string;
}

/** A self-signed EC P-256 certificate for localhost and 127.0.0.1, valid for two days, in a fresh temp dir. */
export function makeCertificate(): TestCertificate {
  const dir = mkdtempSync(join(tmpdir(), 'ssehub-tls-'));
  const certPath = join(dir, 'cert.pem');
  const keyPath = join(dir, 'key.pem');
  try {
    execFileSync(
      'openssl',
      ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', keyPath, '-out', certPath, '-days', '2', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
  } catch (error) {
    const stderr = (error as { stderr?: Buffer }).stderr?.toString() ?? '';
    throw new Error(`openssl could not make a test certificate (scripts/ci-setup.sh installs openssl): ${(error as Error).message} ${stderr}`, { cause: error });
  }
  return { dir, cert: readFileSync(certPath, 'utf8'), key: readFileSync(keyPath, 'utf8'), certPath, keyPath };
}

/** A complete response. */
export interface TlsResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** Opens an HTTP/2 session trusting `ca`; resolves once TLS (and ALPN) is done. */
export async function h2Session(origin: string, ca: string): Promise<ClientHttp2Session> {
  const session = http2Connect(origin, { ca });
  // A later error (the hub closing the connection) must not become an uncaught exception.
  session.on('error', () => {});
  await Promise.race([
    once(session, 'connect'),
    once(session, 'error').then(([error]) => {
      throw error as Error;
    }),
  ]);
  return session;
}

/** One request on an HTTP/2 session; resolves with the whole response. */
export function h2Request(session: ClientHttp2Session, headers: OutgoingHttpHeaders, body?: string | Buffer): Promise<TlsResponse> {
  return new Promise((resolve, reject) => {
    const stream = session.request(headers, { endStream: body === undefined });
    let status = 0;
    let responseHeaders: IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    stream.on('response', (h) => {
      status = Number(h[':status']);
      responseHeaders = h as IncomingHttpHeaders;
    });
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => resolve({ status, headers: responseHeaders, body: Buffer.concat(chunks).toString('utf8') }));
    // A stream the server reset after answering (a refused body still in flight) still has its answer.
    stream.on('close', () => (status !== 0 ? resolve({ status, headers: responseHeaders, body: Buffer.concat(chunks).toString('utf8') }) : reject(new Error(`HTTP/2 stream closed without a response (RST code ${stream.rstCode})`))));
    stream.on('error', (error) => (status === 0 ? reject(error) : undefined));
    if (body !== undefined) stream.end(body);
  });
}

/** Publishes a form over an HTTP/2 session. */
export function h2Publish(session: ClientHttp2Session, path: string, form: Record<string, string>, token: string): Promise<TlsResponse> {
  const body = new URLSearchParams(form).toString();
  return h2Request(session, { ':method': 'POST', ':path': path, authorization: `Bearer ${token}`, 'content-type': 'application/x-www-form-urlencoded', 'content-length': Buffer.byteLength(body) }, body);
}


/** Options of a fresh TLS connection trusting `ca` whose ALPN offers only HTTP/1.1 (node:https passes ALPNProtocols on to tls.connect). */
function http1Only(ca: string, options: RequestOptions): RequestOptions {
  const tls: Pick<ConnectionOptions, 'ALPNProtocols'> = { ALPNProtocols: ['http/1.1'] };
  return { ...options, ...tls, ca, agent: false };
}

/** One HTTP/1.1-over-TLS request (ALPN offers only http/1.1), on a fresh connection trusting `ca`. */
export function https1Request(url: string, ca: string, options: { method?: string; headers?: OutgoingHttpHeaders; body?: string } = {}): Promise<TlsResponse & { alpnProtocol: string | false | null; httpVersion: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, http1Only(ca, { method: options.method ?? 'GET', headers: options.headers }), (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(chunks).toString('utf8'),
          alpnProtocol: (res.socket as TLSSocket).alpnProtocol,
          httpVersion: res.httpVersion,
        }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

/** Publishes a form over HTTP/1.1 with TLS. */
export function https1Publish(hubUrl: string, ca: string, form: Record<string, string>, token: string): Promise<TlsResponse & { alpnProtocol: string | false | null; httpVersion: string }> {
  const body = new URLSearchParams(form).toString();
  return https1Request(hubUrl, ca, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/x-www-form-urlencoded', 'content-length': Buffer.byteLength(body) }, body });
}

/** Opens an SSE stream over HTTP/1.1 with TLS; resolves once the response headers arrived. */
export function https1Sse(url: string, ca: string, headers: OutgoingHttpHeaders = {}): Promise<SseRecorder> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, http1Only(ca, { headers: { accept: 'text/event-stream', ...headers } }), (res) => resolve(recordResponse(res)));
    req.on('error', reject);
    req.end();
  });
}
