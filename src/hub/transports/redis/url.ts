/**
 * The `redis://` URL: its options and the connection settings they make.
 *
 * - `key=PREFIX` — prefix of the two keys used, `{PREFIX}:updates` (the stream) and `{PREFIX}:ids`
 *   (a hash from update ID to stream entry ID); default `ssehub`. The braces are a hash tag, so
 *   both keys live in one slot. Every node of one hub must use the same prefix and limits.
 * - `maxlen=N` — updates kept, instead of `--history-size` (0: no history, live delivery only).
 * - `maxage=DURATION` — how long an update is kept (`90s`, `7d`…), instead of `--history-ttl` (0: no limit).
 * - `timeout=DURATION` — how long a command may take before the publish answers 503 and the
 *   connection is treated as dead (default `1s`).
 */
import type { RedisOptions } from 'ioredis';
import { parseDuration } from '../../config.js';
import type { HistoryLimits } from '../transport.js';

/** Longest pause between reconnection attempts. */
const MAX_BACKOFF_MS = 2000;
const OPTIONS = new Set(['key', 'maxlen', 'maxage', 'timeout']);

/** What a `redis://` URL configures. */
export interface RedisSettings {
  /** Connection options shared by both connections. */
  connection: RedisOptions;
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
}

/** Reads a `redis://` or `rediss://` URL and its options; throws with a message naming a bad part. */
export function parseRedisUrl(spec: string, limits: HistoryLimits): RedisSettings {
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
  for (const name of url.searchParams.keys()) {
    if (!OPTIONS.has(name)) throw new Error(`${label}: unknown option "${name}" (known: ${[...OPTIONS].join(', ')})`);
  }
  const q = url.searchParams;
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
  const tls = url.protocol === 'rediss:';
  const host = url.hostname.replace(/^\[|\]$/g, '');
  return {
    connection: {
      host,
      port: url.port === '' ? 6379 : Number(url.port),
      db: path === '' ? 0 : Number(path),
      username: url.username === '' ? undefined : decodeURIComponent(url.username),
      password: url.password === '' ? undefined : decodeURIComponent(url.password),
      tls: tls ? { servername: host } : undefined,
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
      retryStrategy: (times: number) => Math.min(50 * 2 ** Math.min(times - 1, 10), MAX_BACKOFF_MS) + Math.floor(Math.random() * 100),
    },
    label,
    stream: `{${key}}:updates`,
    ids: `{${key}}:ids`,
    size,
    ttl,
    timeout,
  };
}


/** What went wrong when connecting, in words an operator can act on. */
export function describeConnectError(error: Error, settings: Pick<RedisSettings, 'connection' | 'timeout'>): string {
  const code = (error as NodeJS.ErrnoException).code;
  const { host, port } = settings.connection;
  const message = error.message;
  if (code === 'ECONNREFUSED') return `connection refused by ${host}:${port} (is redis-server running there, on that port?)`;
  if (code === 'ETIMEDOUT' || /ETIMEDOUT/.test(message)) return `timed out after ${settings.connection.connectTimeout ?? settings.timeout} ms (a firewall dropping packets, a wrong host, or a TLS URL, rediss://, for a server without TLS?)`;
  if (/Socket timeout/i.test(message)) return `${host}:${port} accepted the connection but did not answer within ${settings.timeout * 2} ms (not a Redis server, or one too busy to answer?)`;
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return `host "${host}" not found (DNS: ${code})`;
  if (code === 'ENETUNREACH' || code === 'EHOSTUNREACH') return `${host} is unreachable from here (${code})`;
  if (/WRONGPASS|NOAUTH|invalid password|invalid username-password/i.test(message)) return `authentication failed: ${message} (check the user and password in the URL)`;
  if (/NOPERM/.test(message)) return `the user may not run the commands the hub needs: ${message}`;
  if (/Unknown RESP type|Protocol error/i.test(message)) return `the server at ${host}:${port} does not speak the Redis protocol (${message})`;
  if (/SSL|TLS|certificate|handshake|EPROTO/i.test(message) || code === 'EPROTO') return `TLS failed: ${message}`;
  return code === undefined ? message : `${message} (${code})`;
}

