import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InvalidEventError, encodeComment, encodeEvent, encodeRetry } from '../../src/protocol/index.js';

describe('encoder', () => {
  it('writes event, retry, id and data lines in that order, ending with a blank line', () => {
    assert.equal(encodeEvent({ data: 'x', id: '1', event: 'e', retry: 10 }), 'event: e\nretry: 10\nid: 1\ndata: x\n\n');
  });

  it('splits data on CR, LF and CRLF into several data lines', () => {
    assert.equal(encodeEvent({ data: 'a\rb\nc\r\nd' }), 'data: a\ndata: b\ndata: c\ndata: d\n\n');
  });

  it('keeps empty lines of data, including leading and trailing ones', () => {
    assert.equal(encodeEvent({ data: '\na\n' }), 'data: \ndata: a\ndata: \n\n');
  });

  it('writes no data line when data is absent, so the event only moves the last id', () => {
    assert.equal(encodeEvent({ id: '5' }), 'id: 5\n\n');
  });

  for (const bad of ['a\nb', 'a\rb', 'a\0b', '\r\n']) {
    it(`refuses an id containing ${JSON.stringify(bad)}`, () => {
      assert.throws(() => encodeEvent({ id: bad, data: 'x' }), (e: unknown) => e instanceof InvalidEventError && e.field === 'id');
    });
    it(`refuses an event type containing ${JSON.stringify(bad)}`, () => {
      assert.throws(() => encodeEvent({ event: bad, data: 'x' }), (e: unknown) => e instanceof InvalidEventError && e.field === 'event');
    });
  }

  for (const bad of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 60]) {
    it(`refuses retry ${bad}`, () => {
      assert.throws(() => encodeEvent({ retry: bad }), (e: unknown) => e instanceof InvalidEventError && e.field === 'retry');
      assert.throws(() => encodeRetry(bad), InvalidEventError);
    });
  }

  it('encodes comments one colon line per text line, closed by a blank line', () => {
    assert.equal(encodeComment(), ':\n\n');
    assert.equal(encodeComment('hi'), ': hi\n\n');
    assert.equal(encodeComment('a\r\nb\n'), ': a\n: b\n:\n\n');
  });
});
