/** `ssehub serve`: run the hub (one process, or `--workers N` under a supervising primary). */
import cluster from 'node:cluster';
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import { ConfigError, SETTINGS, envName, loadConfig, startHub } from '../hub/index.js';
import { isSupervisedWorker, joinWorkerGroup, superviseWorkers, workerCount } from '../hub/ops/workers.js';
import { printDevBanner } from './banner.js';

/** Every setting with its default and environment variable. */
export function serveHelp(): string {
  const rows = SETTINGS.map((s) => `  --${s.name.padEnd(24)} ${s.description}${s.default !== undefined && s.default !== '' ? ` [${s.default}]` : ''}\n  ${''.padEnd(26)} env ${envName(s.name)}`);
  return `Usage: ssehub serve [--config FILE] [settings]\n\nEvery setting can also come from its environment variable or a JSON/YAML config file\n(keys as the flag names); flags win over the environment, which wins over the file.\n\n${rows.join('\n')}\n`;
}


/** Runs the hub until it is stopped; resolves with the exit code of a `--help`. */
export async function serve(argv: string[]): Promise<number> {
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
  const running = await startHub(config, { admission: isSupervisedWorker() }).catch((error: unknown) => {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE' || code === 'EACCES' || code === 'EADDRNOTAVAIL') {
      throw new ConfigError('--listen', `cannot listen on ${config.listen.host}:${config.listen.port} (${(error as Error).message})`);
    }
    throw error;
  });
  if (config.dev && cluster.isPrimary) await printDevBanner(config, running.url, keyGenerated);
  if (isSupervisedWorker()) joinWorkerGroup(running.hub.metrics, workers);
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

