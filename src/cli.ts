#!/usr/bin/env node
/** The `ssehub` command: `serve`, `token`, `doctor`. */
import cluster from 'node:cluster';
import { X509Certificate, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { ConfigError, SETTINGS, envName, loadConfig, parseDuration, startHub } from './hub/index.js';
import type { HubConfig } from './hub/index.js';
import { signToken } from './hub/token.js';
import { formatReport, runDoctor } from './doctor/index.js';
import { superviseWorkers, workerCount } from './hub/workers.js';
import { pino } from 'pino';

const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };

const HELP = `ssehub ${version} — production-grade Server-Sent Events

Usage:
  ssehub serve [settings]        run the hub (Mercure protocol) on /.well-known/mercure
  ssehub serve --dev             zero-config demo: prints tokens and curl commands
  ssehub token [options]         print a signed token
  ssehub doctor URL [options]    diagnose an SSE endpoint through the proxies in front of it
  ssehub --help | --version

Run "ssehub serve --help" for every setting, "ssehub token --help" for token options,
"ssehub doctor --help" for the doctor's.
`;

function serveHelp(): string {
  const rows = SETTINGS.map((s) => `  --${s.name.padEnd(24)} ${s.description}${s.default !== undefined && s.default !== '' ? ` [${s.default}]` : ''}\n  ${''.padEnd(26)} env ${envName(s.name)}`);
  return `Usage: ssehub serve [--config FILE] [settings]\n\nEvery setting can also come from its environment variable or a JSON/YAML config file\n(keys as the flag names); flags win over the environment, which wins over the file.\n\n${rows.join('\n')}\n`;
}

const TOKEN_HELP = `Usage: ssehub token [--publish SELECTOR]... [--subscribe SELECTOR]... [options]

Prints a JWT for this hub, signed with the HMAC key of --jwt-key (or SSEHUB_JWT_KEY).

  --publish SELECTOR    topic selector the token may publish to (repeatable; * for all)
  --subscribe SELECTOR  selector of private updates the token may receive (repeatable)
  --jwt-key KEY         the secret (default: $SSEHUB_JWT_KEY)
  --jwt-alg ALG         HS256 (default), HS384 or HS512
  --exp DURATION        lifetime such as 1h or 30d (default: no expiry)
  --sub SUBJECT         the token's subject (used as its rate-limit key)
  --ui                  may read the /ui dashboard (claim ssehub.ui)
`;

const DOCTOR_HELP = `Usage: ssehub doctor URL [options]

Connects to the SSE endpoint URL like a browser, watches the stream, and reports what would break
it: status and headers, compression, caching, X-Accel-Buffering, HTTP version, time to headers /
first byte / first event, heartbeats against common proxy timeouts, buffering, a cut stream,
retry, and (with --publish) publish-to-receive latency and Last-Event-ID resume.
Exit code: 0 when nothing is wrong, 1 when a problem or warning was found, 2 on a usage error.

  --json                  print the report as JSON
  --duration DURATION     how long to watch the stream (default 20s; longer than your heartbeat)
  --publish               publish probe updates to URL (a Mercure hub) and measure them; needs --token
  --token JWT             publisher token for --publish (e.g. from "ssehub token --publish '*'")
  --subscriber-token JWT  sent as "Authorization: Bearer" on the stream
  --topic TOPIC           topic of the probe updates (default: a fresh urn:ssehub:doctor:UUID)
  --header "NAME: VALUE"  an extra request header on the stream (repeatable)
  --insecure              accept any TLS certificate
  --ca FILE               trust this PEM CA certificate too
`;

const DOCTOR_VALUE_OPTIONS = new Set(['--duration', '--token', '--subscriber-token', '--topic', '--header', '--ca']);

/** A doctor usage error: the message, and exit code 2. */
class UsageError extends Error {}

async function doctor(argv: string[]): Promise<number> {
  let url: string | undefined;
  let json = false;
  const options: Parameters<typeof runDoctor>[0] & { headers: Record<string, string> } = { url: '', headers: {} };
  try {
    for (let i = 0; i < argv.length; i++) {
      const flag = argv[i] as string;
      if (flag === '--help' || flag === '-h') {
        process.stdout.write(DOCTOR_HELP);
        return 0;
      }
      if (!flag.startsWith('--')) {
        if (url !== undefined) throw new UsageError(`one URL only (got "${url}" and "${flag}")`);
        url = flag;
        continue;
      }
      if (flag === '--json') json = true;
      else if (flag === '--publish') options.publish = true;
      else if (flag === '--insecure') options.insecure = true;
      else {
        if (!DOCTOR_VALUE_OPTIONS.has(flag)) throw new UsageError(`unknown option ${flag}; run "ssehub doctor --help"`);
        const value = argv[++i];
        if (value === undefined) throw new UsageError(`${flag} expects a value`);
        if (flag === '--duration') {
          try {
            options.duration = parseDuration(value);
          } catch (error) {
            throw new UsageError(`--duration: ${(error as Error).message}`);
          }
          if (options.duration < 1000) throw new UsageError('--duration must be at least 1s');
        } else if (flag === '--token') options.token = value;
        else if (flag === '--subscriber-token') options.subscriberToken = value;
        else if (flag === '--topic') options.topic = value;
        else if (flag === '--header') {
          const m = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+):\s*(.*)$/.exec(value);
          if (m === null) throw new UsageError(`--header expects "NAME: VALUE", got "${value}"`);
          options.headers[(m[1] as string).toLowerCase()] = m[2] as string;
        } else {
          try {
            options.ca = readFileSync(value, 'utf8');
          } catch (error) {
            throw new UsageError(`--ca: cannot read ${value}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
          }
        }
      }
    }
    if (url === undefined) throw new UsageError('give the URL of the SSE endpoint, e.g. ssehub doctor https://example.com/.well-known/mercure?topic=x');
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new UsageError(`"${url}" is not a URL`);
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new UsageError(`expected an http:// or https:// URL, got "${url}"`);
    if (options.publish === true && options.token === undefined) throw new UsageError('--publish needs --token (a publisher JWT; "ssehub token --publish \'*\'" makes one)');
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`ssehub doctor: ${error.message}\n`);
    return 2;
  }
  options.url = url;
  const report = await runDoctor(options);
  process.stdout.write(json ? `${JSON.stringify(report, null, 2)}\n` : formatReport(report));
  return report.ok ? 0 : 1;
}

const HMAC = ['HS256', 'HS384', 'HS512'];

/** Parses an option's value, turning a parse failure into a ConfigError naming the option. */
function parseOption<T>(flag: string, value: string, parse: (value: string) => T): T {
  try {
    return parse(value);
  } catch (error) {
    throw new ConfigError(flag, (error as Error).message);
  }
}

async function token(argv: string[]): Promise<number> {
  const publish: string[] = [];
  const subscribe: string[] = [];
  let key = process.env.SSEHUB_JWT_KEY;
  let alg = process.env.SSEHUB_JWT_ALG ?? 'HS256';
  let exp: number | undefined;
  let sub: string | undefined;
  let ui = false;
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i] as string;
    if (flag === '--help' || flag === '-h') {
      process.stdout.write(TOKEN_HELP);
      return 0;
    }
    if (flag === '--ui') {
      ui = true;
      continue;
    }
    const value = argv[++i];
    if (value === undefined) throw new ConfigError(flag, 'expected a value');
    if (flag === '--publish') publish.push(value);
    else if (flag === '--subscribe') subscribe.push(value);
    else if (flag === '--jwt-key') key = value;
    else if (flag === '--jwt-alg') alg = value;
    else if (flag === '--exp') exp = parseOption(flag, value, parseDuration);
    else if (flag === '--sub') sub = value;
    else throw new ConfigError(flag, 'unknown option; run "ssehub token --help"');
  }
  if (key === undefined) throw new ConfigError('--jwt-key', 'no key: pass --jwt-key or set SSEHUB_JWT_KEY');
  if (!HMAC.includes(alg)) throw new ConfigError('--jwt-alg', `ssehub token signs with an HMAC secret (${HMAC.join(', ')}), not "${alg}"; sign other algorithms with your identity provider`);
  // The hub refuses shorter secrets, so a token signed with one could never be used.
  if (key.length < 32) throw new ConfigError('--jwt-key', `an ${alg} secret must be at least 32 characters (256 bits) long`);
  if (publish.length === 0 && subscribe.length === 0 && !ui) throw new ConfigError('--publish', 'give at least one --publish or --subscribe selector, or --ui');
  const signed = await signToken(key, { publish: publish.length > 0 ? publish : undefined, subscribe: subscribe.length > 0 ? subscribe : undefined, subject: sub, expiresIn: exp, ui }, alg as 'HS256');
  process.stdout.write(`${signed}\n`);
  return 0;
}

/**
 * What curl needs to trust the hub's certificate: nothing for one a public CA signed; for a
 * self-signed one valid for the banner's host, `--cacert FILE` (it is its own CA); otherwise `-k`.
 */
function curlTlsFlag(config: HubConfig, host: string): string {
  if (config.tlsCert === undefined) return '';
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(readFileSync(config.tlsCert));
  } catch {
    return '-k ';
  }
  if (!cert.checkIssued(cert)) return '';
  const matches = isIP(host) !== 0 ? cert.checkIP(host) !== undefined : cert.checkHost(host) !== undefined;
  return matches ? `--cacert '${config.tlsCert}' ` : '-k ';
}

async function printDevBanner(config: HubConfig, url: string, keyGenerated: boolean): Promise<void> {
  const key = config.jwtKey as string;
  // Signed as the hub verifies them: its algorithm, and each role's own key when one is set.
  const alg = config.jwtAlg;
  const hmac = HMAC.includes(alg);
  const unsigned = `(sign ${alg} tokens with your private key)`;
  const pub = hmac ? await signToken(config.publisherJwtKey ?? key, { publish: ['*'], subscribe: ['*'] }, alg) : unsigned;
  const subTok = hmac ? await signToken(config.subscriberJwtKey ?? key, { subscribe: ['*'] }, alg) : unsigned;
  const hub = `${url.replace('0.0.0.0', '127.0.0.1')}/.well-known/mercure`;
  const tls = curlTlsFlag(config, new URL(hub).hostname.replace(/^\[|\]$/g, ''));
  const exports = hmac ? `\nIn the shell where you run the README's commands:\n  export PUBLISHER_TOKEN=${pub}\n  export SUBSCRIBER_TOKEN=${subTok}\n` : '';
  process.stderr.write(`
==================== ssehub DEVELOPMENT MODE — never use in production ====================
${keyGenerated ? `Ephemeral key (changes on every start): ${key}` : 'Key: the one you configured.'}
Anonymous subscribers allowed; transport: ${config.transport}.

Publisher token:  ${pub}
Subscriber token (may also read private updates): ${subTok}
${exports}
Dashboard:  ${hub.replace('/.well-known/mercure', '/ui')}
Subscribe:  curl ${tls}-N -g '${hub}?topic=https://example.com/books/{id}'
Publish:    curl ${tls}-d 'topic=https://example.com/books/1' -d 'data={"title":"SSE"}' \\
              -H 'Authorization: Bearer ${pub}' ${hub}
${tls === '-k ' ? 'The certificate is self-signed for another name: -k skips its check (curl --cacert FILE checks it).\n' : ''}============================================================================================
`);
}

async function serve(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(serveHelp());
    return 0;
  }
  const config = loadConfig({ argv, env: process.env });
  const keyGenerated = config.dev && config.jwtKey === undefined;
  if (config.dev) {
    config.jwtKey ??= randomBytes(32).toString('hex');
    config.anonymous = true;
    if (config.corsOrigins.length === 0) config.corsOrigins = ['*'];
  }
  const workers = workerCount(config.workers);
  if (workers > 1 && cluster.isPrimary) {
    // Workers re-read the configuration; they must share the key --dev just made.
    if (keyGenerated) process.env.SSEHUB_JWT_KEY = config.jwtKey;
    if (config.dev) await printDevBanner(config, `${config.tlsCert !== undefined ? 'https' : 'http'}://${config.listen.host}:${config.listen.port}`, keyGenerated);
    return superviseWorkers(workers, pino({ level: config.logLevel, base: { service: 'ssehub', role: 'primary' } }));
  }
  const running = await startHub(config).catch((error: unknown) => {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE' || code === 'EACCES' || code === 'EADDRNOTAVAIL') {
      throw new ConfigError('--listen', `cannot listen on ${config.listen.host}:${config.listen.port} (${(error as Error).message})`);
    }
    throw error;
  });
  if (config.dev && cluster.isPrimary) await printDevBanner(config, running.url, keyGenerated);
  let stopping = false;
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.on(signal, () => {
      if (stopping) {
        // A second signal to a single hub means "now": give up the drain. A worker ignores it: Ctrl-C
        // and systemd signal the whole process group, so the primary's forwarded SIGTERM comes on
        // top of the worker's own, and the primary is the one that decides to stop waiting.
        if (cluster.isWorker) return;
        process.exit(1);
      }
      stopping = true;
      void running.close().then(() => process.exit(0));
    });
  }
  return new Promise<number>(() => {});
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case undefined:
    case 'help':
    case '-h':
    case '--help':
      process.stdout.write(HELP);
      return 0;
    case '-v':
    case '--version':
      process.stdout.write(`${version}\n`);
      return 0;
    case 'serve':
      return serve(rest);
    case 'token':
      return token(rest);
    case 'doctor':
      return doctor(rest);
    default:
      process.stderr.write(`ssehub: unknown command "${command}"; run "ssehub --help" for the list.\n`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    if (error instanceof ConfigError) process.stderr.write(`ssehub: invalid setting ${error.message}\n`);
    else process.stderr.write(`ssehub: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = error instanceof ConfigError ? 78 : 1;
  },
);
