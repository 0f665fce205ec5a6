// ssehub/client's EventSource in Node, against a scripted loopback server (test/helpers/sse-fixture.ts)
// and, for resync, a real hub. The first half is the WHATWG processing model — the behaviours the
// web-platform-tests `eventsource/` folder checks, restated in our own words; the second half is
// what this client adds (headers, method/body, fetch, signal, de-duplication, resync,
// heartbeatTimeout, reconnect policy, async iteration) and the Mercure helpers.
//
// Reconnections are kept fast by the server's `retry:` (10 ms) and `reconnect: { initialDelay: 0 }`
// (no backoff on top of it). A test that asserts that something does NOT happen (no new request)
// waits QUIET ms, many times the reconnection delay the client would otherwise have used.
import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import {
  EventSource,
  EventSourceError,
  type EventSourceInit,
  EventSourceErrorEvent,
  discoverHub,
  mercureSubscribeUrl,
  parseLinkHeader,
} from '../../src/client/index.js';
import { HUB_PATH, startTestHub } from '../helpers/hub.js';
import { type FixtureConnection, type SseFixture, startSseFixture } from '../helpers/sse-fixture.js';
import { startTcpProxy } from '../helpers/tcp-proxy.js';

const T = { timeout: 20_000 };
/**
 * Known bug, reported: parseLinkHeader (src/client/mercure.ts) loses a quoted rel (`rel="mercure"`,
 * the form every Mercure hub sends) because its parameter-name class `[^;,"]+` swallows the `=`.
 * These tests pass once that class excludes `=`; remove the todo then.
 */
/** The server's reconnection time in most tests. */
const RETRY = 10;
/** How long a test watches for something that must not happen (a reconnection would come after RETRY). */
const QUIET = 100;
/** No backoff on top of the server's retry, so the reconnection delay is exactly `retry`. */
const FAST: EventSourceInit = { reconnect: { initialDelay: 0 } };

/** What a listener saw, with the source's readyState at that moment. */
interface Entry {
  type: string;
  readyState: number;
  data?: string;
  lastEventId?: string;
  origin?: string;
  willRetry?: boolean;
  status?: number;
  delay?: number;
  message?: string;
  body?: string;
  event: Event;
}

/** Records the events of a source, in order, and waits for conditions on them. */
class Recorder {
  readonly entries: Entry[] = [];
  #waiters: { check: () => boolean; resolve: () => void }[] = [];

  constructor(
    readonly source: EventSource,
    types: string[],
  ) {
    for (const type of types) source.addEventListener(type, (event) => this.#push(event));
  }

  /** Data of the `message` events. */
  get messages(): string[] {
    return this.of('message').map((e) => e.data ?? '');
  }

  /** Entries of one event type. */
  of(type: string): Entry[] {
    return this.entries.filter((e) => e.type === type);
  }

  /** The event types in order, e.g. `['open', 'message', 'error', 'open']`. */
  get types(): string[] {
    return this.entries.map((e) => e.type);
  }

  /** Resolves when `check` holds (checked after every event); a 5 s safety net explains a hang. */
  until(check: (r: Recorder) => boolean, what: string): Promise<void> {
    return within(
      new Promise<void>((resolve) => {
        if (check(this)) resolve();
        else this.#waiters.push({ check: () => check(this), resolve });
      }),
      () => `${what}; events so far: ${JSON.stringify(this.entries.map(({ event: _, ...rest }) => rest))}`,
    );
  }

  #push(event: Event): void {
    const entry: Entry = { type: event.type, readyState: this.source.readyState, event };
    if (event instanceof MessageEvent) Object.assign(entry, { data: event.data as string, lastEventId: event.lastEventId, origin: event.origin });
    if (event instanceof EventSourceErrorEvent) Object.assign(entry, { willRetry: event.willRetry, status: event.status, delay: event.delay, message: event.message, body: event.body });
    this.entries.push(entry);
    this.#waiters = this.#waiters.filter((w) => {
      if (!w.check()) return true;
      w.resolve();
      return false;
    });
  }
}

/** A safety net: rejects with an explanation when `promise` takes more than 5 s. */
async function within<V>(promise: Promise<V>, what: string | (() => string)): Promise<V> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for: ${typeof what === 'string' ? what : what()}`)), 5000);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function quiet(ms = QUIET): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A started fixture, stopped after the test. */
async function fixture(): Promise<SseFixture> {
  const fx = await startSseFixture();
  after(() => fx.close());
  return fx;
}

/** An EventSource closed after the test, recording open, message, error and `types`. */
function connect(url: string, init: EventSourceInit = FAST, types: string[] = []): { source: EventSource; rec: Recorder } {
  const source = new EventSource(url, init);
  after(() => source.close());
  return { source, rec: new Recorder(source, ['open', 'message', 'error', ...types]) };
}

/** Waits for connection #n and opens it as an event stream with `retry: RETRY`. */
async function opened(fx: SseFixture, n: number, retry = RETRY): Promise<FixtureConnection> {
  const connection = await within(fx.connection(n), `connection #${n}`);
  return connection.open({ retry });
}

describe('EventSource interface', () => {
  it('exposes CONNECTING = 0, OPEN = 1 and CLOSED = 2 on the class and on instances', T, () => {
    assert.deepEqual([EventSource.CONNECTING, EventSource.OPEN, EventSource.CLOSED], [0, 1, 2]);
    const source = new EventSource('http://127.0.0.1:9/');
    source.close();
    assert.deepEqual([source.CONNECTING, source.OPEN, source.CLOSED], [0, 1, 2]);
  });

  it('resolves its url and reflects withCredentials (false unless asked for)', T, () => {
    const plain = new EventSource('http://127.0.0.1:9/a/../events?x=1');
    const credentialed = new EventSource('http://127.0.0.1:9/events', { withCredentials: true });
    plain.close();
    credentialed.close();
    assert.equal(plain.url, 'http://127.0.0.1:9/events?x=1');
    assert.equal(plain.withCredentials, false);
    assert.equal(credentialed.withCredentials, true);
  });

  it('throws a SyntaxError DOMException for a URL that cannot be parsed', T, () => {
    assert.throws(
      () => new EventSource('http://[not-an-address/'),
      (error: unknown) => error instanceof DOMException && error.name === 'SyntaxError',
    );
  });

  it('is CONNECTING at first, then OPEN with an open event when the server answers 200 text/event-stream', T, async () => {
    const fx = await fixture();
    const { source, rec } = connect(fx.url());
    assert.equal(source.readyState, EventSource.CONNECTING);
    await opened(fx, 1);
    await rec.until((r) => r.types.includes('open'), 'open');
    assert.deepEqual(rec.entries.map((e) => [e.type, e.readyState]), [['open', EventSource.OPEN]]);
    assert.equal(source.readyState, EventSource.OPEN);
  });

  for (const contentType of ['text/event-stream; charset=utf-8', 'text/event-stream;', 'Text/Event-Stream', 'text/event-stream;charset=bogus']) {
    it(`accepts the content type "${contentType}" (the essence is what counts)`, T, async () => {
      const fx = await fixture();
      const { rec } = connect(fx.url());
      (await within(fx.connection(1), 'connection #1')).open({ contentType }).event({ data: 'hi' });
      await rec.until((r) => r.messages.length === 1, 'one message');
      assert.deepEqual(rec.types, ['open', 'message']);
    });
  }

  it('replaces the previous onmessage/onopen/onerror handler when set again, and null removes it', T, async () => {
    const fx = await fixture();
    const { source, rec } = connect(fx.url());
    const calls: string[] = [];
    source.onmessage = () => calls.push('first');
    source.onmessage = () => calls.push('second');
    source.onopen = () => calls.push('open');
    source.onopen = null;
    source.onerror = () => calls.push('error');
    assert.equal(source.onopen, null);
    const connection = await opened(fx, 1);
    connection.event({ data: 'a' });
    await rec.until((r) => r.messages.length === 1, 'message a');
    source.onmessage = null;
    connection.event({ data: 'b' }).end();
    await rec.until((r) => r.messages.length === 2 && r.types.includes('error'), 'message b and the end of the stream');
    assert.deepEqual(calls, ['second', 'error']);
  });

  it('calls onopen, onmessage and onerror with this bound to the source', T, async () => {
    const fx = await fixture();
    const { source, rec } = connect(fx.url());
    const thisValues: unknown[] = [];
    source.onopen = function () {
      thisValues.push(this);
    };
    source.onmessage = function () {
      thisValues.push(this);
    };
    source.onerror = function () {
      thisValues.push(this);
    };
    (await opened(fx, 1)).event({ data: 'x' }).end();
    await rec.until((r) => r.types.includes('error'), 'error after the end');
    assert.equal(thisValues.length, 3);
    for (const value of thisValues) assert.equal(value, source);
  });
});

describe('EventSource: event stream format, end to end', () => {
  it('strips one leading BOM (even split across chunks) and no later one', T, async () => {
    const fx = await fixture();
    const { rec } = connect(fx.url());
    const connection = await opened(fx, 1);
    // The retry line above went first, so open a fresh connection whose body starts with the BOM.
    connection.end();
    const second = (await within(fx.connection(2), 'connection #2')).open();
    second.write(Uint8Array.of(0xef, 0xbb));
    second.write(Uint8Array.of(0xbf, ...new TextEncoder().encode('data: first\n\n\uFEFFdata: second\n\ndata: third\n\n')));
    await rec.until((r) => r.messages.includes('third'), 'message third');
    assert.deepEqual(rec.messages, ['first', 'third']);
  });

  it('accepts LF, CR and CRLF line ends, a CRLF split across chunks included', T, async () => {
    const fx = await fixture();
    const { rec } = connect(fx.url());
    const connection = await opened(fx, 1);
    connection.write('data: lf\n\ndata: cr\r\rdata: crlf\r\n\r\ndata: split\r');
    await rec.until((r) => r.messages.length === 3, 'three messages');
    connection.write('\n\r\ndata: after\n\n');
    await rec.until((r) => r.messages.length === 5, 'five messages');
    assert.deepEqual(rec.messages, ['lf', 'cr', 'crlf', 'split', 'after']);
  });

  it('decodes UTF-8 split across chunks, and an invalid byte as U+FFFD', T, async () => {
    const fx = await fixture();
    const { rec } = connect(fx.url());
    const connection = await opened(fx, 1);
    const euro = new TextEncoder().encode('data: 1€\n\n');
    connection.write(euro.subarray(0, 9));
    await rec.until((r) => r.types.includes('open'), 'open');
    connection.write(euro.subarray(9));
    connection.write(Uint8Array.of(...new TextEncoder().encode('data: a'), 0xff, ...new TextEncoder().encode('b\n\n')));
    await rec.until((r) => r.messages.length === 2, 'two messages');
    assert.deepEqual(rec.messages, ['1€', 'a\uFFFDb']);
  });

  it('ignores comment lines and unknown fields', T, async () => {
    const fx = await fixture();
    const { rec } = connect(fx.url());
    (await opened(fx, 1)).write(':comment\n: data: no\nfoo: bar\ndata: a\n:another\n\ndata: b\n\n');
    await rec.until((r) => r.messages.length === 2, 'two messages');
    assert.deepEqual(rec.messages, ['a', 'b']);
  });

  it('joins data lines with LF and removes exactly one space after the colon', T, async () => {
    const fx = await fixture();
    const { rec } = connect(fx.url());
    (await opened(fx, 1)).write('data: one\ndata:two\ndata:  three\ndata: \n\n');
    await rec.until((r) => r.messages.length === 1, 'one message');
    assert.deepEqual(rec.messages, ['one\ntwo\n three\n']);
  });

  it('treats a field name without a colon as having an empty value', T, async () => {
    const fx = await fixture();
    const { rec } = connect(fx.url());
    (await opened(fx, 1)).write('data\n\ndata\ndata\n\nid: 1\ndata: x\n\nid\ndata: y\n\n');
    await rec.until((r) => r.messages.length === 4, 'four messages');
    assert.deepEqual(
      rec.of('message').map((e) => [e.data, e.lastEventId]),
      [
        ['', ''],
        ['\n', ''],
        ['x', '1'],
        ['y', ''],
      ],
    );
  });

  it('ignores an id containing NUL and keeps the previous last event ID', T, async () => {
    const fx = await fixture();
    const { rec } = connect(fx.url());
    (await opened(fx, 1)).write('id: good\ndata: a\n\nid: b\u0000ad\ndata: b\n\n');
    await rec.until((r) => r.messages.length === 2, 'two messages');
    assert.deepEqual(rec.of('message').map((e) => e.lastEventId), ['good', 'good']);
  });

  it('takes retry only when it is all ASCII digits', T, async () => {
    const fx = await fixture();
    const { source, rec } = connect(fx.url());
    (await opened(fx, 1, 40)).write('retry: 7x\n\nretry: 1.5\n\nretry: -3\n\nretry:  9\n\n').end();
    await rec.until((r) => r.types.includes('error'), 'the reconnection after the end');
    assert.equal(source.reconnectionTime, 40);
    assert.equal(rec.of('error')[0]?.delay, 40);
  });

  it('dispatches an event only at a blank line: one cut off by the end of the stream is dropped', T, async () => {
    const fx = await fixture();
    const { rec } = connect(fx.url());
    (await opened(fx, 1)).write('data: complete\n\ndata: cut off\n').end();
    await rec.until((r) => r.types.includes('error'), 'the end of the stream');
    assert.deepEqual(rec.types, ['open', 'message', 'error']);
    assert.deepEqual(rec.messages, ['complete']);
  });

  it('dispatches nothing for a block without data, but its id still becomes the last event ID', T, async () => {
    const fx = await fixture();
    const { rec } = connect(fx.url());
    (await opened(fx, 1)).write('id: 7\n\nevent: typed\n\ndata: x\n\n');
    await rec.until((r) => r.messages.length === 1, 'one message');
    assert.deepEqual(rec.of('message').map((e) => [e.data, e.lastEventId]), [['x', '7']]);
    assert.deepEqual(rec.types, ['open', 'message']);
  });
});

describe('EventSource: events', () => {
  it('delivers typed events to addEventListener(type), not to onmessage', T, async () => {
    const fx = await fixture();
    const { source, rec } = connect(fx.url(), FAST, ['update']);
    const onmessage: string[] = [];
    source.onmessage = (event) => onmessage.push((event as MessageEvent).data as string);
    (await opened(fx, 1)).write('event: update\ndata: typed\n\ndata: plain\n\n');
    await rec.until((r) => r.messages.length === 1, 'the plain message');
    assert.deepEqual(rec.of('update').map((e) => e.data), ['typed']);
    assert.deepEqual(onmessage, ['plain']);
  });

  it('treats an empty event field as a plain message', T, async () => {
    const fx = await fixture();
    const { rec } = connect(fx.url());
    (await opened(fx, 1)).write('event:\ndata: x\n\n');
    await rec.until((r) => r.messages.length === 1, 'one message');
    assert.deepEqual(rec.types, ['open', 'message']);
  });

  it('gives each MessageEvent its data, lastEventId and the origin of the stream', T, async () => {
    const fx = await fixture();
    const { rec } = connect(fx.url());
    (await opened(fx, 1)).event({ id: 'e1', data: 'hello' });
    await rec.until((r) => r.messages.length === 1, 'one message');
    const [message] = rec.of('message');
    assert.ok(message?.event instanceof MessageEvent);
    assert.deepEqual([message.data, message.lastEventId, message.origin], ['hello', 'e1', fx.origin]);
  });

  it('keeps the last event ID for events without an id, until an id changes it', T, async () => {
    const fx = await fixture();
    const { source, rec } = connect(fx.url());
    (await opened(fx, 1)).event({ id: '1', data: 'a' }).event({ data: 'b' }).event({ id: '2', data: 'c' }).event({ data: 'd' });
    await rec.until((r) => r.messages.length === 4, 'four messages');
    assert.deepEqual(rec.of('message').map((e) => e.lastEventId), ['1', '1', '2', '2']);
    assert.equal(source.lastEventId, '2');
  });

  it('after a redirect to another origin, gives events the origin of the final URL', T, async () => {
    const fx = await fixture();
    const other = await fixture();
    const { rec } = connect(fx.url('/moved'));
    (await within(fx.connection(1), 'connection #1')).redirect(302, other.url('/events'));
    (await opened(other, 1)).event({ data: 'x' });
    await rec.until((r) => r.messages.length === 1, 'one message');
    assert.notEqual(fx.origin, other.origin);
    assert.equal(rec.of('message')[0]?.origin, other.origin);
  });
});

describe('EventSource: reconnection', () => {
  it('when the response ends cleanly: CONNECTING with an error event that will retry after the server retry, then OPEN again', T, async () => {
    const fx = await fixture();
    const { rec } = connect(fx.url());
    (await opened(fx, 1, 25)).event({ data: 'a' }).end();
    await opened(fx, 2);
    await rec.until((r) => r.of('open').length === 2, 'the second open');
    assert.deepEqual(rec.entries.map((e) => [e.type, e.readyState]), [
      ['open', EventSource.OPEN],
      ['message', EventSource.OPEN],
      ['error', EventSource.CONNECTING],
      ['open', EventSource.OPEN],
    ]);
    const [error] = rec.of('error');
    assert.ok(error?.event instanceof EventSourceErrorEvent);
    assert.deepEqual([error.willRetry, error.delay, error.status], [true, 25, undefined]);
  });

  it('with the default backoff, never reconnects sooner than the server retry', T, async () => {
    const fx = await fixture();
    const { rec } = connect(fx.url(), {});
    (await opened(fx, 1, 300)).end();
    await rec.until((r) => r.types.includes('error'), 'the error event');
    const delay = rec.of('error')[0]?.delay ?? 0;
    assert.ok(delay >= 300, `delay ${delay} is shorter than retry: 300`);
  });

  it('when the connection breaks mid-stream, reconnects', T, async () => {
    const fx = await fixture();
    const { rec } = connect(fx.url());
    const first = (await opened(fx, 1)).event({ data: 'a' });
    await rec.until((r) => r.messages.length === 1, 'message a');
    first.write('data: half').destroy();
    (await opened(fx, 2)).event({ data: 'b' });
    await rec.until((r) => r.messages.length === 2, 'message b');
    assert.deepEqual(rec.types, ['open', 'message', 'error', 'open', 'message']);
    assert.deepEqual(rec.messages, ['a', 'b']);
    assert.equal(rec.of('error')[0]?.willRetry, true);
  });

  it('when the server is down (connection refused), keeps retrying and opens once it is back', T, async () => {
    const fx = await fixture();
    await fx.stop();
    const { rec } = connect(fx.url(), { ...FAST, initialRetry: RETRY });
    await rec.until((r) => r.of('error').length >= 2, 'two failed attempts');
    assert.deepEqual(
      rec.entries.map((e) => [e.type, e.readyState, e.willRetry]),
      rec.entries.map(() => ['error', EventSource.CONNECTING, true]),
    );
    await fx.restart();
    (await opened(fx, 1)).event({ data: 'back' });
    await rec.until((r) => r.messages.length === 1, 'a message after the restart');
    assert.deepEqual(rec.types.slice(-2), ['open', 'message']);
  });

  it('sends the last event ID as Last-Event-ID when it reconnects, and none on the first connection', T, async () => {
    const fx = await fixture();
    const { rec } = connect(fx.url());
    const first = await opened(fx, 1);
    first.event({ id: 'e-41', data: 'a' }).event({ data: 'b' }).end();
    const second = await opened(fx, 2);
    await rec.until((r) => r.of('open').length === 2, 'the second open');
    assert.equal(first.lastEventId, undefined);
    assert.equal(second.lastEventId, 'e-41');
  });

  it('sends no Last-Event-ID after an empty id reset the last event ID', T, async () => {
    const fx = await fixture();
    const { rec } = connect(fx.url());
    (await opened(fx, 1)).event({ id: 'x', data: 'a' }).write('id\ndata: b\n\n').end();
    const second = await opened(fx, 2);
    await rec.until((r) => r.of('open').length === 2, 'the second open');
    assert.equal(second.lastEventId, undefined);
  });

  it('starts each connection with empty event type and data buffers', T, async () => {
    const fx = await fixture();
    const { rec } = connect(fx.url(), FAST, ['typed']);
    (await opened(fx, 1)).write('event: typed\ndata: from the first connection\n').end();
    (await opened(fx, 2)).write('data: fresh\n\n');
    await rec.until((r) => r.messages.length === 1, 'one message');
    assert.deepEqual(rec.messages, ['fresh']);
    assert.equal(rec.of('typed').length, 0);
  });
});

/**
 * The bytes of a request header as they came over the wire, in hex: node:http hands header values
 * over as Latin-1, one character per byte.
 */
function wireBytes(header: string | undefined): string | undefined {
  return header === undefined ? undefined : Buffer.from(header, 'latin1').toString('hex');
}

/** An event ID that is not ASCII (nor Latin-1), and its UTF-8 bytes. */
const NON_ASCII_ID = '日本-1';
const NON_ASCII_ID_UTF8 = 'e697a5e69cac2d31';

describe('EventSource: an event ID that is not ASCII', () => {
  it('is sent as its UTF-8 bytes in Last-Event-ID when the client reconnects, and the new stream is read', T, async () => {
    const fx = await fixture();
    const { rec } = connect(fx.url());
    (await opened(fx, 1)).event({ id: NON_ASCII_ID, data: 'a' }).end();
    const second = await opened(fx, 2);
    second.event({ data: 'b' });
    await rec.until((r) => r.messages.length === 2, 'message b on the second connection');
    assert.equal(wireBytes(second.lastEventId), NON_ASCII_ID_UTF8);
    assert.deepEqual(rec.of('message').map((e) => e.lastEventId), [NON_ASCII_ID, NON_ASCII_ID]);
  });

  it('given as the lastEventId option, is sent as its UTF-8 bytes on the first connection', T, async () => {
    const fx = await fixture();
    const { source } = connect(fx.url(), { ...FAST, lastEventId: NON_ASCII_ID });
    const first = await opened(fx, 1);
    assert.equal(wireBytes(first.lastEventId), NON_ASCII_ID_UTF8);
    assert.equal(source.lastEventId, NON_ASCII_ID);
  });

  it('in the Latin-1 range, is sent as UTF-8 too (two bytes for é), not as one Latin-1 byte', T, async () => {
    const fx = await fixture();
    connect(fx.url(), { ...FAST, lastEventId: 'café' });
    assert.equal(wireBytes((await opened(fx, 1)).lastEventId), '636166c3a9');
  });

  describe('against a real hub', () => {
    const TOPIC = 'https://example.com/books/日本';

    it('after a dropped connection, the client resumes and receives the update published while it was away', T, async () => {
      const hub = await startTestHub(['--anonymous', '--retry', '20ms']);
      after(() => hub.close());
      // The client goes through a proxy that can cut it off; the publisher talks to the hub directly.
      const proxy = await startTcpProxy(Number(new URL(hub.url).port));
      after(() => proxy.close());
      const { rec } = connect(mercureSubscribeUrl(`http://127.0.0.1:${proxy.port}${HUB_PATH}`, TOPIC), FAST, ['resync']);
      await rec.until((r) => r.types.includes('open'), 'open');
      assert.equal((await hub.publish({ topic: TOPIC, id: NON_ASCII_ID, data: 'one' })).status, 200);
      await rec.until((r) => r.messages.length === 1, `update ${NON_ASCII_ID}`);
      // Cut the connection and hold the reconnection back until the next update is published, so
      // that the client can only get it from history, by sending Last-Event-ID.
      proxy.stall('both');
      proxy.drop();
      await rec.until((r) => r.types.includes('error'), 'the error event of the dropped connection');
      assert.equal((await hub.publish({ topic: TOPIC, id: '日本-2', data: 'two' })).status, 200);
      proxy.resume();
      await rec.until((r) => r.messages.length === 2, 'update 日本-2, replayed after the reconnection');
      assert.deepEqual(rec.types, ['open', 'message', 'error', 'open', 'message']);
      assert.deepEqual(rec.of('message').map((e) => [e.lastEventId, e.data]), [
        [NON_ASCII_ID, 'one'],
        ['日本-2', 'two'],
      ]);
    });

    it('resuming from the lastEventId option, the client receives only the updates after it, with no resync', T, async () => {
      const hub = await startTestHub(['--anonymous']);
      after(() => hub.close());
      for (const [id, data] of [[NON_ASCII_ID, 'one'], ['日本-2', 'two']] as const) assert.equal((await hub.publish({ topic: TOPIC, id, data })).status, 200);
      const { rec } = connect(mercureSubscribeUrl(hub.hubUrl, TOPIC), { ...FAST, lastEventId: NON_ASCII_ID }, ['resync']);
      await rec.until((r) => r.messages.length === 1, `the update after ${NON_ASCII_ID}`);
      await quiet();
      assert.deepEqual(rec.types, ['open', 'message']);
      assert.deepEqual(rec.of('message').map((e) => [e.lastEventId, e.data]), [['日本-2', 'two']]);
    });
  });
});

describe('EventSource: failing the connection (no retry)', () => {
  for (const status of [201, 204, 404, 500]) {
    it(`on HTTP ${status}: CLOSED, one error event with that status and willRetry false, and no second request`, T, async () => {
      const fx = await fixture();
      const { source, rec } = connect(fx.url(), { ...FAST, initialRetry: RETRY });
      (await within(fx.connection(1), 'connection #1')).respond(status, status === 204 ? {} : { 'content-type': 'text/event-stream' });
      await rec.until((r) => r.types.includes('error'), 'the error event');
      await quiet();
      assert.equal(source.readyState, EventSource.CLOSED);
      assert.deepEqual(rec.entries.map((e) => [e.type, e.readyState, e.status, e.willRetry]), [['error', EventSource.CLOSED, status, false]]);
      assert.ok(rec.entries[0]?.event instanceof EventSourceErrorEvent);
      assert.equal(fx.count, 1);
    });
  }

  for (const contentType of ['text/plain', 'text/event-streams', undefined]) {
    it(`on a 200 with ${contentType === undefined ? 'no content type' : `content type ${contentType}`}: CLOSED, one error event, no second request`, T, async () => {
      const fx = await fixture();
      const { source, rec } = connect(fx.url(), { ...FAST, initialRetry: RETRY });
      (await within(fx.connection(1), 'connection #1')).respond(200, contentType === undefined ? {} : { 'content-type': contentType }, 'data: no\n\n');
      await rec.until((r) => r.types.includes('error'), 'the error event');
      await quiet();
      assert.equal(source.readyState, EventSource.CLOSED);
      assert.deepEqual(rec.entries.map((e) => [e.type, e.status, e.willRetry]), [['error', 200, false]]);
      assert.equal(fx.count, 1);
    });
  }

  describe('the explanation in a refused response', () => {
    /** A hub that requires a subscriber token, the URL of a subscription to it, and the hub's own answer to that URL without a token. */
    async function hubRequiringAToken(): Promise<{ url: string; explanation: string }> {
      const hub = await startTestHub([]);
      after(() => hub.close());
      const url = mercureSubscribeUrl(hub.hubUrl, 'https://example.com/books/1');
      const direct = await fetch(url);
      const explanation = (await direct.text()).trim();
      assert.equal(direct.status, 401);
      assert.notEqual(explanation, '', 'the hub explains a 401');
      return { url, explanation };
    }

    it('without a token, a hub answers 401: the error event carries the status and the hub\'s text, in message and body', T, async () => {
      const { url, explanation } = await hubRequiringAToken();
      const { source, rec } = connect(url);
      await rec.until((r) => r.types.includes('error'), 'the error event');
      assert.equal(source.readyState, EventSource.CLOSED);
      const [error] = rec.of('error');
      assert.deepEqual([error?.status, error?.willRetry, error?.body], [401, false, explanation]);
      assert.equal(error?.message, `the server refused the stream: HTTP status 401: ${explanation}`);
    });

    it('without a token, the async iterator throws an EventSourceError with the status and the hub\'s text', T, async () => {
      const { url, explanation } = await hubRequiringAToken();
      const { source } = connect(url);
      await within(
        assert.rejects(
          async () => {
            for await (const _ of source) assert.fail('no event was expected');
          },
          (error: unknown) => {
            assert.ok(error instanceof EventSourceError, `not an EventSourceError: ${String(error)}`);
            assert.deepEqual([error.status, error.body, error.message], [401, explanation, `the server refused the stream: HTTP status 401: ${explanation}`]);
            return true;
          },
        ),
        'the loop to throw',
      );
    });

    it('reads at most 512 bytes of the body, leaving out a character cut at the bound', T, async () => {
      const fx = await fixture();
      const { rec } = connect(fx.url(), { ...FAST, initialRetry: RETRY });
      // 1000 three-byte characters: the 512th byte is in the middle of the 171st.
      (await within(fx.connection(1), 'connection #1')).respond(500, { 'content-type': 'text/plain; charset=utf-8' }, '€'.repeat(1000));
      await rec.until((r) => r.types.includes('error'), 'the error event');
      assert.equal(rec.of('error')[0]?.body, '€'.repeat(170));
    });

    it('does not wait for a body that never ends: the error comes with what arrived, and the request is closed', T, async () => {
      let response: ServerResponse | undefined;
      const server = createServer((_req, res) => {
        response = res;
        res.writeHead(503, { 'content-type': 'text/plain' });
        res.write('busy, come back later\n');
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      after(() => {
        server.closeAllConnections();
        server.close();
      });
      const { rec } = connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}/events`);
      await rec.until((r) => r.types.includes('error'), 'the error event');
      assert.deepEqual(rec.of('error').map((e) => [e.status, e.body, e.willRetry]), [[503, 'busy, come back later', false]]);
      assert.ok(response);
      const res = response;
      await within(new Promise((resolve) => (res.closed ? resolve(undefined) : res.once('close', resolve))), 'the server to see the request closed');
    });
  });

  it('stops for good when a reconnection is answered 204 (how a server tells clients to go away)', T, async () => {
    const fx = await fixture();
    const { source, rec } = connect(fx.url());
    (await opened(fx, 1)).event({ data: 'a' }).end();
    (await within(fx.connection(2), 'connection #2')).respond(204);
    await rec.until((r) => r.of('error').length === 2, 'the second error event');
    await quiet();
    assert.equal(source.readyState, EventSource.CLOSED);
    assert.deepEqual(rec.of('error').map((e) => [e.willRetry, e.status]), [
      [true, undefined],
      [false, 204],
    ]);
    assert.equal(fx.count, 2);
  });
});

describe('EventSource: redirects', () => {
  for (const status of [301, 302, 307] as const) {
    it(`follows a ${status} redirect and reads the stream at its target`, T, async () => {
      const fx = await fixture();
      const { source, rec } = connect(fx.url('/old'));
      (await within(fx.connection(1), 'connection #1')).redirect(status, '/new');
      const target = await opened(fx, 2);
      target.event({ data: 'moved' });
      await rec.until((r) => r.messages.length === 1, 'one message');
      assert.equal(target.path, '/new');
      assert.equal(source.readyState, EventSource.OPEN);
      assert.deepEqual(rec.types, ['open', 'message']);
    });
  }
});

describe('EventSource: close()', () => {
  it('before the first connection: CLOSED, no request is ever made, no event', T, async () => {
    const fx = await fixture();
    const { source, rec } = connect(fx.url());
    source.close();
    assert.equal(source.readyState, EventSource.CLOSED);
    await quiet();
    assert.equal(fx.count, 0);
    assert.deepEqual(rec.entries, []);
  });

  it('while the first request waits for an answer: the request is aborted, no event', T, async () => {
    const fx = await fixture();
    const { source, rec } = connect(fx.url());
    const connection = await within(fx.connection(1), 'connection #1');
    source.close();
    await within(connection.closed, 'the server to see the request aborted');
    await quiet();
    assert.equal(source.readyState, EventSource.CLOSED);
    assert.deepEqual(rec.entries, []);
    assert.equal(fx.count, 1);
  });

  it('while CONNECTING, waiting to reconnect: no further request, no event', T, async () => {
    const fx = await fixture();
    const { source, rec } = connect(fx.url());
    (await opened(fx, 1, 50)).end();
    await rec.until((r) => r.types.includes('error'), 'the error event');
    assert.equal(source.readyState, EventSource.CONNECTING);
    source.close();
    assert.equal(source.readyState, EventSource.CLOSED);
    await quiet();
    assert.equal(fx.count, 1);
    assert.deepEqual(rec.types, ['open', 'error']);
  });

  it('from an error handler: no reconnection', T, async () => {
    const fx = await fixture();
    const { source, rec } = connect(fx.url());
    source.onerror = () => source.close();
    (await opened(fx, 1)).end();
    await rec.until((r) => r.types.includes('error'), 'the error event');
    await quiet();
    assert.equal(source.readyState, EventSource.CLOSED);
    assert.equal(fx.count, 1);
  });

  it('while OPEN: the server sees the connection close, later events are not delivered, no reconnection', T, async () => {
    const fx = await fixture();
    const { source, rec } = connect(fx.url());
    const connection = await opened(fx, 1);
    connection.event({ data: 'a' });
    await rec.until((r) => r.messages.length === 1, 'message a');
    source.close();
    await within(connection.closed, 'the server to see the connection close');
    assert.equal(connection.isOpen, false);
    await quiet();
    assert.equal(source.readyState, EventSource.CLOSED);
    assert.deepEqual(rec.types, ['open', 'message']);
    assert.equal(fx.count, 1);
  });

  it('from onmessage: the events still in the same chunk are not delivered', T, async () => {
    const fx = await fixture();
    const { source, rec } = connect(fx.url());
    source.onmessage = () => source.close();
    (await opened(fx, 1)).write('data: a\n\ndata: b\n\ndata: c\n\n');
    await rec.until((r) => r.messages.length === 1, 'message a');
    await quiet();
    assert.deepEqual(rec.messages, ['a']);
  });
});

describe('EventSource options: headers, method and body, fetch, signal', () => {
  it('sends the headers option on every connection, Last-Event-ID included on reconnect', T, async () => {
    const fx = await fixture();
    connect(fx.url(), { ...FAST, headers: { authorization: 'Bearer abc', 'x-tenant': 't1' } });
    (await opened(fx, 1)).event({ id: '1', data: 'a' }).end();
    const second = await opened(fx, 2);
    for (const connection of [fx.connections[0], second]) {
      assert.equal(connection?.headers.authorization, 'Bearer abc');
      assert.equal(connection?.headers['x-tenant'], 't1');
      assert.equal(connection?.headers.accept, 'text/event-stream');
    }
    assert.equal(second.lastEventId, '1');
  });

  it('calls a headers function before every connection, so a refreshed token is sent on reconnect', T, async () => {
    const fx = await fixture();
    let token = 0;
    connect(fx.url(), { ...FAST, headers: async () => ({ authorization: `Bearer token-${++token}` }) });
    (await opened(fx, 1)).end();
    const second = await opened(fx, 2);
    assert.equal(fx.connections[0]?.headers.authorization, 'Bearer token-1');
    assert.equal(second.headers.authorization, 'Bearer token-2');
  });

  it('sends the method and body options (a POST subscription)', T, async () => {
    const fx = await fixture();
    const { rec } = connect(fx.url(), { ...FAST, method: 'POST', body: JSON.stringify({ topics: ['a'] }), headers: { 'content-type': 'application/json' } });
    const connection = await opened(fx, 1);
    connection.event({ data: 'ok' });
    await rec.until((r) => r.messages.length === 1, 'one message');
    assert.equal(connection.method, 'POST');
    assert.equal(connection.body, '{"topics":["a"]}');
  });

  it('makes its requests through the fetch option', T, async () => {
    const fx = await fixture();
    const calls: string[] = [];
    const recordingFetch: typeof fetch = (input, init) => {
      calls.push(String(input));
      return fetch(input, { ...init, headers: { ...Object.fromEntries(new Headers(init?.headers)), 'x-via': 'custom-fetch' } });
    };
    const { rec } = connect(fx.url(), { ...FAST, fetch: recordingFetch });
    (await opened(fx, 1)).event({ data: 'x' });
    await rec.until((r) => r.messages.length === 1, 'one message');
    assert.deepEqual(calls, [fx.url()]);
    assert.equal(fx.connections[0]?.headers['x-via'], 'custom-fetch');
  });

  it('closes when its AbortSignal aborts: the server sees the connection close, no reconnection', T, async () => {
    const fx = await fixture();
    const controller = new AbortController();
    const { source, rec } = connect(fx.url(), { ...FAST, signal: controller.signal });
    const connection = await opened(fx, 1);
    await rec.until((r) => r.types.includes('open'), 'open');
    controller.abort();
    assert.equal(source.readyState, EventSource.CLOSED);
    await within(connection.closed, 'the server to see the connection close');
    await quiet();
    assert.equal(fx.count, 1);
  });

  it('stops listening to its signal once closed', T, async () => {
    const fx = await fixture();
    const controller = new AbortController();
    const { source } = connect(fx.url(), { ...FAST, signal: controller.signal });
    assert.equal(getEventListeners(controller.signal, 'abort').length, 1);
    source.close();
    assert.equal(getEventListeners(controller.signal, 'abort').length, 0);
  });

  it('with an already aborted signal, never connects', T, async () => {
    const fx = await fixture();
    const { source } = connect(fx.url(), { ...FAST, signal: AbortSignal.abort() });
    assert.equal(source.readyState, EventSource.CLOSED);
    await quiet();
    assert.equal(fx.count, 0);
  });
});

describe('EventSource: de-duplication by event ID', () => {
  it('delivers once an event that the server sends again after a reconnect', T, async () => {
    const fx = await fixture();
    const { rec } = connect(fx.url());
    (await opened(fx, 1)).event({ id: '1', data: 'one' }).event({ id: '2', data: 'two' }).end();
    // A server whose resume point lags behind sends 2 again.
    (await opened(fx, 2)).event({ id: '2', data: 'two' }).event({ id: '3', data: 'three' });
    await rec.until((r) => r.messages.includes('three'), 'message three');
    assert.deepEqual(rec.messages, ['one', 'two', 'three']);
  });

  it('never de-duplicates events without an id', T, async () => {
    const fx = await fixture();
    const { rec } = connect(fx.url());
    (await opened(fx, 1)).event({ id: '1', data: 'with id' }).event({ data: 'same' }).event({ data: 'same' });
    await rec.until((r) => r.messages.length === 3, 'three messages');
    assert.deepEqual(rec.messages, ['with id', 'same', 'same']);
  });

  it('remembers only the last `dedupe` IDs', T, async () => {
    const fx = await fixture();
    const { rec } = connect(fx.url(), { ...FAST, dedupe: 2 });
    (await opened(fx, 1)).event({ id: 'a', data: 'a' }).event({ id: 'b', data: 'b' }).event({ id: 'c', data: 'c' }).end();
    // a fell out of the window of two (b, c); c is still in it.
    (await opened(fx, 2)).event({ id: 'a', data: 'a again' }).event({ id: 'c', data: 'c again' }).event({ id: 'd', data: 'd' });
    await rec.until((r) => r.messages.includes('d'), 'message d');
    assert.deepEqual(rec.messages, ['a', 'b', 'c', 'a again', 'd']);
  });

  it('delivers repeats when dedupe is false', T, async () => {
    const fx = await fixture();
    const { rec } = connect(fx.url(), { ...FAST, dedupe: false });
    (await opened(fx, 1)).event({ id: '1', data: 'x' }).event({ id: '1', data: 'x' });
    await rec.until((r) => r.messages.length === 2, 'two messages');
    assert.deepEqual(rec.messages, ['x', 'x']);
  });
});

describe('EventSource: resync', () => {
  it('turns an ssehub-resync event into a resync event (not a message)', T, async () => {
    const fx = await fixture();
    const { rec } = connect(fx.url(), FAST, ['resync']);
    (await opened(fx, 1)).event({ event: 'ssehub-resync', data: '{"lastEventId":"old","reason":"unknown-id"}' }).event({ data: 'next' });
    await rec.until((r) => r.messages.length === 1, 'the message after it');
    assert.deepEqual(rec.types, ['open', 'resync', 'message']);
    assert.deepEqual(JSON.parse(rec.of('resync')[0]?.data ?? ''), { lastEventId: 'old', reason: 'unknown-id' });
  });

  describe('against a hub keeping two updates of history', () => {
    const TOPIC = 'https://example.com/books/1';
    async function hubWithFourUpdates() {
      const hub = await startTestHub(['--history-size', '2', '--anonymous']);
      after(() => hub.close());
      for (const id of ['u1', 'u2', 'u3', 'u4']) assert.equal((await hub.publish({ topic: TOPIC, id, data: `data of ${id}` })).status, 200);
      return hub;
    }

    it('resuming from an ID the history lost: resync first, then the history that is left', T, async () => {
      const hub = await hubWithFourUpdates();
      const { rec } = connect(mercureSubscribeUrl(hub.hubUrl, TOPIC), { ...FAST, lastEventId: 'u1' }, ['resync']);
      await rec.until((r) => r.messages.length === 2, 'the two updates left in history');
      assert.deepEqual(rec.types, ['open', 'resync', 'message', 'message']);
      assert.equal(JSON.parse(rec.of('resync')[0]?.data ?? '').lastEventId, 'u1');
      assert.deepEqual(rec.of('message').map((e) => e.lastEventId), ['u3', 'u4']);
    });

    it('resuming from an ID still in history: no resync, only the updates after it', T, async () => {
      const hub = await hubWithFourUpdates();
      const { rec } = connect(mercureSubscribeUrl(hub.hubUrl, TOPIC), { ...FAST, lastEventId: 'u3' }, ['resync']);
      await rec.until((r) => r.messages.length === 1, 'the update after u3');
      assert.equal((await hub.publish({ topic: TOPIC, id: 'u5', data: 'live' })).status, 200);
      await rec.until((r) => r.messages.length === 2, 'the live update');
      assert.deepEqual(rec.types, ['open', 'message', 'message']);
      assert.deepEqual(rec.of('message').map((e) => e.lastEventId), ['u4', 'u5']);
    });
  });
});

describe('EventSource: heartbeatTimeout', () => {
  it('drops a connection that stays silent for heartbeatTimeout and reconnects with Last-Event-ID', T, async () => {
    const fx = await fixture();
    const { rec } = connect(fx.url(), { ...FAST, heartbeatTimeout: 100 });
    const stalled = await opened(fx, 1);
    stalled.event({ id: 'last', data: 'before the stall' });
    const second = await opened(fx, 2);
    await within(stalled.closed, 'the client to drop the silent connection');
    assert.equal(second.lastEventId, 'last');
    await rec.until((r) => r.of('open').length === 2, 'the second open');
    assert.deepEqual(rec.types, ['open', 'message', 'error', 'open']);
    assert.equal(rec.of('error')[0]?.willRetry, true);
  });

  it('also gives up on a server that accepts the request and never answers it', T, async () => {
    const fx = await fixture();
    const { rec } = connect(fx.url(), { ...FAST, initialRetry: RETRY, heartbeatTimeout: 100 });
    const silent = await within(fx.connection(1), 'connection #1');
    await opened(fx, 2);
    await within(silent.closed, 'the client to drop the unanswered request');
    await rec.until((r) => r.types.includes('open'), 'open');
    assert.deepEqual(rec.types, ['error', 'open']);
  });
});

describe('EventSource: reconnect policy', () => {
  it('with maxAttempts: 2, closes after two consecutive failed attempts', T, async () => {
    const fx = await fixture();
    fx.onConnection((c) => c.destroy());
    const { source, rec } = connect(fx.url(), { initialRetry: RETRY, reconnect: { maxAttempts: 2, initialDelay: 0 } });
    await rec.until((r) => r.of('error').some((e) => e.willRetry === false), 'the final error event');
    await quiet();
    assert.equal(source.readyState, EventSource.CLOSED);
    assert.deepEqual(rec.of('error').map((e) => e.willRetry), [true, false]);
    assert.equal(fx.count, 2);
  });

  it('with reconnect: false, closes when the stream ends', T, async () => {
    const fx = await fixture();
    const { source, rec } = connect(fx.url(), { reconnect: false });
    (await opened(fx, 1)).event({ data: 'a' }).end();
    await rec.until((r) => r.types.includes('error'), 'the error event');
    await quiet();
    assert.equal(source.readyState, EventSource.CLOSED);
    assert.deepEqual(rec.entries.map((e) => [e.type, e.readyState, e.willRetry]), [
      ['open', EventSource.OPEN, undefined],
      ['message', EventSource.OPEN, undefined],
      ['error', EventSource.CLOSED, false],
    ]);
    assert.equal(fx.count, 1);
  });
});

describe('EventSource: async iteration', () => {
  it('yields messages, typed events and resync in order, and ends when the source closes', T, async () => {
    const fx = await fixture();
    const { source, rec } = connect(fx.url(), FAST, ['typed', 'resync']);
    const seen: string[] = [];
    const loop = (async () => {
      for await (const event of source) seen.push(`${event.type}:${event.data as string}`);
    })();
    (await opened(fx, 1)).event({ data: '1' }).event({ event: 'typed', data: '2' }).event({ event: 'ssehub-resync', data: '3' }).event({ data: '4' });
    await rec.until((r) => r.messages.length === 2, 'four events');
    source.close();
    await within(loop, 'the loop to end');
    assert.deepEqual(seen, ['message:1', 'typed:2', 'resync:3', 'message:4']);
  });

  it('closes the source when the loop breaks', T, async () => {
    const fx = await fixture();
    const { source } = connect(fx.url());
    const connection = await opened(fx, 1);
    connection.event({ data: 'first' }).event({ data: 'second' });
    for await (const event of source) {
      assert.equal(event.data, 'first');
      break;
    }
    assert.equal(source.readyState, EventSource.CLOSED);
    await within(connection.closed, 'the server to see the connection close');
  });
});

describe('Mercure helpers', () => {
  it('mercureSubscribeUrl repeats topic, and adds lastEventID and authorization when given', T, () => {
    const url = new URL(mercureSubscribeUrl('https://hub.example/.well-known/mercure', ['https://example.com/books/{id}', 'urn:a b'], { lastEventId: 'urn:uuid:1', authorization: 'tok' }));
    assert.deepEqual(url.searchParams.getAll('topic'), ['https://example.com/books/{id}', 'urn:a b']);
    assert.equal(url.searchParams.get('lastEventID'), 'urn:uuid:1');
    assert.equal(url.searchParams.get('authorization'), 'tok');
    assert.equal(new URL(mercureSubscribeUrl('https://hub.example/.well-known/mercure', 'one')).search, '?topic=one');
    assert.throws(() => mercureSubscribeUrl('https://hub.example/.well-known/mercure', []), TypeError);
  });

  it('parseLinkHeader reads several links, quoted and unquoted rel, several rel values', T, () => {
    assert.deepEqual(parseLinkHeader('<https://hub.example/.well-known/mercure>; rel="mercure", </books/1>;rel=self, <https://other.example/hub>; title="x, y"; rel="mercure alternate"'), [
      { href: 'https://hub.example/.well-known/mercure', rel: ['mercure'] },
      { href: '/books/1', rel: ['self'] },
      { href: 'https://other.example/hub', rel: ['mercure', 'alternate'] },
    ]);
  });

  it('discoverHub reads the hubs and the topic from a HEAD response, resolving relative links', T, async () => {
    const fx = await fixture();
    const found = discoverHub(fx.url('/books/1'));
    const head = await within(fx.connection(1), 'the HEAD request');
    head.respond(200, { link: '</.well-known/mercure>; rel="mercure", <https://hub2.example/hub>; rel="mercure", <1?v=2>; rel="self"' });
    assert.deepEqual(await found, { hubs: [fx.url('/.well-known/mercure'), 'https://hub2.example/hub'], topic: fx.url('/books/1?v=2') });
    assert.equal(head.method, 'HEAD');
    assert.equal(fx.count, 1);
  });

  it('discoverHub falls back to GET when HEAD is refused with 405', T, async () => {
    const fx = await fixture();
    const found = discoverHub(fx.url('/doc'));
    (await within(fx.connection(1), 'the HEAD request')).respond(405);
    const get = await within(fx.connection(2), 'the GET request');
    get.respond(200, { link: '<https://hub.example/.well-known/mercure>; rel="mercure"' }, 'body');
    assert.deepEqual(await found, { hubs: ['https://hub.example/.well-known/mercure'], topic: undefined });
    assert.equal(get.method, 'GET');
  });

  it('discoverHub rejects when the resource advertises no hub', T, async () => {
    const fx = await fixture();
    const found = discoverHub(fx.url('/doc'));
    (await within(fx.connection(1), 'the HEAD request')).respond(200, { link: '</doc>; rel="self"' });
    await assert.rejects(found, /advertises no Mercure hub/);
  });
});
