/**
 * Starting and stopping a hub: the core over its transport, the Mercure front-end on an HTTP
 * server, the verifiers, graceful shutdown. Embedders may hand in their own transport, logger and
 * tracing.
 */
import type { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import { type IncomingMessage, type Server, createServer } from 'node:http';
import { type Http2SecureServer, createSecureServer } from 'node:http2';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { type Logger, pino } from 'pino';
import { type Gateway, startGateway } from './centrifugo/gateway.js';
import type { HubConfig } from './config.js';
import { Hub } from './core/hub.js';
import { LocalPresenceStore, Presence } from './core/presence.js';
import { RateLimiter } from './core/rate-limit.js';
import { Verifier } from './core/tokens.js';
import type { HubContext } from './mercure/context.js';
import { handleRequest } from './mercure/routes.js';
import { patternBaseOf } from './mercure/oauth.js';
import { publishSubscriptionEventsOf } from './mercure/subscriptions.js';
import { publishV1SubscriptionEventsOf } from './mercure/subscriptions-v1.js';
import { type Tracing, loadTracing } from './ops/tracing.js';
import { WorkerAdmission, descriptorCeiling } from './ops/admission.js';
import { Webhooks } from './ops/webhooks.js';
import { type BasicTransport, assertTransport, createTransport } from './transports/index.js';

/** A hub serving HTTP. */
export interface RunningHub {
  hub: Hub;
  /** node:http, or with TLS a node:http2 secure server that also speaks HTTP/1.1. */
  server: Server | Http2SecureServer;
  /** `http://host:port` (`https://` with TLS) it listens on. */
  url: string;
  /** Graceful shutdown: readiness off, streams drained in batches, server and transport closed. */
  close(): Promise<void>;
}

/** What an embedder may hand `startHub` instead of what the configuration would make. */
export interface StartOptions {
  /** The transport to use instead of `config.transport` (checked at run time; closed with the hub). */
  transport?: BasicTransport;
  /** The logger (default: pino at `config.logLevel`). */
  logger?: Logger;
  /** OpenTelemetry tracing (default: loaded when `config.tracing`). */
  tracing?: Tracing;
  /** One of `--workers`: accept connections as the primary balances them (see ops/admission.ts). */
  admission?: boolean;
}

/**
 * A deep accept queue: after a restart or a proxy's reload every client reconnects in the same
 * second, and a SYN that finds the queue full is dropped; the client's kernel sends it again after
 * 1 s, 3 s, 7 s, 15 s, 31 s, so a client that missed the queue a few times waits half a minute or
 * more while the hub sits idle. Node's default is 511. The kernel caps the queue at
 * net.core.somaxconn (4096 on recent Linux), so the hub asks for far more and the operator's
 * setting decides (docs/deployment.md).
 */
const ACCEPT_BACKLOG = 1 << 20;

/** Creates the hub and starts listening. Rejects if the key cannot be read or the port cannot be bound. */
export async function startHub(config: HubConfig, options: StartOptions = {}): Promise<RunningHub> {
  const log = options.logger ?? pino({ level: config.logLevel, base: { service: 'ssehub' } });
  const alg = config.jwtAlg;
  const publisherKey = config.publisherJwtKey ?? config.jwtKey;
  const subscriberKey = config.subscriberJwtKey ?? config.jwtKey;
  // Mercure 1.0 access tokens: the trusted issuers, and the base of their relative URL patterns.
  const tokens = { issuers: config.tokenIssuers, patternBase: patternBaseOf(config) };
  const publisherVerifier = new Verifier('publisher', { key: publisherKey, alg, jwksUrl: publisherKey === undefined ? config.jwksUrl : undefined, ...tokens });
  const subscriberVerifier =
    subscriberKey !== undefined || config.jwksUrl !== undefined ? new Verifier('subscriber', { key: subscriberKey, alg, jwksUrl: subscriberKey === undefined ? config.jwksUrl : undefined, ...tokens }) : undefined;
  await Promise.all([publisherVerifier.ready(), subscriberVerifier?.ready()]);

  if (options.transport !== undefined) assertTransport(options.transport);
  const transport = options.transport ?? (await createTransport(config.transport, { size: config.historySize, ttl: config.historyTtl }));
  const tracing = options.tracing ?? (await loadTracing(config.tracing));
  const hub = new Hub(config, transport, log);
  hub.tracing = tracing;
  await startPresence(hub, transport, config, log);
  if (config.subscriptions) {
    publishSubscriptionEventsOf(hub);
    publishV1SubscriptionEventsOf(hub);
  }
  const ctx: HubContext = { hub, publisherVerifier, subscriberVerifier, rateLimiter: config.publishRate > 0 ? new RateLimiter(config.publishRate) : undefined, answered: new WeakSet() };
  // The Centrifugo front-end beside Mercure's, over the same core (its own paths: /connection/…, /emulation, /api).
  const gateway = startGateway(ctx);
  hub.afterDrain(async () => gateway.close());
  await gateway.ready();
  const server = createHttpServer(config, ctx, gateway);
  const listen = { port: config.listen.port, host: config.listen.host, backlog: ACCEPT_BACKLOG };
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(listen, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const url = `${config.tlsCert !== undefined ? 'https' : 'http'}://${host}:${address.port}`;
  // Every connection, so that after the drain none is left open (node:http2 has no closeAllConnections).
  const sockets = new Set<Socket>();
  // Under --workers: which worker accepts (set below, once listening).
  let admission: WorkerAdmission | undefined;
  // One listener for all sockets (a closure per connection costs memory at 100,000 connections).
  function forget(this: Socket): void {
    sockets.delete(this);
    admission?.closed();
  }
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', forget);
  });
  log.info({ url, transport: config.transport }, 'hub listening');
  // Listening again after a pause asks node:cluster with the same options, for the same shared socket.
  if (options.admission === true) admission = new WorkerAdmission(server, listen, () => sockets.size, log);
  // Alone, nothing stops this process at its descriptors but --max-connections (a worker stops accepting).
  const ceiling = descriptorCeiling();
  if (admission === undefined && Number.isFinite(ceiling) && (config.maxConnections === 0 || config.maxConnections > ceiling)) {
    log.warn(
      { max_connections: config.maxConnections, ceiling },
      `--max-connections ${config.maxConnections === 0 ? '0 (no limit)' : config.maxConnections} is above the ${ceiling} connections this process can hold (its open-file limit, ulimit -n, less a reserve): past them new connections are reset instead of answered 503; raise the limit (systemd LimitNOFILE=, docker --ulimit nofile=) or lower --max-connections`,
    );
  }

  let closing: Promise<void> | undefined;
  return {
    hub,
    server,
    url,
    close: () => {
      closing ??= (async () => {
        log.info({ connections: hub.connections.size, window_ms: config.drainTimeout }, 'draining');
        // Still listening while draining: /readyz must be able to answer 503 (so a load balancer
        // takes this node out) and a new subscriber gets 503 + Retry-After rather than a refused connection.
        await hub.shutdown();
        admission?.stop();
        server.close();
        for (const socket of sockets) socket.destroy();
        log.info('hub stopped');
      })();
      return closing;
    },
  };
}

/**
 * Presence for the hub (in the transport when it offers a shared store, else in this process),
 * fed by the core's signals, and the webhooks that tell the backend about it.
 */
async function startPresence(hub: Hub, transport: BasicTransport, config: HubConfig, log: Logger): Promise<void> {
  const node = hub.node;
  const store = transport.presenceStore?.(node, config.presenceTtl) ?? new LocalPresenceStore();
  const presence = new Presence(store, { node, ttl: config.presenceTtl, vacateDelay: config.webhookVacateDelay, log });
  hub.presence = presence;
  hub.on('subscribed', (s) => void presence.joined(s.id, s.typedSelectors, { subject: s.subject, payload: s.payload, protocol: s.protocol, connection: s.connection?.id !== s.id ? s.connection?.id : undefined }));
  hub.on('unsubscribed', (s, reason) => void presence.left(s.id, reason));
  presence.on('lost', () => hub.metrics.presenceLost.inc());
  hub.afterDrain(() => presence.close());
  if (config.webhookUrls.length > 0 && config.webhookSecret !== undefined) {
    const webhooks = new Webhooks({ urls: config.webhookUrls, secret: config.webhookSecret, log, metrics: hub.metrics });
    presence.on('event', (event) => webhooks.send(event));
    // After presence closed: the drain's disconnections and vacated topics are sent too.
    hub.afterDrain(() => webhooks.close());
  }
  await presence.start();
}

/** Largest request head (URL and headers) accepted; a subscription may name up to 1000 topics in a 64 KiB URL. */
const MAX_HEADER_BYTES = 96 * 1024;

/**
 * The HTTP server: plain HTTP/1.1, or with `--tls-cert`/`--tls-key` HTTPS offering HTTP/2 by ALPN and
 * HTTP/1.1 to clients without it. HTTP/2 matters for browsers: over HTTP/1.1 they open at most six
 * connections per origin, so a seventh EventSource (a seventh tab) stalls; over HTTP/2 all share one.
 */
function createHttpServer(config: HubConfig, ctx: HubContext, gateway: Gateway): Server | Http2SecureServer {
  const { hub } = ctx;
  const handle = (req: Parameters<typeof handleRequest>[1], res: Parameters<typeof handleRequest>[2]): void => {
    if (!gateway.handle(req, res)) handleRequest(ctx, req, res);
  };
  // WebSocket (HTTP/1.1 upgrades, on the TLS server too): the Centrifugo front-end's; any other upgrade is refused.
  const upgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => gateway.upgrade(req, socket, head);
  if (config.tlsCert !== undefined && config.tlsKey !== undefined) {
    const server = createSecureServer(
      {
        cert: readFileSync(config.tlsCert),
        key: readFileSync(config.tlsKey),
        allowHTTP1: true,
        settings: { maxHeaderListSize: MAX_HEADER_BYTES, maxConcurrentStreams: 1000 },
        maxSessionMemory: 64,
      },
      handle,
    );
    // Read by node:http's parser for HTTP/1.1 connections on this server.
    Object.assign(server, { maxHeaderSize: MAX_HEADER_BYTES, keepAliveTimeout: 65_000 });
    // `Expect: 100-continue`: answered by readBody once the head passed its checks (see there).
    server.on('checkContinue', handle);
    server.on('upgrade', upgrade);
    // HTTP/1.1 requests on this server go through node:http's parser, which reports malformed ones here.
    (server as EventEmitter).on('clientError', (_error: Error, socket: Socket) => {
      hub.metrics.rejected.inc({ status: '400', reason: 'bad-request' });
      socket.destroy();
    });
    return server;
  }
  // --request-timeout bounds the head and the body alike (Node's defaults, 60 s and 300 s, let a
  // slowloris client hold a connection for minutes), and Node looks for expired requests a few
  // times per timeout instead of every 30 s, so a slow request is cut close to its deadline.
  // Streams are not affected: their request is complete once the head is in.
  //
  // Node's check is a timer, and after a long turn of a busy event loop (a worker taking a
  // reconnect storm) timers run before the loop reads the sockets: a head that came in time, and
  // waits unread in the socket, would be answered 408. So a timed-out head is answered only if it
  // has still not come once the loop has looked (the check phase after the poll that reads them);
  // `late` holds the connections given that one look, and whether their request came.
  const late = new Map<Duplex, boolean>();
  const came = (socket: Duplex): void => {
    if (late.size !== 0 && late.has(socket)) late.set(socket, true);
  };
  const server = createServer(
    {
      keepAliveTimeout: 65_000,
      maxHeaderSize: MAX_HEADER_BYTES,
      headersTimeout: config.requestTimeout,
      requestTimeout: config.requestTimeout,
      connectionsCheckingInterval: Math.min(30_000, Math.max(250, Math.round(config.requestTimeout / 4))),
    },
    (req, res) => {
      came(req.socket);
      handle(req, res);
    },
  );
  // `Expect: 100-continue`: Node would answer 100 before any handler runs, so a publish refused by
  // its head alone (no token, a Content-Length over --max-body) would have its body uploaded in
  // vain. The handler decides: readBody sends 100 once everything before the body passed.
  server.on('checkContinue', (req: IncomingMessage, res: Parameters<typeof handleRequest>[2]) => {
    came(req.socket);
    handle(req, res);
  });
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    came(req.socket);
    upgrade(req, socket, head);
  });
  // Node may report more than one error for a connection it already gave up on (a timed-out head
  // is followed by a parse error as the socket closes): one answer, one count per connection.
  const { answered } = ctx;
  const answer = (error: NodeJS.ErrnoException, socket: Duplex): void => {
    // A request (head or body) that did not arrive within --request-timeout (slowloris, a
    // half-open request) is a timeout, not a malformed request.
    const [status, reason, line, body] =
      error.code === 'HPE_HEADER_OVERFLOW'
        ? ['431', 'headers-too-large', '431 Request Header Fields Too Large', 'request headers larger than 96 KiB\n']
        : error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? ['408', 'request-timeout', '408 Request Timeout', 'the request did not arrive in time\n']
          : ['400', 'bad-request', '400 Bad Request', `malformed HTTP request (${error.code ?? 'parse error'})\n`];
    hub.metrics.rejected.inc({ status, reason });
    answered.add(socket);
    if (socket.writable) {
      socket.end(`HTTP/1.1 ${line}\r\ncontent-type: text/plain\r\nconnection: close\r\ncontent-length: ${body.length}\r\n\r\n${body}`);
    } else socket.destroy();
  };
  server.on('clientError', (error: NodeJS.ErrnoException, socket: Duplex) => {
    const waiting = late.get(socket);
    late.delete(socket);
    // The client went away: nothing to answer and nothing it did wrong.
    if (error.code === 'ECONNRESET' || answered.has(socket)) {
      socket.destroy();
      return;
    }
    if (error.code === 'ERR_HTTP_REQUEST_TIMEOUT' && waiting === undefined) {
      late.set(socket, false);
      setImmediate(() => {
        const arrived = late.get(socket);
        late.delete(socket);
        if (arrived === false && !answered.has(socket) && !socket.destroyed) answer(error, socket);
      });
      return;
    }
    answer(error, socket);
  });
  return server;
}
