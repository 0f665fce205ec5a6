/** Prometheus metrics of a hub (one registry per hub, so tests can run several hubs in one process). */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * The hub's metrics, in the project's vocabulary: updates, deliveries, subscriptions, and
 * connections — a client's connection of any protocol (an SSE stream is the connection of the
 * SSE front-end).
 */
export class HubMetrics {
  readonly registry = new Registry();
  readonly connections = new Gauge({ name: 'ssehub_connections', help: 'Open client connections (SSE streams)', registers: [this.registry] });
  readonly subscriptions = new Gauge({ name: 'ssehub_subscriptions', help: 'Topic selectors of open connections', registers: [this.registry] });
  readonly updatesPublished = new Counter({ name: 'ssehub_updates_published_total', help: 'Updates accepted and stored', registers: [this.registry] });
  readonly deliveries = new Counter({ name: 'ssehub_deliveries_total', help: 'Events written to subscribers (live and replayed)', registers: [this.registry] });
  readonly replayed = new Counter({ name: 'ssehub_replayed_events_total', help: 'Events replayed from history on resume', registers: [this.registry] });
  readonly resyncs = new Counter({ name: 'ssehub_resyncs_total', help: 'Resumes from an ID no longer (or never) in history', registers: [this.registry] });
  readonly closed = new Counter({ name: 'ssehub_connections_closed_total', help: 'Ended client connections by reason', labelNames: ['reason'] as const, registers: [this.registry] });
  readonly poison = new Counter({ name: 'ssehub_poison_updates_total', help: 'Entries read from the transport that are not valid updates (skipped), by where they were met', labelNames: ['where'] as const, registers: [this.registry] });
  readonly webhooks = new Counter({ name: 'ssehub_webhooks_total', help: 'Webhook events by type and result: sent (2xx), failed (given up after retries), dropped (queue full)', labelNames: ['event', 'result'] as const, registers: [this.registry] });
  readonly webhookRetries = new Counter({ name: 'ssehub_webhook_retries_total', help: 'Webhook attempts that failed and were retried', registers: [this.registry] });
  readonly presenceLost = new Counter({ name: 'ssehub_presence_lost_nodes_total', help: 'Nodes whose presence lease ran out, claimed by this node (their subscribers removed)', registers: [this.registry] });
  readonly rejected = new Counter({ name: 'ssehub_requests_rejected_total', help: 'Requests answered with an error, by status and reason', labelNames: ['status', 'reason'] as const, registers: [this.registry] });
  readonly deliveryLatency = new Histogram({
    name: 'ssehub_delivery_latency_seconds',
    help: 'From an update being accepted to it being written to every matching subscriber of this process',
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });

  constructor() {
    // Process metrics and event-loop lag (nodejs_eventloop_lag_*), the hub's first health signal.
    collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: 20 });
  }
}
