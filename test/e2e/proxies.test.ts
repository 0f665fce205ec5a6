// The deployment files (deploy/nginx.conf, deploy/haproxy.cfg) in front of a real hub, with the
// real proxies (issue 6): updates pass through unbuffered, an idle stream survives a short proxy
// idle timeout thanks to the heartbeat, Last-Event-ID resume works, and compression enabled on
// the proxy does not touch the stream; with two hubs behind it, one of them draining, new
// subscribers all reach the other while each publish reaches one hub only. Each check that could
// pass for the wrong reason has a control showing that the same proxy does fail it when the
// protection is taken away.
import assert from 'node:assert/strict';
import { type IncomingHttpHeaders, request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { HUB_PATH, type TestHub, startTestHub } from '../helpers/hub.js';
import { type TestServer, listen } from '../helpers/http.js';
import {
  HAPROXY_BINARY,
  NGINX_BINARY,
  type Proxy,
  type Upstreams,
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

/** Deletes the (uncommented) lines matching each of `patterns` from a configuration; throws if one matches nothing. */
function deleteLines(text: string, patterns: RegExp[]): string {
  let result = text;
  for (const pattern of patterns) {
    const line = new RegExp(`^[ \\t]*${pattern.source}.*\\n`, 'gm');
    if (!line.test(result)) throw new Error(`no line matching ${pattern} in the configuration`);
    result = result.replace(line, '');
  }
  return result;
}

/** What the deploy files do against a draining hub, and how the controls take it away. */
const SEVERAL_HUBS = {
  nginx: {
    /** The file as it is. */
    shipped: (conf: string) => conf,
    /** nginx's default: a 503 goes back to the client. */
    noRetry: (conf: string) => setNginxDirective(conf, 'proxy_next_upstream', 'error timeout'),
    /** Publishes passed on to the next hub too. */
    retryPublishes: (conf: string) => setNginxDirective(conf, 'proxy_next_upstream', 'error timeout http_503 non_idempotent'),
  },
  haproxy: {
    // HAProxy's health check takes a draining hub out after two failed checks (2 to 4 s as
    // shipped). Subscribers that come before that are what the retries are for; here the checks
    // are made rare so that they cannot take the hub out during the test, in the run with the
    // retries and in the control without them alike: only the retries make the difference.
    shipped: (cfg: string) => rareChecks(cfg),
    noRetry: (cfg: string) => deleteLines(rareChecks(cfg), [/retry-on\b/, /option[ \t]+redispatch\b/, /http-request[ \t]+disable-l7-retry\b/]),
    retryPublishes: (cfg: string) => deleteLines(rareChecks(cfg), [/http-request[ \t]+disable-l7-retry\b/]),
  },
};

function rareChecks(cfg: string): string {
  const pattern = /^([ \t]*server[ \t].*\bcheck\b.*\binter[ \t]+)\S+/gm;
  if (!pattern.test(cfg)) throw new Error('no "server … check inter" line in the HAProxy configuration');
  return cfg.replace(pattern, (_all, head: string) => `${head}1m`);
}

/** A hub stand-in that refuses every publish and subscribe with 503 (as a hub does when its transport is down) but passes health checks, and records the publishes it received. */
async function refusingUpstream(): Promise<TestServer & { publishedIds: string[] }> {
  const publishedIds: string[] = [];
  const server = await listen((req, res) => {
    if (req.url === '/healthz' || req.url === '/readyz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.method === 'POST') publishedIds.push(new URLSearchParams(Buffer.concat(chunks).toString()).get('id') ?? '(no id)');
      res.writeHead(503, { 'content-type': 'text/plain', 'retry-after': '1' }).end('the update may not have been stored\n');
    });
  });
  return { ...server, publishedIds };
}

/** The IDs in a hub's history. */
async function storedIds(hub: TestHub): Promise<string[]> {
  return (await hub.hub.transport.history('earliest', () => true)).updates.map((u) => u.id);
}

interface ProxyKind {
  name: 'nginx' | 'haproxy';
  binary: string;
  start(upstreams: Upstreams, opts?: { edit?: (text: string) => string; http?: string }): Promise<Proxy>;
  /** The proxy with compression enabled the way a user would, for text/event-stream and text/plain. */
  startCompressing(upstream: string): Promise<Proxy>;
}

const KINDS: ProxyKind[] = [
  {
    name: 'nginx',
    binary: NGINX_BINARY,
    start: (upstreams, opts = {}) => startNginx(upstreams, opts),
    startCompressing: (upstream) => startNginx(upstream, { http: NGINX_GZIP }),
  },
  {
    name: 'haproxy',
    binary: HAPROXY_BINARY,
    start: (upstreams, opts = {}) => startHaproxy(upstreams, opts.edit === undefined ? {} : { edit: opts.edit }),
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

    /**
     * Two hubs behind one proxy configured with `edit`; hub A drains (with streams left to close,
     * so that it keeps draining and answering 503 throughout) while 20 subscribes go through the
     * proxy. Returns their statuses; `during` runs while A drains too.
     */
    const subscribeWhileOneDrains = async (edit: (text: string) => string, during: (proxy: Proxy, a: TestHub, b: TestHub) => Promise<void> = async () => {}) => {
      // A long drain window: A closes one of its three streams at once and the next ones only
      // seconds later, and the test closes them itself (so A finishes early) once it is done.
      const a = await startHub(['--drain-timeout', '60s']);
      const b = await startHub([]);
      const two = await startProxy(() => kind.start([upstreamOf(a), upstreamOf(b)], { edit }));
      const held = await Promise.all([1, 2, 3].map(() => openSse(`${a.hubUrl}?topic=${encodeURIComponent('https://example.com/held')}`)));
      open.push(...held);
      const drained = a.close();
      try {
        const ready = await fetch(`${a.url}/readyz`);
        assert.equal(ready.status, 503, `hub A is not draining: /readyz answered ${ready.status}`);
        const refused = await openSse(`${a.hubUrl}?topic=x`);
        refused.close();
        assert.equal(refused.status, 503, 'hub A, draining, did not refuse a subscriber with 503');

        const statuses: number[] = [];
        for (let i = 0; i < 20; i++) {
          const sub = await within(openSse(subscribeUrl(two, `https://example.com/${kind.name}/several/${i}`)), STEP_MS, `subscribe ${i} got no answer\n${two.log()}`);
          statuses.push(sub.status);
          sub.close();
        }
        await during(two, a, b);
        // A was still draining (listening, answering 503) all along: the proxy saw refusals, not a closed port.
        assert.ok(a.hub.draining && a.hub.streams.size > 0, 'hub A finished draining during the test: the subscribes did not all meet a draining hub');
        return statuses;
      } finally {
        for (const sub of held) sub.close();
        await drained;
      }
    };

    it('with two hubs, one draining, sends every new subscriber to the other hub, and each publish to one hub', { timeout: 60_000 }, async () => {
      const published: string[] = [];
      const statuses = await subscribeWhileOneDrains(SEVERAL_HUBS[kind.name].shipped, async (two, a, b) => {
        // A draining hub still accepts publishes (publishers are not EventSources): whichever
        // hub gets one stores it, and no hub gets it twice.
        for (let i = 1; i <= 6; i++) {
          const id = `${kind.name}-while-draining-${i}`;
          await publishVia(two, b, { topic: 'https://example.com/draining', id, data: String(i) });
          published.push(id);
        }
        const stored = [...(await storedIds(a)), ...(await storedIds(b))];
        assert.deepEqual([...stored].sort(), [...published].sort(), `each publish must be stored exactly once, by one of the two hubs\n${two.log()}`);
      });
      assert.deepEqual(statuses, Array(20).fill(200), `a subscriber got the draining hub's 503 through ${kind.name}, which EventSource does not retry`);
    });

    it(`control: without the deploy file's ${kind.name === 'nginx' ? '`http_503` in proxy_next_upstream' : 'retry-on, redispatch and disable-l7-retry lines'}, subscribers get the draining hub's 503`, { timeout: 60_000 }, async () => {
      const statuses = await subscribeWhileOneDrains(SEVERAL_HUBS[kind.name].noRetry);
      assert.ok(statuses.includes(503), `no subscribe reached the draining hub without the retry directives: the check above proves nothing (${JSON.stringify(statuses)})`);
      assert.ok(statuses.every((s) => s === 200 || s === 503), JSON.stringify(statuses));
    });

    /**
     * A real hub and a stand-in that refuses every publish with 503, behind one proxy configured
     * with `edit`; publishes go through until one has reached the stand-in. Returns where each
     * publish ended up and what the publisher was answered.
     */
    const publishNextToARefusingHub = async (edit: (text: string) => string) => {
      const b = await startHub([]);
      const refusing = await refusingUpstream();
      try {
        const two = await startProxy(() => kind.start([new URL(refusing.url).host, upstreamOf(b)], { edit }));
        const answers = new Map<string, number>();
        for (let i = 1; i <= 20 && refusing.publishedIds.length === 0; i++) {
          const id = `${kind.name}-refused-${i}`;
          const res = await fetch(`${two.url}${HUB_PATH}`, {
            method: 'POST',
            headers: { authorization: `Bearer ${b.adminToken}`, 'content-type': 'application/x-www-form-urlencoded' },
            body: new URLSearchParams({ topic: 'https://example.com/refused', id, data: String(i) }).toString(),
          });
          await res.text();
          answers.set(id, res.status);
        }
        assert.ok(refusing.publishedIds.length > 0, `20 publishes through ${kind.name}, none reached the refusing hub: the check proves nothing\n${two.log()}`);
        return { answers, refused: refusing.publishedIds, stored: await storedIds(b), log: two.log() };
      } finally {
        await refusing.close();
      }
    };

    it('never sends a publish to a second hub: a publish refused with 503 goes back to the publisher', T, async () => {
      const { answers, refused, stored, log } = await publishNextToARefusingHub(SEVERAL_HUBS[kind.name].shipped);
      // Each publish reached exactly one of the two upstreams, and the publisher got that one's answer.
      assert.deepEqual([...refused, ...stored].sort(), [...answers.keys()].sort(), `a publish was sent to both hubs (refused by one: ${JSON.stringify(refused)}, stored by the other: ${JSON.stringify(stored)})\n${log}`);
      for (const id of refused) assert.equal(answers.get(id), 503, `publish ${id}, refused by one hub, was answered ${answers.get(id)}`);
      for (const id of stored) assert.equal(answers.get(id), 200, `publish ${id}, stored, was answered ${answers.get(id)}`);
    });

    it(`control: with ${kind.name === 'nginx' ? '`non_idempotent` in proxy_next_upstream' : 'the disable-l7-retry line removed'}, a publish refused by one hub is sent to the other too`, T, async () => {
      const { answers, refused, stored } = await publishNextToARefusingHub(SEVERAL_HUBS[kind.name].retryPublishes);
      const twice = refused.filter((id) => stored.includes(id));
      assert.ok(twice.length > 0, `no publish reached both hubs without the protection: the check above proves nothing (refused ${JSON.stringify(refused)}, stored ${JSON.stringify(stored)})`);
      for (const id of twice) assert.equal(answers.get(id), 200);
    });
  });
}
