/**
 * `--workers N`: N hub processes on one machine sharing the listening port (node:cluster hands
 * connections out round-robin), coordinated through the transport. Each worker is a whole hub:
 * any of them can serve any subscriber's resume, because history lives in Redis or NATS.
 *
 * The primary only supervises: it restarts a worker that dies (with a growing delay, so a
 * crash loop does not spin), and on SIGTERM tells every worker to drain and waits for them.
 */
import cluster, { type Worker } from 'node:cluster';
import { availableParallelism } from 'node:os';
import type { Logger } from 'pino';

/** Number of processes `--workers` asks for (0: one per CPU). */
export function workerCount(setting: number): number {
  return setting === 0 ? availableParallelism() : setting;
}

/** Runs in the primary: forks `count` workers and supervises them. Resolves with the exit code when all have stopped after a signal. */
export function superviseWorkers(count: number, log: Logger): Promise<number> {
  let stopping = false;
  let restarts = 0;
  const fork = (): Worker => cluster.fork();
  for (let i = 0; i < count; i++) fork();
  log.info({ workers: count }, 'hub workers started');

  cluster.on('exit', (worker, code, signal) => {
    if (stopping) return;
    restarts++;
    const delay = Math.min(30_000, 100 * 2 ** Math.min(restarts, 8));
    log.error({ pid: worker.process.pid, code, signal, restart_in_ms: delay }, 'hub worker died; restarting it');
    setTimeout(() => {
      if (!stopping) fork();
    }, delay).unref();
  });
  // A worker that stayed up a minute resets the restart backoff.
  setInterval(() => {
    restarts = Math.max(0, restarts - 1);
  }, 60_000).unref();

  return new Promise((resolve) => {
    const stop = (signal: NodeJS.Signals) => {
      if (stopping) return;
      stopping = true;
      log.info({ signal }, 'stopping hub workers');
      const workers = Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined);
      if (workers.length === 0) resolve(0);
      let left = workers.length;
      for (const w of workers) {
        w.once('exit', () => {
          if (--left === 0) resolve(0);
        });
        w.process.kill('SIGTERM');
      }
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
  });
}
