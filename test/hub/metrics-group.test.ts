// How the figures of `--workers` processes make one /metrics (src/hub/ops/metrics.ts
// aggregateGroup): real hub registries, combined without processes.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Gauge } from 'prom-client';
import { HubMetrics, type MetricFamily, aggregateGroup, exposition, groupRule, sumCounters } from '../../src/hub/ops/metrics.js';

/** The samples of a Prometheus text, `series value` per line, without comments. */
function samples(text: string): Map<string, number> {
  return new Map(
    text
      .split('\n')
      .filter((l) => l !== '' && !l.startsWith('#'))
      .map((l) => [l.slice(0, l.lastIndexOf(' ')), Number(l.slice(l.lastIndexOf(' ') + 1))]),
  );
}

/** Two workers' registries: 3 and 2 connections, 5 and 7 updates published, one delivery-latency observation each. */
async function twoWorkers(): Promise<[MetricFamily[], MetricFamily[]]> {
  const [a, b] = [new HubMetrics(), new HubMetrics()];
  a.connections.inc(3);
  b.connections.inc(2);
  a.updatesPublished.inc(5);
  b.updatesPublished.inc(7);
  a.closed.inc({ reason: 'client-closed' });
  b.closed.inc({ reason: 'client-closed' }, 2);
  b.closed.inc({ reason: 'slow-consumer' });
  a.deliveryLatency.observe(0.002);
  b.deliveryLatency.observe(0.2);
  return [await a.figures(), await b.figures()];
}

describe('metrics of a process group', () => {
  it('adds up counters, counting gauges and histograms across workers, label by label', async () => {
    const [a, b] = await twoWorkers();
    const group = samples(await exposition(aggregateGroup({ workers: 2, answers: [{ worker: 1, metrics: a }, { worker: 2, metrics: b }] })));
    assert.equal(group.get('ssehub_connections'), 5);
    assert.equal(group.get('ssehub_updates_published_total'), 12);
    assert.equal(group.get('ssehub_connections_closed_total{reason="client-closed"}'), 3);
    assert.equal(group.get('ssehub_connections_closed_total{reason="slow-consumer"}'), 1);
    assert.equal(group.get('ssehub_delivery_latency_seconds_bucket{le="0.0025"}'), 1);
    assert.equal(group.get('ssehub_delivery_latency_seconds_bucket{le="+Inf"}'), 2);
    assert.equal(group.get('ssehub_delivery_latency_seconds_count'), 2);
  });

  it('says how many workers the group has and how many answered', async () => {
    const [a] = await twoWorkers();
    const group = samples(await exposition(aggregateGroup({ workers: 3, answers: [{ worker: 2, metrics: a }] })));
    assert.equal(group.get('ssehub_workers'), 3);
    assert.equal(group.get('ssehub_workers_reporting'), 1);
    assert.equal(group.get('ssehub_connections'), 3);
  });

  it('keeps file descriptors and start times per worker, with a worker label', async () => {
    const [a, b] = await twoWorkers();
    const group = samples(await exposition(aggregateGroup({ workers: 2, answers: [{ worker: 2, metrics: b }, { worker: 1, metrics: a }] })));
    const series = [...group.keys()].filter((s) => /^process_(open_fds|max_fds|start_time_seconds)\b/.test(s)).sort();
    // prom-client reads the descriptor counts from /proc (Linux); the start time everywhere.
    const expected = process.platform === 'linux' ? ['process_max_fds', 'process_open_fds', 'process_start_time_seconds'] : ['process_start_time_seconds'];
    assert.deepEqual(series, expected.flatMap((name) => [`${name}{worker="1"}`, `${name}{worker="2"}`]));
  });

  it('takes the worst worker for event-loop lag and the least for its minimum', () => {
    const lag = (name: string, value: number): MetricFamily => ({ name, help: '', type: 'gauge', aggregator: 'average', values: [{ value, labels: {} }] });
    const worker = (p99: number, min: number) => [lag('nodejs_eventloop_lag_p99_seconds', p99), lag('nodejs_eventloop_lag_min_seconds', min)];
    const group = aggregateGroup({ workers: 2, answers: [{ worker: 1, metrics: worker(0.01, 0.002) }, { worker: 2, metrics: worker(0.5, 0.004) }] });
    assert.equal(group.find((f) => f.name === 'nodejs_eventloop_lag_p99_seconds')?.values[0]?.value, 0.5);
    assert.equal(group.find((f) => f.name === 'nodejs_eventloop_lag_min_seconds')?.values[0]?.value, 0.002);
  });

  it("follows a metric's own aggregator option, so a gauge that already holds a cluster-wide figure is not multiplied", async () => {
    const make = async (value: number) => {
      const metrics = new HubMetrics();
      new Gauge({ name: 'test_cluster_wide', help: 'the same figure on every worker', aggregator: 'max', registers: [metrics.registry] }).set(value);
      return metrics.figures(['test_cluster_wide']);
    };
    assert.equal(groupRule({ name: 'test_cluster_wide', aggregator: 'max' }), 'max');
    const group = aggregateGroup({ workers: 2, answers: [{ worker: 1, metrics: await make(4) }, { worker: 2, metrics: await make(4) }] });
    assert.equal(group.find((f) => f.name === 'test_cluster_wide')?.values[0]?.value, 4);
  });

  it('adds the carried counters of workers that did not answer, but not their gauges', async () => {
    const [a, b] = await twoWorkers();
    const group = samples(await exposition(aggregateGroup({ workers: 2, answers: [{ worker: 1, metrics: a }], carried: [b] })));
    assert.equal(group.get('ssehub_updates_published_total'), 12);
    assert.equal(group.get('ssehub_delivery_latency_seconds_count'), 2);
    assert.equal(group.get('ssehub_connections'), 3, "a worker that did not answer has no known connections; its last count is not carried");
    assert.equal(group.get('ssehub_workers_reporting'), 1);
  });

  it('adds up the counters of several exited workers into one report', async () => {
    const [a, b] = await twoWorkers();
    const retired = sumCounters([a, b]);
    assert.equal(retired.find((f) => f.name === 'ssehub_updates_published_total')?.values[0]?.value, 12);
    assert.equal(retired.some((f) => f.name === 'ssehub_connections'), false);
  });

  it('leaves a single hub\'s /metrics as its own registry says', async () => {
    const metrics = new HubMetrics();
    metrics.connections.inc();
    const text = await metrics.text();
    assert.match(text, /^ssehub_connections 1$/m);
    assert.doesNotMatch(text, /ssehub_workers|worker="/);
  });
});
