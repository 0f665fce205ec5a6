// An HTTP/1.1 stream's connection leaves node:http once its head is out (as an upgrade's does), so
// that an idle stream costs its socket and little else. Everything node:http did for the stream
// must still happen: the client's close and half-close end it, a graceful end finishes the body and
// hands the connection back for the next request, closeAllConnections() reaches it, and a handler
// that listens to the request or the response keeps node:http's path. Over plain TCP and TLS.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { type AddressInfo, type Socket, connect as netConnect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import { type CloseReason, type Stream, createStream } from '../../src/server/index.js';
import { signal } from '../helpers/http.js';
import { type TestCertificate, makeCertificate } from '../helpers/tls.js';

const tick = () => new Promise((resolve) => setImmediate(resolve));

interface Opened {
  req: IncomingMessage;
  res: ServerResponse;
  stream: Stream;
  closed: Promise<CloseReason>;
}

/** A raw client connection: everything received so far as text, and a way to wait for more. */
class RawClient {
  text = '';
  closed: Promise<void>;
  #waiters: (() => void)[] = [];

  constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.text += chunk.toString('latin1');
      for (const wake of this.#waiters.splice(0)) wake();
    });
    socket.on('error', () => {});
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
  }

  /** Resolves once the text received satisfies `check` (rejects after 5 s with what came). */
  async until(check: (text: string) => boolean): Promise<void> {
    const deadline = Date.now() + 5000;
    while (!check(this.text)) {
      if (Date.now() > deadline) throw new Error(`timed out; received so far:\n${JSON.stringify(this.text)}`);
      await new Promise<void>((resolve) => {
        this.#waiters.push(resolve);
        setTimeout(resolve, 100);
      });
    }
  }
}

for (const tls of [false, true]) {
  describe(`detached streams over ${tls ? 'TLS' : 'plain TCP'}`, () => {
    let certificate: TestCertificate | undefined;
    let server: Server;
    let port: number;
    let onRequest: (req: IncomingMessage, res: ServerResponse) => void;
    const clients: Socket[] = [];

    before(async () => {
      const handler = (req: IncomingMessage, res: ServerResponse) => onRequest(req, res);
      if (tls) {
        certificate = makeCertificate();
        server = createHttpsServer({ cert: certificate.cert, key: certificate.key }, handler);
      } else server = createServer(handler);
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      port = (server.address() as AddressInfo).port;
    });
    after(async () => {
      for (const c of clients) c.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      if (certificate !== undefined) rmSync(certificate.dir, { recursive: true, force: true });
    });

    /** Opens a connection, sends `GET path`, and resolves with the client and the server's side once the preamble arrived. */
    async function open(options: { headers?: string; setup?: (opened: Opened) => void } = {}): Promise<{ client: RawClient; opened: Opened }> {
      const got = signal<Opened>();
      onRequest = (req, res) => {
        if (req.url === '/after') {
          res.end('next');
          return;
        }
        const stream = createStream(req, res, { heartbeat: false, retry: false });
        const closed = new Promise<CloseReason>((resolve) => stream.once('close', resolve));
        const opened = { req, res, stream, closed };
        options.setup?.(opened);
        got.resolve(opened);
      };
      const socket = tls ? tlsConnect({ port, host: '127.0.0.1', ca: certificate?.cert, servername: 'localhost' }) : netConnect(port, '127.0.0.1');
      clients.push(socket);
      const client = new RawClient(socket);
      socket.write(`GET /s HTTP/1.1\r\nHost: x\r\n${options.headers ?? ''}\r\n`);
      const opened = await got.promise;
      await client.until((t) => t.includes(': ok\n\n'));
      await tick();
      return { client, opened };
    }

    it('lets go of the request, the response and the parser once the head is out, and keeps delivering', async () => {
      const { client, opened } = await open();
      assert.equal(opened.res.socket, null, 'the response no longer holds the socket');
      assert.equal((opened.req.socket as Socket & { parser?: unknown }).parser, null, 'the connection has no HTTP parser any more');
      assert.equal(opened.stream.send({ id: '1', data: 'after' }), true);
      await client.until((t) => t.includes('id: 1\ndata: after\n\n'));
      client.socket.destroy();
    });

    it('ends with client-closed when the client goes away', async () => {
      const { client, opened } = await open();
      client.socket.destroy();
      assert.equal(await opened.closed, 'client-closed');
    });

    it('ends with client-closed when the client half-closes its side, as node:http would end it', async () => {
      const { client, opened } = await open();
      client.socket.end();
      assert.equal(await opened.closed, 'client-closed');
      await client.closed;
    });

    it('ends the body on a graceful close and serves the next request on the same connection', async () => {
      const { client, opened } = await open();
      opened.stream.send({ id: '2', data: 'last' });
      opened.stream.close('server-closed', { retry: false });
      assert.equal(await opened.closed, 'server-closed');
      await client.until((t) => t.endsWith('\r\n0\r\n\r\n'));
      client.socket.write('GET /after HTTP/1.1\r\nHost: x\r\n\r\n');
      await client.until((t) => t.endsWith('next'));
      assert.match(client.text, /id: 2\ndata: last\n\n\r\n0\r\n\r\nHTTP\/1\.1 200 OK[\s\S]*next$/);
      client.socket.destroy();
    });

    it('closes the connection after the body when the request asked for it (Connection: close)', async () => {
      const { client, opened } = await open({ headers: 'Connection: close\r\n' });
      opened.stream.close('server-closed', { retry: false });
      await client.closed;
      assert.ok(client.text.endsWith('\r\n0\r\n\r\n'), JSON.stringify(client.text));
      assert.equal(await opened.closed, 'server-closed');
    });

    it('is closed by server.closeAllConnections(), and left open by server.close()', async () => {
      const { opened } = await open();
      const other = await open();
      // server.close() stops accepting and closes idle connections only: a stream is not idle.
      const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
      await tick();
      assert.equal(opened.stream.open, true);
      server.closeAllConnections();
      assert.equal(await opened.closed, 'client-closed');
      assert.equal(await other.opened.closed, 'client-closed');
      await stopped;
      await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    });

    it('stays with node:http when the handler listens to the request, which then sees the close', async () => {
      const requestClosed = signal();
      const { client, opened } = await open({ setup: ({ req }) => req.on('close', () => requestClosed.resolve()) });
      assert.notEqual(opened.res.socket, null, 'the response still holds the socket');
      client.socket.destroy();
      await requestClosed.promise;
      assert.equal(await opened.closed, 'client-closed');
    });
  });
}
