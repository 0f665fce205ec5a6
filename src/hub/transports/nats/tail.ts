/**
 * A Tail: one ephemeral push consumer reading the stream in order from a sequence, for the live
 * feed and for long history reads. Flow control is answered, heartbeats are checked against what
 * arrived, and a gap is reported, never skipped.
 */
import { AckPolicy, DeliverPolicy, type JetStreamManager, type Msg, type NatsConnection, ReplayPolicy, createInbox, nanos } from 'nats';

/** The positions JetStream puts in a delivered message's reply subject. */
function deliveryInfo(reply: string | undefined): { streamSeq: number; consumerSeq: number; pending: number } | undefined {
  if (reply === undefined || !reply.startsWith('$JS.ACK.')) return undefined;
  // `$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<ns>.<pending>`, or the v2
  // form with `<domain>.<account hash>` after `ACK` (and possibly a trailing token).
  const t = reply.split('.');
  const at = t.length === 9 ? 5 : t.length >= 11 ? 7 : -1;
  if (at < 0) return undefined;
  return { streamSeq: Number(t[at]), consumerSeq: Number(t[at + 1]), pending: Number(t[at + 3]) };
}


/** The JetStream API error code of a failed request. */
export function apiErrorCode(error: unknown): number | undefined {
  return (error as { api_error?: { err_code?: number } }).api_error?.err_code;
}

/** Whether a failed request means "no such message" (404). */
export function isNotFound(error: unknown): boolean {
  return (error as { api_error?: { code?: number } }).api_error?.code === 404;
}


/** What a Tail reports. */
export interface TailHandlers {
  /** A stored message, in stream order; `pending` is how many more the stream holds after it. */
  message(streamSeq: number, pending: number, msg: Msg): void;
  /** An idle heartbeat: everything stored has been delivered. */
  idle(): void;
  /** Messages were lost on the way: this consumer must be replaced. */
  broken(reason: string): void;
}

/**
 * One ephemeral push consumer reading the stream in order from a sequence: flow control is
 * answered, heartbeats are checked against what arrived, and a gap is reported, not skipped.
 */
export class Tail {
  /** When the last message or heartbeat arrived (ms). */
  lastActivity = Date.now();
  #nc: NatsConnection;
  #jsm: JetStreamManager;
  #stream: string;
  #handlers: TailHandlers;
  #heartbeat: number;
  #consumerSeq = 0;
  #sub: { unsubscribe(): void } | undefined;
  #name: string | undefined;
  #closed = false;

  constructor(nc: NatsConnection, jsm: JetStreamManager, stream: string, heartbeat: number, handlers: TailHandlers) {
    this.#nc = nc;
    this.#heartbeat = heartbeat;
    this.#jsm = jsm;
    this.#stream = stream;
    this.#handlers = handlers;
  }

  /** Subscribes, then creates the consumer; resolves with how many stored messages it will deliver. */
  async open(startSeq: number): Promise<number> {
    const inbox = createInbox();
    this.#sub = this.#nc.subscribe(inbox, { callback: (_error, msg) => this.#receive(msg) });
    const info = await this.#jsm.consumers.add(this.#stream, {
      deliver_subject: inbox,
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: Math.max(1, startSeq),
      ack_policy: AckPolicy.None,
      replay_policy: ReplayPolicy.Instant,
      flow_control: true,
      idle_heartbeat: nanos(this.#heartbeat),
      mem_storage: true,
    });
    this.#name = info.name;
    if (this.#closed) this.#delete();
    this.lastActivity = Date.now();
    return info.num_pending;
  }

  /** Stops reading; the consumer is deleted (the server would also drop it once nobody listens). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#sub?.unsubscribe();
    this.#delete();
  }

  #delete(): void {
    if (this.#name !== undefined && !this.#nc.isClosed()) this.#jsm.consumers.delete(this.#stream, this.#name).catch(() => {});
  }

  #receive(msg: Msg): void {
    if (this.#closed) return;
    this.lastActivity = Date.now();
    const code = msg.headers?.code ?? 0;
    if (code === 100) {
      if (msg.reply) {
        msg.respond(); // flow control: the server waits for this before sending more
        return;
      }
      const stalled = msg.headers?.get('Nats-Consumer-Stalled');
      if (stalled) this.#nc.publish(stalled);
      const last = Number(msg.headers?.get('Nats-Last-Consumer') || 0);
      if (last > this.#consumerSeq) this.#handlers.broken(`missed messages ${this.#consumerSeq + 1}..${last}`);
      else this.#handlers.idle();
      return;
    }
    if (code !== 0) {
      this.#handlers.broken(`status ${code} ${msg.headers?.description ?? ''}`.trim());
      return;
    }
    const info = deliveryInfo(msg.reply);
    if (info === undefined) return;
    if (info.consumerSeq !== this.#consumerSeq + 1) {
      this.#handlers.broken(`consumer sequence ${info.consumerSeq} after ${this.#consumerSeq}`);
      return;
    }
    this.#consumerSeq = info.consumerSeq;
    this.#handlers.message(info.streamSeq, info.pending, msg);
  }
}

