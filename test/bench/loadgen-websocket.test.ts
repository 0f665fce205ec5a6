// The load generator's WebSocket subscribers (RFC 6455) count what the nchan-ws and ssehub-ws
// rows of the benchmark rest on: these pin down that the frame parser and the `s=… t=…` scanner
// count every update exactly wherever a read splits the bytes (any frame length encoding,
// fragmented messages with control frames between the fragments, several hub pushes in one
// message), that pings and the hub's `{}` are answered with masked frames, and when a connection
// counts as open, refused or closed by the server.
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { CONNECTING, Counters, OPEN, WebSocketConnection, centrifugoSubscribe } from '../../bench/sse/loadgen.js';
import { sequenceReference } from '../helpers/sequence-reference.js';
import { payload } from '../../bench/sse/clients.js';

const OP_CONTINUATION = 0;
const OP_TEXT = 1;
const OP_BINARY = 2;
const OP_CLOSE = 8;
const OP_PING = 9;
const OP_PONG = 10;

const UPGRADED = 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n';
const CONNECT_REPLY = '{"id":1,"connect":{"client":"5c48c4e0-bench","version":"0.1.0","ping":25,"pong":true}}';
const SUBSCRIBE_REPLY = '{"id":2,"subscribe":{}}';
/** Any fill around the bytes of a read: a parser that looks outside [from, to) sees frames and updates that are not there. */
const GARBAGE = Buffer.from('s=999999 t=1 \n\x81\x7e', 'latin1');

/** How a data frame writes its payload length: the shortest form, or the 16- or 64-bit extended one. */
type LengthForm = 'min' | 16 | 64;

/** A server frame (unmasked). */
function serverFrame(opcode: number, body: Buffer, fin = true, form: LengthForm = 'min'): Buffer {
  const n = body.length;
  const bits = form === 'min' ? (n < 126 ? 7 : n <= 0xffff ? 16 : 64) : form === 16 && n > 0xffff ? 64 : form;
  const head = Buffer.alloc(bits === 7 ? 2 : bits === 16 ? 4 : 10);
  head[0] = (fin ? 0x80 : 0) | opcode;
  if (bits === 7) head[1] = n;
  else if (bits === 16) {
    head[1] = 126;
    head.writeUInt16BE(n, 2);
  } else {
    head[1] = 127;
    head.writeBigUInt64BE(BigInt(n), 2);
  }
  return Buffer.concat([head, body]);
}

/** A client frame the connection wrote: it must be exactly one final, masked frame. */
function decodeClientFrame(frame: Buffer): { opcode: number; body: Buffer } {
  assert.ok(frame.length >= 6, `a client frame of ${frame.length} bytes`);
  assert.equal(frame[0]! & 0xf0, 0x80, 'FIN set, no RSV bits');
  assert.equal(frame[1]! & 0x80, 0x80, 'a client frame is masked');
  let n = frame[1]! & 0x7f;
  let at = 2;
  if (n === 126) {
    n = frame.readUInt16BE(2);
    at = 4;
  } else assert.ok(n < 126, 'a client frame with a 64-bit length');
  const mask = frame.subarray(at, at + 4);
  at += 4;
  assert.equal(frame.length, at + n, 'one whole frame per write');
  const body = Buffer.alloc(n);
  for (let k = 0; k < n; k++) body[k] = frame[at + k]! ^ mask[k & 3]!;
  return { opcode: frame[0]! & 0x0f, body };
}

interface Fed {
  c: WebSocketConnection;
  counters: Counters;
  /** What each read returned, and the byte offset its read ended at. */
  results: (string | null)[];
  ends: number[];
  /** bodyEnded after each read. */
  ended: boolean[];
  /** Everything the connection wrote, one Buffer per write. */
  writes: Buffer[];
}

/**
 * Feeds `bytes` to a fresh connection in reads cut at `cuts`. Each read is copied into a scratch
 * buffer at its own offsets with garbage around it, and the garbage is written over it after the
 * call, as the load generator's one shared read buffer is reused by the next read.
 */
function feed(bytes: Buffer, cuts: number[], channel: string | undefined, commands: Buffer | null): Fed {
  const counters = new Counters();
  const c = new WebSocketConnection(counters, 0, channel, commands);
  const writes: Buffer[] = [];
  c.socket = {
    write(chunk: Buffer | string): boolean {
      writes.push(Buffer.from(chunk));
      return true;
    },
  } as unknown as Socket;
  c.state = CONNECTING;
  const scratch = Buffer.alloc(bytes.length + 16);
  const results: (string | null)[] = [];
  const ends: number[] = [];
  const ended: boolean[] = [];
  const points = [...new Set(cuts.map((x) => x % bytes.length))].sort((a, b) => a - b);
  let from = 0;
  for (const to of [...points, bytes.length]) {
    if (to <= from) continue;
    scratch.fill(GARBAGE);
    bytes.copy(scratch, from, from, to);
    results.push(c.feed(scratch, from, to, Number(process.hrtime.bigint() / 1000n)));
    scratch.fill(GARBAGE);
    ends.push(to);
    ended.push(c.bodyEnded);
    from = to;
  }
  return { c, counters, results, ends, ended, writes };
}

/** The index of the read that holds byte `offset - 1` (the read that completes the first `offset` bytes). */
function readAt(fed: Fed, offset: number): number {
  return fed.ends.findIndex((end) => end >= offset);
}

function counts(counters: Counters): { events: number; lost: number; duplicated: number; reordered: number } {
  return { events: counters.events, lost: counters.lost, duplicated: counters.duplicated, reordered: counters.reordered };
}

/** The hub's push of update `seq` on channel `bench` (the data a JSON string, as the benchmark publishes it). */
function push(seq: number): string {
  return `{"push":{"channel":"bench","pub":{"data":${JSON.stringify(payload(seq))},"offset":${seq}}}}`;
}

/** A control frame between fragments or messages: a ping (answered) or an unsolicited pong (ignored). */
interface Control {
  ping: boolean;
  body: Uint8Array;
}

/** One message and how it is framed: split at `splits` (zero-length fragments allowed), controls after fragment k, each frame's length form. */
interface Framing {
  splits: number[];
  controls: Control[][];
  forms: LengthForm[];
}

const controlArb: fc.Arbitrary<Control> = fc.record({ ping: fc.boolean(), body: fc.uint8Array({ maxLength: 125 }) });
const framingArb: fc.Arbitrary<Framing> = fc.record({
  splits: fc.array(fc.nat(), { maxLength: 4 }),
  controls: fc.array(fc.array(controlArb, { maxLength: 2 }), { maxLength: 4 }),
  forms: fc.array(fc.constantFrom<LengthForm>('min', 16, 64), { minLength: 5, maxLength: 5 }),
});

/** Builds a stream and what the connection must make of it. */
class Script {
  readonly parts: Buffer[] = [];
  length = 0;
  /** The payloads of the pings, in order (each must be answered by a pong carrying it). */
  readonly pings: Buffer[] = [];
  /** `{}` lines of the hub (each must be answered by a `{}` text frame). */
  appPings = 0;

  add(bytes: Buffer): void {
    this.parts.push(bytes);
    this.length += bytes.length;
  }

  control(control: Control): void {
    const body = Buffer.from(control.body);
    if (control.ping) this.pings.push(body);
    this.add(serverFrame(control.ping ? OP_PING : OP_PONG, body));
  }

  /** A message of `opcode`, fragmented as `framing` says, with its control frames between the fragments. */
  message(body: Buffer, framing: Framing, opcode = OP_TEXT): void {
    const splits = framing.splits.map((x) => x % (body.length + 1)).sort((a, b) => a - b);
    const bounds = [0, ...splits, body.length];
    for (let k = 0; k + 1 < bounds.length; k++) {
      const last = k + 2 === bounds.length;
      this.add(serverFrame(k === 0 ? opcode : OP_CONTINUATION, body.subarray(bounds[k], bounds[k + 1]), last, framing.forms[k % framing.forms.length]));
      if (!last) for (const control of framing.controls[k] ?? []) this.control(control);
    }
  }

  bytes(): Buffer {
    return Buffer.concat(this.parts);
  }
}

/** Checks the writes: for the hub first its commands, then a pong per ping (same payload, in order) and a `{}` per `{}` line, nothing else. */
function checkWrites(writes: Buffer[], script: Script, commands: Buffer | null): void {
  let rest = writes;
  if (commands !== null) {
    assert.ok(writes.length > 0 && writes[0]!.equals(commands), 'the Centrifugo commands are written first, after the 101');
    rest = writes.slice(1);
  }
  const frames = rest.map(decodeClientFrame);
  const pongs = frames.filter((f) => f.opcode === OP_PONG).map((f) => f.body.toString('hex'));
  const texts = frames.filter((f) => f.opcode === OP_TEXT);
  assert.deepEqual(pongs, script.pings.map((p) => p.toString('hex')));
  assert.equal(texts.length, script.appPings);
  for (const t of texts) assert.equal(t.body.toString(), '{}');
  assert.equal(frames.length, pongs.length + texts.length, 'no frames but pongs and {}');
}

/** One nchan message: an update's raw payload. */
const nchanMessageArb = fc.record({ seq: fc.integer({ min: 1, max: 30 }), framing: framingArb, before: fc.array(controlArb, { maxLength: 1 }), binary: fc.boolean() });

/** One hub message: 1–4 pushes, `{}` lines among them, a trailing line end or not. */
const hubMessageArb = fc.record({
  seqs: fc.array(fc.integer({ min: 1, max: 30 }), { minLength: 1, maxLength: 4 }),
  appPings: fc.array(fc.nat(), { maxLength: 2 }),
  trailing: fc.boolean(),
  framing: framingArb,
  before: fc.array(controlArb, { maxLength: 1 }),
  /** A `{}` message of its own before this one. */
  appPingMessage: fc.boolean(),
});

describe('load generator WebSocket counting', () => {
  it('nchan: counts every update exactly and answers every ping, whatever the framing and wherever the reads split the bytes', () => {
    fc.assert(
      fc.property(fc.array(nchanMessageArb, { minLength: 1, maxLength: 25 }), fc.array(fc.nat(), { maxLength: 40 }), (messages, cuts) => {
        const script = new Script();
        script.add(Buffer.from(UPGRADED, 'latin1'));
        const openAt = script.length;
        const seqs: number[] = [];
        for (const m of messages) {
          for (const control of m.before) script.control(control);
          // A binary message is not scanned (nchan sends the text it was given as text).
          if (m.binary) script.message(Buffer.from(payload(99)), m.framing, OP_BINARY);
          script.message(Buffer.from(payload(m.seq)), m.framing);
          seqs.push(m.seq);
        }
        const fed = feed(script.bytes(), cuts, undefined, null);
        const ref = sequenceReference(seqs);
        assert.deepEqual(counts(fed.counters), { events: ref.events, lost: ref.lost, duplicated: ref.duplicated, reordered: ref.reordered });
        assert.equal(fed.c.lastSeq, ref.last);
        // Open at the read that completed the 101 head, and only there.
        assert.deepEqual(
          fed.results.map((r, k) => [k, r]).filter(([, r]) => r !== null),
          [[readAt(fed, openAt), 'open']],
        );
        assert.equal(fed.c.state, OPEN);
        assert.equal(fed.counters.open, 1);
        assert.equal(fed.c.bodyEnded, false);
        checkWrites(fed.writes, script, null);
      }),
    );
  });

  it('ssehub: counts every update of several pushes per message exactly, answers pings and {} lines, and opens at the subscribe reply', () => {
    const commands = centrifugoSubscribe('bench');
    fc.assert(
      fc.property(
        fc.array(hubMessageArb, { minLength: 1, maxLength: 12 }),
        fc.record({
          /** Connect and subscribe replies in one message, or two. */
          together: fc.boolean(),
          /** The first pushes in the same message as the subscribe reply. */
          withPushes: fc.boolean(),
          /** A `{}` message before the subscribe reply. */
          earlyPing: fc.boolean(),
          framing: framingArb,
        }),
        fc.array(fc.nat(), { maxLength: 40 }),
        (messages, opening, cuts) => {
          const script = new Script();
          script.add(Buffer.from(UPGRADED, 'latin1'));
          const seqs: number[] = [];
          const text = (m: (typeof messages)[number]): string => {
            const lines = m.seqs.map(push);
            for (const at of m.appPings) lines.splice(at % (lines.length + 1), 0, '{}');
            script.appPings += m.appPings.length;
            seqs.push(...m.seqs);
            return lines.join('\n') + (m.trailing ? '\n' : '');
          };
          if (!opening.together) script.message(Buffer.from(CONNECT_REPLY), opening.framing);
          if (opening.earlyPing) {
            script.message(Buffer.from('{}'), opening.framing);
            script.appPings++;
          }
          let reply = opening.together ? `${CONNECT_REPLY}\n${SUBSCRIBE_REPLY}` : SUBSCRIBE_REPLY;
          let rest = messages;
          if (opening.withPushes) {
            reply += `\n${text(messages[0]!)}`;
            rest = messages.slice(1);
          }
          script.message(Buffer.from(reply, 'latin1'), opening.framing);
          const openAt = script.length;
          for (const m of rest) {
            for (const control of m.before) script.control(control);
            if (m.appPingMessage) {
              script.message(Buffer.from('{}'), m.framing);
              script.appPings++;
            }
            script.message(Buffer.from(text(m), 'latin1'), m.framing);
          }
          const fed = feed(script.bytes(), cuts, 'bench', commands);
          const ref = sequenceReference(seqs);
          assert.deepEqual(counts(fed.counters), { events: ref.events, lost: ref.lost, duplicated: ref.duplicated, reordered: ref.reordered });
          assert.equal(fed.c.lastSeq, ref.last);
          // Not open at the 101: open at the read that completed the subscribe reply's message, and only there.
          assert.deepEqual(
            fed.results.map((r, k) => [k, r]).filter(([, r]) => r !== null),
            [[readAt(fed, openAt), 'open']],
          );
          assert.equal(fed.counters.open, 1);
          assert.equal(fed.c.bodyEnded, false);
          checkWrites(fed.writes, script, commands);
        },
      ),
    );
  });

  it('reads 16- and 64-bit lengths of messages longer than 125 and 65,535 bytes, wherever the reads split them', () => {
    const commands = centrifugoSubscribe('bench');
    fc.assert(
      fc.property(fc.constantFrom(2, 300, 700), framingArb, fc.array(fc.nat(), { maxLength: 30 }), (n, framing, cuts) => {
        const script = new Script();
        script.add(Buffer.from(UPGRADED, 'latin1'));
        script.message(Buffer.from(`${CONNECT_REPLY}\n${SUBSCRIBE_REPLY}`), { splits: [], controls: [], forms: ['min'] });
        // ~110 bytes a push: 2 take a 16-bit length, 700 (77 KB) a 64-bit one; a gap at 5 and 6 and 2 repeats.
        const seqs = Array.from({ length: n }, (_, k) => k + 1).filter((s) => s !== 5 && s !== 6);
        seqs.push(1, n);
        const body = Buffer.from(seqs.map(push).join('\n'));
        // The first fragment holds at least the bytes that need the length form under test.
        const least = n === 700 ? 0x10000 : 126;
        assert.ok(body.length >= least);
        script.message(body, { ...framing, splits: framing.splits.map((x) => least + (x % (body.length - least + 1))), forms: framing.forms.map(() => 'min') });
        assert.equal(script.parts[2]![1], n === 700 ? 127 : 126);
        const fed = feed(script.bytes(), cuts, 'bench', commands);
        const ref = sequenceReference(seqs);
        assert.deepEqual(counts(fed.counters), { events: ref.events, lost: ref.lost, duplicated: ref.duplicated, reordered: ref.reordered });
        assert.equal(ref.lost, n > 6 ? 2 : 0);
        assert.ok(fed.results.includes('open'));
        checkWrites(fed.writes, script, commands);
      }),
      { numRuns: 40 },
    );
  });

  it('answers a ping with a masked pong carrying its payload, and the hub {} with a masked {} (nchan does not answer {})', () => {
    const commands = centrifugoSubscribe('bench');
    const ping = Buffer.from('ping \u00e9 42');
    const stream = (hub: boolean): Buffer =>
      Buffer.concat([
        Buffer.from(UPGRADED, 'latin1'),
        ...(hub ? [serverFrame(OP_TEXT, Buffer.from(`${CONNECT_REPLY}\n${SUBSCRIBE_REPLY}`))] : []),
        serverFrame(OP_PING, ping),
        serverFrame(OP_PING, Buffer.alloc(0)),
        serverFrame(OP_TEXT, Buffer.from('{}')),
        serverFrame(OP_PING, Buffer.alloc(125, 7)),
        // Last in the stream: answered at its header, not only when more bytes come.
        serverFrame(OP_PING, Buffer.alloc(0)),
      ]);
    fc.assert(
      fc.property(fc.array(fc.nat(), { maxLength: 20 }), (cuts) => {
        const hub = feed(stream(true), cuts, 'bench', commands);
        assert.equal(hub.writes.length, 6);
        assert.ok(hub.writes[0]!.equals(commands));
        assert.deepEqual(
          hub.writes.slice(1).map(decodeClientFrame),
          [
            { opcode: OP_PONG, body: ping },
            { opcode: OP_PONG, body: Buffer.alloc(0) },
            { opcode: OP_TEXT, body: Buffer.from('{}') },
            { opcode: OP_PONG, body: Buffer.alloc(125, 7) },
            { opcode: OP_PONG, body: Buffer.alloc(0) },
          ],
        );
        const nchan = feed(stream(false), cuts, undefined, null);
        assert.deepEqual(
          nchan.writes.map(decodeClientFrame),
          [
            { opcode: OP_PONG, body: ping },
            { opcode: OP_PONG, body: Buffer.alloc(0) },
            { opcode: OP_PONG, body: Buffer.alloc(125, 7) },
            { opcode: OP_PONG, body: Buffer.alloc(0) },
          ],
        );
      }),
    );
    // The commands themselves: connect, then subscribe to the channel, in one masked text frame.
    assert.deepEqual(decodeClientFrame(commands), { opcode: OP_TEXT, body: Buffer.from('{"id":1,"connect":{}}\n{"id":2,"subscribe":{"channel":"bench"}}') });
  });

  it('opens the hub connection at the subscribe reply, not at the 101 or the connect reply; nchan at the 101', () => {
    const commands = centrifugoSubscribe('bench');
    const counters = new Counters();
    const hub = new WebSocketConnection(counters, 0, 'bench', commands);
    const writes: Buffer[] = [];
    hub.socket = { write: (b: Buffer) => writes.push(b) > 0 } as unknown as Socket;
    hub.state = CONNECTING;
    const now = Number(process.hrtime.bigint() / 1000n);
    const at101 = Buffer.from(UPGRADED, 'latin1');
    assert.equal(hub.feed(at101, 0, at101.length, now), null);
    assert.deepEqual(writes, [commands]);
    assert.equal(hub.state, CONNECTING);
    const connected = serverFrame(OP_TEXT, Buffer.from(CONNECT_REPLY));
    assert.equal(hub.feed(connected, 0, connected.length, now), null);
    assert.equal(counters.open, 0);
    const subscribed = serverFrame(OP_TEXT, Buffer.from(SUBSCRIBE_REPLY));
    assert.equal(hub.feed(subscribed, 0, subscribed.length, now), 'open');
    assert.equal(hub.state, OPEN);
    assert.equal(counters.open, 1);
    const pushed = serverFrame(OP_TEXT, Buffer.from(`${push(1)}\n${push(2)}`));
    assert.equal(hub.feed(pushed, 0, pushed.length, now), null);
    assert.equal(counters.events, 2);

    const nchan = new WebSocketConnection(new Counters(), 0, undefined, null);
    nchan.state = CONNECTING;
    assert.equal(nchan.feed(at101, 0, at101.length, now), 'open');
    assert.equal(nchan.state, OPEN);
  });

  it('fails a connection the server did not upgrade, with the status line, wherever the reads split the head', () => {
    fc.assert(
      fc.property(fc.constantFrom('HTTP/1.1 403 Forbidden', 'HTTP/1.1 200 OK', 'HTTP/1.0 502 Bad Gateway'), fc.boolean(), fc.array(fc.nat(), { maxLength: 10 }), (status, hub, cuts) => {
        const head = `${status}\r\ncontent-type: text/plain\r\ncontent-length: 9\r\n\r\n`;
        const fed = feed(Buffer.from(`${head}forbidden`, 'latin1'), cuts, hub ? 'bench' : undefined, hub ? centrifugoSubscribe('bench') : null);
        const failedAt = readAt(fed, head.length);
        assert.deepEqual(
          fed.results.slice(0, failedAt + 1),
          [...fed.results.slice(0, failedAt).map(() => null), `fail:${status}`],
        );
        assert.equal(fed.counters.open, 0);
        assert.deepEqual(fed.writes, []);
      }),
    );
  });

  it('counts a close frame as the server ending the connection, at the read that completes it', () => {
    const commands = centrifugoSubscribe('bench');
    fc.assert(
      fc.property(fc.boolean(), fc.boolean(), fc.array(fc.nat(), { maxLength: 20 }), (hub, withCode, cuts) => {
        const opening = hub ? [serverFrame(OP_TEXT, Buffer.from(`${CONNECT_REPLY}\n${SUBSCRIBE_REPLY}`))] : [];
        const update = serverFrame(OP_TEXT, Buffer.from(hub ? push(1) : payload(1)));
        // With a code and reason, or empty (then it ends at its header).
        const close = Buffer.alloc(withCode ? 2 + 'going away'.length : 0);
        if (withCode) {
          close.writeUInt16BE(1001, 0);
          close.write('going away', 2);
        }
        const bytes = Buffer.concat([Buffer.from(UPGRADED, 'latin1'), ...opening, update, serverFrame(OP_CLOSE, close)]);
        const fed = feed(bytes, cuts, hub ? 'bench' : undefined, hub ? commands : null);
        const closedAt = readAt(fed, bytes.length);
        assert.equal(closedAt, fed.ended.length - 1);
        assert.deepEqual(fed.ended, [...fed.ended.slice(0, closedAt).map(() => false), true]);
        assert.equal(fed.counters.events, 1);
        assert.ok(fed.results.every((r) => r === null || r === 'open'));
        assert.equal(fed.c.state, OPEN);
      }),
    );
  });

  it('fails a hub connection closed before the subscribe reply, with the close code and reason', () => {
    const close = Buffer.alloc(2 + 'unknown channel'.length);
    close.writeUInt16BE(3502, 0);
    close.write('unknown channel', 2);
    const bytes = Buffer.concat([Buffer.from(UPGRADED, 'latin1'), serverFrame(OP_TEXT, Buffer.from(CONNECT_REPLY)), serverFrame(OP_CLOSE, close)]);
    fc.assert(
      fc.property(fc.array(fc.nat(), { maxLength: 10 }), (cuts) => {
        const fed = feed(bytes, cuts, 'bench', centrifugoSubscribe('bench'));
        assert.deepEqual(fed.results.filter((r) => r !== null), ['fail:closed by the server (3502 unknown channel) before it was open']);
        assert.equal(fed.results.at(-1), 'fail:closed by the server (3502 unknown channel) before it was open');
        assert.equal(fed.counters.open, 0);
      }),
    );
  });

  it('fails a connection on a frame RFC 6455 forbids from a server, or a hub error reply, with the reason', () => {
    const now = Number(process.hrtime.bigint() / 1000n);
    const at101 = Buffer.from(UPGRADED, 'latin1');
    const masked = serverFrame(OP_TEXT, Buffer.from(payload(1)));
    masked[1]! |= 0x80;
    const cases: [Buffer, string][] = [
      [masked, 'a masked frame from the server'],
      [Buffer.from([0xc1, 0x00]), 'a frame with RSV bits set (no extension was negotiated)'],
      [serverFrame(OP_CONTINUATION, Buffer.from(payload(1))), 'a continuation frame outside a message'],
      [Buffer.concat([serverFrame(OP_TEXT, Buffer.from('s=1'), false), serverFrame(OP_TEXT, Buffer.from(' t=1 '))]), 'a new message inside a fragmented one'],
      [serverFrame(OP_PING, Buffer.alloc(0), false), 'a control frame (opcode 9) fragmented or longer than 125 bytes'],
      [serverFrame(OP_PING, Buffer.alloc(126), true, 16), 'a control frame (opcode 9) fragmented or longer than 125 bytes'],
      [serverFrame(3, Buffer.alloc(0)), 'a frame of the reserved opcode 3'],
      [serverFrame(11, Buffer.alloc(0)), 'a frame of the reserved opcode 11'],
    ];
    for (const [frame, reason] of cases) {
      const counters = new Counters();
      const c = new WebSocketConnection(counters, 0, undefined, null);
      c.state = CONNECTING;
      assert.equal(c.feed(at101, 0, at101.length, now), 'open');
      assert.equal(c.feed(frame, 0, frame.length, now), `fail:${reason}`);
      assert.equal(counters.events, 0);
    }
    const hub = new WebSocketConnection(new Counters(), 0, 'bench', centrifugoSubscribe('bench'));
    hub.state = CONNECTING;
    const refused = Buffer.concat([at101, serverFrame(OP_TEXT, Buffer.from(`${CONNECT_REPLY}\n{"id":2,"error":{"code":102,"message":"unknown channel"}}`))]);
    assert.equal(hub.feed(refused, 0, refused.length, now), 'fail:command 2 answered {"code":102,"message":"unknown channel"}');
  });
});
