/**
 * Hub settings: one table, read from (lowest to highest precedence) defaults, a config file
 * (`--config FILE`, JSON or YAML), `SSEHUB_<NAME>` environment variables, and flags. Every value
 * is validated at start-up; a bad one stops the hub with a message naming the setting.
 */
import { createPublicKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import { parse as parseYaml } from 'yaml';
import { ALGORITHMS, type Algorithm } from './core/tokens.js';

/** The issuer of the access tokens `--dev` prints, trusted in `--dev` when `--token-issuers` is empty. */
export const DEV_TOKEN_ISSUER = 'urn:ssehub:dev';

/** A setting with a bad value, found at start-up; the message names the setting. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  /** The setting, as its command-line flag (e.g. `--heartbeat`). */
  readonly setting: string;
  constructor(setting: string, message: string) {
    super(`${setting}: ${message}`);
    this.setting = setting;
  }
}

/** Validated hub configuration. Durations are in milliseconds, sizes in bytes. */
export interface HubConfig {
  listen: { host: string; port: number };
  tlsCert: string | undefined;
  tlsKey: string | undefined;
  jwtKey: string | undefined;
  publisherJwtKey: string | undefined;
  subscriberJwtKey: string | undefined;
  jwtAlg: Algorithm;
  jwksUrl: string | undefined;
  anonymous: boolean;
  corsOrigins: string[];
  publishOrigins: string[];
  cookieName: string;
  accessTokenCookie: string;
  tokenIssuers: string[];
  tokenAudience: string | undefined;
  transport: string;
  historySize: number;
  historyTtl: number;
  heartbeat: number;
  retry: number;
  writeTimeout: number;
  requestTimeout: number;
  maxConnections: number;
  maxConnectionsPerIp: number;
  maxBody: number;
  publishRate: number;
  subscriptions: boolean;
  drainTimeout: number;
  workers: number;
  tracing: boolean;
  ui: boolean;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  dev: boolean;
  presenceTtl: number;
  webhookUrls: string[];
  webhookSecret: string | undefined;
  webhookVacateDelay: number;
  centrifugo: boolean;
  apiKey: string | undefined;
  centrifugoPing: number;
  centrifugoMaxMessage: number;
  centrifugoCommandRate: number;
  centrifugoMaxSubscriptions: number;
  centrifugoJoinLeave: boolean;
}

type Kind = 'string' | 'secret' | 'bool' | 'duration' | 'size' | 'count' | 'list' | 'listen' | 'transport' | 'alg' | 'level' | 'rate' | 'url' | 'urls';

/** One setting: its flag name (kebab-case), type, default and one-line description. */
export interface Setting {
  name: string;
  key: keyof HubConfig;
  kind: Kind;
  default: string | undefined;
  description: string;
}

/** Every setting, in the order `--help` and docs/configuration.md list them. */
export const SETTINGS: readonly Setting[] = [
  { name: 'listen', key: 'listen', kind: 'listen', default: '127.0.0.1:3000', description: 'address and port to listen on (HOST:PORT, :PORT, or PORT); use 0.0.0.0:3000 in a container' },
  { name: 'tls-cert', key: 'tlsCert', kind: 'string', default: undefined, description: 'PEM certificate (chain) file: serve HTTPS with HTTP/2 (ALPN h2, HTTP/1.1 fallback); needs --tls-key' },
  { name: 'tls-key', key: 'tlsKey', kind: 'string', default: undefined, description: 'PEM private key file of --tls-cert' },
  { name: 'jwt-key', key: 'jwtKey', kind: 'secret', default: undefined, description: 'key verifying both publisher and subscriber tokens: an HMAC secret, or a PEM public key for RS*/ES*/EdDSA' },
  { name: 'publisher-jwt-key', key: 'publisherJwtKey', kind: 'secret', default: undefined, description: 'key for publisher tokens (overrides --jwt-key)' },
  { name: 'subscriber-jwt-key', key: 'subscriberJwtKey', kind: 'secret', default: undefined, description: 'key for subscriber tokens (overrides --jwt-key)' },
  { name: 'jwt-alg', key: 'jwtAlg', kind: 'alg', default: 'HS256', description: `the only signature algorithm accepted (${ALGORITHMS.join(', ')})` },
  { name: 'jwks-url', key: 'jwksUrl', kind: 'url', default: undefined, description: 'verify tokens with this JSON Web Key Set instead of a key' },
  { name: 'anonymous', key: 'anonymous', kind: 'bool', default: 'false', description: 'let clients without a token subscribe (they receive public updates only)' },
  { name: 'cors-origins', key: 'corsOrigins', kind: 'list', default: '', description: 'origins allowed by CORS, comma-separated (`*` for any, without credentials)' },
  { name: 'publish-origins', key: 'publishOrigins', kind: 'list', default: '', description: 'origins allowed to publish with a cookie token (CSRF protection), comma-separated' },
  { name: 'cookie-name', key: 'cookieName', kind: 'string', default: 'mercureAuthorization', description: 'name of the cookie holding a token' },
  { name: 'access-token-cookie', key: 'accessTokenCookie', kind: 'string', default: '__Secure-mercure_access_token', description: 'name of the cookie holding a Mercure 1.0 access token (browsers keep a __Secure- cookie from HTTPS or localhost only)' },
  { name: 'token-issuers', key: 'tokenIssuers', kind: 'list', default: '', description: 'issuers (`iss`) of Mercure 1.0 access tokens (`typ: at+jwt`) this hub trusts, comma-separated; their tokens are verified with the same keys or JWKS as draft-07 tokens (none: access tokens are refused; --dev trusts urn:ssehub:dev)' },
  { name: 'token-audience', key: 'tokenAudience', kind: 'url', default: undefined, description: 'the resource identifier Mercure 1.0 access tokens must name in `aud`, and the base of relative URL patterns (default: the hub\'s URL of /.well-known/mercure as each request reached it, http or https)' },
  { name: 'transport', key: 'transport', kind: 'transport', default: 'sqlite:ssehub-data/hub.db', description: 'history and dispatch: `memory`, `sqlite:PATH`, `redis://HOST:PORT[/DB]` (Redis Streams; options `?key=PREFIX&maxlen=N&maxage=7d&timeout=1s&replicas=0`), `redis+sentinel://HOST:PORT[,HOST:PORT]/PRIMARY` (the primary the Sentinels name, followed through failovers), `redis+cluster://HOST:PORT[,HOST:PORT]` (a Redis Cluster; both take the same options, replicas=1 by default: a publish is answered 200 once a replica has it) or `nats://HOST:PORT` (NATS JetStream; options `?stream=NAME&subject=PREFIX&timeout=2000&replicas=1`)' },
  { name: 'history-size', key: 'historySize', kind: 'count', default: '100000', description: 'updates kept in history for resume (0: none)' },
  { name: 'history-ttl', key: 'historyTtl', kind: 'duration', default: '7d', description: 'how long an update stays in history (0: no limit)' },
  { name: 'heartbeat', key: 'heartbeat', kind: 'duration', default: '15s', description: 'interval of heartbeat comments; keep it below every proxy idle timeout (0: off)' },
  { name: 'retry', key: 'retry', kind: 'duration', default: '3s', description: 'reconnection time sent to clients (`retry:`) when a stream opens; graceful closes send 1–2× it, jittered' },
  { name: 'write-timeout', key: 'writeTimeout', kind: 'duration', default: '10m', description: 'maximum life of a stream, randomised to 80–100 %; it ends between events and the client resumes (0: none)' },
  { name: 'request-timeout', key: 'requestTimeout', kind: 'duration', default: '10s', description: 'time a client has to send a whole request (its head and, for a publish, its body); slower gets 408 and is closed, so slowloris clients cannot hold connections' },
  { name: 'max-connections', key: 'maxConnections', kind: 'count', default: '10000', description: 'open streams per hub process; more get 503 with Retry-After (0: no limit)' },
  { name: 'max-connections-per-ip', key: 'maxConnectionsPerIp', kind: 'count', default: '0', description: 'open streams per client address; more get 429 (0: no limit; behind a proxy every client shares its address)' },
  { name: 'max-body', key: 'maxBody', kind: 'size', default: '1mb', description: 'largest publish body; larger gets 413 (e.g. 64kb, 1mb)' },
  { name: 'publish-rate', key: 'publishRate', kind: 'rate', default: '0', description: 'publishes per second per token subject or address, e.g. 100 or 100/s or 6000/m; over it gets 429 (0: no limit)' },
  { name: 'subscriptions', key: 'subscriptions', kind: 'bool', default: 'false', description: 'publish subscription events and serve the subscriptions API' },
  { name: 'drain-timeout', key: 'drainTimeout', kind: 'duration', default: '10s', description: 'on SIGTERM, the window over which streams are closed in batches' },
  { name: 'workers', key: 'workers', kind: 'count', default: '1', description: 'hub processes on this machine sharing the port (0: one per CPU); more than 1 needs a redis:// or nats:// transport' },
  { name: 'ui', key: 'ui', kind: 'bool', default: 'false', description: 'serve the /ui dashboard (always on with --dev); reading it needs a token with the claim ssehub.ui: true (ssehub token --ui)' },
  { name: 'tracing', key: 'tracing', kind: 'bool', default: 'false', description: 'OpenTelemetry spans for publishes, connections and deliveries, through the optional @opentelemetry/api; register an SDK in the process (e.g. node --import ./otel.mjs dist/cli.js serve)' },
  { name: 'presence-ttl', key: 'presenceTtl', kind: 'duration', default: '30s', description: 'how long the presence of a node outlives it: a node that stops renewing its lease (killed, cut off) has its subscribers removed from the cluster, and announced gone, within this' },
  { name: 'webhook-url', key: 'webhookUrls', kind: 'urls', default: '', description: 'POST subscriber.connected, subscriber.disconnected, topic.occupied and topic.vacated events here, once per cluster, signed per Standard Webhooks (repeatable, or comma-separated); needs --webhook-secret' },
  { name: 'webhook-secret', key: 'webhookSecret', kind: 'secret', default: undefined, description: 'the Standard Webhooks signing secret: whsec_ and the base64 of 24 to 64 random bytes (e.g. whsec_$(openssl rand -base64 32))' },
  { name: 'webhook-vacate-delay', key: 'webhookVacateDelay', kind: 'duration', default: '5s', description: 'how long a topic stays without subscribers in the whole cluster before topic.vacated is sent, so that a reconnect does not flap it' },
  { name: 'centrifugo', key: 'centrifugo', kind: 'bool', default: 'true', description: 'speak the Centrifugo client protocol (v2, JSON) to its SDKs on the same topics, history and tokens: /connection/websocket, and bidirectional SSE and HTTP streaming (/connection/sse, /connection/http_stream, POST /emulation); see docs/websocket.md' },
  { name: 'api-key', key: 'apiKey', kind: 'secret', default: undefined, description: 'key of the Centrifugo server HTTP API (POST /api/publish, /api/broadcast, /api/history, /api/presence, …), sent as "X-API-Key: KEY" or "Authorization: apikey KEY"; without it the API is off' },
  { name: 'centrifugo-ping', key: 'centrifugoPing', kind: 'duration', default: '25s', description: 'interval of the Centrifugo protocol\'s pings; a client that has not answered one by the next is disconnected (no pong). Keep it below every proxy idle timeout (0: no pings)' },
  { name: 'centrifugo-max-message', key: 'centrifugoMaxMessage', kind: 'size', default: '64kb', description: 'largest message a Centrifugo client may send (a WebSocket message, closed with 1009 past it; an emulation or streaming request, 413)' },
  { name: 'centrifugo-command-rate', key: 'centrifugoCommandRate', kind: 'rate', default: '100/s', description: 'commands per second per Centrifugo connection, e.g. 100 or 6000/m; past it a command is answered 111 (too many requests), and a flood past twice it is disconnected (3013) (0: no limit)' },
  { name: 'centrifugo-max-subscriptions', key: 'centrifugoMaxSubscriptions', kind: 'count', default: '128', description: 'channels one Centrifugo connection may subscribe to at once; more are answered 106 (limit exceeded) (0: no limit)' },
  { name: 'centrifugo-join-leave', key: 'centrifugoJoinLeave', kind: 'bool', default: 'false', description: 'push join and leave messages (any protocol\'s subscribers of a channel, across the cluster) to Centrifugo clients that subscribe with join_leave' },
  { name: 'log-level', key: 'logLevel', kind: 'level', default: 'info', description: 'fatal, error, warn, info, debug, trace or silent' },
  { name: 'dev', key: 'dev', kind: 'bool', default: 'false', description: 'zero-config demo: ephemeral key, printed tokens and curl commands, anonymous subscribers, CORS for any origin. Never in production' },
];

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const SIZES: Record<string, number> = { '': 1, b: 1, kb: 1024, k: 1024, mb: 1024 ** 2, m: 1024 ** 2, gb: 1024 ** 3, g: 1024 ** 3 };

/** Parses a duration: `1500ms`, `15s`, `10m`, `2h`, `7d`, or `0`. Returns ms. */
export function parseDuration(value: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(value.trim());
  if (m === null || (m[2] === undefined && Number(m[1]) !== 0)) throw new Error(`expected a duration such as 500ms, 15s, 10m, 2h or 7d, got "${value}"`);
  return Math.round(Number(m[1]) * (UNITS[m[2] ?? 's'] as number));
}

/** Parses a size: `1024`, `64kb`, `1mb`. Returns bytes. */
export function parseSize(value: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmg]?b?)$/i.exec(value.trim());
  if (m === null) throw new Error(`expected a size such as 65536, 64kb or 1mb, got "${value}"`);
  return Math.floor(Number(m[1]) * (SIZES[(m[2] ?? '').toLowerCase()] as number));
}

function parseValue(setting: Setting, raw: string): unknown {
  const value = raw.trim();
  switch (setting.kind) {
    case 'string':
    case 'secret':
      if (value === '') throw new Error('must not be empty');
      return raw;
    case 'bool':
      if (/^(true|1|yes|on)$/i.test(value)) return true;
      if (/^(false|0|no|off)$/i.test(value)) return false;
      throw new Error(`expected true or false, got "${raw}"`);
    case 'duration':
      return parseDuration(value);
    case 'size':
      return parseSize(value);
    case 'count': {
      if (!/^\d+$/.test(value) || !Number.isSafeInteger(Number(value))) throw new Error(`expected a whole number, got "${raw}"`);
      return Number(value);
    }
    case 'list':
      return value === '' ? [] : value.split(',').map((s) => s.trim()).filter((s) => s !== '');
    case 'listen': {
      const m = /^(?:(\[[0-9a-fA-F:.]+\]|[^:]*):)?(\d{1,5})$/.exec(value);
      const port = Number(m?.[2]);
      if (m === null || port > 65535) throw new Error(`expected HOST:PORT (e.g. 0.0.0.0:3000 or :3000), got "${raw}"`);
      const host = (m[1] ?? '').replace(/^\[|\]$/g, '');
      return { host: host === '' ? '0.0.0.0' : host, port };
    }
    case 'transport': {
      if (value === 'memory' || /^sqlite:.+/.test(value)) return value;
      // Several HOST:PORT, which URL does not take; the transport checks the rest when it connects.
      if (/^redis\+(sentinel|cluster):\/\/[^/?#]+/.test(value)) return value;
      if (/^(redis|rediss|nats):\/\//.test(value)) {
        try {
          new URL(value);
          return value;
        } catch {
          throw new Error(`"${raw}" is not a valid URL`);
        }
      }
      throw new Error(`expected "memory", "sqlite:PATH", "redis://HOST:PORT[/DB]", "redis+sentinel://HOST:PORT[,HOST:PORT]/PRIMARY", "redis+cluster://HOST:PORT[,HOST:PORT]" or "nats://HOST:PORT", got "${raw}"`);
    }
    case 'alg':
      if ((ALGORITHMS as readonly string[]).includes(value)) return value;
      throw new Error(`expected one of ${ALGORITHMS.join(', ')}, got "${raw}"`);
    case 'level':
      if (['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].includes(value)) return value;
      throw new Error(`expected fatal, error, warn, info, debug, trace or silent, got "${raw}"`);
    case 'rate': {
      const m = /^(\d+(?:\.\d+)?)(?:\/(s|m|h))?$/.exec(value);
      if (m === null) throw new Error(`expected ${setting.name === 'publish-rate' ? 'publishes' : 'commands'} per second such as 100, 100/s or 6000/m, got "${raw}"`);
      return Number(m[1]) / ({ s: 1, m: 60, h: 3600 }[m[2] ?? 's'] as number);
    }
    case 'urls':
      return value === ''
        ? []
        : value
            .split(',')
            .map((v) => v.trim())
            .filter((v) => v !== '')
            .map((v) => {
              try {
                const url = new URL(v);
                if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new Error();
                return v;
              } catch {
                throw new Error(`expected http(s) URLs, got "${v}"`);
              }
            });
    case 'url':
      try {
        const url = new URL(value);
        if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new Error();
        return value;
      } catch {
        throw new Error(`expected an http(s) URL, got "${raw}"`);
      }
  }
}

const BY_NAME = new Map(SETTINGS.map((s) => [s.name, s]));

/** Where settings come from. */
export interface ConfigSources {
  argv?: string[];
  env?: NodeJS.ProcessEnv;
}

/** Splits `argv` into settings and leftover positional arguments; throws ConfigError on an unknown flag. */
export function parseFlags(argv: string[]): { values: Map<string, string>; configFile: string | undefined; positionals: string[] } {
  const values = new Map<string, string>();
  const positionals: string[] = [];
  let configFile: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (!arg.startsWith('--')) {
      positionals.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    let name = eq === -1 ? arg.slice(2) : arg.slice(2, eq);
    let value: string | undefined = eq === -1 ? undefined : arg.slice(eq + 1);
    if (name === 'config') {
      configFile = value ?? argv[++i];
      if (configFile === undefined) throw new ConfigError('--config', 'expected a file name');
      continue;
    }
    if (name.startsWith('no-') && BY_NAME.get(name.slice(3))?.kind === 'bool' && value === undefined) {
      name = name.slice(3);
      value = 'false';
    }
    const setting = BY_NAME.get(name);
    if (setting === undefined) throw new ConfigError(`--${name}`, `unknown setting; run "ssehub serve --help" for the list`);
    if (value === undefined) {
      if (setting.kind === 'bool') value = 'true';
      else {
        value = argv[++i];
        if (value === undefined) throw new ConfigError(`--${name}`, 'expected a value');
      }
    }
    // A repeatable setting: each use adds a value.
    const before = values.get(name);
    values.set(name, setting.kind === 'urls' && before !== undefined && before !== '' ? `${before},${value}` : value);
  }
  return { values, configFile, positionals };
}

function readConfigFile(path: string): Map<string, string> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError('--config', `cannot read ${path}: ${(error as Error).message}`);
  }
  let data: unknown;
  try {
    data = /\.json$/i.test(path) ? JSON.parse(text) : parseYaml(text);
  } catch (error) {
    throw new ConfigError('--config', `${path} is not valid ${/\.json$/i.test(path) ? 'JSON' : 'YAML'}: ${(error as Error).message}`);
  }
  if (data === null || data === undefined) return new Map();
  if (typeof data !== 'object' || Array.isArray(data)) throw new ConfigError('--config', `${path} must hold a mapping of setting names to values`);
  const values = new Map<string, string>();
  for (const [key, value] of Object.entries(data)) {
    const name = key.replace(/_/g, '-').replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
    if (!BY_NAME.has(name)) throw new ConfigError(`${path}: ${key}`, 'unknown setting');
    if (value === null || typeof value === 'object') {
      if (Array.isArray(value) && value.every((v) => typeof v === 'string')) {
        values.set(name, value.join(','));
        continue;
      }
      throw new ConfigError(`${path}: ${key}`, 'expected a string, number or boolean');
    }
    values.set(name, String(value));
  }
  return values;
}

/** Reads and validates the configuration; throws ConfigError naming the first bad setting. */
export function loadConfig(sources: ConfigSources = {}): HubConfig {
  const env = sources.env ?? process.env;
  const flags = parseFlags(sources.argv ?? []);
  if (flags.positionals.length > 0) throw new ConfigError(flags.positionals[0] as string, 'unexpected argument (settings are given as --name value)');
  const configFile = flags.configFile ?? env.SSEHUB_CONFIG;
  const layers: [Map<string, string>, (name: string) => string][] = [];
  if (configFile !== undefined && configFile !== '') layers.push([readConfigFile(configFile), (n) => `${configFile}: ${n}`]);
  const fromEnv = new Map<string, string>();
  for (const s of SETTINGS) {
    const value = env[envName(s.name)];
    if (value !== undefined) fromEnv.set(s.name, value);
  }
  layers.push([fromEnv, (n) => envName(n)], [flags.values, (n) => `--${n}`]);

  const config: Record<string, unknown> = {};
  // Where each value came from, so an error names the flag, variable or file entry to fix.
  const origins = new Map<string, string>();
  for (const s of SETTINGS) {
    let raw = s.default;
    let origin = `--${s.name}`;
    for (const [values, label] of layers) {
      const v = values.get(s.name);
      if (v !== undefined) {
        raw = v;
        origin = label(s.name);
      }
    }
    origins.set(s.name, origin);
    if (raw === undefined) {
      config[s.key] = undefined;
      continue;
    }
    try {
      config[s.key] = parseValue(s, raw);
    } catch (error) {
      throw new ConfigError(origin, (error as Error).message);
    }
  }
  const result = config as unknown as HubConfig;
  validate(result, (name) => origins.get(name) ?? `--${name}`);
  // --dev signs its printed access tokens as this issuer, so trusts it unless told otherwise.
  if (result.dev && result.tokenIssuers.length === 0) result.tokenIssuers = [DEV_TOKEN_ISSUER];
  return result;
}

/** The environment variable of a setting: `SSEHUB_` and the name in upper snake case. */
export function envName(name: string): string {
  return `SSEHUB_${name.toUpperCase().replace(/-/g, '_')}`;
}

/** Key types each asymmetric algorithm family verifies with. */
const KEY_TYPES: Record<string, string[]> = { RS: ['rsa'], PS: ['rsa', 'rsa-pss'], ES: ['ec'], Ed: ['ed25519', 'ed448'] };

/** Checks that a PEM key is a public key (or certificate) of the kind `alg` needs; returns what is wrong, or `undefined`. */
function pemProblem(key: string, alg: string): string | undefined {
  const pem = key.replace(/\\n/g, '\n');
  if (!pem.includes('-----BEGIN')) return `--jwt-alg ${alg} needs a PEM public key (-----BEGIN PUBLIC KEY-----), not a secret`;
  if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(pem)) return 'this is a private key; give the hub the public key (or certificate) only';
  let type: string | undefined;
  try {
    type = createPublicKey(pem).asymmetricKeyType;
  } catch (error) {
    return `not a readable PEM public key or certificate (${(error as Error).message})`;
  }
  const expected = KEY_TYPES[alg.slice(0, 2)] ?? [];
  if (type === undefined || !expected.includes(type)) return `--jwt-alg ${alg} needs a ${expected.join(' or ')} key, got ${type ?? 'an unknown'} key`;
  return undefined;
}

/** Cross-setting checks; `at(name)` is where a setting's value came from (flag, variable or file entry). */
function validate(c: HubConfig, at: (name: string) => string): void {
  const asymmetric = !c.jwtAlg.startsWith('HS');
  for (const [name, key] of [['jwt-key', c.jwtKey], ['publisher-jwt-key', c.publisherJwtKey], ['subscriber-jwt-key', c.subscriberJwtKey]] as const) {
    if (key === undefined) continue;
    const problem = asymmetric ? pemProblem(key, c.jwtAlg) : key.length < 32 ? `an ${c.jwtAlg} secret must be at least 32 characters (256 bits) long` : undefined;
    if (problem !== undefined) throw new ConfigError(at(name), problem);
  }
  // --dev makes an ephemeral key when none is given; every other check still applies.
  if (!c.dev && c.jwtKey === undefined && c.publisherJwtKey === undefined && c.jwksUrl === undefined) {
    throw new ConfigError('--jwt-key', 'no key to verify publisher tokens: set --jwt-key, --publisher-jwt-key or --jwks-url (or try --dev)');
  }
  if (!c.dev && !c.anonymous && c.jwtKey === undefined && c.subscriberJwtKey === undefined && c.jwksUrl === undefined) {
    throw new ConfigError('--subscriber-jwt-key', 'no key to verify subscriber tokens and --anonymous is off, so nobody could subscribe: set --subscriber-jwt-key (or --jwt-key), or --anonymous');
  }
  if (c.dev && asymmetric && c.jwtKey === undefined && c.jwksUrl === undefined) {
    throw new ConfigError(at('jwt-alg'), `--dev makes an HMAC key, so it needs HS256, HS384 or HS512 unless --jwt-key gives a ${c.jwtAlg} public key`);
  }
  if (c.corsOrigins.includes('*') && c.corsOrigins.length > 1) throw new ConfigError(at('cors-origins'), '"*" cannot be combined with other origins');
  for (const [name, origins] of [['cors-origins', c.corsOrigins], ['publish-origins', c.publishOrigins]] as const) {
    for (const origin of origins) {
      if (origin === '*') continue;
      try {
        if (new URL(origin).origin !== origin) throw new Error();
      } catch {
        throw new ConfigError(at(name), `"${origin}" is not an origin (scheme://host[:port], no path)`);
      }
    }
  }
  checkTls(c, at);
  if (c.heartbeat > 0 && c.heartbeat < 100) throw new ConfigError(at('heartbeat'), 'must be 0 (off) or at least 100ms');
  if (c.writeTimeout > 0 && c.writeTimeout < 1000) throw new ConfigError(at('write-timeout'), 'must be 0 (none) or at least 1s');
  if (c.requestTimeout < 1000 || c.requestTimeout > 3_600_000) throw new ConfigError(at('request-timeout'), 'must be from 1s to 1h');
  if (c.maxBody < 1) throw new ConfigError(at('max-body'), 'must be at least 1 byte');
  if (c.presenceTtl < 1000) throw new ConfigError(at('presence-ttl'), 'must be at least 1s (a node renews its lease three times per TTL)');
  if (c.centrifugoPing > 0 && c.centrifugoPing < 500) throw new ConfigError(at('centrifugo-ping'), 'must be 0 (no pings) or at least 500ms');
  if (c.centrifugoPing > 3_600_000) throw new ConfigError(at('centrifugo-ping'), 'must be at most 1h (the SDKs wait for the next ping this long, plus their own delay, before they reconnect)');
  if (c.centrifugoMaxMessage < 1024 || c.centrifugoMaxMessage > 64 * 1024 * 1024) throw new ConfigError(at('centrifugo-max-message'), 'must be from 1kb (a connect command carries a token) to 64mb');
  if (c.apiKey !== undefined && c.apiKey.length < 16) throw new ConfigError(at('api-key'), 'must be at least 16 characters long (e.g. $(openssl rand -hex 24)): it lets anyone who has it publish to every channel and disconnect every client');
  if (c.webhookUrls.length > 0 && c.webhookSecret === undefined) throw new ConfigError(at('webhook-url'), 'webhooks are signed: set --webhook-secret too (whsec_ and the base64 of 24 to 64 random bytes)');
  if (c.webhookSecret !== undefined) {
    const raw = c.webhookSecret.startsWith('whsec_') ? c.webhookSecret.slice('whsec_'.length) : undefined;
    const bytes = raw !== undefined && /^[A-Za-z0-9+/]+={0,2}$/.test(raw) ? Buffer.from(raw, 'base64').length : 0;
    if (bytes < 24 || bytes > 64) throw new ConfigError(at('webhook-secret'), 'expected whsec_ and the base64 of 24 to 64 random bytes, e.g. whsec_$(openssl rand -base64 32)');
  }
  if (c.workers !== 1 && (c.transport === 'memory' || c.transport.startsWith('sqlite:'))) {
    throw new ConfigError(at('workers'), `more than one process needs a shared transport (redis:// or nats://): with ${c.transport === 'memory' ? 'memory' : 'sqlite'} each process would keep its own history and see only its own updates`);
  }
}

/** Reads a file named by a setting, or throws ConfigError naming it. */
function readSettingFile(path: string, where: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError(where, `cannot read the ${what} file ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
}

/** `--tls-cert` and `--tls-key` come together, are readable PEM files, and the key belongs to the certificate. */
function checkTls(c: HubConfig, at: (name: string) => string): void {
  if (c.tlsCert === undefined && c.tlsKey === undefined) return;
  if (c.tlsCert === undefined) throw new ConfigError(at('tls-key'), 'needs --tls-cert too (the certificate of this key)');
  if (c.tlsKey === undefined) throw new ConfigError(at('tls-cert'), 'needs --tls-key too (the private key of this certificate)');
  const cert = readSettingFile(c.tlsCert, at('tls-cert'), 'certificate');
  const key = readSettingFile(c.tlsKey, at('tls-key'), 'private key');
  if (!cert.includes('-----BEGIN CERTIFICATE-----')) throw new ConfigError(at('tls-cert'), `${c.tlsCert} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
  if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(key)) throw new ConfigError(at('tls-key'), `${c.tlsKey} holds no PEM private key (-----BEGIN PRIVATE KEY-----)`);
  try {
    createSecureContext({ cert, key });
  } catch (error) {
    const message = (error as Error).message;
    const where = /key values mismatch|KEY_VALUES_MISMATCH/i.test(message) ? at('tls-key') : at('tls-cert');
    throw new ConfigError(where, `the certificate and key cannot be used together: ${message}`);
  }
}
