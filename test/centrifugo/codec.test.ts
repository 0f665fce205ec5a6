// The Centrifugo protocol's JSON, as pure functions: frames of commands in, lines out, and the data
// model between updates and publications.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FrameError, Raw, errorJson, jsonValueOf, parseFrame, pushJson, replyJson, toJson } from '../../src/hub/centrifugo/codec.js';
import { DISCONNECTS, ERRORS, disconnectOf, reconnects, toProtocolError } from '../../src/hub/centrifugo/errors.js';
import { Positions } from '../../src/hub/centrifugo/positions.js';
import { Encoders, framed, publicationJson } from '../../src/hub/centrifugo/publication.js';
import { DrainingError, InvalidTokenError, InvalidUpdateError, NotAllowedError, RateLimitedError, TransportUnavailableError } from '../../src/hub/errors.js';
import { MemoryTransport } from '../../src/hub/transports/index.js';
import type { Update } from '../../src/hub/core/update.js';

describe('reading frames of commands', () => {
  it('reads one command per line, skipping blank lines, and takes the first method a command has', () => {
    const commands = parseFrame('{"id":1,"connect":{"token":"t"}}\n\n{"id":2,"subscribe":{"channel":"a"},"publish":{"channel":"b"}}\r\n');
    assert.deepEqual(commands, [
      { kind: 'request', id: 1, method: 'connect', params: { token: 't' } },
      { kind: 'request', id: 2, method: 'subscribe', params: { channel: 'a' } },
    ]);
  });

  it('reads an empty object without an ID as a pong, and one with an ID but no method as unknown', () => {
    assert.deepEqual(parseFrame('{}'), [{ kind: 'pong' }]);
    assert.deepEqual(parseFrame('{"id":7,"frobnicate":{}}'), [{ kind: 'unknown', id: 7, fields: ['frobnicate'] }]);
    assert.deepEqual(parseFrame('{"id":8}'), [{ kind: 'unknown', id: 8, fields: [] }]);
  });

  it('reads a send without an ID (it gets no reply)', () => {
    assert.deepEqual(parseFrame('{"send":{"data":{"x":1}}}'), [{ kind: 'request', id: 0, method: 'send', params: { data: { x: 1 } } }]);
  });

  for (const [what, frame] of [
    ['a line that is not JSON', '{"id":1,"connect":{}}\n{"id":2,'],
    ['a JSON value that is not an object', '[1,2]'],
    ['a negative ID', '{"id":-1,"ping":{}}'],
    ['an ID past 32 bits', '{"id":4294967296,"ping":{}}'],
    ['a fractional ID', '{"id":1.5,"ping":{}}'],
    ['a method that is not an object', '{"id":1,"subscribe":"a"}'],
  ] as const) {
    it(`refuses ${what} as a frame error (the connection is ended with 3501)`, () => {
      assert.throws(() => parseFrame(frame), FrameError);
    });
  }
});

describe('writing replies and pushes', () => {
  it('writes a reply under its method, a Raw value as it is, and leaves out undefined fields', () => {
    assert.equal(replyJson(3, 'subscribe', { recovered: true, offset: undefined, publications: [new Raw('{"data":{"a":1}}')] }), '{"id":3,"subscribe":{"recovered":true,"publications":[{"data":{"a":1}}]}}');
    assert.equal(errorJson(4, ERRORS.tooManyRequests), '{"id":4,"error":{"code":111,"message":"too many requests","temporary":true}}');
    assert.equal(errorJson(5, ERRORS.permissionDenied), '{"id":5,"error":{"code":103,"message":"permission denied"}}');
    assert.equal(pushJson('c', 'join', { info: { client: 'x', user: 'u' } }), '{"push":{"channel":"c","join":{"info":{"client":"x","user":"u"}}}}');
    assert.equal(pushJson(undefined, 'disconnect', { code: 3001, reason: 'shutdown', reconnect: true }), '{"push":{"disconnect":{"code":3001,"reason":"shutdown","reconnect":true}}}');
    assert.equal(toJson({ s: 'line\nbreak', n: null }), '{"s":"line\\nbreak","n":null}');
  });

  it('frames lines for WebSocket and HTTP streaming (one per line) and for SSE (one event each)', () => {
    assert.equal(framed(['{"a":1}', '{}'], 'lines').toString(), '{"a":1}\n{}\n');
    assert.equal(framed(['{"a":1}', '{}'], 'sse').toString(), 'data: {"a":1}\n\ndata: {}\n\n');
  });
});

describe('one data model', () => {
  it('keeps data that is valid JSON as it is, quotes anything else, and never lets a line break through', () => {
    assert.equal(jsonValueOf('{"a":[1,2]}'), '{"a":[1,2]}');
    assert.equal(jsonValueOf('42'), '42');
    assert.equal(jsonValueOf('"text"'), '"text"');
    assert.equal(jsonValueOf('plain text'), '"plain text"');
    assert.equal(jsonValueOf(''), '""');
    assert.equal(jsonValueOf('line 1\nline 2'), '"line 1\\nline 2"');
    const pretty = jsonValueOf('{\n  "a": "b"\r\n}');
    assert.ok(!/[\r\n]/.test(pretty));
    assert.deepEqual(JSON.parse(pretty), { a: 'b' });
  });

  it('makes a publication of an update: data, offset from its seq, and its ID and type in tags', () => {
    const positions = new Positions(new MemoryTransport({ size: 10, ttl: 0 }), 10);
    const update: Update = { id: 'urn:uuid:1', topics: ['t'], data: '{"x":1}', private: false, type: 'changed', seq: 7n };
    assert.deepEqual(JSON.parse(publicationJson(update, positions)), { data: { x: 1 }, offset: 7, tags: { id: 'urn:uuid:1', type: 'changed' } });
    const untyped: Update = { id: 'u2', topics: ['t'], data: 'hello', private: false, seq: 8n };
    assert.deepEqual(JSON.parse(publicationJson(untyped, positions)), { data: 'hello', offset: 8, tags: { id: 'u2' } });
  });

  it('encodes a push once per update and channel: the same bytes for every subscriber sharing the encoder', () => {
    const positions = new Positions(new MemoryTransport({ size: 10, ttl: 0 }), 10);
    const encoders = new Encoders(positions);
    const a = encoders.acquire('chan "x"', 'lines');
    const b = encoders.acquire('chan "x"', 'lines');
    assert.equal(a, b);
    const update: Update = { id: 'u', topics: ['chan "x"'], data: '[1]', private: false, seq: 1n };
    assert.equal(a.encode(update), b.encode(update), 'one buffer');
    assert.deepEqual(JSON.parse(a.encode(update).toString()), { push: { channel: 'chan "x"', pub: { data: [1], offset: 1, tags: { id: 'u' } } } });
    assert.match(encoders.acquire('chan "x"', 'sse').encode(update).toString(), /^data: \{"push".*\n\n$/);
    encoders.release('chan "x"', 'lines');
    encoders.release('chan "x"', 'lines');
    encoders.release('chan "x"', 'sse');
    assert.equal(encoders.size, 0, 'forgotten with the last subscriber');
  });
});

describe('codes', () => {
  it('answers the core\'s typed errors with the client error that means the same', () => {
    assert.equal(toProtocolError(new NotAllowedError('topic-not-allowed', 'no')).code, 103);
    assert.equal(toProtocolError(new InvalidUpdateError('data', 'invalid-data', 'bad')).code, 107);
    assert.equal(toProtocolError(new InvalidTokenError('invalid-token', 'bad')).code, 103);
    assert.equal(toProtocolError(new RateLimitedError(1)).code, 111);
    assert.equal(toProtocolError(new TransportUnavailableError('down')).temporary, true, 'a transport outage is temporary: the SDK retries');
    assert.equal(toProtocolError(new DrainingError()).code, 100);
    assert.equal(toProtocolError(new Error('a bug')).code, 100);
  });

  it('tells the client why a connection ended, and whether to come back', () => {
    assert.deepEqual(disconnectOf('shutdown'), DISCONNECTS.shutdown);
    assert.equal(disconnectOf('slow-consumer').code, 3008);
    assert.equal(disconnectOf('no-pong').code, 3012);
    assert.equal(disconnectOf('lifetime').code, 3011);
    assert.equal(disconnectOf('bad-request').code, 3501);
    assert.equal(reconnects(3001), true);
    assert.equal(reconnects(3501), false);
    assert.equal(reconnects(4500), false);
    assert.equal(reconnects(4000), true);
  });
});
