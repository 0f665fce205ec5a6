// Hub settings (SPEC §3 "Operating it"): every setting from a flag, an SSEHUB_* variable and a
// JSON or YAML config file, with flags > environment > file > defaults; values parsed into ms,
// bytes and rates; and every bad value refused with a ConfigError naming where it came from.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { stringify as toYaml } from 'yaml';
import { ConfigError, type HubConfig, SETTINGS, envName, loadConfig } from '../../src/hub/index.js';
import { makeCertificate } from '../helpers/tls.js';

const KEY = 'a-secret-of-at-least-thirty-two-characters';
const OTHER = 'another-secret-of-at-least-thirty-two-chars';

const dir = mkdtempSync(join(tmpdir(), 'ssehub-config-test-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;

/** Writes a config file and returns its path. */
function configFile(ext: 'json' | 'yaml' | 'yml', text: string): string {
  const path = join(dir, `config-${++files}.${ext}`);
  writeFileSync(path, text);
  return path;
}

const load = (argv: string[], env: NodeJS.ProcessEnv = {}): HubConfig => loadConfig({ argv, env });

/** Runs `fn`, expecting a ConfigError naming `setting`; returns it. */
function refused(fn: () => unknown, setting: string, message?: RegExp): ConfigError {
  let caught: unknown;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof ConfigError, `expected a ConfigError naming ${setting}, got ${String(caught)}`);
  assert.equal(caught.setting, setting);
  assert.ok(caught.message.startsWith(`${setting}: `), caught.message);
  if (message !== undefined) assert.match(caught.message, message);
  return caught;
}

const CERT = makeCertificate();

/** A value for every setting, and what it becomes in HubConfig; `with` are settings it needs beside it. */
/** A Standard Webhooks secret: whsec_ and the base64 of 32 bytes. */
const WEBHOOK_SECRET = `whsec_${Buffer.alloc(32, 7).toString('base64')}`;

const SAMPLES: Record<string, { raw: string; key: keyof HubConfig; expected: unknown; with?: Record<string, string> }> = {
  listen: { raw: '0.0.0.0:8080', key: 'listen', expected: { host: '0.0.0.0', port: 8080 } },
  'tls-cert': { raw: CERT.certPath, key: 'tlsCert', expected: CERT.certPath, with: { 'tls-key': CERT.keyPath } },
  'tls-key': { raw: CERT.keyPath, key: 'tlsKey', expected: CERT.keyPath, with: { 'tls-cert': CERT.certPath } },
  'jwt-key': { raw: OTHER, key: 'jwtKey', expected: OTHER },
  'publisher-jwt-key': { raw: OTHER, key: 'publisherJwtKey', expected: OTHER },
  'subscriber-jwt-key': { raw: OTHER, key: 'subscriberJwtKey', expected: OTHER },
  'jwt-alg': { raw: 'HS512', key: 'jwtAlg', expected: 'HS512' },
  'jwks-url': { raw: 'https://id.example.com/.well-known/jwks.json', key: 'jwksUrl', expected: 'https://id.example.com/.well-known/jwks.json' },
  anonymous: { raw: 'true', key: 'anonymous', expected: true },
  'cors-origins': { raw: 'https://a.example.com, https://b.example.com:8443', key: 'corsOrigins', expected: ['https://a.example.com', 'https://b.example.com:8443'] },
  'publish-origins': { raw: 'https://admin.example.com', key: 'publishOrigins', expected: ['https://admin.example.com'] },
  'cookie-name': { raw: 'hubToken', key: 'cookieName', expected: 'hubToken' },
  'access-token-cookie': { raw: 'hub_access_token', key: 'accessTokenCookie', expected: 'hub_access_token' },
  'token-issuers': { raw: 'https://a.example,https://b.example', key: 'tokenIssuers', expected: ['https://a.example', 'https://b.example'] },
  'token-audience': { raw: 'https://hub.example.com/.well-known/mercure', key: 'tokenAudience', expected: 'https://hub.example.com/.well-known/mercure' },
  transport: { raw: 'sqlite:/var/lib/ssehub/hub.db', key: 'transport', expected: 'sqlite:/var/lib/ssehub/hub.db' },
  'history-size': { raw: '500', key: 'historySize', expected: 500 },
  'history-ttl': { raw: '2h', key: 'historyTtl', expected: 2 * 3_600_000 },
  heartbeat: { raw: '30s', key: 'heartbeat', expected: 30_000 },
  retry: { raw: '250ms', key: 'retry', expected: 250 },
  workers: { raw: '1', key: 'workers', expected: 1 },
  tracing: { raw: 'true', key: 'tracing', expected: true },
  ui: { raw: 'true', key: 'ui', expected: true },
  'write-timeout': { raw: '5m', key: 'writeTimeout', expected: 5 * 60_000 },
  'request-timeout': { raw: '30s', key: 'requestTimeout', expected: 30_000 },
  'max-connections': { raw: '50', key: 'maxConnections', expected: 50 },
  'max-connections-per-ip': { raw: '3', key: 'maxConnectionsPerIp', expected: 3 },
  'max-body': { raw: '64kb', key: 'maxBody', expected: 64 * 1024 },
  'publish-rate': { raw: '6000/m', key: 'publishRate', expected: 100 },
  subscriptions: { raw: 'true', key: 'subscriptions', expected: true },
  'drain-timeout': { raw: '30s', key: 'drainTimeout', expected: 30_000 },
  'log-level': { raw: 'debug', key: 'logLevel', expected: 'debug' },
  dev: { raw: 'true', key: 'dev', expected: true },
  'presence-ttl': { raw: '10s', key: 'presenceTtl', expected: 10_000 },
  'webhook-url': { raw: 'https://api.example.com/hooks, http://10.0.0.7:8080/ssehub', key: 'webhookUrls', expected: ['https://api.example.com/hooks', 'http://10.0.0.7:8080/ssehub'], with: { 'webhook-secret': WEBHOOK_SECRET } },
  'webhook-secret': { raw: WEBHOOK_SECRET, key: 'webhookSecret', expected: WEBHOOK_SECRET },
  'webhook-vacate-delay': { raw: '1500ms', key: 'webhookVacateDelay', expected: 1500 },
  centrifugo: { raw: 'false', key: 'centrifugo', expected: false },
  'api-key': { raw: 'api-key-of-at-least-16-chars', key: 'apiKey', expected: 'api-key-of-at-least-16-chars' },
  'centrifugo-ping': { raw: '10s', key: 'centrifugoPing', expected: 10_000 },
  'centrifugo-max-message': { raw: '128kb', key: 'centrifugoMaxMessage', expected: 128 * 1024 },
  'centrifugo-command-rate': { raw: '600/m', key: 'centrifugoCommandRate', expected: 10 },
  'centrifugo-max-subscriptions': { raw: '16', key: 'centrifugoMaxSubscriptions', expected: 16 },
  'centrifugo-join-leave': { raw: 'true', key: 'centrifugoJoinLeave', expected: true },
};

describe('config: where settings come from', () => {
  it('has a sample for every setting of the table (so each is tested from every source)', () => {
    assert.deepEqual(Object.keys(SAMPLES).sort(), SETTINGS.map((s) => s.name).sort());
    for (const s of SETTINGS) assert.equal(SAMPLES[s.name]?.key, s.key, s.name);
  });

  for (const [name, { raw, key, expected, with: others }] of Object.entries(SAMPLES)) {
    // Every source also carries a publisher key, except when the sample is that key.
    const base: Record<string, string> = { ...(name === 'jwt-key' ? {} : { 'jwt-key': KEY }), ...others };
    const values = { ...base, [name]: raw };

    it(`reads ${name} from the flag --${name}`, () => {
      const argv = Object.entries(values).flatMap(([n, v]) => [`--${n}=${v}`]);
      assert.deepEqual(load(argv)[key], expected);
    });

    it(`reads ${name} from the variable ${envName(name)}`, () => {
      const env = Object.fromEntries(Object.entries(values).map(([n, v]) => [envName(n), v]));
      assert.deepEqual(load([], env)[key], expected);
    });

    it(`reads ${name} from a JSON config file`, () => {
      assert.deepEqual(load(['--config', configFile('json', JSON.stringify(values))])[key], expected);
    });

    it(`reads ${name} from a YAML config file`, () => {
      assert.deepEqual(load(['--config', configFile('yaml', toYaml(values))])[key], expected);
    });
  }

  it('reads a space-separated flag value as well as --name=value', () => {
    assert.equal(load(['--jwt-key', KEY, '--heartbeat', '20s']).heartbeat, 20_000);
  });

  it('takes YAML booleans, numbers and lists as they are, and camelCase or snake_case keys', () => {
    const path = configFile('yml', [`jwtKey: ${KEY}`, 'anonymous: true', 'history_size: 250', 'historyTtl: 1d', 'cors-origins:', '  - https://a.example.com', '  - https://b.example.com'].join('\n'));
    const c = load(['--config', path]);
    assert.equal(c.jwtKey, KEY);
    assert.equal(c.anonymous, true);
    assert.equal(c.historySize, 250);
    assert.equal(c.historyTtl, 86_400_000);
    assert.deepEqual(c.corsOrigins, ['https://a.example.com', 'https://b.example.com']);
  });

  it('reads the config file named by SSEHUB_CONFIG when there is no --config', () => {
    const path = configFile('json', JSON.stringify({ 'jwt-key': KEY, heartbeat: '20s' }));
    assert.equal(load([], { SSEHUB_CONFIG: path }).heartbeat, 20_000);
  });

  it('ranks flags over the environment, the environment over the file, and the file over the default', () => {
    const path = configFile('yaml', `jwt-key: ${KEY}\nheartbeat: 20s\n`);
    assert.equal(load(['--config', path, '--heartbeat', '40s'], { SSEHUB_HEARTBEAT: '30s' }).heartbeat, 40_000);
    assert.equal(load(['--config', path], { SSEHUB_HEARTBEAT: '30s' }).heartbeat, 30_000);
    assert.equal(load(['--config', path]).heartbeat, 20_000);
    assert.equal(load(['--jwt-key', KEY]).heartbeat, 15_000);
  });

  it('turns a boolean off with --no-<name>, over the environment', () => {
    assert.equal(load(['--jwt-key', KEY, '--no-anonymous'], { SSEHUB_ANONYMOUS: 'true' }).anonymous, false);
    assert.equal(load(['--jwt-key', KEY], { SSEHUB_ANONYMOUS: 'true' }).anonymous, true);
  });

  it('lets the last of a repeated flag win', () => {
    assert.equal(load(['--jwt-key', KEY, '--heartbeat', '20s', '--heartbeat', '25s']).heartbeat, 25_000);
  });
});

describe('config: defaults', () => {
  const defaults = load(['--jwt-key', KEY]);

  it('uses the documented defaults: heartbeat 15s, history-ttl 7d, write-timeout 10m, max-body 1mb', () => {
    assert.equal(defaults.heartbeat, 15_000);
    assert.equal(defaults.historyTtl, 7 * 86_400_000);
    assert.equal(defaults.writeTimeout, 10 * 60_000);
    assert.equal(defaults.maxBody, 1024 * 1024);
    assert.equal(defaults.drainTimeout, 10_000);
  });

  it('stores history in sqlite by default', () => {
    assert.match(defaults.transport, /^sqlite:.+/);
  });

  it('is safe by default: HS256 only, no anonymous subscribers, no CORS, no cookie publishes from any origin', () => {
    assert.equal(defaults.jwtAlg, 'HS256');
    assert.equal(defaults.anonymous, false);
    assert.deepEqual(defaults.corsOrigins, []);
    assert.deepEqual(defaults.publishOrigins, []);
    assert.equal(defaults.cookieName, 'mercureAuthorization');
    assert.equal(defaults.maxConnections, 10_000);
    assert.deepEqual(defaults.listen, { host: '127.0.0.1', port: 3000 });
  });

  it('gives every setting its table default when nothing sets it', () => {
    for (const s of SETTINGS) {
      if (s.default === undefined || s.name === 'jwt-key') continue;
      assert.deepEqual(defaults[s.key], load(['--jwt-key', KEY, `--${s.name}=${s.default}`])[s.key], s.name);
    }
  });
});

describe('config: units', () => {
  for (const [raw, ms] of [['500ms', 500], ['15s', 15_000], ['1.5s', 1500], ['10m', 600_000], ['2h', 7_200_000], ['7d', 604_800_000], ['0', 0]] as const) {
    it(`reads the duration ${raw} as ${ms} ms`, () => {
      assert.equal(load(['--jwt-key', KEY, '--history-ttl', raw]).historyTtl, ms);
    });
  }

  for (const [raw, bytes] of [['64kb', 65_536], ['1mb', 1_048_576], ['1MB', 1_048_576], ['2048', 2048]] as const) {
    it(`reads the size ${raw} as ${bytes} bytes`, () => {
      assert.equal(load(['--jwt-key', KEY, '--max-body', raw]).maxBody, bytes);
    });
  }

  for (const raw of ['100', '100/s', '6000/m', '360000/h']) {
    it(`reads the rate ${raw} as 100 publishes per second`, () => {
      assert.equal(load(['--jwt-key', KEY, '--publish-rate', raw]).publishRate, 100);
    });
  }

  it('reads listen as HOST:PORT, :PORT, PORT and [IPv6]:PORT', () => {
    assert.deepEqual(load(['--jwt-key', KEY, '--listen', ':3000']).listen, { host: '0.0.0.0', port: 3000 });
    assert.deepEqual(load(['--jwt-key', KEY, '--listen', '4000']).listen, { host: '0.0.0.0', port: 4000 });
    assert.deepEqual(load(['--jwt-key', KEY, '--listen', '[::1]:5000']).listen, { host: '::1', port: 5000 });
  });
});

describe('config: bad values name the setting where it was given', () => {
  // One bad value per kind of setting.
  const BAD: [name: string, raw: string, message: RegExp][] = [
    ['heartbeat', 'soon', /expected a duration such as 500ms, 15s/],
    ['history-ttl', '-1d', /expected a duration/],
    ['max-body', 'lots', /expected a size such as 65536, 64kb or 1mb/],
    ['max-connections', '-1', /expected a whole number/],
    ['history-size', '2.5', /expected a whole number/],
    ['anonymous', 'maybe', /expected true or false/],
    ['listen', 'localhost:99999', /expected HOST:PORT/],
    ['transport', 'postgres://db', /expected "memory", "sqlite:PATH", "redis:\/\/HOST:PORT\[\/DB\]", "redis\+sentinel:\/\/HOST:PORT\[,HOST:PORT\]\/PRIMARY", "redis\+cluster:\/\/HOST:PORT\[,HOST:PORT\]" or "nats:\/\/HOST:PORT"/],
    ['transport', 'redis+sentinel://', /expected "memory"/],
    ['jwt-alg', 'none', /expected one of HS256/],
    ['log-level', 'loud', /expected fatal, error, warn/],
    ['publish-rate', 'fast', /expected publishes per second/],
    ['jwks-url', 'ftp://example.com/jwks.json', /expected an http\(s\) URL/],
    ['cookie-name', ' ', /must not be empty/],
    ['cors-origins', 'https://app.example.com/path', /not an origin/],
    ['publish-origins', 'app.example.com', /not an origin/],
    ['webhook-url', 'ftp://example.com/hooks', /expected http\(s\) URLs, got "ftp:\/\/example.com\/hooks"/],
    ['webhook-secret', 'not-a-whsec-secret', /expected whsec_ and the base64 of 24 to 64 random bytes/],
    ['webhook-secret', 'whsec_c2hvcnQ=', /expected whsec_ and the base64 of 24 to 64 random bytes/],
    ['presence-ttl', '500ms', /must be at least 1s/],
    ['centrifugo-ping', '100ms', /must be 0 \(no pings\) or at least 500ms/],
    ['centrifugo-max-message', '512', /must be from 1kb/],
    ['centrifugo-command-rate', 'many', /expected commands per second such as 100, 100\/s or 6000\/m/],
    ['api-key', 'short', /must be at least 16 characters/],
  ];

  for (const [name, raw, message] of BAD) {
    const base = { 'jwt-key': KEY, [name]: raw };

    it(`refuses ${name}=${JSON.stringify(raw)} from a flag, naming --${name}`, () => {
      refused(() => load(Object.entries(base).map(([n, v]) => `--${n}=${v}`)), `--${name}`, message);
    });

    it(`refuses ${name}=${JSON.stringify(raw)} from the environment, naming ${envName(name)}`, () => {
      refused(() => load([], Object.fromEntries(Object.entries(base).map(([n, v]) => [envName(n), v]))), envName(name), message);
    });

    it(`refuses ${name}=${JSON.stringify(raw)} from a config file, naming the file and key`, () => {
      const path = configFile('json', JSON.stringify(base));
      refused(() => load(['--config', path]), `${path}: ${name}`, message);
    });
  }

  it('names where a value came from when it is out of range (heartbeat, write-timeout, request-timeout, max-body, cors-origins)', () => {
    refused(() => load(['--jwt-key', KEY, '--request-timeout', '0']), '--request-timeout', /from 1s to 1h/);
    refused(() => load(['--jwt-key', KEY], { SSEHUB_REQUEST_TIMEOUT: '2h' }), 'SSEHUB_REQUEST_TIMEOUT', /from 1s to 1h/);
    refused(() => load(['--jwt-key', KEY, '--heartbeat', '50ms']), '--heartbeat', /at least 100ms/);
    refused(() => load(['--jwt-key', KEY], { SSEHUB_WRITE_TIMEOUT: '500ms' }), 'SSEHUB_WRITE_TIMEOUT', /at least 1s/);
    refused(() => load(['--jwt-key', KEY, '--max-body', '0']), '--max-body', /at least 1 byte/);
    refused(() => load(['--jwt-key', KEY, '--cors-origins', '*,https://a.example.com']), '--cors-origins', /"\*" cannot be combined/);
  });

  it('refuses an unknown flag', () => {
    refused(() => load(['--jwt-key', KEY, '--frobnicate', 'x']), '--frobnicate', /unknown setting/);
  });

  it('refuses an unknown key in a config file, naming the file and key', () => {
    const path = configFile('yaml', `jwt-key: ${KEY}\nhartbeat: 20s\n`);
    refused(() => load(['--config', path]), `${path}: hartbeat`, /unknown setting/);
  });

  it('refuses a flag without its value', () => {
    refused(() => load(['--jwt-key', KEY, '--heartbeat']), '--heartbeat', /expected a value/);
  });

  it('refuses a stray argument that is not a flag', () => {
    refused(() => load(['--jwt-key', KEY, 'extra']), 'extra', /unexpected argument/);
  });

  it('refuses a config file that cannot be read or parsed, naming --config', () => {
    refused(() => load(['--config', join(dir, 'missing.yaml')]), '--config', /cannot read/);
    refused(() => load(['--config', configFile('json', '{"jwt-key": ')]), '--config', /is not valid JSON/);
    refused(() => load(['--config', configFile('yaml', '- a\n- b\n')]), '--config', /must hold a mapping/);
  });

  it('refuses an HMAC secret shorter than 32 characters, naming where it came from', () => {
    refused(() => load(['--jwt-key', 'too-short']), '--jwt-key', /at least 32 characters/);
    refused(() => load([], { SSEHUB_JWT_KEY: 'too-short' }), 'SSEHUB_JWT_KEY', /at least 32 characters/);
    refused(() => load(['--jwt-key', KEY, '--subscriber-jwt-key', 'short']), '--subscriber-jwt-key', /at least 32 characters/);
  });

  it('refuses a secret rather than a PEM public key with --jwt-alg RS256', () => {
    refused(() => load(['--jwt-alg', 'RS256', '--jwt-key', KEY]), '--jwt-key', /needs a PEM public key/);
  });

  it('refuses a PEM that cannot be read, a private key, or a key of the wrong type for --jwt-alg', () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const rsaPublic = rsa.publicKey.export({ type: 'spki', format: 'pem' }).toString();
    refused(() => load(['--jwt-alg', 'RS256', '--jwt-key', '-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----']), '--jwt-key', /not a readable PEM/);
    refused(() => load(['--jwt-alg', 'RS256', '--jwt-key', rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()]), '--jwt-key', /private key/);
    refused(() => load(['--jwt-alg', 'ES256', '--jwt-key', rsaPublic]), '--jwt-key', /needs a ec key, got rsa key/);
    assert.equal(load(['--jwt-alg', 'RS256', '--jwt-key', rsaPublic]).jwtAlg, 'RS256');
    // Environment variables often hold a PEM with its newlines escaped.
    assert.equal(load(['--jwt-alg', 'RS256'], { SSEHUB_JWT_KEY: rsaPublic.replace(/\n/g, '\\n') }).jwtAlg, 'RS256');
  });

  it('refuses to start without a key for publisher tokens', () => {
    refused(() => load([]), '--jwt-key', /no key to verify publisher tokens/);
    refused(() => load(['--subscriber-jwt-key', KEY]), '--jwt-key', /--publisher-jwt-key/);
    assert.equal(load(['--publisher-jwt-key', KEY, '--subscriber-jwt-key', OTHER]).publisherJwtKey, KEY);
    assert.equal(load(['--jwks-url', 'https://id.example.com/jwks.json']).jwksUrl, 'https://id.example.com/jwks.json');
  });

  it('refuses a publisher key alone, which would let nobody subscribe, unless --anonymous', () => {
    refused(() => load(['--publisher-jwt-key', KEY]), '--subscriber-jwt-key', /nobody could subscribe/);
    assert.equal(load(['--publisher-jwt-key', KEY, '--anonymous']).anonymous, true);
  });

  it('needs no key with --dev, but still checks every other setting', () => {
    assert.equal(load(['--dev']).dev, true);
    refused(() => load(['--dev', '--heartbeat', '1ms']), '--heartbeat', /at least 100ms/);
    refused(() => load(['--dev', '--jwt-key', 'short']), '--jwt-key', /at least 32 characters/);
  });
});

describe('config: workers', () => {
  it('refuses --workers above 1 with a transport that cannot be shared between processes, naming --workers', () => {
    for (const transport of ['memory', 'sqlite:/tmp/x.db']) {
      assert.throws(
        () => loadConfig({ argv: ['--jwt-key', 'k'.repeat(32), '--transport', transport, '--workers', '3'], env: {} }),
        (e: unknown) => e instanceof ConfigError && e.setting === '--workers' && /shared transport \(redis:\/\/ or nats:\/\/\)/.test(e.message),
      );
    }
  });

  it('accepts --workers with redis and nats transports', () => {
    for (const transport of ['redis://127.0.0.1:6379/0', 'redis+sentinel://127.0.0.1:26379,127.0.0.1:26380/mymaster', 'redis+cluster://127.0.0.1:7000,127.0.0.1:7001', 'nats://127.0.0.1:4222']) {
      assert.equal(loadConfig({ argv: ['--jwt-key', 'k'.repeat(32), '--transport', transport, '--workers', '3'], env: {} }).workers, 3);
    }
  });
});
