/**
 * The transport's connections to Redis, however the server is found: one server; the primary
 * that Sentinels name, found again after a failover; or a Redis Cluster, where each command goes
 * to the node serving its keys' slot and ioredis follows MOVED and ASK. The transport's keys share
 * one hash tag, so every script and every XREAD touches one slot.
 */
import { Cluster, Redis, type RedisOptions } from 'ioredis';
import { type RedisSettings, backoff } from './url.js';

/** One connection as the transport uses it: to a server, or to a cluster (a connection per node). */
export type RedisClient = Redis | Cluster;

/**
 * A connection named `name` (CLIENT LIST shows it), not yet connected, with `extra` options over
 * the URL's. `started()` tells whether the transport's start is over: until then an unreachable
 * Sentinel fails the start with a clear message; afterwards the Sentinels are asked again and
 * again, like a lost server is reconnected to.
 */
export function createClient(settings: RedisSettings, name: string, extra: RedisOptions & { patient?: boolean }, started: () => boolean): RedisClient {
  const { patient = false, ...rest } = extra;
  const options: RedisOptions = { ...settings.connection, connectionName: name, ...rest };
  if (settings.mode === 'cluster') {
    return new Cluster(settings.nodes, {
      redisOptions: options,
      lazyConnect: true,
      enableOfflineQueue: false,
      clusterRetryStrategy: backoff,
      slotsRefreshTimeout: Math.max(settings.timeout, 1000),
    });
  }
  if (settings.mode === 'sentinel') {
    const client = new Redis({
      ...options,
      sentinelRetryStrategy: (times: number) => (started() ? backoff(times) : null),
      // A primary demoted by a failover refuses writes (READONLY) and ends blocked reads
      // (UNBLOCKED): reconnect, which asks the Sentinels for the new primary. The failed command
      // is not sent again (a publish answers 503).
      reconnectOnError: (error: Error) => /^(READONLY|UNBLOCKED)/.test(error.message),
    });
    const made = sentinelClients.get(settings) ?? new Set<Redis>();
    sentinelClients.set(settings, made);
    made.add(client);
    client.on('end', () => made.delete(client));
    return patient ? withPatientTimeouts(client, options) : client;
  }
  const client = new Redis(options);
  return patient ? withPatientTimeouts(client, options) : client;
}

/** Runs `check` after `ms`, once the event loop has looked at its sockets again. */
function later(ms: number, check: () => void): NodeJS.Timeout {
  return setTimeout(() => setImmediate(check), ms);
}

/**
 * `options`' command and socket timeouts, kept by this connection instead of ioredis, so that an
 * answer already there counts. ioredis' are plain timers: after a long turn of the event loop (a
 * process starved by a reconnect storm), they fire before the loop reads the socket, and a
 * command answered in microseconds fails as timed out, or the connection is dropped as silent.
 * Here a timer that fires waits for the next look at the socket (`setImmediate` runs after the
 * loop's poll for I/O) before it gives up: a command still unanswered is rejected ("Command timed
 * out", as ioredis words it); a connection that has sent nothing at all since a command went out,
 * for the socket timeout, is destroyed (and reconnected by ioredis), as ioredis' socket timeout does.
 */
function withPatientTimeouts(client: Redis, options: RedisOptions): Redis {
  const commandMs = options.commandTimeout ?? 0;
  const socketMs = options.socketTimeout ?? 0;
  // ioredis must not keep its own.
  client.options.commandTimeout = undefined;
  client.options.socketTimeout = undefined;
  let heard = 0;
  const listen = (): void => {
    client.stream?.on('data', () => {
      heard = performance.now();
    });
  };
  client.on('connect', listen);
  const send = client.sendCommand.bind(client);
  client.sendCommand = (command, stream) => {
    const sent = performance.now();
    let timedOut = false;
    // The handshake's own commands (before ready) are bounded by the socket timeout alone, whose error names a silent server.
    const commandTimer = commandMs > 0 && client.status === 'ready'
      ? later(commandMs, () => {
          if (command.isSettled) return;
          timedOut = true;
          command.reject(new Error('Command timed out'));
        })
      : undefined;
    const socketTimer = socketMs > 0
      ? later(socketMs, () => {
          if (heard < sent && client.stream !== undefined && !client.stream.destroyed) client.stream.destroy(new Error(`Socket timeout. Expecting data, but didn't receive any in ${socketMs}ms.`));
        })
      : undefined;
    if (commandTimer !== undefined || socketTimer !== undefined) {
      // Answered: neither is needed. Timed out: the socket's still is, to give the connection up if it stays silent.
      const settled = (): void => {
        clearTimeout(commandTimer);
        if (!timedOut) clearTimeout(socketTimer);
      };
      command.promise.then(settled, settled);
    }
    return send(command, stream);
  };
  return client;
}

/** The Sentinel connections made for each settings object (one transport's), for `watchFailovers`. */
const sentinelClients = new WeakMap<RedisSettings, Set<Redis>>();

/**
 * Sentinel: reconnects every connection made for `settings` as soon as a Sentinel announces a
 * new primary for it (`+switch-master`, subscribed on up to two of the URL's Sentinels). After a
 * planned failover or a partition the old primary stays up, taking writes that its demotion
 * then discards and showing readers nothing new, until the Sentinels convert it to a replica,
 * seconds later (ioredis' own `failoverDetector` does this per connection, and can end a
 * connection for good when the announcement comes while it reconnects). Returns what stops it.
 */
export function watchFailovers(settings: RedisSettings): () => void {
  if (settings.mode !== 'sentinel') return () => {};
  const { name } = settings.connection;
  const watchers = (settings.connection.sentinels ?? []).slice(0, 2).map(({ host, port }) => {
    // Queued until connected, kept across reconnects (ioredis subscribes again).
    const watcher = new Redis({ host, port, connectionName: 'ssehub-failovers', protocol: 2, maxRetriesPerRequest: null, retryStrategy: backoff, connectTimeout: Math.max(settings.timeout, 1000), disconnectTimeout: 200 });
    watcher.on('error', () => {});
    watcher.on('message', (_channel: string, message: string) => {
      if (message.split(' ')[0] !== name) return;
      // Only a connection that is up: one reconnecting asks the Sentinels anyway.
      for (const client of sentinelClients.get(settings) ?? []) if (client.status === 'ready') client.disconnect(true);
    });
    void watcher.subscribe('+switch-master').catch(() => {});
    return watcher;
  });
  return () => {
    for (const watcher of watchers) watcher.disconnect();
  };
}

/** Calls `listener` with every error of the connection; for a cluster, of each node's connection too (the cluster itself only reports that no node answered). */
export function onError(client: RedisClient, listener: (error: Error) => void): void {
  client.on('error', listener);
  if (client instanceof Cluster) client.on('+node', (node: Redis) => node.on('error', listener));
}

/** Whether `client` can run commands on the node that serves `slot` now (`slot` is ignored outside a cluster). */
export function isReady(client: RedisClient, slot: number): boolean {
  if (client.status !== 'ready') return false;
  if (!(client instanceof Cluster)) return true;
  const key = client.slots[slot]?.[0];
  const node = client.nodes('master').find((n) => `${n.options.host}:${n.options.port}` === key);
  // A node's connection is made on its first command ('wait' until then).
  return node !== undefined && (node.status === 'ready' || node.status === 'wait');
}
