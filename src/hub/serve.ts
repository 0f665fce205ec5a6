/** Starting and stopping a hub: transport, verifiers, HTTP server, graceful shutdown. */
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type Logger, pino } from 'pino';
import { Verifier } from './authorization.js';
import type { HubConfig } from './config.js';
import type { HubContext } from './context.js';
import { handleRequest } from './http.js';
import { Hub } from './hub.js';
import { RateLimiter } from './rate-limit.js';
import { createTransport } from './transports/index.js';

/** A hub serving HTTP. */
export interface RunningHub {
  hub: Hub;
  server: Server;
  /** `http://host:port` it listens on. */
  url: string;
  /** Graceful shutdown: readiness off, streams drained in batches, server and transport closed. */
  close(): Promise<void>;
}

/** Creates the hub and starts listening. Rejects if the key cannot be read or the port cannot be bound. */
export async function startHub(config: HubConfig, options: { logger?: Logger } = {}): Promise<RunningHub> {
  const log = options.logger ?? pino({ level: config.logLevel, base: { service: 'ssehub' } });
  const alg = config.jwtAlg;
  const publisherKey = config.publisherJwtKey ?? config.jwtKey;
  const subscriberKey = config.subscriberJwtKey ?? config.jwtKey;
  const publisherVerifier = new Verifier('publisher', { key: publisherKey, alg, jwksUrl: publisherKey === undefined ? config.jwksUrl : undefined });
  const subscriberVerifier =
    subscriberKey !== undefined || config.jwksUrl !== undefined ? new Verifier('subscriber', { key: subscriberKey, alg, jwksUrl: subscriberKey === undefined ? config.jwksUrl : undefined }) : undefined;
  await Promise.all([publisherVerifier.ready(), subscriberVerifier?.ready()]);

  const transport = await createTransport(config.transport, { size: config.historySize, ttl: config.historyTtl });
  const hub = new Hub(config, transport, log);
  const ctx: HubContext = { hub, publisherVerifier, subscriberVerifier, rateLimiter: config.publishRate > 0 ? new RateLimiter(config.publishRate) : undefined };
  // Room for a 64 KiB URL (the hub's own limit, answered 414): a subscription may name up to 1000
  // topics, which Node's default 16 KiB header limit would refuse before the hub could say why.
  const server = createServer({ keepAliveTimeout: 65_000, maxHeaderSize: 96 * 1024 }, (req, res) => handleRequest(ctx, req, res));
  server.on('clientError', (error: NodeJS.ErrnoException, socket) => {
    const tooLarge = error.code === 'HPE_HEADER_OVERFLOW';
    hub.metrics.rejected.inc({ status: tooLarge ? '431' : '400', reason: tooLarge ? 'headers-too-large' : 'bad-request' });
    if (socket.writable && error.code !== 'ECONNRESET') {
      const body = tooLarge ? 'request headers larger than 96 KiB\n' : `malformed HTTP request (${error.code ?? 'parse error'})\n`;
      socket.end(`HTTP/1.1 ${tooLarge ? '431 Request Header Fields Too Large' : '400 Bad Request'}\r\ncontent-type: text/plain\r\nconnection: close\r\ncontent-length: ${body.length}\r\n\r\n${body}`);
    } else socket.destroy();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.listen.port, config.listen.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const url = `http://${host}:${address.port}`;
  log.info({ url, transport: config.transport }, 'hub listening');

  let closing: Promise<void> | undefined;
  return {
    hub,
    server,
    url,
    close: () => {
      closing ??= (async () => {
        log.info({ streams: hub.streams.size, window_ms: config.drainTimeout }, 'draining');
        // Still listening while draining: /readyz must be able to answer 503 (so a load balancer
        // takes this node out) and a new subscriber gets 503 + Retry-After rather than a refused connection.
        await hub.shutdown();
        server.close();
        server.closeAllConnections();
        log.info('hub stopped');
      })();
      return closing;
    },
  };
}
