// The load-generator child: holds up to ~9,900 raw SSE or WebSocket connections and counts what arrives.
//
// Started by bench/sse/clients.ts (SSEHUB_LOADGEN=1, an IPC channel, pinned with taskset). It
// must cost less per event than the servers it measures, so there is no HTTP client and no SSE
// parser: raw `net` sockets whose reads all land in one shared buffer (`onread`, no allocation per
// read), and a byte-level state machine per connection that only picks out the `id:` value and
// the `s=SSSSSS t=TTTT` fields of a `data:` line. Chunked framing is stripped by a second small
// state machine. Both keep their state between reads, so an event may be split at any byte.
// WebSocket subscribers (a target's wire 'websocket') share all of that but the parsing: an RFC
// 6455 handshake, a frame parser and a scanner for `s=… t=…` in text messages (WebSocketConnection).
import { randomBytes } from 'node:crypto';
import { Socket, connect as netConnect } from 'node:net';
import { HISTOGRAM_BUCKETS, histogramBucket, type ChildReply, type ChildRequest, type ChildStats, type SlowReading, type Target } from './clients.js';

const LF = 10;
const CR = 13;
const SPACE = 32;
const COLON = 58;
const ZERO = 48;
const NINE = 57;

// SSE scanner states (one line at a time; CR is ignored everywhere, so LF and CRLF both work).
const S_LINE = 0; // at the start of a line
const S_SKIP = 1; // in a line nobody cares about
const S_I = 2; // "i"
const S_ID = 3; // "id", expecting ':'
const S_IDSP = 4; // "id:", an optional space
const S_IDV = 5; // the id value
const S_D = 6; // "d"
const S_DA = 7; // "da"
const S_DAT = 8; // "dat"
const S_DATA = 9; // "data", expecting ':'
const S_DSP = 10; // "data:", an optional space then 's'
const S_S = 11; // "s", expecting '='
const S_SEQ = 12; // digits of the sequence number, until ' '
const S_T = 13; // expecting 't'
const S_TE = 14; // "t", expecting '='
const S_TV = 15; // digits of the publish time (µs), until ' ' or end of line

// Chunked-encoding framing states.
const C_SIZE = 0; // hex digits of a chunk size
const C_EXT = 1; // a chunk extension, up to LF
const C_DATA = 2; // inside chunk data (chunkLeft bytes to go)
const C_CRLF = 3; // the CRLF after chunk data
const C_DONE = 4; // after the last chunk

// Connection states.
export const IDLE = 0; // closed (by us, or it failed or was dropped)
export const CONNECTING = 1; // TCP connecting or waiting for the response headers
export const OPEN = 2; // headers received, events flowing

const MAX_MISSING_RANGES = 256;
const SERVER_CLOSED = 'closed by the server';
const HEADER_TIMEOUT_MS = 60_000;
/** A delivery this late (µs) is recorded with its connection's story: a stalled stream, not a slow path. */
const LATE_US = 5_000_000;
const MAX_LATE_NOTES = 10;

/** Process-wide counters; every connection adds to them, so stats() is O(1) apart from the histogram. */
export class Counters {
  events = 0;
  /** Openings that failed and were tried again (retry mode), and how many failed for each reason (at most 10 named). */
  retries = 0;
  retryReasons: Record<string, number> = {};
  lost = 0;
  duplicated = 0;
  reordered = 0;
  failed = 0;
  open = 0;
  /** Reopenings with Last-Event-ID outside a connect/reconnect batch: churn, and resumes after the server closed a stream (resume mode). */
  resumes = 0;
  /** Streams the server ended while they were open (in resume mode they are reopened, not counted as failed). */
  serverCloses = 0;
  /** Connections closed by a churn and not yet open again. */
  churning = 0;
  histogram = new Uint32Array(HISTOGRAM_BUCKETS);
  latencyCount = 0;
  latencyMax = 0;
  /** waitFor: the seq every open connection must reach (0: nobody is waiting) and how many have not. */
  target = 0;
  behind = 0;
  onCaughtUp: (() => void) | null = null;
  errors: string[] = [];
  /** The first few deliveries later than LATE_US, each with its connection's story (why it was late). */
  late: string[] = [];

  noteError(message: string): void {
    if (this.errors.length < 5 && !this.errors.includes(message)) this.errors.push(message);
  }

  /** A connection got its 200 head: it counts as open (and as behind, if someone waits for a seq it has not seen). */
  opened(c: Connection): void {
    c.state = OPEN;
    c.opens++;
    c.openedAt = performance.now();
    this.open++;
    if (this.target !== 0 && c.lastSeq < this.target) this.behind++;
  }

  resetLatency(): void {
    this.histogram.fill(0);
    this.latencyCount = 0;
    this.latencyMax = 0;
  }
}

/** One SSE connection: the scanner's state between reads and what it has seen so far. */
export class Connection {
  socket: Socket | null = null;
  state = IDLE;
  /** Where it connects to (kept for reconnects). */
  target: Target | null = null;
  /** A slow reader: how it reads, the descriptor of its pre-connected socket (-1 once used), and the bytes it may read now. */
  slow: SlowReading | null = null;
  fd = -1;
  budget = 0;
  /** Highest seq seen (or the baseline given at connect time). */
  lastSeq: number;
  /** Seqs skipped over and not (yet) received, as [from, to] pairs; null when none. */
  missing: number[] | null = null;
  /** Opened outside a connect/reconnect batch (churn, resume): its outcome settles no batch. */
  solo = false;
  /** Failed openings tried again since it last opened (retry mode). */
  retries = 0;
  /** Times it got a 200 head, when the last did (performance.now() ms), and why it was (re)opened. */
  opens = 0;
  openedAt = 0;
  openedBy = 'connect';
  /** When the last event came in: `now` of feed() (µs, CLOCK_MONOTONIC), read once per chunk rather than per event. */
  lastEventAt = 0;
  /** The last `id:` value seen, as bytes (the Last-Event-ID of a reconnect). */
  id = Buffer.allocUnsafe(64);
  idLength = 0;
  // The id being read; swapped with `id` at the end of its line.
  private nextId = Buffer.allocUnsafe(64);
  private nextIdLength = 0;

  // Response head (accumulated as text until the blank line; once per connection).
  head = '';
  private chunked = false;
  private chunkState = C_SIZE;
  private chunkLeft = 0;

  private scan = S_LINE;
  private seqAcc = 0;
  private timeAcc = 0;
  private eventSeq = -1;
  private eventTime = 0;

  constructor(
    readonly counters: Counters,
    baseline: number,
  ) {
    this.lastSeq = baseline;
  }

  /** Forgets a partial response, before the connection is opened again. */
  resetStream(): void {
    this.head = '';
    this.chunked = false;
    this.chunkState = C_SIZE;
    this.chunkLeft = 0;
    this.scan = S_LINE;
    this.eventSeq = -1;
    this.nextIdLength = 0;
  }

  /** The remembered id as text (only needed for a reconnect). */
  lastId(): string {
    return this.id.toString('latin1', 0, this.idLength);
  }

  /**
   * Feeds bytes [start, end) of a read. Returns 'open' when this read completed the response
   * head with status 200, 'fail:<reason>' when the head was not a 200, or null.
   */
  feed(buf: Buffer, start: number, end: number, now: number): string | null {
    let result: string | null = null;
    if (this.state === CONNECTING) {
      const before = this.head.length;
      this.head += buf.toString('latin1', start, end);
      const blank = this.head.indexOf('\r\n\r\n');
      if (blank < 0) {
        if (this.head.length > 16_384) return 'fail:response head larger than 16 KiB';
        return null;
      }
      if (!this.head.startsWith('HTTP/1.') || this.head.slice(9, 12) !== '200') return `fail:${this.head.slice(0, this.head.indexOf('\r\n'))}`;
      const head = this.head.slice(0, blank).toLowerCase();
      const te = head.indexOf('\r\ntransfer-encoding:');
      this.chunked = te >= 0 && head.slice(te, head.indexOf('\r\n', te + 2) >>> 0).includes('chunked');
      start += blank + 4 - before;
      this.head = '';
      this.counters.opened(this);
      result = 'open';
    }
    if (start >= end) return result;
    if (!this.chunked) {
      this.scanEvents(buf, start, end, now);
      return result;
    }
    // Strip chunked framing; hand each run of chunk data to the SSE scanner.
    let i = start;
    let cs = this.chunkState;
    let left = this.chunkLeft;
    while (i < end) {
      if (cs === C_DATA) {
        const stop = end - i < left ? end : i + left;
        this.scanEvents(buf, i, stop, now);
        left -= stop - i;
        i = stop;
        if (left === 0) cs = C_CRLF;
        continue;
      }
      const b = buf[i++]!;
      if (cs === C_SIZE) {
        if (b >= ZERO && b <= NINE) left = left * 16 + (b - ZERO);
        else if (b >= 97 && b <= 102) left = left * 16 + (b - 87);
        else if (b >= 65 && b <= 70) left = left * 16 + (b - 55);
        else if (b === LF) cs = left === 0 ? C_DONE : C_DATA;
        else if (b !== CR) cs = C_EXT;
      } else if (cs === C_EXT) {
        if (b === LF) cs = left === 0 ? C_DONE : C_DATA;
      } else if (cs === C_CRLF) {
        if (b === LF) cs = C_SIZE;
      } else {
        break; // C_DONE: trailers after the last chunk; the stream is over
      }
    }
    this.chunkState = cs;
    this.chunkLeft = left;
    return result;
  }

  /**
   * `true` once the last chunk of a chunked body came in: the server ended the stream, even if it
   * keeps the connection open for another request (node:http does, until its keep-alive timeout).
   * An EventSource reconnects at the end of the body, not at the end of the connection.
   */
  get bodyEnded(): boolean {
    return this.chunked && this.chunkState === C_DONE;
  }

  private scanEvents(buf: Buffer, start: number, end: number, now: number): void {
    let st = this.scan;
    let seqAcc = this.seqAcc;
    let timeAcc = this.timeAcc;
    let i = start;
    while (i < end) {
      const b = buf[i++]!;
      if (b === LF) {
        if (st === S_LINE) {
          if (this.eventSeq >= 0) {
            this.onEvent(this.eventSeq, this.eventTime, now);
            this.eventSeq = -1;
          }
        } else if (st === S_IDV || st === S_IDSP) {
          const t = this.id;
          this.id = this.nextId;
          this.idLength = this.nextIdLength;
          this.nextId = t;
        } else if (st === S_TV) {
          this.eventSeq = seqAcc;
          this.eventTime = timeAcc;
        }
        st = S_LINE;
        continue;
      }
      if (b === CR) continue;
      switch (st) {
        case S_LINE:
          st = b === 100 /* d */ ? S_D : b === 105 /* i */ ? S_I : S_SKIP;
          break;
        case S_SKIP:
          // The bulk of every event (the padding): run to the end of the line in a tight loop.
          while (i < end && buf[i] !== LF) i++;
          break;
        case S_I:
          st = b === 100 /* d */ ? S_ID : S_SKIP;
          break;
        case S_ID:
          if (b === COLON) {
            st = S_IDSP;
            this.nextIdLength = 0;
          } else st = S_SKIP;
          break;
        case S_IDSP:
          st = S_IDV;
          if (b !== SPACE) i = this.readId(b, buf, i, end);
          break;
        case S_IDV:
          i = this.readId(b, buf, i, end);
          break;
        case S_D:
          st = b === 97 /* a */ ? S_DA : S_SKIP;
          break;
        case S_DA:
          st = b === 116 /* t */ ? S_DAT : S_SKIP;
          break;
        case S_DAT:
          st = b === 97 /* a */ ? S_DATA : S_SKIP;
          break;
        case S_DATA:
          st = b === COLON ? S_DSP : S_SKIP;
          break;
        case S_DSP:
          st = b === 115 /* s */ ? S_S : b === SPACE ? S_DSP : S_SKIP;
          break;
        case S_S:
          st = b === 61 /* = */ ? S_SEQ : S_SKIP;
          seqAcc = 0;
          break;
        case S_SEQ: {
          let c = b;
          while (c >= ZERO && c <= NINE) {
            seqAcc = seqAcc * 10 + (c - ZERO);
            if (i === end) break;
            c = buf[i++]!;
          }
          if (c >= ZERO && c <= NINE) break; // the read ended inside the digits
          if (c === LF) i--; // let the line end be handled above
          else st = c === SPACE ? S_T : S_SKIP;
          break;
        }
        case S_T:
          st = b === 116 /* t */ ? S_TE : S_SKIP;
          break;
        case S_TE:
          st = b === 61 /* = */ ? S_TV : S_SKIP;
          timeAcc = 0;
          break;
        case S_TV: {
          let c = b;
          while (c >= ZERO && c <= NINE) {
            timeAcc = timeAcc * 10 + (c - ZERO);
            if (i === end) break;
            c = buf[i++]!;
          }
          if (c >= ZERO && c <= NINE) break; // the read ended inside the digits
          if (c === LF || c === CR) i--; // let the line end be handled above
          else {
            if (c === SPACE) {
              this.eventSeq = seqAcc;
              this.eventTime = timeAcc;
            }
            st = S_SKIP;
          }
          break;
        }
      }
    }
    this.scan = st;
    this.seqAcc = seqAcc;
    this.timeAcc = timeAcc;
  }

  /** Appends `first` and the rest of the id line's bytes in this read to the id being read; returns the next index. */
  private readId(first: number, buf: Buffer, i: number, end: number): number {
    let n = this.nextIdLength;
    let to = this.nextId;
    if (n === to.length) {
      const grown = Buffer.allocUnsafe(n * 2);
      to.copy(grown, 0, 0, n);
      this.nextId = to = grown;
    }
    to[n++] = first;
    while (i < end && n < to.length) {
      const c = buf[i]!;
      if (c === LF || c === CR) break;
      to[n++] = c;
      i++;
    }
    this.nextIdLength = n;
    return i;
  }

  /** One data event with sequence number `seq`, published at `time` µs (monotonic clock). */
  protected onEvent(seq: number, time: number, now: number): void {
    const c = this.counters;
    c.events++;
    const last = this.lastSeq;
    if (seq === last + 1) {
      this.lastSeq = seq;
    } else if (seq > last) {
      this.lastSeq = seq;
      c.lost += seq - last - 1;
      this.addMissing(last + 1, seq - 1);
    } else if (this.fillMissing(seq)) {
      c.lost--;
      c.reordered++;
    } else {
      c.duplicated++;
      return;
    }
    const latency = now - time;
    if (latency > LATE_US && c.late.length < MAX_LATE_NOTES) {
      const at = performance.now();
      c.late.push(
        `seq ${seq} ${(latency / 1e6).toFixed(1)} s late on ${this.target?.path ?? '?'}: open #${this.opens} (by ${this.openedBy}) ${((at - this.openedAt) / 1000).toFixed(1)} s ago, previous event ${this.lastEventAt === 0 ? 'none' : `${((now - this.lastEventAt) / 1e6).toFixed(1)} s ago`}, last seq before ${last}`,
      );
    }
    this.lastEventAt = now;
    c.histogram[histogramBucket(latency)]!++;
    c.latencyCount++;
    if (latency > c.latencyMax) c.latencyMax = latency;
    if (c.target !== 0 && last < c.target && this.lastSeq >= c.target && --c.behind === 0) c.onCaughtUp?.();
  }

  private addMissing(from: number, to: number): void {
    const m = (this.missing ??= []);
    // Beyond the cap the oldest gap is forgotten: its seqs stay counted as lost, and a late
    // arrival of one of them would count as a duplicate.
    if (m.length >= MAX_MISSING_RANGES * 2) m.splice(0, 2);
    m.push(from, to);
  }

  /** Removes `seq` from the missing ranges; false when it was not missing (a duplicate). */
  private fillMissing(seq: number): boolean {
    const m = this.missing;
    if (m === null) return false;
    for (let k = m.length - 2; k >= 0; k -= 2) {
      const from = m[k]!;
      const to = m[k + 1]!;
      if (seq < from || seq > to) continue;
      if (from === to) m.splice(k, 2);
      else if (seq === from) m[k] = from + 1;
      else if (seq === to) m[k + 1] = to - 1;
      else m.splice(k + 1, 0, seq - 1, seq + 1);
      if (m.length === 0) this.missing = null;
      return true;
    }
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// WebSocket subscribers (RFC 6455): nchan's `nchan_subscriber websocket` and the hub's
// `/connection/websocket` (the Centrifugo client protocol, JSON). The same raw sockets and shared
// read buffer as SSE; a frame parser and a scanner for `s=SSSSSS t=TTTT` in text messages, both
// byte-level state machines that keep their state between reads (a frame may be split at any
// byte). Deliveries go to the same counters as SSE events (Connection.onEvent).

// Frame parser states.
const W_HEAD = 0; // the first byte of a frame header: FIN, RSV, opcode
const W_LENGTH = 1; // the second: MASK, 7-bit length
const W_EXTENDED = 2; // the 16- or 64-bit length, a byte at a time
const W_PAYLOAD = 3; // the payload (`left` bytes to go)

// Opcodes.
const OP_CONTINUATION = 0;
const OP_TEXT = 1;
const OP_BINARY = 2;
const OP_CLOSE = 8;
const OP_PING = 9;
const OP_PONG = 10;

// Text scanner states: every `s=SSSSSS t=TTTT` in a text message (nchan sends the data as it is;
// the hub a JSON push per line, the data a JSON string inside it).
const M_ANY = 0; // looking for 's'
const M_S = 1; // "s", expecting '='
const M_SEQ = 2; // digits of the sequence number, until ' '
const M_T = 3; // expecting 't'
const M_TE = 4; // "t", expecting '='
const M_TV = 5; // digits of the time (µs), until a non-digit, the end of a line or of the message

// The shape of a line so far: the hub's application ping is a line `{}` (a message of its own,
// or a line among pushes when its writes were queued together).
const L_START = 0;
const L_BRACE = 1; // "{"
const L_PING = 2; // "{}"
const L_OTHER = 3;

const OPEN_BRACE = 123;
const CLOSE_BRACE = 125;
const LETTER_S = 115;
const LETTER_T = 116;
const EQUALS = 61;

/** The Sec-WebSocket-Key of every handshake (the server only echoes its hash; nothing here checks it). */
const WEBSOCKET_KEY = randomBytes(16).toString('base64');
/** The masking key of every client frame (RFC 6455 asks for a masked client frame; a fixed key is enough for a load generator). */
const MASK = randomBytes(4);

/** A client frame: FIN, `opcode`, masked, with `payload` (at most 65,535 bytes). */
export function clientFrame(opcode: number, payload: Buffer): Buffer {
  const n = payload.length;
  const header = n < 126 ? 2 : 4;
  const frame = Buffer.allocUnsafe(header + 4 + n);
  frame[0] = 0x80 | opcode;
  if (n < 126) frame[1] = 0x80 | n;
  else {
    frame[1] = 0x80 | 126;
    frame.writeUInt16BE(n, 2);
  }
  MASK.copy(frame, header);
  for (let k = 0; k < n; k++) frame[header + 4 + k] = payload[k]! ^ MASK[k & 3]!;
  return frame;
}

/** The answer to the hub's application ping `{}`, and to a WebSocket ping without payload. */
const PONG_JSON = clientFrame(OP_TEXT, Buffer.from('{}'));
const PONG_EMPTY = clientFrame(OP_PONG, Buffer.alloc(0));

/** The upgrade request of a WebSocket subscriber. */
export function upgradeRequest(host: string, port: number, path: string): string {
  return `GET ${path} HTTP/1.1\r\nHost: ${host}:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${WEBSOCKET_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n`;
}

/** The connect and subscribe commands of the Centrifugo client protocol, as one client frame. */
export function centrifugoSubscribe(channel: string): Buffer {
  return clientFrame(OP_TEXT, Buffer.from(`{"id":1,"connect":{}}\n{"id":2,"subscribe":{"channel":${JSON.stringify(channel)}}}`));
}

/**
 * One WebSocket subscriber. Open at the 101 (nchan), or, with a Centrifugo `channel` (the hub),
 * once the reply to its subscribe came: after the 101 it sends connect and subscribe in one
 * message, reads the replies as JSON (once per connection), then only scans.
 */
export class WebSocketConnection extends Connection {
  /** The Centrifugo channel to subscribe to after the upgrade (the hub); undefined: open at the 101 (nchan). */
  readonly channel: string | undefined;
  /** The commands sent after the 101 (shared by the connections of a batch). */
  private readonly commands: Buffer | null;
  private upgraded = false;
  /** A close frame came (the server ended the connection). */
  private closeReceived = false;
  /** What this read comes to: 'open', 'fail:<reason>' or null (see Connection.feed). */
  private result: string | null = null;

  private frame = W_HEAD;
  private fin = false;
  private opcode = 0;
  /** Bytes of an extended length still to read, and payload bytes of the frame still to read. */
  private lengthBytes = 0;
  private left = 0;
  /** The opcode of the data message in progress (OP_TEXT, OP_BINARY), 0 between messages. */
  private message = 0;
  /** A control frame's payload (at most 125 bytes), allocated at the first one that has any. */
  private control: Buffer | null = null;
  private controlLength = 0;

  private text = M_ANY;
  private line = L_START;
  private seq = 0;
  private time = 0;

  constructor(counters: Counters, baseline: number, channel: string | undefined, commands: Buffer | null) {
    super(counters, baseline);
    this.channel = channel;
    this.commands = commands;
  }

  override resetStream(): void {
    super.resetStream();
    this.upgraded = false;
    this.closeReceived = false;
    this.frame = W_HEAD;
    this.left = 0;
    this.message = 0;
    this.text = M_ANY;
    this.line = L_START;
  }

  /** The server sent a close frame: the connection is over. */
  override get bodyEnded(): boolean {
    return this.closeReceived;
  }

  override feed(buf: Buffer, start: number, end: number, now: number): string | null {
    this.result = null;
    if (!this.upgraded) {
      const before = this.head.length;
      this.head += buf.toString('latin1', start, end);
      const blank = this.head.indexOf('\r\n\r\n');
      if (blank < 0) return this.head.length > 16_384 ? 'fail:response head larger than 16 KiB' : null;
      if (!this.head.startsWith('HTTP/1.1 101')) return `fail:${this.head.slice(0, this.head.indexOf('\r\n'))}`;
      start += blank + 4 - before;
      this.head = '';
      this.upgraded = true;
      if (this.commands === null) {
        this.counters.opened(this);
        this.result = 'open';
      } else this.socket?.write(this.commands);
    }
    if (start < end) this.frames(buf, start, end, now);
    return this.result;
  }

  /** Ends the parsing of this read with a failure (false, to return it from the steps below). */
  private refuse(reason: string): false {
    if (this.result === 'open') {
      // Opened in this very read: report the open (its batch settles), then the end.
      this.counters.noteError(reason);
      this.closeReceived = true;
    } else this.result = `fail:${reason}`;
    return false;
  }

  private frames(buf: Buffer, start: number, end: number, now: number): void {
    let i = start;
    while (i < end) {
      switch (this.frame) {
        case W_HEAD: {
          const b = buf[i++]!;
          if ((b & 0x70) !== 0) {
            this.refuse('a frame with RSV bits set (no extension was negotiated)');
            return;
          }
          this.fin = (b & 0x80) !== 0;
          this.opcode = b & 0x0f;
          this.frame = W_LENGTH;
          break;
        }
        case W_LENGTH: {
          const b = buf[i++]!;
          if ((b & 0x80) !== 0) {
            this.refuse('a masked frame from the server');
            return;
          }
          const n = b & 0x7f;
          if (n >= 126) {
            this.lengthBytes = n === 126 ? 2 : 8;
            this.left = 0;
            this.frame = W_EXTENDED;
          } else {
            this.left = n;
            if (!this.begin(now)) return;
          }
          break;
        }
        case W_EXTENDED:
          this.left = this.left * 256 + buf[i++]!;
          if (--this.lengthBytes === 0 && !this.begin(now)) return;
          break;
        default: {
          const stop = end - i < this.left ? end : i + this.left;
          if (this.opcode >= OP_CLOSE) {
            const control = (this.control ??= Buffer.allocUnsafe(125));
            buf.copy(control, this.controlLength, i, stop);
            this.controlLength += stop - i;
          } else if (this.message === OP_TEXT) {
            if (this.state === OPEN) this.scanText(buf, i, stop, now);
            else this.head += buf.toString('latin1', i, stop);
          }
          this.left -= stop - i;
          i = stop;
          if (this.left === 0) {
            this.frame = W_HEAD;
            if (!this.endFrame(now)) return;
          }
        }
      }
    }
  }

  /** The header of a frame is complete: checks it; a frame without payload ends here. */
  private begin(now: number): boolean {
    const op = this.opcode;
    if (op >= OP_CLOSE) {
      if (op > OP_PONG) return this.refuse(`a frame of the reserved opcode ${op}`);
      if (!this.fin || this.left > 125) return this.refuse(`a control frame (opcode ${op}) fragmented or longer than 125 bytes`);
      this.controlLength = 0;
    } else if (op === OP_CONTINUATION) {
      if (this.message === 0) return this.refuse('a continuation frame outside a message');
    } else if (op === OP_TEXT || op === OP_BINARY) {
      if (this.message !== 0) return this.refuse('a new message inside a fragmented one');
      this.message = op;
    } else return this.refuse(`a frame of the reserved opcode ${op}`);
    if (this.left === 0) {
      this.frame = W_HEAD;
      return this.endFrame(now);
    }
    this.frame = W_PAYLOAD;
    return true;
  }

  /** A frame is complete. False when parsing stops (a close frame, a failure). */
  private endFrame(now: number): boolean {
    switch (this.opcode) {
      case OP_PING:
        this.socket?.write(this.controlLength === 0 ? PONG_EMPTY : clientFrame(OP_PONG, (this.control as Buffer).subarray(0, this.controlLength)));
        return true;
      case OP_PONG:
        return true;
      case OP_CLOSE: {
        if (this.state === OPEN) {
          this.closeReceived = true;
          return false;
        }
        const code = this.controlLength >= 2 ? (this.control as Buffer).readUInt16BE(0) : 1005;
        const reason = this.controlLength > 2 ? ` ${(this.control as Buffer).toString('utf8', 2, this.controlLength)}` : '';
        return this.refuse(`closed by the server (${code}${reason}) before it was open`);
      }
      default:
        if (!this.fin) return true;
        if (this.message === OP_TEXT) {
          this.message = 0;
          return this.endMessage(now);
        }
        this.message = 0;
        return true;
    }
  }

  /** A text message is complete: its last line ends; before the subscribe reply, the hub's replies are read. */
  private endMessage(now: number): boolean {
    if (this.state === OPEN) {
      this.endLine(now);
      return true;
    }
    const text = this.head;
    this.head = '';
    for (const line of text.split('\n')) {
      if (this.state === OPEN) {
        // Pushes in the same message as the subscribe reply.
        const bytes = Buffer.from(line, 'latin1');
        this.scanText(bytes, 0, bytes.length, now);
        this.endLine(now);
        continue;
      }
      if (line === '') continue;
      if (line === '{}') {
        this.socket?.write(PONG_JSON);
        continue;
      }
      let reply: { id?: unknown; error?: unknown; subscribe?: unknown };
      try {
        reply = JSON.parse(line) as typeof reply;
      } catch {
        return this.refuse(`a reply that is not JSON: ${line.slice(0, 100)}`);
      }
      if (reply.error !== undefined) return this.refuse(`command ${String(reply.id)} answered ${JSON.stringify(reply.error)}`);
      if (reply.id === 2 && reply.subscribe !== undefined) {
        this.counters.opened(this);
        this.result = 'open';
      }
    }
    return true;
  }

  /** The end of a line (LF, or the end of a message): an update whose time ended it counts; a `{}` line of the hub is answered. */
  private endLine(now: number): void {
    if (this.text === M_TV) this.onEvent(this.seq, this.time, now);
    if (this.line === L_PING && this.channel !== undefined) this.socket?.write(PONG_JSON);
    this.text = M_ANY;
    this.line = L_START;
  }

  /** Scans bytes [start, end) of a text message for `s=SSSSSS t=TTTT`, each an update. */
  private scanText(buf: Buffer, start: number, end: number, now: number): void {
    let st = this.text;
    let shape = this.line;
    let seq = this.seq;
    let time = this.time;
    let i = start;
    while (i < end) {
      const b = buf[i++]!;
      if (b === LF) {
        this.text = st;
        this.line = shape;
        this.seq = seq;
        this.time = time;
        this.endLine(now);
        st = M_ANY;
        shape = L_START;
        continue;
      }
      if (shape !== L_OTHER) shape = shape === L_START && b === OPEN_BRACE ? L_BRACE : shape === L_BRACE && b === CLOSE_BRACE ? L_PING : L_OTHER;
      switch (st) {
        case M_ANY:
          if (b === LETTER_S) st = M_S;
          else if (shape === L_OTHER) {
            // The bulk of every message: run to the next 's' or line end in a tight loop.
            while (i < end) {
              const c = buf[i]!;
              if (c === LETTER_S || c === LF) break;
              i++;
            }
          }
          break;
        case M_S:
          if (b === EQUALS) {
            st = M_SEQ;
            seq = 0;
          } else st = b === LETTER_S ? M_S : M_ANY;
          break;
        case M_SEQ:
          if (b >= ZERO && b <= NINE) {
            seq = seq * 10 + (b - ZERO);
            while (i < end) {
              const c = buf[i]!;
              if (c < ZERO || c > NINE) break;
              seq = seq * 10 + (c - ZERO);
              i++;
            }
          } else st = b === SPACE ? M_T : b === LETTER_S ? M_S : M_ANY;
          break;
        case M_T:
          st = b === LETTER_T ? M_TE : b === LETTER_S ? M_S : M_ANY;
          break;
        case M_TE:
          if (b === EQUALS) {
            st = M_TV;
            time = 0;
          } else st = b === LETTER_S ? M_S : M_ANY;
          break;
        default:
          if (b >= ZERO && b <= NINE) {
            time = time * 10 + (b - ZERO);
            while (i < end) {
              const c = buf[i]!;
              if (c < ZERO || c > NINE) break;
              time = time * 10 + (c - ZERO);
              i++;
            }
          } else {
            this.onEvent(seq, time, now);
            st = b === LETTER_S ? M_S : M_ANY;
          }
      }
    }
    this.text = st;
    this.line = shape;
    this.seq = seq;
    this.time = time;
  }
}

// ---------------------------------------------------------------------------------------------
// The child process: connections, IPC.

/** µs of CLOCK_MONOTONIC (the clock of payload()'s t=), without allocating: performance.now() + an offset. */
function monotonicOffset(): number {
  let best = Infinity;
  let offset = 0;
  for (let k = 0; k < 50; k++) {
    const a = process.hrtime.bigint();
    const p = performance.now();
    const b = process.hrtime.bigint();
    const spread = Number(b - a);
    if (spread < best) {
      best = spread;
      offset = Number((a + b) / 2000n) - p * 1000;
    }
  }
  return offset;
}

function main(): void {
  const send = (message: ChildReply): void => {
    process.send?.(message);
  };
  const counters = new Counters();
  const connections: Connection[] = [];
  const readBuffer = Buffer.allocUnsafe(64 * 1024);
  // Slow readers (connect with `slow`): sockets the parent connected with a small receive buffer
  // before this process started (SSEHUB_LOADGEN_FDS), read a few bytes at a time, at a bounded
  // rate: every 100 ms each gets a tenth of its rate to read, and is paused once it has read it.
  const preconnected = (process.env.SSEHUB_LOADGEN_FDS ?? '').split(',').filter((f) => f !== '').map(Number);
  let nextPreconnected = 0;
  const slowReaders: Connection[] = [];
  let slowBuffer: Buffer | null = null;
  let refill: NodeJS.Timeout | null = null;
  const startRefill = (): void => {
    refill ??= setInterval(() => {
      for (const c of slowReaders) {
        const slow = c.slow as SlowReading;
        const share = slow.bytesPerSecond / 10;
        c.budget = Math.min(c.budget + share, Math.max(share, slow.readSize));
        if (c.budget > 0 && c.socket !== null && c.socket.isPaused()) c.socket.resume();
      }
    }, 100);
  };
  const offset = monotonicOffset();
  const addresses: string[] = [];
  let nextAddress = 0;
  let pendingWait: number | null = null;

  // Bounded-concurrency opening of a list of connections.
  let queue: Connection[] = [];
  let queued = 0;
  let inFlight = 0;
  let limit = 500;
  let batch: { req: number; remaining: number; failedBefore: number } | null = null;

  const settle = (): void => {
    inFlight--;
    if (batch !== null && --batch.remaining === 0) {
      const b = batch;
      batch = null;
      send({ op: 'done', req: b.req, failed: counters.failed - b.failedBefore, errors: counters.errors.slice() });
    }
    pump();
  };

  /** A connection's opening is over (open or failed): a batch member settles its batch, a solo one its churn. */
  const settled = (c: Connection): void => {
    if (!c.solo) return settle();
    c.solo = false;
    counters.churning--;
  };

  // Resume mode (SSEHUB_LOADGEN_RESUME=1): a stream the server ends is reopened with
  // Last-Event-ID after a random 0–1 s, as an EventSource does (the hub's --write-timeout ends
  // every stream after a while; a soak outlives it).
  const resumeMode = process.env.SSEHUB_LOADGEN_RESUME === '1';
  // Retry mode (SSEHUB_LOADGEN_RETRY_MS=N): see fail().
  const retryMs = Number(process.env.SSEHUB_LOADGEN_RETRY_MS ?? 0);
  const MAX_RETRIES = 30;

  const fail = (c: Connection, reason: string): void => {
    const wasOpen = c.state === OPEN;
    const wasConnecting = c.state === CONNECTING;
    if (c.state === IDLE) return;
    c.state = IDLE;
    c.socket?.destroy();
    c.socket = null;
    if (wasOpen) {
      counters.open--;
      if (counters.target !== 0 && c.lastSeq < counters.target && --counters.behind === 0) counters.onCaughtUp?.();
    }
    // Retry mode: an opening that failed is tried again after a random delay, as an EventSource
    // does after a network error, still within its batch; counted, never as failed.
    if (wasConnecting && retryMs > 0 && c.retries < MAX_RETRIES && c.slow === null) {
      c.retries++;
      counters.retries++;
      const named = reason in counters.retryReasons || Object.keys(counters.retryReasons).length < 10 ? reason : 'other';
      counters.retryReasons[named] = (counters.retryReasons[named] ?? 0) + 1;
      const g = generation;
      setTimeout(() => {
        if (g === generation && c.state === IDLE) open(c);
      }, Math.random() * retryMs);
      return;
    }
    if (wasConnecting) settled(c);
    if (wasOpen && reason === SERVER_CLOSED) {
      counters.serverCloses++;
      if (resumeMode) {
        c.openedBy = 'resume after the server closed';
        resumeLater(c, Math.random() * 1000);
        return;
      }
    }
    counters.failed++;
    counters.noteError(reason);
  };

  /** Reopens `c` (idle) with Last-Event-ID after `delayMs`, outside any batch; a disconnect in between cancels it. */
  let generation = 0;
  const resumeLater = (c: Connection, delayMs: number): void => {
    const g = generation;
    c.solo = true;
    counters.churning++;
    setTimeout(() => {
      if (g !== generation) return;
      counters.resumes++;
      open(c);
    }, delayMs);
  };

  /** Closes `count` open connections that have seen an id, chosen at random, and reopens each with Last-Event-ID after 0–maxDelayMs. */
  const churn = (count: number, maxDelayMs: number): number => {
    const candidates: Connection[] = [];
    for (const c of connections) if (c.state === OPEN && c.idLength > 0) candidates.push(c);
    const n = Math.min(count, candidates.length);
    for (let k = 0; k < n; k++) {
      const j = k + Math.floor(Math.random() * (candidates.length - k));
      const c = candidates[j]!;
      candidates[j] = candidates[k]!;
      const socket = c.socket;
      c.state = IDLE;
      c.socket = null;
      counters.open--;
      if (counters.target !== 0 && c.lastSeq < counters.target && --counters.behind === 0) counters.onCaughtUp?.();
      socket?.destroy();
      c.openedBy = 'churn';
      resumeLater(c, Math.random() * maxDelayMs);
    }
    return n;
  };

  // Batching: when a turn of the event loop found only a few sockets readable, block for
  // batchMs before polling again, so that the next poll returns many at once. Waking up for a
  // handful of reads at a time costs more CPU than the reads themselves (a context switch and an
  // epoll_wait each); the price is up to batchMs of added latency on some events. Never while
  // connections are being opened: that is a ping-pong, each nap would only slow it down.
  const batchMs = Number(process.env.SSEHUB_LOADGEN_BATCH_MS ?? 1);
  const napCell = new Int32Array(new SharedArrayBuffer(4));
  let readsThisTurn = 0;
  const napIfQuiet = (): void => {
    if (readsThisTurn < 200 && batchMs > 0 && batch === null) Atomics.wait(napCell, 0, 0, batchMs);
    readsThisTurn = 0;
  };

  const open = (c: Connection): void => {
    if (c.target === null) return;
    const { host, port, path } = c.target;
    c.resetStream();
    c.state = CONNECTING;
    if (c.slow !== null && c.fd < 0) {
      fail(c, 'a slow reader is not reconnected (its socket was made before the load generator started)');
      return;
    }
    const localAddress = addresses[nextAddress++ % addresses.length]!;
    let request: string;
    if (c instanceof WebSocketConnection) request = upgradeRequest(host, port, path);
    else {
      request = `GET ${path} HTTP/1.1\r\nHost: ${host}:${port}\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n`;
      if (c.idLength > 0) request += `Last-Event-ID: ${c.lastId()}\r\n`;
      request += '\r\n';
    }
    const slow = c.slow;
    const onread = {
      buffer: slow === null ? readBuffer : (slowBuffer as Buffer),
      callback: (n: number, buf: Uint8Array): boolean => {
        if (c.socket !== socket) return false;
        if (readsThisTurn++ === 0) setImmediate(napIfQuiet);
        const r = c.feed(buf as Buffer, 0, n, performance.now() * 1000 + offset);
        if (r !== null) {
          if (r === 'open') {
            socket.setTimeout(0);
            c.retries = 0;
            settled(c);
          } else fail(c, r.slice(5));
        }
        if (c.state === OPEN && c.bodyEnded) fail(c, SERVER_CLOSED);
        if (slow !== null && (c.budget -= n) <= 0 && c.socket === socket) socket.pause();
        return true;
      },
    };
    let socket: Socket;
    if (slow === null) {
      socket = netConnect({ host, port, localAddress, onread });
      socket.on('connect', () => {
        socket.setNoDelay(true);
        socket.write(request);
      });
    } else {
      // `onread` works here as for connect(); Node's types only list it for connect().
      socket = new Socket({ fd: c.fd, readable: true, writable: true, onread } as ConstructorParameters<typeof Socket>[0]);
      c.fd = -1;
      socket.setNoDelay(true);
      socket.write(request);
    }
    c.socket = socket;
    socket.setTimeout(HEADER_TIMEOUT_MS);
    socket.on('timeout', () => {
      if (c.socket === socket) fail(c, `no response head within ${HEADER_TIMEOUT_MS} ms`);
    });
    socket.on('error', (error: NodeJS.ErrnoException) => {
      if (c.socket === socket) fail(c, error.code ?? error.message);
    });
    socket.on('close', () => {
      if (c.socket === socket) fail(c, c.state === OPEN ? SERVER_CLOSED : 'closed before the response head');
    });
  };

  const pump = (): void => {
    while (inFlight < limit && queued < queue.length) {
      inFlight++;
      open(queue[queued++]!);
    }
    if (queued === queue.length) {
      queue = [];
      queued = 0;
    }
  };

  const startBatch = (req: number, list: Connection[], concurrency: number): void => {
    if (batch !== null) throw new Error('a connect or reconnect is already running');
    if (list.length === 0) {
      send({ op: 'done', req, failed: 0, errors: [] });
      return;
    }
    batch = { req, remaining: list.length, failedBefore: counters.failed };
    counters.errors = [];
    limit = concurrency > 0 ? concurrency : Infinity;
    queue = list;
    queued = 0;
    pump();
  };

  counters.onCaughtUp = () => {
    const req = pendingWait;
    counters.target = 0;
    pendingWait = null;
    if (req !== null) send({ op: 'done', req, failed: 0, errors: [] });
  };

  const stats = (req: number): ChildStats => {
    const cpu = process.cpuUsage();
    return {
      op: 'stats',
      req,
      connections: counters.open,
      failed: counters.failed,
      events: counters.events,
      lost: counters.lost,
      duplicated: counters.duplicated,
      reordered: counters.reordered,
      resumes: counters.resumes,
      retries: counters.retries,
      retryReasons: { ...counters.retryReasons },
      serverCloses: counters.serverCloses,
      churning: counters.churning,
      late: counters.late.slice(),
      histogram: Array.from(counters.histogram),
      latencyCount: counters.latencyCount,
      latencyMax: counters.latencyMax,
      cpu: { user: cpu.user, system: cpu.system },
    };
  };

  const closeAll = (done: () => void): void => {
    // Pending churns and resumes are called off.
    generation++;
    counters.churning = 0;
    for (const c of connections) c.solo = false;
    let pending = 0;
    for (const c of connections) {
      const socket = c.socket;
      if (socket === null) continue;
      if (c.state === OPEN) counters.open--;
      c.state = IDLE;
      c.socket = null;
      pending++;
      socket.once('close', () => {
        if (--pending === 0) done();
      });
      socket.destroy();
    }
    // An unfinished connect/reconnect batch ends here.
    if (batch !== null) {
      const b = batch;
      batch = null;
      send({ op: 'done', req: b.req, failed: counters.failed - b.failedBefore, errors: counters.errors.slice() });
    }
    queue = [];
    queued = 0;
    inFlight = 0;
    // Nothing is open any more, so whoever waits for a seq has it from every open connection.
    if (counters.target !== 0) counters.onCaughtUp?.();
    if (pending === 0) done();
  };

  process.on('message', (received) => {
    const message = received as ChildRequest;
    try {
      switch (message.op) {
        case 'connect': {
          const target: Target = { host: message.host, port: message.port, path: message.path, wire: message.wire, channel: message.channel };
          const { paths, pathOffset = 0, slow } = message;
          const websocket = message.wire === 'websocket';
          if (websocket && slow !== undefined) throw new Error('connect: slow readers are SSE only');
          const commands = websocket && message.channel !== undefined ? centrifugoSubscribe(message.channel) : null;
          addresses.length = 0;
          for (let k = 0; k < message.sources; k++) addresses.push(`127.0.0.${2 + ((message.sourceOffset + k) % message.sources)}`);
          if (slow !== undefined) {
            if (preconnected.length - nextPreconnected < message.count) throw new Error(`connect: ${message.count} slow readers, but only ${preconnected.length - nextPreconnected} pre-connected sockets left`);
            slowBuffer ??= Buffer.allocUnsafe(slow.readSize);
            startRefill();
          }
          const list: Connection[] = [];
          for (let k = 0; k < message.count; k++) {
            const c = websocket ? new WebSocketConnection(counters, message.lastSeq, message.channel, commands) : new Connection(counters, message.lastSeq);
            c.target = paths === undefined || paths.length === 0 ? target : { ...target, path: paths[(pathOffset + k) % paths.length]! };
            if (slow !== undefined) {
              c.slow = slow;
              c.fd = preconnected[nextPreconnected++]!;
              c.budget = slow.readSize;
              slowReaders.push(c);
            }
            connections.push(c);
            list.push(c);
          }
          startBatch(message.req, list, message.concurrency);
          break;
        }
        case 'reconnect':
          startBatch(message.req, connections.filter((c) => c.state === IDLE && !c.solo), message.concurrency);
          break;
        case 'churn':
          send({ op: 'churned', req: message.req, count: churn(message.count, message.maxDelayMs) });
          break;
        case 'disconnect':
          closeAll(() => send({ op: 'done', req: message.req, failed: 0, errors: [] }));
          break;
        case 'waitFor': {
          if (pendingWait !== null) send({ op: 'error', req: pendingWait, message: 'superseded by another waitFor' });
          pendingWait = null;
          counters.target = 0;
          let behind = 0;
          for (const c of connections) if (c.state === OPEN && c.lastSeq < message.seq) behind++;
          if (behind === 0) {
            send({ op: 'done', req: message.req, failed: 0, errors: [] });
            break;
          }
          counters.target = message.seq;
          counters.behind = behind;
          pendingWait = message.req;
          break;
        }
        case 'progress': {
          let behind = 0;
          let lowest = Infinity;
          for (const c of connections) {
            if ((c.state !== OPEN && !(message.everyConnection === true && c.solo)) || c.lastSeq >= message.seq) continue;
            behind++;
            if (c.lastSeq < lowest) lowest = c.lastSeq;
          }
          if (message.cancel && pendingWait !== null) {
            send({ op: 'done', req: pendingWait, failed: 0, errors: [] });
            counters.target = 0;
            pendingWait = null;
          }
          send({ op: 'progress', req: message.req, behind, lowest: behind === 0 ? -1 : lowest, open: counters.open });
          break;
        }
        case 'resetLatency':
          counters.resetLatency();
          send({ op: 'done', req: message.req, failed: 0, errors: [] });
          break;
        case 'stats':
          send(stats(message.req));
          break;
        case 'close':
          closeAll(() => process.exit(0));
          break;
      }
    } catch (error) {
      send({ op: 'error', req: message.req, message: (error as Error).message });
    }
  });
  // The parent is gone (or closed the channel): nothing left to do.
  process.on('disconnect', () => process.exit(0));
  send({ op: 'ready', req: 0, pid: process.pid });
}

if (process.env.SSEHUB_LOADGEN === '1' && process.send !== undefined) main();
