/** `ssehub doctor URL`: diagnose an SSE endpoint through the proxies in front of it. */
import { readFileSync } from 'node:fs';
import { formatReport, formatWebSocketReport, runDoctor, runWebSocketDoctor } from '../doctor/index.js';
import { parseDuration } from '../hub/index.js';

export const DOCTOR_HELP = `Usage: ssehub doctor URL [options]

Connects to the SSE endpoint URL like a browser, watches the stream, and reports what would break
it: status and headers, compression, caching, X-Accel-Buffering, HTTP version, time to headers /
first byte / first event, heartbeats against common proxy timeouts, buffering, a cut stream,
retry, and (with --publish) publish-to-receive latency and Last-Event-ID resume.
With a ws:// or wss:// URL (the Centrifugo protocol's /connection/websocket) it upgrades like the
Centrifugo SDK, connects, measures a ping round trip, then stays idle for --duration answering the
hub's pings, and tells a proxy that does not pass Upgrade, or cuts idle connections, and the fix.
Exit code: 0 when nothing is wrong, 1 when a problem or warning was found, 2 on a usage error.

  --json                  print the report as JSON
  --duration DURATION     how long to watch the stream (default 20s; longer than your heartbeat)
  --publish               publish probe updates to URL (a Mercure hub) and measure them; needs --token
  --token JWT             publisher token for --publish (e.g. from "ssehub token --publish '*'", or a
                          Mercure 1.0 access token from "ssehub token --access-token --publish '*'");
                          on a URL with match= parameters (Mercure 1.0) the probes are subscribed with match
  --subscriber-token JWT  sent as "Authorization: Bearer" on the stream (ws://: the connect command's token)
  --topic TOPIC           topic of the probe updates (default: a fresh urn:ssehub:doctor:UUID)
  --header "NAME: VALUE"  an extra request header on the stream (repeatable)
  --insecure              accept any TLS certificate
  --ca FILE               trust this PEM CA certificate too
`;


const DOCTOR_VALUE_OPTIONS = new Set(['--duration', '--token', '--subscriber-token', '--topic', '--header', '--ca']);

/** A doctor usage error: the message, and exit code 2. */
class UsageError extends Error {}

/** Runs the doctor; resolves with the exit code (0 fine, 1 a problem found, 2 a usage error). */
export async function doctor(argv: string[]): Promise<number> {
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
    if (url === undefined) throw new UsageError('give the URL of the SSE endpoint, e.g. ssehub doctor https://example.com/.well-known/mercure?match=x');
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new UsageError(`"${url}" is not a URL`);
    }
    if (parsed.protocol === 'ws:' || parsed.protocol === 'wss:') {
      if (options.publish === true) throw new UsageError('--publish is for SSE endpoints; a ws:// URL is diagnosed without publishing');
    } else if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new UsageError(`expected an http://, https://, ws:// or wss:// URL, got "${url}"`);
    if (options.publish === true && options.token === undefined) throw new UsageError('--publish needs --token (a publisher JWT; "ssehub token --publish \'*\'" makes one)');
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`ssehub doctor: ${error.message}\n`);
    return 2;
  }
  options.url = url;
  if (/^wss?:/i.test(url)) {
    const wsReport = await runWebSocketDoctor({ url, duration: options.duration, token: options.subscriberToken ?? options.token, headers: options.headers, insecure: options.insecure, ca: options.ca });
    process.stdout.write(json ? `${JSON.stringify(wsReport, null, 2)}\n` : formatWebSocketReport(wsReport));
    return wsReport.ok ? 0 : 1;
  }
  const report = await runDoctor(options);
  process.stdout.write(json ? `${JSON.stringify(report, null, 2)}\n` : formatReport(report));
  return report.ok ? 0 : 1;
}

