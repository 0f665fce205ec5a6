// The better-sse peer of the SSE benchmark (bench/sse/peers.ts starts it): the npm package
// `better-sse` used the way its documentation shows, on a node:http server.
//
//   GET  /sub   createSession (keep-alive comments every 15 s); with `Last-Event-ID: N` the
//               updates after N still in the 1,000-entry ring buffer are sent first (one batch),
//               then the session is registered on the channel
//   POST /pub   body = data; id = ++n, pushed to the ring, channel.broadcast(data, 'message',
//               { eventId: id }); answered 200 with the id
//
// The data is a string sent as it is (better-sse's default serializer is JSON.stringify, which
// would wrap it in quotes); its default sanitizer stays.
//
//   node bench/sse/peers/better-sse.mjs PORT [HOST]
import { createServer } from 'node:http';
import { createChannel, createEventBuffer, createSession } from 'better-sse';

const port = Number(process.argv[2] ?? 0);
const host = process.argv[3] ?? '127.0.0.1';
const HISTORY = 1000;
const HEARTBEAT_MS = 15_000;

const serializer = (data) => String(data);
const channel = createChannel();
/** The data of the last HISTORY updates: update `id` sits at ring[id % HISTORY]. */
const ring = new Array(HISTORY);
let n = 0;

async function subscribe(req, res) {
  const session = await createSession(req, res, { keepAlive: HEARTBEAT_MS, serializer });
  const lastId = session.lastId;
  if (/^\d+$/.test(lastId) && Number(lastId) < n) {
    const from = Math.max(Number(lastId) + 1, n - HISTORY + 1, 1);
    const missed = createEventBuffer({ serializer });
    for (let id = from; id <= n; id++) missed.push(ring[id % HISTORY], 'message', String(id));
    // With an EventBuffer (not a callback) batch() writes synchronously: nothing published
    // between this write and register() below can be missed.
    void session.batch(missed);
  }
  if (session.isConnected) channel.register(session);
}

function publish(req, res) {
  const chunks = [];
  req.on('data', (chunk) => chunks.push(chunk));
  req.on('end', () => {
    const data = Buffer.concat(chunks).toString();
    const id = ++n;
    ring[id % HISTORY] = data;
    channel.broadcast(data, 'message', { eventId: String(id) });
    res.writeHead(200, { 'Content-Type': 'text/plain' });
    res.end(String(id));
  });
}

const server = createServer((req, res) => {
  req.on('error', () => {});
  res.on('error', () => {});
  const path = req.url?.split('?')[0];
  if (req.method === 'GET' && path === '/sub') {
    subscribe(req, res).catch(() => res.destroy());
    return;
  }
  if (req.method === 'POST' && path === '/pub') return publish(req, res);
  if (req.method === 'GET' && path === '/healthz') return res.end('ok');
  res.writeHead(404).end();
});
server.keepAliveTimeout = 3_600_000;
server.headersTimeout = 60_000;
server.requestTimeout = 0;

server.listen({ port, host, backlog: 4096 }, () => {
  process.stdout.write(`listening ${server.address().port}\n`);
});
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => process.exit(0));
