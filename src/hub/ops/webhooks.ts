/**
 * Webhooks: presence events POSTed to the backend, in the Standard Webhooks shape and signed by
 * its convention (`webhook-id`, `webhook-timestamp`, `webhook-signature`), retried with backoff
 * for a bounded time. Sending runs beside fan-out and never holds it up: events wait in a bounded
 * queue per URL (past it the oldest is dropped and counted), a few requests at a time.
 *
 * Each event is decided once per cluster (core/presence.ts), so each is sent once per URL; a
 * retry carries the same `webhook-id`, which a receiver uses to drop the rare repeat (a response
 * lost after the receiver took the event).
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { Webhook } from 'standardwebhooks';
import type { PresenceEvent } from '../core/presence.js';
import type { HubMetrics } from './metrics.js';

/** Waits before the attempts after the first (ms): about ten minutes in all, then the event is given up. */
const BACKOFF_MS = [1_000, 2_000, 5_000, 15_000, 30_000, 60_000, 120_000, 180_000, 180_000];
/** How long one attempt may take. */
const ATTEMPT_TIMEOUT_MS = 5_000;
/** Events waiting per URL at most. */
const MAX_QUEUED = 10_000;
/** Requests in flight per URL at most. */
const CONCURRENCY = 4;

/** One event on its way to one URL. */
interface Delivery {
  id: string;
  type: PresenceEvent['type'];
  body: string;
  attempt: number;
}

/** The body of a webhook: `type`, `timestamp` and `data`, as Standard Webhooks describes it. */
export function webhookBody(event: PresenceEvent, at: Date): string {
  const { type, ...data } = event;
  return JSON.stringify({ type, timestamp: at.toISOString(), data });
}

/** Sends presence events to the configured URLs. */
export class Webhooks {
  readonly #targets: Target[];

  constructor(options: { urls: readonly string[]; secret: string; log: Logger; metrics: HubMetrics; fetch?: typeof fetch }) {
    const signer = new Webhook(options.secret);
    this.#targets = options.urls.map((url) => new Target(url, signer, options.log, options.metrics, options.fetch ?? globalThis.fetch.bind(globalThis)));
  }

  /** Queues an event for every URL. */
  send(event: PresenceEvent): void {
    const at = new Date();
    const body = webhookBody(event, at);
    // One ID per event, the same for every URL and every retry: what a receiver deduplicates on.
    const id = `msg_${randomUUID()}`;
    for (const target of this.#targets) target.push({ id, type: event.type, body, attempt: 0 });
  }

  /** Stops retrying and waits (at most `wait` ms) for what is queued or in flight to be sent once. */
  async close(wait = 5_000): Promise<void> {
    await Promise.all(this.#targets.map((t) => t.close(wait)));
  }
}

/** One URL: its queue, its requests in flight and its retry timers. */
class Target {
  readonly #url: string;
  readonly #signer: Webhook;
  readonly #log: Logger;
  readonly #metrics: HubMetrics;
  readonly #fetch: typeof fetch;
  #queue: Delivery[] = [];
  #inFlight = 0;
  /** Retries waiting for their time. */
  readonly #timers = new Map<NodeJS.Timeout, Delivery>();
  #closing = false;
  #idle: (() => void) | undefined;

  constructor(url: string, signer: Webhook, log: Logger, metrics: HubMetrics, fetcher: typeof fetch) {
    this.#url = url;
    this.#signer = signer;
    this.#log = log;
    this.#metrics = metrics;
    this.#fetch = fetcher;
  }

  push(delivery: Delivery): void {
    if (this.#queue.length >= MAX_QUEUED) {
      const dropped = this.#queue.shift() as Delivery;
      this.#metrics.webhooks.inc({ event: dropped.type, result: 'dropped' });
      this.#log.warn({ url: this.#url, event: dropped.type, id: dropped.id }, 'webhook dropped: the queue for this URL is full (the receiver is down or too slow)');
    }
    this.#queue.push(delivery);
    this.#pump();
  }

  #pump(): void {
    while (this.#inFlight < CONCURRENCY && this.#queue.length > 0) {
      const delivery = this.#queue.shift() as Delivery;
      this.#inFlight++;
      void this.#attempt(delivery).finally(() => {
        this.#inFlight--;
        this.#pump();
        if (this.#inFlight === 0 && this.#queue.length === 0) this.#idle?.();
      });
    }
  }

  async #attempt(delivery: Delivery): Promise<void> {
    const now = new Date();
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      'user-agent': 'ssehub-webhooks',
      'webhook-id': delivery.id,
      'webhook-timestamp': String(Math.floor(now.getTime() / 1000)),
      // Signed over the ID, the timestamp sent (whole seconds) and the exact body.
      'webhook-signature': this.#signer.sign(delivery.id, new Date(Math.floor(now.getTime() / 1000) * 1000), delivery.body),
    };
    let problem: string;
    try {
      const response = await this.#fetch(this.#url, { method: 'POST', headers, body: delivery.body, signal: AbortSignal.timeout(ATTEMPT_TIMEOUT_MS), redirect: 'manual' });
      await response.body?.cancel().catch(() => {});
      if (response.status >= 200 && response.status < 300) {
        this.#metrics.webhooks.inc({ event: delivery.type, result: 'sent' });
        return;
      }
      problem = `HTTP ${response.status}`;
    } catch (error) {
      problem = error instanceof Error ? (error.cause instanceof Error ? `${error.message} (${error.cause.message})` : error.message) : String(error);
    }
    const wait = BACKOFF_MS[delivery.attempt];
    if (wait === undefined || this.#closing) {
      this.#metrics.webhooks.inc({ event: delivery.type, result: 'failed' });
      this.#log.error({ url: this.#url, event: delivery.type, id: delivery.id, attempts: delivery.attempt + 1, problem }, 'webhook failed; given up');
      return;
    }
    this.#metrics.webhookRetries.inc();
    this.#log.warn({ url: this.#url, event: delivery.type, id: delivery.id, attempt: delivery.attempt + 1, retry_in_ms: wait, problem }, 'webhook not accepted; will retry');
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      this.push({ ...delivery, attempt: delivery.attempt + 1 });
    }, wait);
    timer.unref();
    this.#timers.set(timer, delivery);
  }

  async close(wait: number): Promise<void> {
    this.#closing = true;
    // Retries waiting for their time are not sent: they had their chance, and the process is going away.
    for (const [timer, delivery] of this.#timers) {
      clearTimeout(timer);
      this.#metrics.webhooks.inc({ event: delivery.type, result: 'failed' });
    }
    this.#timers.clear();
    if (this.#inFlight === 0 && this.#queue.length === 0) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, wait);
      timer.unref();
      this.#idle = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
}
