// OpenTelemetry (--tracing), with the SDK's in-memory exporter: one publish carrying a traceparent,
// delivered to two subscribers, gives one trace from the publisher to both connections.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { propagation, trace } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { BasicTracerProvider, InMemorySpanExporter, type ReadableSpan, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { type TestHub, startTestHub } from '../helpers/hub.js';
import { openSse } from '../helpers/sse-client.js';

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT_SPAN = '00f067aa0ba902b7';

describe('tracing', () => {
  const exporter = new InMemorySpanExporter();
  let hub: TestHub;
  before(async () => {
    trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }));
    propagation.setGlobalPropagator(new W3CTraceContextPropagator());
    hub = await startTestHub(['--tracing', '--anonymous', '--drain-timeout', '0']);
  });
  after(async () => {
    await hub.close();
    trace.disable();
    propagation.disable();
  });

  const spans = (name: string): ReadableSpan[] => exporter.getFinishedSpans().filter((s) => s.name === name);

  async function until(check: () => boolean, what: string): Promise<void> {
    for (let i = 0; i < 200 && !check(); i++) await new Promise((resolve) => setTimeout(resolve, 25));
    assert.ok(check(), `timed out waiting for ${what}`);
  }

  it('links a publish to its delivery and to both connections that received it', async () => {
    const subs = await Promise.all([1, 2].map(() => openSse(`${hub.hubUrl}?topic=t`)));
    const published = await hub.publish({ topic: 't', data: 'traced' }, hub.adminToken, { traceparent: `00-${TRACE_ID}-${PARENT_SPAN}-01` });
    assert.equal(published.status, 200);
    const id = published.body.trim();
    await Promise.all(subs.map((s) => s.until((r) => r.events.some((e) => e.data === 'traced'), 'the update')));
    for (const s of subs) s.close();
    await until(() => spans('ssehub.subscribe').length === 2 && spans('ssehub.deliver').length === 1, 'two connection spans and a delivery span');

    const [publish] = spans('ssehub.publish');
    assert.equal(publish?.spanContext().traceId, TRACE_ID, 'the publish continues the publisher’s trace');
    assert.equal(publish?.parentSpanContext?.spanId, PARENT_SPAN);
    assert.equal(publish?.attributes['ssehub.update.id'], id);
    assert.equal(publish?.attributes['ssehub.topics.count'], 1);
    assert.equal(typeof publish?.attributes['ssehub.transport.ms'], 'number');

    const [deliver] = spans('ssehub.deliver');
    assert.equal(deliver?.spanContext().traceId, TRACE_ID, 'the delivery is in the same trace');
    assert.equal(deliver?.parentSpanContext?.spanId, publish?.spanContext().spanId, 'a child of the publish');
    assert.equal(deliver?.attributes['ssehub.deliveries'], 2);
    const connections = spans('ssehub.subscribe');
    assert.deepEqual(new Set(deliver?.links.map((l) => l.context.spanId)), new Set(connections.map((c) => c.spanContext().spanId)), 'linked to both connection spans');

    for (const connection of connections) {
      assert.deepEqual(connection.events.map((e) => e.name), ['connected', 'disconnected']);
      assert.equal(connection.events[1]?.attributes?.reason, 'client-closed');
      assert.equal(connection.attributes['ssehub.topics.count'], 1);
    }
  });

  it('records the replay of a resume on the connection span', async () => {
    exporter.reset();
    const first = await hub.publish({ topic: 'r', data: 'one' });
    await hub.publish({ topic: 'r', data: 'two' });
    await hub.publish({ topic: 'r', data: 'three' });
    const sub = await openSse(`${hub.hubUrl}?topic=r`, { 'last-event-id': first.body.trim() });
    await sub.until((r) => r.events.length >= 2, 'the replay');
    sub.close();
    await until(() => spans('ssehub.subscribe').length === 1, 'the connection span');
    const [connection] = spans('ssehub.subscribe');
    const replayed = connection?.events.find((e) => e.name === 'replayed');
    assert.equal(replayed?.attributes?.count, 2);
  });
});
