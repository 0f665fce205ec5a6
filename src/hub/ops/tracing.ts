/**
 * OpenTelemetry tracing, optional (`--tracing`): `@opentelemetry/api` is an optional dependency,
 * loaded only when tracing is on, and the spans go wherever the application's SDK sends them (the
 * hub registers no SDK or exporter itself; without one, the API's no-op tracer makes this free).
 *
 * - `ssehub.publish` (PRODUCER): one per publish, child of the request's `traceparent` when it has
 *   one; attributes: topics count, update id, time spent in the transport.
 * - `ssehub.subscribe` (SERVER): one per connection, from open to close, with events `connected`,
 *   `replayed` (count) and `disconnected` (reason).
 * - `ssehub.deliver` (CONSUMER): one per update and fan-out pass, a child of its publish span, so
 *   the publisher's trace continues to the subscribers; linked to the connection spans it reached
 *   (at most MAX_LINKS of them) and counting them all.
 */
import type { Context, Link, Span, SpanContext, Tracer } from '@opentelemetry/api';
import { ConfigError } from '../config.js';
import type { Update } from '../core/update.js';

type Api = typeof import('@opentelemetry/api');

/** Links a delivery span carries at most; the count of deliveries is an attribute either way. */
const MAX_LINKS = 128;

/** A connection's span, as the hub uses it. */
export interface ConnectionTrace {
  event(name: string, attributes?: Record<string, string | number>): void;
  end(reason: string): void;
  readonly context: SpanContext;
}

/** The hub's tracing, when on. */
export class Tracing {
  #api: Api;
  #tracer: Tracer;
  /** The publish span of each update still in flight, for its delivery spans. */
  #published = new WeakMap<Update, SpanContext>();

  constructor(api: Api) {
    this.#api = api;
    this.#tracer = api.trace.getTracer('ssehub');
  }

  /** Starts the span of a publish; `headers` may carry the publisher's `traceparent`. */
  publish(headers: Record<string, string | string[] | undefined>): { span: Span; done(update: Update | undefined, transportMs: number | undefined, error?: unknown): void } {
    const api = this.#api;
    const parent: Context = api.propagation.extract(api.ROOT_CONTEXT, headers);
    const span = this.#tracer.startSpan('ssehub.publish', { kind: api.SpanKind.PRODUCER }, parent);
    return {
      span,
      done: (update, transportMs, error) => {
        if (update !== undefined) {
          span.setAttribute('ssehub.update.id', update.id);
          span.setAttribute('ssehub.topics.count', update.topics.length);
          this.#published.set(update, span.spanContext());
        }
        if (transportMs !== undefined) span.setAttribute('ssehub.transport.ms', transportMs);
        if (error !== undefined) {
          span.recordException(error instanceof Error ? error : String(error));
          span.setStatus({ code: api.SpanStatusCode.ERROR, message: error instanceof Error ? error.message : String(error) });
        }
        span.end();
      },
    };
  }

  /** Starts the span of a connection. */
  connection(attributes: Record<string, string | number>): ConnectionTrace {
    const span = this.#tracer.startSpan('ssehub.subscribe', { kind: this.#api.SpanKind.SERVER, attributes });
    return {
      context: span.spanContext(),
      event: (name, attrs) => span.addEvent(name, attrs),
      end: (reason) => {
        span.addEvent('disconnected', { reason });
        span.end();
      },
    };
  }

  /** Records the delivery of an update to the connections in `reached` (their span contexts) and how many there were in all. */
  delivered(update: Update, reached: SpanContext[], count: number): void {
    const published = this.#published.get(update);
    if (published === undefined) return;
    const api = this.#api;
    const links: Link[] = reached.slice(0, MAX_LINKS).map((context) => ({ context }));
    const span = this.#tracer.startSpan('ssehub.deliver', { kind: api.SpanKind.CONSUMER, links, attributes: { 'ssehub.update.id': update.id, 'ssehub.deliveries': count } }, api.trace.setSpanContext(api.ROOT_CONTEXT, published));
    span.end();
  }
}

/** Loads the OpenTelemetry API for `--tracing`; a missing optional dependency is a start-up error naming the setting. */
export async function loadTracing(enabled: boolean): Promise<Tracing | undefined> {
  if (!enabled) return undefined;
  try {
    return new Tracing(await import('@opentelemetry/api'));
  } catch {
    throw new ConfigError('--tracing', 'needs the optional dependency @opentelemetry/api (npm install @opentelemetry/api) and an OpenTelemetry SDK registered by your process');
  }
}
