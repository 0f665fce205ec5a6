/** Prometheus metrics of a hub (one registry per hub, so tests can run several hubs in one process). */
import { AggregatorRegistry, Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * The hub's metrics, in the project's vocabulary: updates, deliveries, subscriptions, and
 * connections — a client's connection of any protocol (an SSE stream is the connection of the
 * SSE front-end).
 */
export class HubMetrics {
  readonly registry = new Registry();
  readonly connections = new Gauge({ name: 'ssehub_connections', help: 'Open client connections (SSE streams)', registers: [this.registry] });
  readonly subscriptions = new Gauge({ name: 'ssehub_subscriptions', help: 'Topic selectors of open connections', registers: [this.registry] });
  /** The two above by client transport (`sse`, `websocket`, `http_stream`), and connections by protocol (`mercure`, `centrifugo`) too. */
  readonly clientConnections = new Gauge({ name: 'ssehub_client_connections', help: 'Open client connections by protocol (mercure, centrifugo) and client transport (sse, websocket, http_stream)', labelNames: ['protocol', 'transport'] as const, registers: [this.registry] });
  readonly clientSubscriptions = new Gauge({ name: 'ssehub_client_subscriptions', help: 'Topic selectors of open connections by client transport (sse, websocket, http_stream)', labelNames: ['transport'] as const, registers: [this.registry] });
  readonly updatesPublished = new Counter({ name: 'ssehub_updates_published_total', help: 'Updates accepted and stored', registers: [this.registry] });
  readonly deliveries = new Counter({ name: 'ssehub_deliveries_total', help: 'Events written to subscribers (live and replayed)', registers: [this.registry] });
  readonly replayed = new Counter({ name: 'ssehub_replayed_events_total', help: 'Events replayed from history on resume', registers: [this.registry] });
  readonly resyncs = new Counter({ name: 'ssehub_resyncs_total', help: 'Resumes from an ID no longer (or never) in history', registers: [this.registry] });
  readonly closed = new Counter({ name: 'ssehub_connections_closed_total', help: 'Ended client connections by reason', labelNames: ['reason'] as const, registers: [this.registry] });
  readonly poison = new Counter({ name: 'ssehub_poison_updates_total', help: 'Entries read from the transport that are not valid updates (skipped), by where they were met', labelNames: ['where'] as const, registers: [this.registry] });
  readonly webhooks = new Counter({ name: 'ssehub_webhooks_total', help: 'Webhook events by type and result: sent (2xx), failed (given up after retries), dropped (queue full)', labelNames: ['event', 'result'] as const, registers: [this.registry] });
  readonly webhookRetries = new Counter({ name: 'ssehub_webhook_retries_total', help: 'Webhook attempts that failed and were retried', registers: [this.registry] });
  readonly presenceLost = new Counter({ name: 'ssehub_presence_lost_nodes_total', help: 'Nodes whose presence lease ran out, claimed by this node (their subscribers removed)', registers: [this.registry] });
  readonly centrifugoCommands = new Counter({ name: 'ssehub_centrifugo_commands_total', help: 'Commands of Centrifugo clients by method (unknown: one this protocol does not have)', labelNames: ['method'] as const, registers: [this.registry] });
  readonly centrifugoErrors = new Counter({ name: 'ssehub_centrifugo_errors_total', help: 'Error replies to Centrifugo clients by code (100 internal … 112 unrecoverable position)', labelNames: ['code'] as const, registers: [this.registry] });
  readonly centrifugoApi = new Counter({ name: 'ssehub_centrifugo_api_requests_total', help: 'Requests to the Centrifugo server API by method and result (ok, error: answered with an error code, refused: not authorised or not JSON)', labelNames: ['method', 'result'] as const, registers: [this.registry] });
  readonly rejected = new Counter({ name: 'ssehub_requests_rejected_total', help: 'Requests answered with an error, by status and reason', labelNames: ['status', 'reason'] as const, registers: [this.registry] });
  readonly deliveryLatency = new Histogram({
    name: 'ssehub_delivery_latency_seconds',
    help: 'From an update being accepted to it being written to every matching subscriber of this process',
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });

  /**
   * Under `--workers`: the figures of the whole process group, `only` the named families when
   * given (set in each worker by `joinWorkerGroup`). Unset, the hub reports its own registry.
   */
  group: ((only?: readonly string[]) => Promise<MetricFamily[]>) | undefined;

  constructor() {
    // Process metrics and event-loop lag (nodejs_eventloop_lag_*), the hub's first health signal.
    collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: 20 });
    // Every protocol and client transport from the start, so a dashboard has series (at 0) before the first connection.
    for (const [protocol, transport] of [['mercure', 'sse'], ['centrifugo', 'websocket'], ['centrifugo', 'sse'], ['centrifugo', 'http_stream']] as const) this.clientConnections.set({ protocol, transport }, 0);
    for (const transport of ['sse', 'websocket', 'http_stream']) this.clientSubscriptions.set({ transport }, 0);
    for (const method of ['connect', 'subscribe', 'unsubscribe', 'publish', 'presence', 'presence_stats', 'history', 'ping', 'send', 'rpc', 'refresh', 'sub_refresh', 'unknown']) this.centrifugoCommands.inc({ method }, 0);
    for (let code = 100; code <= 112; code++) this.centrifugoErrors.inc({ code: String(code) }, 0);
    for (const method of ['publish', 'broadcast', 'history', 'presence', 'presence_stats', 'unsubscribe', 'disconnect', 'info', 'channels', 'batch']) {
      for (const result of ['ok', 'error']) this.centrifugoApi.inc({ method, result }, 0);
    }
    // Every event and result from the start, so a dashboard has series (at 0) before the first webhook.
    for (const event of ['subscriber.connected', 'subscriber.disconnected', 'topic.occupied', 'topic.vacated']) {
      for (const result of ['sent', 'failed', 'dropped']) this.webhooks.inc({ event, result }, 0);
    }
  }

  /** What `GET /metrics` answers: the Prometheus text of this hub, or under `--workers` of the whole group. */
  async text(): Promise<string> {
    return this.group === undefined ? this.registry.metrics() : exposition(await this.group());
  }

  /** This hub's own figures as JSON, `only` the named families when given: what a worker sends the primary. */
  async figures(only?: readonly string[]): Promise<MetricFamily[]> {
    if (only === undefined) return (await this.registry.getMetricsAsJSON()) as unknown as MetricFamily[];
    const metrics = only.flatMap((name) => this.registry.getSingleMetric(name) ?? []);
    return (await Promise.all(metrics.map((m) => m.get()))) as unknown as MetricFamily[];
  }
}

/** One sample of a metric family (prom-client's JSON form); a histogram's carry a `metricName` (`_bucket`, `_sum`, `_count`). */
export interface MetricSample {
  value: number;
  labels: Record<string, string | number>;
  metricName?: string;
}

/** A metric family as prom-client reports it in JSON (`Registry.getMetricsAsJSON`): what travels between workers and the primary. */
export interface MetricFamily {
  name: string;
  help: string;
  type: string;
  /** prom-client's aggregator (`sum`, `max`, `min`, `average`, `first`, `omit`), set with the metric's `aggregator` option. */
  aggregator?: string;
  values: MetricSample[];
}

/** How a family's samples from several workers make one: one of prom-client's aggregators, or `per-worker` (kept apart with a `worker` label). */
export type GroupRule = 'sum' | 'max' | 'min' | 'average' | 'first' | 'omit' | 'per-worker';

/**
 * Families whose figure belongs to one process: the file-descriptor limit is per process (a
 * worker runs out of descriptors alone, so a sum would hide it), and a start time identifies a
 * process (a restarted worker shows as a new one).
 */
const PER_WORKER = new Set(['process_open_fds', 'process_max_fds', 'process_start_time_seconds']);

/**
 * The rule for a family under `--workers`. The ssehub families and counting process figures (CPU
 * time, memory, handles, GC) add up; event-loop lag is the worst worker's (one saturated worker
 * delays its own streams however idle the others are); the Node version is the same everywhere.
 * Any other family follows its own `aggregator` option (prom-client's default: `sum`), so a
 * gauge that already holds a cluster-wide figure declares `aggregator: 'max'` where it is made.
 */
export function groupRule(family: Pick<MetricFamily, 'name' | 'aggregator'>): GroupRule {
  if (PER_WORKER.has(family.name)) return 'per-worker';
  if (family.name === 'nodejs_eventloop_lag_min_seconds') return 'min';
  if (family.name.startsWith('nodejs_eventloop_lag_')) return 'max';
  switch (family.aggregator) {
    case 'max':
    case 'min':
    case 'average':
    case 'first':
    case 'omit':
      return family.aggregator;
    default:
      return 'sum';
  }
}

/** What the primary gathered for one scrape under `--workers`. */
export interface GroupFigures {
  /** `--workers N`: how many workers the group should have. */
  workers: number;
  /** Each worker that answered: its number (1..N; a restarted worker takes the number of the one it replaces) and its figures. */
  answers: { worker: number; metrics: MetricFamily[] }[];
  /**
   * Counters and histograms last reported by workers that did not answer this time or have
   * exited since: added in, so that a group counter never goes back when a worker hangs or is
   * replaced (what it counted after its last report is lost, not subtracted).
   */
  carried?: MetricFamily[][];
}

/** The counters and histograms of `families`: what adds up over time and is carried for a worker that is gone. */
export function countersOf(families: MetricFamily[]): MetricFamily[] {
  return families.filter((f) => (f.type === 'counter' || f.type === 'histogram') && groupRule(f) === 'sum');
}

/** The group's families: the workers' figures combined family by family (`groupRule`), then `ssehub_workers` and `ssehub_workers_reporting`. */
export function aggregateGroup({ workers, answers, carried = [] }: GroupFigures): MetricFamily[] {
  const own = [...answers].sort((a, b) => a.worker - b.worker).map(({ worker, metrics }) => labelled(metrics, String(worker)));
  const group = combine([...own, ...carried.map(countersOf)]);
  group.push(
    gauge('ssehub_workers', 'Worker processes the hub runs (--workers)', workers),
    gauge('ssehub_workers_reporting', 'Workers whose figures this scrape includes (the others did not answer in time, are starting, or are being restarted)', answers.length),
  );
  return group;
}

/** The counters and histograms of several reports added up: what the primary keeps of workers that exited. */
export function sumCounters(reports: MetricFamily[][]): MetricFamily[] {
  return combine(reports.map(countersOf));
}

/** A worker's families as they enter the group: per-worker ones with its `worker` label, omitted ones left out. */
function labelled(families: MetricFamily[], worker: string): MetricFamily[] {
  return families.flatMap((family) => {
    const rule = groupRule(family);
    if (rule === 'omit') return [];
    if (rule !== 'per-worker') return [family];
    return [{ ...family, values: family.values.map((s) => ({ ...s, labels: { ...s.labels, worker } })) }];
  });
}

/** Combines the families of several reports, sample by sample (same name and labels), by each family's rule. */
function combine(reports: MetricFamily[][]): MetricFamily[] {
  const families = new Map<string, { family: MetricFamily; samples: Map<string, MetricSample[]> }>();
  for (const family of reports.flat()) {
    let entry = families.get(family.name);
    if (entry === undefined) families.set(family.name, (entry = { family, samples: new Map() }));
    for (const sample of family.values) {
      const key = `${sample.metricName ?? family.name}${JSON.stringify(Object.entries(sample.labels).sort(([a], [b]) => (a < b ? -1 : 1)))}`;
      const list = entry.samples.get(key);
      if (list === undefined) entry.samples.set(key, [sample]);
      else list.push(sample);
    }
  }
  return [...families.values()].map(({ family, samples }) => {
    const rule = groupRule(family);
    return {
      name: family.name,
      help: family.help,
      type: family.type,
      aggregator: 'sum',
      values: [...samples.values()].map((list) => {
        const [first] = list as [MetricSample];
        const sample: MetricSample = { value: reduce(rule, list.map((s) => s.value)), labels: first.labels };
        if (first.metricName !== undefined) sample.metricName = first.metricName;
        return sample;
      }),
    };
  });
}

/** The sum of a family's samples in `families` (0 when absent). */
export function totalOf(families: MetricFamily[], name: string): number {
  return families.find((f) => f.name === name)?.values.reduce((n, s) => n + s.value, 0) ?? 0;
}

/** The Prometheus text of combined families. */
export function exposition(families: MetricFamily[]): Promise<string> {
  // One list in: every family's `sum` over itself is itself; this is only prom-client's formatter.
  return AggregatorRegistry.aggregate([families]).metrics();
}

function reduce(rule: GroupRule, values: number[]): number {
  switch (rule) {
    case 'max':
      return Math.max(...values);
    case 'min':
      return Math.min(...values);
    case 'average':
      return values.reduce((a, b) => a + b, 0) / values.length;
    case 'first':
      return values[0] as number;
    default:
      return values.reduce((a, b) => a + b, 0);
  }
}

function gauge(name: string, help: string, value: number): MetricFamily {
  return { name, help, type: 'gauge', aggregator: 'sum', values: [{ value, labels: {} }] };
}
