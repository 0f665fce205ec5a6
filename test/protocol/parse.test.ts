// One test per rule of the WHATWG "Interpreting an event stream" algorithm (HTML §9.2.6).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EventStreamParser, type ParsedEvent, parseEventStream } from '../../src/protocol/index.js';

function collect(chunks: (string | Uint8Array)[], lastEventId?: string) {
  const events: ParsedEvent[] = [];
  const retries: number[] = [];
  const comments: string[] = [];
  const parser = new EventStreamParser(
    { onEvent: (e) => events.push(e), onRetry: (ms) => retries.push(ms), onComment: (c) => comments.push(c) },
    lastEventId === undefined ? {} : { lastEventId },
  );
  for (const chunk of chunks) parser.feed(chunk);
  return { events, retries, comments, parser };
}

const bytes = (s: string) => new TextEncoder().encode(s);

describe('parser', () => {
  it('strips one leading BOM and only the first', () => {
    const { events } = collect(['\uFEFFdata: a\n\n\uFEFFdata: b\n\n']);
    assert.deepEqual(events.map((e) => e.data), ['a']);
    // The second BOM makes "\uFEFFdata" an unknown field, so the second event has no data.
  });

  it('strips a BOM split across byte chunks', () => {
    const all = bytes('\uFEFFdata: x\n\n');
    const { events } = collect([all.slice(0, 1), all.slice(1, 2), all.slice(2)]);
    assert.deepEqual(events.map((e) => e.data), ['x']);
  });

  it('keeps a BOM that is not the first character of the stream', () => {
    const { events } = collect(['data: \uFEFFa\n\n']);
    assert.equal(events[0]?.data, '\uFEFFa');
  });

  it('accepts LF, CR and CRLF line ends, mixed in one stream', () => {
    const { events } = collect(['data: a\n\ndata: b\r\rdata: c\r\n\r\n']);
    assert.deepEqual(events.map((e) => e.data), ['a', 'b', 'c']);
  });

  it('treats a CRLF split across chunks as one line end', () => {
    const { events } = collect(['data: a\r', '\n', 'data: b\r', '\n\r', '\n']);
    assert.deepEqual(events.map((e) => e.data), ['a\nb']);
  });

  it('treats a lone CR at the end of a chunk as a line end without waiting for more', () => {
    const { events } = collect(['data: a\r\r']);
    assert.deepEqual(events.map((e) => e.data), ['a']);
  });

  it('reports lines starting with a colon as comments and dispatches nothing for them', () => {
    const { events, comments } = collect([':hello\n: world\n\n']);
    assert.deepEqual(events, []);
    assert.deepEqual(comments, ['hello', ' world']);
  });

  it('gives a field without a colon an empty value', () => {
    const { events } = collect(['data\n\n', 'event\ndata: x\n\n']);
    assert.deepEqual(events, [
      { type: 'message', data: '', lastEventId: '' },
      { type: 'message', data: 'x', lastEventId: '' },
    ]);
  });

  it('removes exactly one leading space after the colon', () => {
    const { events } = collect(['data:a\n\ndata: b\n\ndata:  c\n\n']);
    assert.deepEqual(events.map((e) => e.data), ['a', 'b', ' c']);
  });

  it('joins data lines with LF and drops the final one', () => {
    const { events } = collect(['data: a\ndata:\ndata: b\n\n']);
    assert.equal(events[0]?.data, 'a\n\nb');
  });

  it('sets the event type from the event field and resets it after dispatch', () => {
    const { events } = collect(['event: add\ndata: 1\n\ndata: 2\n\n']);
    assert.deepEqual(events.map((e) => e.type), ['add', 'message']);
  });

  it('ignores an id that contains NUL', () => {
    const { events } = collect(['id: 1\ndata: a\n\nid: 2\0x\ndata: b\n\n']);
    assert.deepEqual(events.map((e) => e.lastEventId), ['1', '1']);
  });

  it('keeps the last event id across events until an id field changes it, including to empty', () => {
    const { events } = collect(['id: 7\ndata: a\n\ndata: b\n\nid\ndata: c\n\n']);
    assert.deepEqual(events.map((e) => e.lastEventId), ['7', '7', '']);
  });

  it('accepts retry only when it is all ASCII digits', () => {
    const { retries } = collect(['retry: 1000\n\nretry: 10x\n\nretry: -1\n\nretry: 1.5\n\nretry:\n\nretry: 0\n\nretry:  5\n\n']);
    assert.deepEqual(retries, [1000, 0]);
  });

  it('ignores unknown fields', () => {
    const { events } = collect(['foo: bar\ndata: a\nDATA: b\n\n']);
    assert.deepEqual(events.map((e) => e.data), ['a']);
  });

  it('never dispatches at end of stream', () => {
    const { events, parser } = collect(['data: complete\n\ndata: cut off\n']);
    parser.end();
    assert.deepEqual(events.map((e) => e.data), ['complete']);
    assert.deepEqual(parseEventStream('data: no blank line'), []);
  });

  it('dispatches nothing for an event without data, but still updates the last event id', () => {
    const { events, parser } = collect(['id: 5\n\nevent: x\n\n']);
    assert.deepEqual(events, []);
    assert.equal(parser.lastEventId, '5');
    parser.feed('data: y\n\n');
    assert.deepEqual(events, [{ type: 'message', data: 'y', lastEventId: '5' }]);
  });

  it('dispatches an event whose only data line is empty', () => {
    assert.deepEqual(parseEventStream('data:\n\n'), [{ type: 'message', data: '', lastEventId: '' }]);
  });

  it('updates the last event id only at the blank line', () => {
    const { parser } = collect(['id: 9\ndata: a\n']);
    assert.equal(parser.lastEventId, '');
    parser.feed('\n');
    assert.equal(parser.lastEventId, '9');
  });

  it('decodes UTF-8 sequences split across chunks', () => {
    const all = bytes('data: é€😀\n\n');
    const chunks = Array.from(all, (b) => Uint8Array.of(b));
    assert.equal(collect(chunks).events[0]?.data, 'é€😀');
  });

  it('replaces invalid UTF-8 with U+FFFD instead of failing', () => {
    const { events } = collect([Uint8Array.of(...bytes('data: '), 0xff, 0x0a, 0x0a)]);
    assert.equal(events[0]?.data, '\uFFFD');
  });

  it('starts a new stream on reset: partial event dropped, last id kept, BOM stripped again', () => {
    const { events, parser } = collect(['id: 3\ndata: a\n\ndata: partial\n']);
    parser.reset();
    parser.feed('\uFEFFdata: b\n\n');
    assert.deepEqual(events, [
      { type: 'message', data: 'a', lastEventId: '3' },
      { type: 'message', data: 'b', lastEventId: '3' },
    ]);
  });

  it('seeds the last event id from the constructor', () => {
    assert.deepEqual(parseEventStream('data: a\n\n', { lastEventId: 'x' }), [{ type: 'message', data: 'a', lastEventId: 'x' }]);
  });

  it('removes only the first space even for field names with a colon in the value', () => {
    assert.deepEqual(parseEventStream('data: a: b\n\n').map((e) => e.data), ['a: b']);
  });
});

describe('parser id flag', () => {
  it('tells whether each event carried its own id field', () => {
    const flags: [string, boolean][] = [];
    const parser = new EventStreamParser({ onEvent: (e, hasId) => flags.push([e.data, hasId]) });
    parser.feed('id: 1\ndata: a\n\ndata: b\n\nid: 2\n\ndata: c\n\nid: 3\0\ndata: d\n\n');
    assert.deepEqual(flags, [['a', true], ['b', false], ['c', false], ['d', false]]);
  });
});
