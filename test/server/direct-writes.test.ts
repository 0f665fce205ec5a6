// The HTTP/1.1 fast path of the node adapter: a stream writes its (chunk-framed) bytes straight to
// the socket. Checked on the wire, with raw sockets, so that framing mistakes cannot hide behind a
// lenient client.
import assert from 'node:assert/strict';
import type { ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { after, describe, it } from 'node:test';
import { type Stream, createStream } from '../../src/server/index.js';
import { type TestServer, listen, signal } from '../helpers/http.js';

/** Sends raw request bytes and collects everything the server sends until `done(text)` holds or the server closes. */
function raw(url: string, request: string, done: (text: string) => boolean): Promise<string> {
  const { port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), '127.0.0.1', () => socket.write(request));
    let text = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`timed out; got so far:\n${JSON.stringify(text)}`));
    }, 5000);
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString('latin1');
      if (done(text)) {
        clearTimeout(timer);
        socket.destroy();
        resolve(text);
      }
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(text);
    });
    socket.on('error', reject);
  });
}

describe('node adapter: direct socket writes', () => {
  let server: TestServer;
  const shared = Buffer.from('id: 1\ndata: shared\n\n');
  const responses: ServerResponse[] = [];
  after(() => server.close());

  it('frames every write as one chunk, ends with the last chunk, and keeps the connection for the next request', async () => {
    server = await listen((req, res) => {
      if (req.url === '/after') {
        res.end('next');
        return;
      }
      responses.push(res);
      const stream: Stream = createStream(req, res, { heartbeat: false, retry: 1000 });
      stream.write(shared);
      stream.send({ id: '2', data: 'a\nb' });
      stream.close('server-closed', { retry: false });
    });
    const text = await raw(server.url, 'GET /s HTTP/1.1\r\nHost: x\r\n\r\nGET /after HTTP/1.1\r\nHost: x\r\n\r\n', (t) => t.endsWith('next'));
    const [head, ...rest] = text.split('\r\n\r\n');
    assert.match(head ?? '', /^HTTP\/1\.1 200 OK/);
    assert.match(head ?? '', /transfer-encoding: chunked/i);
    const body = rest.join('\r\n\r\n');
    const expected = [': ok\n\nretry: 1000\n\n', 'id: 1\ndata: shared\n\n', 'id: 2\ndata: a\ndata: b\n\n'];
    const chunked = `${expected.map((c) => `${Buffer.byteLength(c).toString(16)}\r\n${c}\r\n`).join('')}0\r\n\r\n`;
    assert.ok(body.startsWith(chunked), `body:\n${JSON.stringify(body)}`);
    assert.match(body.slice(chunked.length), /^HTTP\/1\.1 200 OK[\s\S]*next$/, 'the keep-alive connection served the next request');
    assert.equal(responses[0]?.writableLength, 0, 'nothing went through res.write');
  });

  it('sends unframed bytes to an HTTP/1.0 client, which reads until the connection closes', async () => {
    const text = await raw(server.url, 'GET /s HTTP/1.0\r\n\r\n', () => false);
    const [head, body] = text.split('\r\n\r\n');
    assert.doesNotMatch(head ?? '', /transfer-encoding/i);
    assert.equal(text.slice((head ?? '').length + 4), ': ok\n\nretry: 1000\n\nid: 1\ndata: shared\n\nid: 2\ndata: a\ndata: b\n\n');
    assert.ok(body !== undefined);
  });

  it('goes through res.write when something wrapped it (compression middleware does)', async () => {
    const wrapped = signal<number>();
    const s = await listen((req, res) => {
      let calls = 0;
      const write = res.write.bind(res) as (chunk: Uint8Array) => boolean;
      res.write = ((chunk: Uint8Array) => {
        calls++;
        return write(chunk);
      }) as typeof res.write;
      const stream = createStream(req, res, { heartbeat: false, retry: false });
      stream.send({ data: 'x' });
      stream.close('server-closed', { retry: false });
      res.once('finish', () => wrapped.resolve(calls));
    });
    const text = await raw(s.url, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n', (t) => t.endsWith('\r\n0\r\n\r\n'));
    await s.close();
    assert.ok((await wrapped.promise) >= 2, 'the wrapper saw the first comment and the event');
    assert.match(text, /data: x\n\n\r\n0\r\n\r\n$/);
  });
});
