/**
 * The Redis URLs and the connection settings they make:
 *
 * - `redis://[USER:PASSWORD@]HOST:PORT[/DB]` (`rediss://` for TLS): one server.
 * - `redis+sentinel://[USER:PASSWORD@]HOST:PORT[,HOST:PORT…]/PRIMARY[/DB]`: the primary that the
 *   Sentinels (default port 26379) name `PRIMARY`, followed through failovers. The user and
 *   password are the Redis servers'; the Sentinels are asked without one.
 * - `redis+cluster://[USER:PASSWORD@]HOST:PORT[,HOST:PORT…]`: a Redis Cluster, from any of its
 *   nodes (default port 6379). Both keys carry one hash tag, so they live in one slot.
 *
 * Options, in the query string of each:
 * - `key=PREFIX` — prefix of the two keys used, `{PREFIX}:updates` (the stream) and `{PREFIX}:ids`
 *   (a hash from update ID to stream entry ID); default `ssehub`. The braces are a hash tag, so
 *   both keys live in one slot. Every node of one hub must use the same prefix and limits.
 * - `maxlen=N` — updates kept, instead of `--history-size` (0: no history, live delivery only).
 * - `maxage=DURATION` — how long an update is kept (`90s`, `7d`…), instead of `--history-ttl` (0: no limit).
 * - `timeout=DURATION` — how long a command may take before the publish answers 503 and the
 *   connection is treated as dead (default `1s`).
 * - `replicas=N` — a publish is answered 200 only once N replicas of the primary acknowledged it
 *   (WAIT), so that a failover cannot lose it; default 1 with Sentinel and Cluster, 0 for one server.
 */
import type { RedisOptions } from 'ioredis';
import { parseDuration } from '../../config.js';
import type { HistoryLimits } from '../transport.js';

/** Longest pause between reconnection attempts. */
export const MAX_BACKOFF_MS = 2000;
const OPTIONS = new Set(['key', 'maxlen', 'maxage', 'timeout', 'replicas']);

/** A host and port. */
export interface Address {
  host: string;
  port: number;
}

/** What a Redis URL configures. */
export interface RedisSettings {
  /** One server, a primary found through Sentinel, or a Redis Cluster. */
  mode: 'single' | 'sentinel' | 'cluster';
  /** Options of every connection to a Redis server (with Sentinel: the Sentinels and the primary's name too). */
  connection: RedisOptions;
  /** Cluster: the nodes to start from. */
  nodes: Address[];
  /** The URL without credentials, for messages. */
  label: string;
  /** Stream key and ID hash key. */
  stream: string;
  ids: string;
  /** Updates kept (0: none) and their maximum age in ms (0: no limit). */
  size: number;
  ttl: number;
  /** Command timeout in ms. */
  timeout: number;
  /** Replicas that must acknowledge a publish before it is answered 200 (0: none). */
  replicas: number;
}

/** Reads a `redis://`, `rediss://`, `redis+sentinel://` or `redis+cluster://` URL and its options; throws with a message naming a bad part. */
export function parseRedisUrl(spec: string, limits: HistoryLimits): RedisSettings {
  const multi = /^redis\+(sentinel|cluster):\/\/(?:([^@/?#]*)@)?([^/?#]*)([^?#]*)(\?[^#]*)?$/.exec(spec);
  if (multi !== null) return parseMultiHost(multi[1] as 'sentinel' | 'cluster', multi[2], multi[3] as string, multi[4] as string, multi[5] ?? '', limits);
  if (/^rediss\+|^redis\+/.test(spec)) throw new Error(`"${spec.replace(/\/\/[^@/]*@/, '//')}": expected redis+sentinel://HOST:PORT[,HOST:PORT]/PRIMARY or redis+cluster://HOST:PORT[,HOST:PORT]`);
  let url: URL;
  try {
    url = new URL(spec);
  } catch {
    throw new Error(`"${spec}" is not a valid redis:// URL`);
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') throw new Error(`expected a redis:// or rediss:// URL, got "${url.protocol}"`);
  const label = `${url.protocol}//${url.host}${url.pathname === '/' ? '' : url.pathname}`;
  const path = url.pathname.replace(/^\//, '');
  if (path !== '' && !/^\d{1,5}$/.test(path)) throw new Error(`${label}: the path must be a database number, got "/${path}"`);
  const options = parseOptions(label, url.searchParams, limits, 0);
  const tls = url.protocol === 'rediss:';
  const host = url.hostname.replace(/^\[|\]$/g, '');
  return {
    ...options,
    mode: 'single',
    nodes: [],
    label,
    connection: {
      ...connectionOptions(options.timeout),
      host,
      port: url.port === '' ? 6379 : Number(url.port),
      db: path === '' ? 0 : Number(path),
      username: url.username === '' ? undefined : decodeURIComponent(url.username),
      password: url.password === '' ? undefined : decodeURIComponent(url.password),
      tls: tls ? { servername: host } : undefined,
    },
  };
}

/** `redis+sentinel://…` and `redis+cluster://…`: several `HOST:PORT`, which `new URL` does not take. */
function parseMultiHost(mode: 'sentinel' | 'cluster', userinfo: string | undefined, hostList: string, path: string, query: string, limits: HistoryLimits): RedisSettings {
  const scheme = `redis+${mode}://`;
  const label = `${scheme}${hostList}${path === '/' ? '' : path}`;
  const defaultPort = mode === 'sentinel' ? 26379 : 6379;
  const addresses = hostList.split(',').map((part) => {
    const m = /^(\[[0-9a-fA-F:.]+\]|[^:[\]]+)(?::(\d{1,5}))?$/.exec(part);
    const port = m?.[2] === undefined ? defaultPort : Number(m[2]);
    if (m === null || port < 1 || port > 65535) throw new Error(`${label}: expected HOST:PORT, got "${part}"`);
    return { host: (m[1] as string).replace(/^\[|\]$/g, ''), port };
  });
  const segments = path.split('/').slice(1);
  let name = '';
  let db = 0;
  if (mode === 'sentinel') {
    name = decodeURIComponent(segments[0] ?? '');
    if (name === '' || segments.length > 2 || (segments[1] !== undefined && !/^\d{1,5}$/.test(segments[1]))) {
      throw new Error(`${label}: the path must be the primary's name as the Sentinels know it, then optionally a database number (/mymaster or /mymaster/0), got "${path}"`);
    }
    db = segments[1] === undefined ? 0 : Number(segments[1]);
  } else if (path !== '' && path !== '/') {
    throw new Error(`${label}: a Redis Cluster has no database numbers or names; expected no path, got "${path}"`);
  }
  const options = parseOptions(label, new URLSearchParams(query), limits, 1);
  const [user, password] = (userinfo ?? '').split(/:(.*)/s) as [string, string | undefined];
  const connection: RedisOptions = {
    ...connectionOptions(options.timeout),
    username: user === '' ? undefined : decodeURIComponent(user),
    password: password === undefined || password === '' ? undefined : decodeURIComponent(password),
  };
  if (mode === 'sentinel') {
    Object.assign(connection, {
      sentinels: addresses,
      name,
      db,
      sentinelCommandTimeout: options.timeout,
      // Replicas and the Sentinels' own addresses learnt from them are asked too, after the listed ones.
      updateSentinels: true,
    } satisfies RedisOptions);
  }
  return { ...options, mode, nodes: mode === 'cluster' ? addresses : [], label, connection };
}

type Options = Pick<RedisSettings, 'stream' | 'ids' | 'size' | 'ttl' | 'timeout' | 'replicas'>;

function parseOptions(label: string, q: URLSearchParams, limits: HistoryLimits, defaultReplicas: number): Options {
  for (const name of q.keys()) {
    if (!OPTIONS.has(name)) throw new Error(`${label}: unknown option "${name}" (known: ${[...OPTIONS].join(', ')})`);
  }
  const key = q.get('key') ?? 'ssehub';
  if (key === '' || /[{}]/.test(key)) throw new Error(`${label}: option "key" must be non-empty and hold no braces, got "${key}"`);
  const option = (name: string, parse: (v: string) => number, fallback: number): number => {
    const raw = q.get(name);
    if (raw === null) return fallback;
    try {
      return parse(raw);
    } catch (error) {
      throw new Error(`${label}: option "${name}": ${(error as Error).message}`, { cause: error });
    }
  };
  const count = (v: string): number => {
    if (!/^\d+$/.test(v) || !Number.isSafeInteger(Number(v))) throw new Error(`expected a whole number, got "${v}"`);
    return Number(v);
  };
  const size = option('maxlen', count, limits.size);
  const ttl = option('maxage', parseDuration, limits.ttl);
  const timeout = option('timeout', parseDuration, 1000);
  if (timeout <= 0) throw new Error(`${label}: option "timeout" must be above 0`);
  const replicas = option('replicas', count, defaultReplicas);
  return { stream: `{${key}}:updates`, ids: `{${key}}:ids`, size, ttl, timeout, replicas };
}

/** What every connection to a Redis server has in common, whichever way it is found. */
function connectionOptions(timeout: number): RedisOptions {
  return {
    // RESP2 keeps XREAD's reply an array of [key, entries].
    protocol: 2,
    lazyConnect: true,
    // Fail fast instead of queueing: a publish must answer 503 now, not succeed minutes later.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    connectTimeout: Math.max(timeout, 1000),
    // How long close() lets a socket end cleanly before destroying it (the default 2 s keeps a
    // process alive that long after closing a transport whose server stopped answering).
    disconnectTimeout: 200,
    retryStrategy: backoff,
  };
}

/** The pause before reconnection attempt `times`: exponential from 50 ms, capped, with jitter. */
export function backoff(times: number): number {
  return Math.min(50 * 2 ** Math.min(times - 1, 10), MAX_BACKOFF_MS) + Math.floor(Math.random() * 100);
}

/** `HOST:PORT, HOST:PORT` of a list of addresses. */
function list(addresses: Partial<Address>[]): string {
  return addresses.map((a) => `${a.host}:${a.port}`).join(', ');
}

/** What went wrong when connecting, in words an operator can act on. */
export function describeConnectError(error: Error, settings: Pick<RedisSettings, 'mode' | 'connection' | 'nodes' | 'timeout'>): string {
  // A cluster that could not read its slots says so; the last node's error says why.
  const nodeError = (error as { lastNodeError?: unknown }).lastNodeError;
  if (nodeError instanceof Error && nodeError.message !== 'Connection is closed.') return describeConnectError(nodeError, settings);
  const code = (error as NodeJS.ErrnoException).code;
  const message = error.message;
  if (settings.mode === 'sentinel') {
    const sentinels = list(settings.connection.sentinels ?? []);
    if (/unknown command .sentinel/i.test(message)) return `${sentinels}: not a Sentinel (the SENTINEL command is unknown there: a Redis server, for which the URL is redis://HOST:PORT?)`;
    if (/invalid reply: null|No such master/i.test(message)) return `no Sentinel knows a primary named "${settings.connection.name}" (asked ${sentinels}; the name after the hosts in the URL must be the one of "sentinel monitor" in sentinel.conf)`;
    if (/All sentinels are unreachable/.test(message)) {
      const last = /Last error: (.*)$/.exec(message)?.[1];
      return `none of the Sentinels answered (${sentinels}${last === undefined || last === 'Connection is closed.' ? '' : `: ${last}`}; are redis-sentinel processes running there, on those ports?)`;
    }
  }
  if (settings.mode === 'cluster') {
    const nodes = list(settings.nodes);
    if (/cluster support disabled/i.test(message)) return `${nodes}: not a Redis Cluster node (cluster support is disabled there: a single server, for which the URL is redis://HOST:PORT?)`;
    if (/CLUSTERDOWN|cluster_state|Ready check failed/i.test(message)) return `the cluster does not serve every slot (${message}): see "redis-cli -p PORT cluster info" on ${nodes}`;
    // ioredis asks the nodes for their slots on connections whose errors it does not report.
    if (/None of startup nodes is available|Failed to refresh slots cache|Connection is closed/i.test(message)) return `no node of the cluster answered (${nodes}; is redis-server running there, on those ports, with cluster-enabled yes?)`;
  }
  // The server's address, or the one a node's or the primary's error names.
  const where = settings.mode === 'single' ? `${settings.connection.host}:${settings.connection.port}` : (/(\d{1,3}(?:\.\d{1,3}){3}|\[[^\]]+\]|[\w.-]+):(\d+)/.exec(message)?.[0] ?? 'the server');
  if (code === 'ECONNREFUSED') return `connection refused by ${where} (is redis-server running there, on that port?)`;
  if (code === 'ETIMEDOUT' || /ETIMEDOUT/.test(message)) return `timed out after ${settings.connection.connectTimeout ?? settings.timeout} ms (a firewall dropping packets, a wrong host, or a TLS URL, rediss://, for a server without TLS?)`;
  if (/Socket timeout/i.test(message)) return `${where} accepted the connection but did not answer within ${settings.timeout * 2} ms (not a Redis server, or one too busy to answer?)`;
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return `host "${(error as { hostname?: string }).hostname ?? settings.connection.host}" not found (DNS: ${code})`;
  if (code === 'ENETUNREACH' || code === 'EHOSTUNREACH') return `${settings.connection.host ?? where} is unreachable from here (${code})`;
  if (/WRONGPASS|NOAUTH|invalid password|invalid username-password/i.test(message)) return `authentication failed: ${message} (check the user and password in the URL)`;
  if (/NOPERM/.test(message)) return `the user may not run the commands the hub needs: ${message}`;
  if (/Unknown RESP type|Protocol error/i.test(message)) return `the server at ${where} does not speak the Redis protocol (${message})`;
  if (/SSL|TLS|certificate|handshake|EPROTO/i.test(message) || code === 'EPROTO') return `TLS failed: ${message}`;
  return code === undefined ? message : `${message} (${code})`;
}
