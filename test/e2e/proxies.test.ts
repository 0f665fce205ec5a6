// The deployment files (deploy/nginx.conf, deploy/haproxy.cfg) in front of a real hub, with the
// real proxies (issue 6): updates pass through unbuffered, an idle stream survives a short proxy
// idle timeout thanks to the heartbeat, Last-Event-ID resume works, and compression enabled on
// the proxy does not touch the stream. Each check that could pass for the wrong reason has a
// control showing that the same proxy does fail it when the protection is taken away.
import assert from 'node:assert/strict';
import { type IncomingHttpHeaders, request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { HUB_PATH, type TestHub, startTestHub } from '../helpers/hub.js';
import { listen } from '../helpers/http.js';
import {
  HAPROXY_BINARY,
  NGINX_BINARY,
  type Proxy,
  proxySkipReason,
  setHaproxyTimeout,
  setNginxDirective,
  startHaproxy,
  startNginx,
} from '../helpers/proxies.js';
import { type SseRecorder, openSse } from '../helpers/sse-client.js';

const T = { timeout: 30_000 };
/** Safety net for one step: an update that does not arrive in this time is taken as held back. */
const STEP_MS = 5_000;
/** Round trips to a direct subscriber within which an update must have come through the proxy (each takes a few ms; a held write, 200 ms). */
const PROMPT_ROUNDS = 10;

/** A user's global gzip, as nginx tutorials recommend it (text/event-stream included). */
const NGINX_GZIP = 'gzip on; gzip_types text/event-stream text/plain application/json; gzip_min_length 0; gzip_proxied any;';

/** HAProxy compression of streams and plain text, added to the deploy file's `defaults`. */
function haproxyCompression(cfg: string): string {
  if (!/^defaults\b.*$/m.test(cfg)) throw new Error('no "defaults" section in the HAProxy configuration');
  return cfg.replace(/^defaults\b.*$/m, (line) => `${line}\n    compression algo gzip\n    compression type text/event-stream text/plain`);
}

/** The proxy's idle/read timeouts set to 3 s. */
const SHORT_IDLE = {
  nginx: (conf: string) => setNginxDirective(conf, 'proxy_read_timeout', '3s'),
  haproxy: (cfg: string) => setHaproxyTimeout(setHaproxyTimeout(cfg, 'client', '3s'), 'server', '3s'),
};

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** `promise`, or a rejection with `message` after `ms` (a safety net, not an assertion on time). */
async function within<V>(promise: Promise<V>, ms: number, message: string): Promise<V> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([promise, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(message)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

/** A GET over node:http, which (unlike fetch) leaves a compressed body compressed. */
function rawGet(url: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** Publishes through the proxy with the hub's admin token. */
async function publishVia(proxy: Proxy, hub: TestHub, fields: Record<string, string>): Promise<void> {
  const res = await fetch(`${proxy.url}${HUB_PATH}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${hub.adminToken}`, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(fields).toString(),
  });
  const body = await res.text();
  assert.equal(res.status, 200, `publish through the proxy answered ${res.status}: ${body}\n${proxy.log()}`);
}

function subscribeUrl(proxy: Proxy, topic: string): string {
  return `${proxy.url}${HUB_PATH}?topic=${encodeURIComponent(topic)}`;
}

const upstreamOf = (hub: TestHub) => new URL(hub.url).host;
const datas = (r: SseRecorder) => r.events.map((e) => e.data);

/**
 * Publishes `count` updates through `proxy`, each only after the subscriber has received the one
 * before: a proxy that holds bytes back fails at the first update it keeps.
 */
async function publishInLockstep(proxy: Proxy, hub: TestHub, sub: SseRecorder, topic: string, count: number): Promise<void> {
  const before = sub.events.length;
  for (let k = 1; k <= count; k++) {
    await publishVia(proxy, hub, { topic, data: `update ${k}` });
    await within(sub.until((r) => r.events.length >= before + k, `update ${k}`), STEP_MS, `update ${k} held back by the proxy (received ${JSON.stringify(datas(sub))})\n${proxy.log()}`);
  }
  assert.deepEqual(datas(sub).slice(before), Array.from({ length: count }, (_, i) => `update ${i + 1}`));
}

interface ProxyKind {
  name: 'nginx' | 'haproxy';
  binary: string;
  start(upstream: string, opts?: { edit?: (text: string) => string; http?: string }): Promise<Proxy>;
  /** The proxy with compression enabled the way a user would, for text/event-stream and text/plain. */
  startCompressing(upstream: string): Promise<Proxy>;
}

const KINDS: ProxyKind[] = [
  {
    name: 'nginx',
    binary: NGINX_BINARY,
    start: (upstream, opts = {}) => startNginx(upstream, opts),
    startCompressing: (upstream) => startNginx(upstream, { http: NGINX_GZIP }),
  },
  {
    name: 'haproxy',
    binary: HAPROXY_BINARY,
    start: (upstream, opts = {}) => startHaproxy(upstream, opts.edit === undefined ? {} : { edit: opts.edit }),
    startCompressing: (upstream) => startHaproxy(upstream, { edit: haproxyCompression }),
  },
];

for (const kind of KINDS) {
  describe(`${kind.name} with deploy/${kind.name === 'nginx' ? 'nginx.conf' : 'haproxy.cfg'} in front of the hub`, { skip: proxySkipReason(kind.binary) }, () => {
    const hubs: TestHub[] = [];
    const proxies: Proxy[] = [];
    const open: SseRecorder[] = [];
    let hub: TestHub;
    let proxy: Proxy;

    const startHub = async (flags: string[]) => {
      const h = await startTestHub(['--anonymous', ...flags]);
      hubs.push(h);
      return h;
    };
    const startProxy = async (start: () => Promise<Proxy>) => {
      const p = await start();
      proxies.push(p);
      return p;
    };
    const subscribe = async (p: Proxy, topic: string, headers: Record<string, string> = {}) => {
      const sub = await openSse(subscribeUrl(p, topic), headers);
      open.push(sub);
      assert.equal(sub.status, 200, `subscribe through ${kind.name} answered ${sub.status}: ${sub.text}\n${p.log()}`);
      return sub;
    };

    before(async () => {
      hub = await startHub([]);
      proxy = await startProxy(() => kind.start(upstreamOf(hub)));
    });

    after(async () => {
      for (const sub of open) sub.close();
      await Promise.allSettled(proxies.map((p) => p.stop()));
      await Promise.allSettled(hubs.map((h) => h.close()));
    });

    it('passes every update on before the next one is published (no buffering)', T, async () => {
      const topic = `https://example.com/${kind.name}/unbuffered`;
      const sub = await subscribe(proxy, topic);
      await publishInLockstep(proxy, hub, sub, topic, 20);
      assert.equal(sub.headers['content-type'], 'text/event-stream; charset=utf-8');
    });

    it('forwards each event at once, not when more data follows (no Nagle / MSG_MORE hold)', T, async () => {
      // A proxy that hands small writes to the kernel as "more is coming" (HAProxy without
      // `option http-no-delay`) delivers every event, but each about 200 ms late: the lockstep
      // check above cannot see that. Here the clock is a direct subscriber: each update must
      // reach the subscriber behind the proxy before PROMPT_ROUNDS further updates have made the
      // full publish-and-receive round trip to a subscriber connected to the hub directly.
      const topic = `https://example.com/${kind.name}/prompt`;
      const clockTopic = `https://example.com/${kind.name}/clock`;
      const sub = await subscribe(proxy, topic);
      const clock = await openSse(`${hub.hubUrl}?topic=${encodeURIComponent(clockTopic)}`);
      open.push(clock);
      for (let k = 1; k <= 5; k++) {
        const res = await hub.publish({ topic, data: `update ${k}` });
        assert.equal(res.status, 200, res.body);
        let rounds = 0;
        while (sub.events.length < k) {
          assert.ok(rounds < PROMPT_ROUNDS, `update ${k} had not come through ${kind.name} after ${PROMPT_ROUNDS} round trips to a direct subscriber: the proxy holds small writes back${kind.name === 'haproxy' ? ' (option http-no-delay missing?)' : ''}\n${proxy.log()}`);
          rounds++;
          const tick = await hub.publish({ topic: clockTopic, data: 'tick' });
          assert.equal(tick.status, 200, tick.body);
          const ticks = clock.events.length + 1;
          await within(clock.until((r) => r.events.length >= ticks, 'tick'), STEP_MS, 'the direct subscriber did not receive its update');
        }
      }
      assert.deepEqual(datas(sub), [1, 2, 3, 4, 5].map((k) => `update ${k}`));
    });

    if (kind.name === 'nginx') {
      it('control: nginx with its defaults (buffering on, HTTP/1.0 upstream) and X-Accel-Buffering ignored holds update 1 back', T, async () => {
        // Shows that the lockstep check above can fail: the same nginx, made to buffer, keeps the
        // first update (and even the response headers) until about 4 KB have come.
        const own = await startHub([]);
        const buffering = await startProxy(() =>
          startNginx(upstreamOf(own), {
            edit: (conf) => setNginxDirective(setNginxDirective(conf, 'proxy_buffering', 'on'), 'proxy_http_version', '1.0'),
            http: 'proxy_ignore_headers X-Accel-Buffering;',
          }),
        );
        const topic = 'https://example.com/nginx/buffered';
        const received: Buffer[] = [];
        const req = request(subscribeUrl(buffering, topic), { headers: { accept: 'text/event-stream' }, agent: false }, (res) => res.on('data', (c: Buffer) => received.push(c)));
        req.on('error', () => {});
        req.end();
        try {
          // The request must have reached the hub before the update, or it would simply not match.
          await within(
            (async () => {
              while (own.hub.streams.size === 0) await sleep(20);
            })(),
            STEP_MS,
            `the subscription never reached the hub\n${buffering.log()}`,
          );
          await publishVia(buffering, own, { topic, data: 'update 1' });
          await sleep(2_000);
          assert.ok(!Buffer.concat(received).toString().includes('update 1'), 'a buffering nginx passed update 1 on at once: the lockstep check cannot tell buffering apart');
        } finally {
          req.destroy();
        }
      });
    }

    it('keeps an idle stream open past a 3 s proxy idle timeout with a 1 s heartbeat, and cuts it without one (control)', T, async () => {
      const beating = await startHub(['--heartbeat', '1s']);
      const silent = await startHub(['--heartbeat', '0']);
      const edit = SHORT_IDLE[kind.name];
      // send_timeout/proxy_send_timeout only run while a write is blocked, but a user tightening
      // timeouts would set them too: they must not cut an idle stream either.
      const http = kind.name === 'nginx' ? 'send_timeout 3s; proxy_send_timeout 3s;' : undefined;
      const [kept, cut] = await Promise.all([
        startProxy(() => kind.start(upstreamOf(beating), { edit, ...(http === undefined ? {} : { http }) })),
        startProxy(() => kind.start(upstreamOf(silent), { edit, ...(http === undefined ? {} : { http }) })),
      ]);
      const topic = `https://example.com/${kind.name}/idle`;
      const idle = sleep(10_000);
      const [stream, control] = await Promise.all([subscribe(kept, topic), subscribe(cut, topic)]);

      // Without heartbeats the 3 s timeout ends the stream: it really applies, so the stream
      // below survives because of the heartbeat, not because the timeout was not in effect.
      const controlCut = await Promise.race([control.done.then(() => true), idle.then(() => false)]);
      assert.ok(controlCut, `without heartbeats ${kind.name} did not cut the stream within 10 s: the 3 s timeout is not in effect\n${cut.log()}`);
      assert.equal(control.events.length, 0);

      await idle;
      assert.equal(stream.ended, false, `the stream through ${kind.name} ended within 10 s despite the heartbeat\n${kept.log()}`);
      assert.equal(stream.events.length, 0, 'no update was published, so none can have arrived');
      // The first comment is sent at open; the rest are heartbeats.
      assert.ok(stream.comments.length > 1, `no heartbeat arrived through ${kind.name}: ${JSON.stringify(stream.comments)}`);

      // The same connection still delivers.
      await publishVia(kept, beating, { topic, data: 'after the silence' });
      await within(stream.until((r) => r.events.length >= 1, 'the update after the silence'), STEP_MS, `the update after 10 s of silence did not arrive\n${kept.log()}`);
      assert.deepEqual(datas(stream), ['after the silence']);
      assert.equal(stream.ended, false);
    });

    it('passes Last-Event-ID on: a client resuming after update 1 gets exactly updates 2 and 3, then live ones', T, async () => {
      const topic = `https://example.com/${kind.name}/resume`;
      const ids = [1, 2, 3, 4].map((i) => `${kind.name}-resume-${i}`);
      for (const id of ids.slice(0, 3)) await publishVia(proxy, hub, { topic, id, data: `data of ${id}` });

      const sub = await subscribe(proxy, topic, { 'last-event-id': ids[0] as string });
      // The hub echoes the ID it resumed from: the header went through the proxy both ways.
      assert.equal(sub.headers['last-event-id'], ids[0]);
      await within(sub.until((r) => r.events.length >= 2, 'the missed updates'), STEP_MS, `the missed updates did not arrive: ${JSON.stringify(datas(sub))}\n${proxy.log()}`);
      await publishVia(proxy, hub, { topic, id: ids[3] as string, data: `data of ${ids[3]}` });
      await within(sub.until((r) => r.events.length >= 3, 'the live update'), STEP_MS, `the live update did not arrive: ${JSON.stringify(datas(sub))}\n${proxy.log()}`);
      assert.deepEqual(
        sub.events.map((e) => e.lastEventId),
        ids.slice(1),
      );
      assert.deepEqual(datas(sub), ids.slice(1).map((id) => `data of ${id}`));
    });

    it('with compression enabled on the proxy, sends the stream uncompressed and unbuffered while other responses are compressed (control)', T, async () => {
      const compressing = await startProxy(() => kind.startCompressing(upstreamOf(hub)));
      const topic = `https://example.com/${kind.name}/compression`;
      const sub = await subscribe(compressing, topic, { 'accept-encoding': 'gzip' });
      assert.equal(sub.headers['content-encoding'], undefined, `${kind.name} compressed the stream`);
      await publishInLockstep(compressing, hub, sub, topic, 5);

      // Control: compression is really on for this proxy, so the stream above escaped it.
      const plain = await rawGet(`${compressing.url}/`, { 'accept-encoding': 'gzip' });
      assert.equal(plain.status, 200);
      assert.equal(plain.headers['content-encoding'], 'gzip', `${kind.name} did not compress a text/plain response: the check above proves nothing\n${compressing.log()}`);
      assert.match(gunzipSync(plain.body).toString(), /^ssehub: subscribe with GET/);
    });

    if (kind.name === 'nginx') {
      it('control: without deploy/nginx.conf\'s `gzip off` a global gzip would compress the stream (nginx ignores no-transform)', T, async () => {
        const gzipping = await startProxy(() => startNginx(upstreamOf(hub), { http: NGINX_GZIP, edit: (conf) => setNginxDirective(conf, 'gzip', 'on') }));
        const sub = await subscribe(gzipping, 'https://example.com/nginx/gzipped', { 'accept-encoding': 'gzip' });
        assert.match(String(sub.headers['cache-control']), /no-transform/);
        assert.equal(sub.headers['content-encoding'], 'gzip');
      });
    } else {
      it('control: HAProxy compresses a stream without `Cache-Control: no-transform`, so the hub\'s header is what protects it', T, async () => {
        const server = await listen((req, res) => {
          if (req.url === '/sse') {
            res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
            res.write(': ok\n\n');
            return;
          }
          res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
        });
        try {
          const compressing = await startProxy(() => startHaproxy(new URL(server.url).host, { edit: haproxyCompression }));
          const sub = await openSse(`${compressing.url}/sse`, { 'accept-encoding': 'gzip' });
          open.push(sub);
          assert.equal(sub.status, 200);
          assert.equal(sub.headers['content-encoding'], 'gzip');
        } finally {
          await server.close();
        }
      });
    }
  });
}
