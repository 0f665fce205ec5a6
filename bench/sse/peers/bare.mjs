// The "bare" peer of the SSE benchmark (bench/sse/peers.ts starts it): the floor for Node, a
// plain node:http fan-out with nothing clever in it.
//
//   GET  /sub   an SSE stream (`:ok`, then every update); with `Last-Event-ID: N` it first gets
//               the updates after N that are still in the 1,000-entry ring buffer
//   POST /pub   body = data; the update gets id ++n, is encoded once into one Buffer and written
//               to every open stream; answered 200 with the id once every stream was written to
//
//   node bench/sse/peers/bare.mjs PORT [HOST]
import { createServer } from 'node:http';

const port = Number(process.argv[2] ?? 0);
const host = process.argv[3] ?? '127.0.0.1';
const HISTORY = 1000;
const HEARTBEAT_MS = 15_000;

/** Open streams. */
const streams = new Set();
/** The last HISTORY encoded updates: update `id` sits at ring[id % HISTORY]. */
const ring = new Array(HISTORY);
let n = 0;

const headers = { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' };

/** The encoded updates after `lastId` that are still in the ring, as one Buffer (or null). */
function missedSince(lastId) {
  if (!Number.isSafeInteger(lastId) || lastId < 0 || lastId >= n) return null;
  const from = Math.max(lastId + 1, n - HISTORY + 1, 1);
  const parts = [];
  for (let id = from; id <= n; id++) parts.push(ring[id % HISTORY]);
  return Buffer.concat(parts);
}

function subscribe(req, res) {
  res.writeHead(200, headers);
  res.write(':ok\n\n');
  const lastEventId = req.headers['last-event-id'];
  if (lastEventId !== undefined && /^\d+$/.test(lastEventId)) {
    const missed = missedSince(Number(lastEventId));
    if (missed !== null) res.write(missed);
  }
  streams.add(res);
  res.on('close', () => streams.delete(res));
  res.on('error', () => streams.delete(res));
}

function publish(req, res) {
  const chunks = [];
  req.on('data', (chunk) => chunks.push(chunk));
  req.on('end', () => {
    const id = ++n;
    const buf = Buffer.from(`id: ${id}\ndata: ${Buffer.concat(chunks).toString()}\n\n`);
    ring[id % HISTORY] = buf;
    for (const stream of streams) stream.write(buf);
    res.writeHead(200, { 'Content-Type': 'text/plain' });
    res.end(String(id));
  });
}

const server = createServer((req, res) => {
  req.on('error', () => {});
  const path = req.url?.split('?')[0];
  if (req.method === 'GET' && path === '/sub') return subscribe(req, res);
  if (req.method === 'POST' && path === '/pub') return publish(req, res);
  if (req.method === 'GET' && path === '/healthz') return res.end('ok');
  res.writeHead(404).end();
});
server.keepAliveTimeout = 3_600_000;
server.headersTimeout = 60_000;
server.requestTimeout = 0;

setInterval(() => {
  for (const stream of streams) stream.write(':\n\n');
}, HEARTBEAT_MS).unref();

server.listen({ port, host, backlog: 4096 }, () => {
  process.stdout.write(`listening ${server.address().port}\n`);
});
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => process.exit(0));
