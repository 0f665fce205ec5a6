// Property tests: whatever a publisher sends, and however the network splits the bytes, the
// parser hands back what was sent. SSE cannot carry CR in data (every line end becomes a line
// break between data lines), so data comes back with CR and CRLF normalised to LF.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { EventStreamParser, type EventFields, InvalidEventError, type ParsedEvent, encodeEvent } from '../../src/protocol/index.js';

const tricky = fc.constantFrom('\r', '\n', '\r\n', ' ', ':', '\uFEFF', 'é', '😀', 'data: x', '\n\n', 'id: 1', '\0');
const text = fc.array(fc.oneof(fc.string({ unit: 'grapheme' }), tricky), { maxLength: 12 }).map((parts) => parts.join(''));
const safeField = text.map((s) => s.replace(/[\r\n\0]/g, ''));

const fieldsArb: fc.Arbitrary<EventFields> = fc.record(
  { data: text, id: safeField, event: safeField, retry: fc.nat({ max: 1e9 }) },
  { requiredKeys: ['data'] },
);

/** Splits `bytes` at the given cut points (as fractions of the length). */
function chunk(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((c) => Math.floor(c * bytes.length)))].sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let prev = 0;
  for (const p of points) {
    out.push(bytes.slice(prev, p));
    prev = p;
  }
  out.push(bytes.slice(prev));
  return out;
}

function expected(events: EventFields[]): ParsedEvent[] {
  let lastEventId = '';
  return events.map((e) => {
    if (e.id !== undefined) lastEventId = e.id;
    return { type: e.event ? e.event : 'message', data: (e.data ?? '').replace(/\r\n|\r/g, '\n'), lastEventId };
  });
}

describe('parse(encode(x))', () => {
  it('gives back every event for arbitrary fields and arbitrary chunkings of the bytes', () => {
    fc.assert(
      fc.property(fc.array(fieldsArb, { minLength: 1, maxLength: 8 }), fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 20 }), (events, cuts) => {
        const wire = new TextEncoder().encode(events.map(encodeEvent).join(''));
        const got: ParsedEvent[] = [];
        const retries: number[] = [];
        const parser = new EventStreamParser({ onEvent: (e) => got.push(e), onRetry: (r) => retries.push(r) });
        for (const piece of chunk(wire, cuts)) parser.feed(piece);
        parser.end();
        assert.deepEqual(got, expected(events));
        assert.deepEqual(retries, events.flatMap((e) => (e.retry === undefined ? [] : [e.retry])));
      }),
      { numRuns: 500 },
    );
  });

  it('gives back the same events when fed as text split at arbitrary points', () => {
    fc.assert(
      fc.property(fc.array(fieldsArb, { minLength: 1, maxLength: 5 }), fc.array(fc.nat(), { maxLength: 10 }), (events, cuts) => {
        const wire = events.map(encodeEvent).join('');
        const got: ParsedEvent[] = [];
        const parser = new EventStreamParser({ onEvent: (e) => got.push(e) });
        let prev = 0;
        for (const c of [...cuts.map((c) => c % (wire.length + 1))].sort((a, b) => a - b)) {
          parser.feed(wire.slice(prev, c));
          prev = c;
        }
        parser.feed(wire.slice(prev));
        assert.deepEqual(got, expected(events));
      }),
      { numRuns: 300 },
    );
  });

  it('refuses every id and event type that contains CR, LF or NUL', () => {
    const withBreak = fc.tuple(text, fc.constantFrom('\r', '\n', '\0'), text).map(([a, b, c]) => a + b + c);
    fc.assert(
      fc.property(withBreak, fc.constantFrom('id', 'event'), (value, field) => {
        assert.throws(() => encodeEvent({ data: 'x', [field]: value }), (e: unknown) => e instanceof InvalidEventError && e.field === field);
      }),
    );
  });
});
