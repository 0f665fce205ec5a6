/**
 * `--workers N`: N hub processes on one machine sharing the listening port (each accepts from it,
 * balanced by the primary: see `admission.ts`), coordinated through the transport. Each worker is a whole hub:
 * any of them can serve any subscriber's resume, because history lives in Redis or NATS.
 *
 * The primary supervises: it restarts a worker that dies (with a growing delay, so a crash loop
 * does not spin), and on SIGTERM tells every worker to drain and waits for them. It also relays
 * `/metrics`: the worker a scrape reaches asks the primary, which collects every worker's figures
 * over IPC and answers with the group's (see `GroupMetrics`).
 */
import cluster, { type Worker } from 'node:cluster';
import { availableParallelism } from 'node:os';
import type { Logger } from 'pino';
import { AdmissionBoard } from './admission.js';
import { type HubMetrics, type MetricFamily, aggregateGroup, countersOf, sumCounters } from './metrics.js';

/** Number of processes `--workers` asks for (0: one per CPU). */
export function workerCount(setting: number): number {
  return setting === 0 ? availableParallelism() : setting;
}

/** How long the primary waits for the workers' figures before answering a scrape with those that came. */
export const GATHER_TIMEOUT_MS = 2000;

/** The environment variable that tells a worker its number (1..N), which a restarted worker inherits from the one it replaces. */
const WORKER_ENV = 'SSEHUB_WORKER_NUMBER';

/** `true` in a worker forked by `superviseWorkers` (not in one of another cluster manager, such as pm2's, whose primary would not answer). */
export function isSupervisedWorker(): boolean {
  return cluster.isWorker && process.env[WORKER_ENV] !== undefined;
}

/** Runs in the primary: forks `count` workers and supervises them. Resolves with the exit code when all have stopped after a signal. */
export function superviseWorkers(count: number, log: Logger, options: { gatherTimeoutMs?: number } = {}): Promise<number> {
  let stopping = false;
  let restarts = 0;
  const metrics = new GroupMetrics(count, options.gatherTimeoutMs ?? GATHER_TIMEOUT_MS);
  const admission = new AdmissionBoard();
  // The workers accept connections themselves, balanced by the board (see admission.ts); an
  // operator's NODE_CLUSTER_SCHED_POLICY still wins (rr: the primary accepts and hands them out).
  if (process.env.NODE_CLUSTER_SCHED_POLICY === undefined) cluster.schedulingPolicy = cluster.SCHED_NONE;
  // Metrics carry NaN (event-loop lag before its first sample), which JSON would turn into null.
  cluster.setupPrimary({ serialization: 'advanced' });
  const numbers = new Map<Worker, number>();
  const fork = (n: number): void => {
    const worker = cluster.fork({ [WORKER_ENV]: String(n) });
    numbers.set(worker, n);
    metrics.joined(worker, n);
    admission.joined(worker);
  };
  for (let n = 1; n <= count; n++) fork(n);
  log.info({ workers: count }, 'hub workers started');

  cluster.on('message', (worker, message: unknown) => {
    metrics.received(worker, message);
    admission.received(worker, message);
  });
  cluster.on('exit', (worker, code, signal) => {
    metrics.left(worker);
    admission.left(worker);
    const n = numbers.get(worker) ?? 1;
    numbers.delete(worker);
    if (stopping) return;
    restarts++;
    const delay = Math.min(30_000, 100 * 2 ** Math.min(restarts, 8));
    log.error({ pid: worker.process.pid, worker: n, code, signal, restart_in_ms: delay }, 'hub worker died; restarting it');
    setTimeout(() => {
      if (!stopping) fork(n);
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

/**
 * Runs in a worker once its hub listens: answers the primary's requests for this hub's figures,
 * and makes the hub's `/metrics` (and the dashboard's counts) those of the whole group.
 */
export function joinWorkerGroup(metrics: HubMetrics, workers: number, options: { gatherTimeoutMs?: number } = {}): void {
  const worker = Number(process.env[WORKER_ENV]);
  const timeoutMs = options.gatherTimeoutMs ?? GATHER_TIMEOUT_MS;
  const waiting = new Map<number, (group: MetricFamily[]) => void>();
  let ids = 0;
  process.on('message', (message: unknown) => {
    if (!isGroupMessage(message)) return;
    if (message.type === 'ssehub:metrics-collect') {
      void metrics.figures(message.only).then(
        (figures) => send({ type: 'ssehub:metrics-figures', id: message.id, metrics: figures }),
        () => {}, // no answer: the primary answers the scrape without this worker
      );
    } else if (message.type === 'ssehub:metrics-group') waiting.get(message.id)?.(message.metrics);
  });
  // Should the primary not answer (it always does, within its own bound), this worker's figures alone.
  const alone = async (only?: readonly string[]) => aggregateGroup({ workers, answers: [{ worker, metrics: await metrics.figures(only) }] });
  metrics.group = (only) => {
    if (!process.connected) return alone(only);
    const id = ++ids;
    return new Promise<MetricFamily[]>((resolve, reject) => {
      const timer = setTimeout(() => {
        waiting.delete(id);
        alone(only).then(resolve, reject);
      }, timeoutMs + 1000);
      timer.unref();
      waiting.set(id, (group) => {
        clearTimeout(timer);
        waiting.delete(id);
        resolve(group);
      });
      send({ type: 'ssehub:metrics-gather', id, only });
    });
  };
  send({ type: 'ssehub:metrics-ready' });
}

/** What the primary and its workers say to each other about metrics. */
type GroupMessage =
  /** worker → primary: its hub listens and answers `collect`. */
  | { type: 'ssehub:metrics-ready' }
  /** worker → primary: a scrape reached this worker; answer with the group's figures. */
  | { type: 'ssehub:metrics-gather'; id: number; only?: readonly string[] }
  /** primary → worker: send your figures. */
  | { type: 'ssehub:metrics-collect'; id: number; only?: readonly string[] }
  /** worker → primary: its figures, for `collect` `id`. */
  | { type: 'ssehub:metrics-figures'; id: number; metrics: MetricFamily[] }
  /** primary → worker: the group's figures, for `gather` `id`. */
  | { type: 'ssehub:metrics-group'; id: number; metrics: MetricFamily[] };

function isGroupMessage(message: unknown): message is GroupMessage {
  return typeof message === 'object' && message !== null && typeof (message as { type?: unknown }).type === 'string' && (message as { type: string }).type.startsWith('ssehub:metrics-');
}

/** Sends to the primary; a closed channel is not an error here (the worker is on its way out). */
function send(message: GroupMessage): void {
  if (process.connected) process.send?.(message, undefined, undefined, () => {});
}

/** A worker as the primary's metrics relay knows it. */
interface Member {
  /** Its number, 1..N, kept by its replacement. */
  n: number;
  /** `true` once its hub answers `collect`. */
  ready: boolean;
  /** Its counters and histograms as last reported, by family. */
  last: Map<string, MetricFamily>;
}

/**
 * The primary's side of `/metrics` under `--workers`: for each scrape a worker relays, it asks
 * every ready worker for its figures, waits at most `timeoutMs`, and answers with the group's
 * figures from those that came (`ssehub_workers_reporting` says how many). Counters of workers
 * that did not answer or have exited are carried from their last report, so a group counter
 * does not go back when one worker hangs or is replaced.
 */
class GroupMetrics {
  readonly #members = new Map<Worker, Member>();
  readonly #collecting = new Map<number, (worker: Worker, figures: MetricFamily[]) => void>();
  /** Counters and histograms of the workers that exited, added up. */
  #retired: MetricFamily[] = [];
  #ids = 0;

  constructor(
    readonly workers: number,
    readonly timeoutMs: number,
  ) {}

  joined(worker: Worker, n: number): void {
    this.#members.set(worker, { n, ready: false, last: new Map() });
  }

  left(worker: Worker): void {
    const member = this.#members.get(worker);
    if (member === undefined) return;
    this.#members.delete(worker);
    if (member.last.size > 0) this.#retired = sumCounters([this.#retired, [...member.last.values()]]);
  }

  received(worker: Worker, message: unknown): void {
    if (!isGroupMessage(message)) return;
    if (message.type === 'ssehub:metrics-ready') {
      const member = this.#members.get(worker);
      if (member !== undefined) member.ready = true;
    } else if (message.type === 'ssehub:metrics-figures') {
      this.#collecting.get(message.id)?.(worker, message.metrics);
    } else if (message.type === 'ssehub:metrics-gather') {
      const { id } = message;
      void this.#gather(message.only).then((group) => {
        if (worker.isConnected()) worker.send({ type: 'ssehub:metrics-group', id, metrics: group } satisfies GroupMessage, undefined, () => {});
      });
    }
  }

  async #gather(only: readonly string[] | undefined): Promise<MetricFamily[]> {
    const id = ++this.#ids;
    const asked = [...this.#members].filter(([worker, member]) => member.ready && worker.isConnected());
    const answers = new Map<Worker, MetricFamily[]>();
    await new Promise<void>((resolve) => {
      if (asked.length === 0) return resolve();
      const timer = setTimeout(resolve, this.timeoutMs);
      this.#collecting.set(id, (worker, figures) => {
        answers.set(worker, figures);
        if (answers.size < asked.length) return;
        clearTimeout(timer);
        resolve();
      });
      for (const [worker] of asked) worker.send({ type: 'ssehub:metrics-collect', id, only } satisfies GroupMessage, undefined, () => {});
    });
    this.#collecting.delete(id);

    // A worker that exited meanwhile is in #retired with its previous report: its answer is left
    // out, or its counters would count twice.
    const wanted = (family: MetricFamily) => only === undefined || only.includes(family.name);
    const fresh: { worker: number; metrics: MetricFamily[] }[] = [];
    const carried = [this.#retired.filter(wanted)];
    for (const [worker, member] of this.#members) {
      const figures = answers.get(worker);
      if (figures === undefined) {
        carried.push([...member.last.values()].filter(wanted));
        continue;
      }
      fresh.push({ worker: member.n, metrics: figures });
      for (const family of countersOf(figures)) member.last.set(family.name, family);
    }
    return aggregateGroup({ workers: this.workers, answers: fresh, carried });
  }
}
