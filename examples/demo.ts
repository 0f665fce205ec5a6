// `npm start` for now: a small live demo of ssehub/server on node:http (the hub comes with `ssehub serve`).
// Open http://127.0.0.1:8080 in two tabs, publish in one, watch both; or use curl:
//   curl -N http://127.0.0.1:8080/events
//   curl -d 'hello' http://127.0.0.1:8080/publish
import { createServer } from 'node:http';
import { StreamSet, createStream } from '../src/server/index.js';

const port = Number(process.env.PORT ?? 8080);
const host = process.env.HOST ?? '127.0.0.1';
const streams = new StreamSet();
let nextId = 1;

const page = `<!doctype html><meta charset="utf-8"><title>ssehub demo</title>
<style>body{font:15px system-ui;margin:2em;max-width:40em}li{font-family:monospace}</style>
<h1>ssehub/server demo</h1><p>Status: <b id="s">connecting…</b></p>
<form id="f"><input id="t" placeholder="a message" autofocus> <button>publish</button></form><ul id="l"></ul>
<script>
const es = new EventSource('/events'), l = document.getElementById('l'), s = document.getElementById('s');
es.onopen = () => s.textContent = 'open'; es.onerror = () => s.textContent = 'reconnecting…';
es.onmessage = (e) => { const li = document.createElement('li'); li.textContent = '#' + e.lastEventId + ' ' + e.data; l.prepend(li); };
document.getElementById('f').onsubmit = (e) => { e.preventDefault(); fetch('/publish', { method: 'POST', body: document.getElementById('t').value }); };
</script>`;

const server = createServer((req, res) => {
  const path = new URL(req.url ?? '/', 'http://x').pathname;
  if (req.method === 'GET' && path === '/events') {
    streams.add(createStream(req, res));
  } else if (req.method === 'POST' && path === '/publish') {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => {
      body += chunk;
      if (body.length > 64 * 1024) req.destroy();
    });
    req.on('end', () => {
      const id = String(nextId++);
      const delivered = streams.broadcast({ id, data: body });
      res.writeHead(200, { 'content-type': 'text/plain' }).end(`${id} (delivered to ${delivered} streams)\n`);
    });
  } else if (req.method === 'GET' && path === '/') {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(page);
  } else {
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
  }
});

server.listen(port, host, () => {
  console.log(`ssehub/server demo on http://${host}:${port}  (curl -N http://${host}:${port}/events ; curl -d hi http://${host}:${port}/publish)`);
});

for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    server.close();
    void streams.close({ window: 1000 }).then(() => process.exit(0));
  });
}
