/**
 * The `nats://` URL: its options, and the client's reconnect delay.
 *
 * - `stream=NAME`    the JetStream stream (default `SSEHUB`); created, or updated to the limits.
 * - `subject=PREFIX` subject prefix (default `ssehub`): updates are stored on `PREFIX.updates.*`.
 * - `timeout=MS`     how long a publish or a read may wait for the server before it fails with 503
 *                    (default 2000). When the connection is known to be down they fail at once.
 * - `replicas=N`     stream replicas in a JetStream cluster (default 1).
 * - `heartbeat=MS`   idle heartbeat of the live consumer (default 1000); about three missed ones
 *                    make a node recreate it, e.g. after the server dropped it.
 * `--history-size` is the stream's `max_msgs` and `--history-ttl` its `max_age` (file storage,
 * discard old). The first node to start creates the stream; a node with other limits updates it.
 */

/** Reconnect delay bounds: it grows with the length of the outage, with jitter. */
const RECONNECT_MIN_MS = 100;
const RECONNECT_MAX_MS = 2000;

/** Settings from the `nats://` URL. */
export interface NatsOptions {
  servers: string;
  user?: string;
  pass?: string;
  token?: string;
  stream: string;
  prefix: string;
  timeout: number;
  replicas: number;
  heartbeat: number;
}

/** Parses `nats://…` and its query options; throws an Error naming the bad part. */
export function parseNatsUrl(spec: string): NatsOptions {
  let url: URL;
  try {
    url = new URL(spec);
  } catch {
    throw new Error(`"${spec}" is not a valid URL`);
  }
  if (url.protocol !== 'nats:') throw new Error(`expected a nats:// URL, got "${spec}"`);
  if (url.hostname === '') throw new Error(`"${spec}" names no host`);
  const options: NatsOptions = { servers: `${url.hostname}:${url.port || '4222'}`, stream: 'SSEHUB', prefix: 'ssehub', timeout: 2000, replicas: 1, heartbeat: 1000 };
  let user: string;
  let pass: string;
  try {
    user = decodeURIComponent(url.username);
    pass = decodeURIComponent(url.password);
  } catch {
    throw new Error(`the user or password in "${url.host}" is not valid percent-encoding`);
  }
  if (user !== '' && pass !== '') Object.assign(options, { user, pass });
  else if (user !== '') options.token = user;
  for (const [key, value] of url.searchParams) {
    switch (key) {
      case 'stream':
        if (!/^[A-Za-z0-9_-]{1,255}$/.test(value)) throw new Error(`stream "${value}": a JetStream stream name is letters, digits, "_" and "-"`);
        options.stream = value;
        break;
      case 'subject':
        if (!/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/.test(value)) throw new Error(`subject "${value}": expected dot-separated tokens of letters, digits, "_" and "-"`);
        options.prefix = value;
        break;
      case 'timeout':
        if (!/^\d{1,7}$/.test(value) || Number(value) === 0) throw new Error(`timeout "${value}": expected a positive number of milliseconds`);
        options.timeout = Number(value);
        break;
      case 'heartbeat':
        if (!/^\d{1,7}$/.test(value) || Number(value) < 100) throw new Error(`heartbeat "${value}": expected milliseconds, at least 100`);
        options.heartbeat = Number(value);
        break;
      case 'replicas':
        if (!/^[1-5]$/.test(value)) throw new Error(`replicas "${value}": expected 1 to 5`);
        options.replicas = Number(value);
        break;
      default:
        throw new Error(`unknown option "${key}" (expected stream, subject, timeout, replicas or heartbeat)`);
    }
  }
  return options;
}


/**
 * The client's reconnect delay: it grows with the outage (each wait is about half the time since
 * the connection was lost, so attempts about double their spacing) from 100 ms up to 2 s, with
 * jitter so that many hub processes do not reconnect in step. The client calls it before every
 * attempt (and while waiting), so a call long after the previous one starts a new outage.
 */
export function reconnectDelay(now: () => number = Date.now, random: () => number = Math.random): () => number {
  let since = 0;
  let last = -Infinity;
  return () => {
    const t = now();
    if (t - last > 2 * RECONNECT_MAX_MS) since = t;
    last = t;
    const base = Math.min(RECONNECT_MAX_MS, Math.max(RECONNECT_MIN_MS, (t - since) / 2));
    return Math.round(base * (0.75 + random() * 0.5));
  };
}

