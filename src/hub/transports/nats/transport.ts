/**
 * `nats://[USER:PASSWORD@|TOKEN@]HOST:PORT[?OPTIONS]`: NATS JetStream, for several hub nodes.
 * Options: nats/url.ts. How the contract maps onto JetStream (one subject per ID for atomic
 * duplicate checks, history by sequence, the live consumer, outages): docs/scaling.md, "NATS
 * JetStream: how it works".
 */
import {
  DiscardPolicy,
  Events,
  type JetStreamClient,
  type JetStreamManager,
  type Msg,
  type NatsConnection,
  type NatsError,
  RetentionPolicy,
  StorageType,
  type StreamConfig,
  type StreamInfo,
  connect,
  nanos,
} from 'nats';
import { DuplicateIdError, TransportUnavailableError } from '../../core/errors.js';
import type { Update } from '../../core/update.js';
import { type HistoryLimits, type HistoryResult, type PoisonEntry, PoisonListeners, type Transport } from '../transport.js';
import type { PresenceStore } from '../../core/presence.js';
import type { NodeSignals } from '../../core/signals.js';
import { decode, encode, idToken, isUpdate } from './codec.js';
import { NatsPresenceStore } from './presence.js';
import { NatsSignals } from './signals.js';
import { Tail, apiErrorCode, isNotFound } from './tail.js';
import { type NatsOptions, parseNatsUrl, reconnectDelay } from './url.js';

/** A history range up to this long is read with parallel gets rather than a consumer. */
const SHORT_READ = 16;
/** JetStream error codes. */
const WRONG_LAST_SEQUENCE = 10071;
const STREAM_CONFIG_DIFFERS = 10058;
const STREAM_NOT_FOUND = 10059;

/** NATS JetStream transport. */
export class NatsTransport implements Transport {
  #nc: NatsConnection;
  #jsm: JetStreamManager;
  #js: JetStreamClient;
  #options: NatsOptions;
  #limits: HistoryLimits;
  #listeners = new Set<(u: Update) => void>();
  #poison = new PoisonListeners();
  #closed = false;
  #connected = true;
  #streamReady = false;
  /** The stream's creation time: a different one means it was deleted and made again. */
  #streamCreated: string | undefined;
  /** Stream sequence of the last update handed to listeners. */
  #delivered = 0;
  #feed: Tail | undefined;
  #repairing = false;
  #needsRepair = false;
  #watchdog: NodeJS.Timeout | undefined;
  #statusLoop: Promise<void> = Promise.resolve();
  #stopStatuses = () => {};
  /** Dispatches waiting for the live consumer to reach their update. */
  #waiters = new Set<{ seq: number; done: () => void }>();
  /** Requests and reads in progress, failed at once when the connection drops or the transport closes. */
  #inflight = new Set<(error: Error) => void>();

  /** Connects, declares the stream and starts the live consumer; rejects if the server cannot be reached. */
  static async connect(url: string, limits: HistoryLimits): Promise<Transport> {
    const options = parseNatsUrl(url);
    let nc: NatsConnection;
    try {
      nc = await connect({
        servers: options.servers,
        user: options.user,
        pass: options.pass,
        token: options.token,
        name: 'ssehub',
        timeout: options.timeout,
        maxReconnectAttempts: -1,
        reconnectDelayHandler: reconnectDelay(),
        pingInterval: 10_000,
        maxPingOut: 2,
        noAsyncTraces: true,
      });
    } catch (error) {
      throw new Error(`nats: cannot connect to ${options.servers}: ${(error as Error).message}`, { cause: error });
    }
    try {
      const jsm = await nc.jetstreamManager({ timeout: options.timeout });
      const transport = new NatsTransport(nc, jsm, options, limits);
      await transport.#start();
      return transport;
    } catch (error) {
      await nc.close().catch(() => {});
      throw new Error(`nats: ${(error as Error).message}`, { cause: error });
    }
  }

  private constructor(nc: NatsConnection, jsm: JetStreamManager, options: NatsOptions, limits: HistoryLimits) {
    this.#nc = nc;
    this.#jsm = jsm;
    this.#js = nc.jetstream({ timeout: options.timeout });
    this.#options = options;
    this.#limits = limits;
  }

  async #start(): Promise<void> {
    const info = await this.#declareStream();
    this.#delivered = info.state.last_seq;
    await this.#openFeed();
    const statuses = this.#nc.status();
    // The client does not end this iterator when the connection closes: close() stops it.
    this.#stopStatuses = () => (statuses as { stop?: () => void }).stop?.();
    this.#statusLoop = (async () => {
      for await (const status of statuses) {
        if (status.type === Events.Disconnect) this.#onDisconnect();
        else if (status.type === Events.Reconnect) {
          this.#connected = true;
          this.#repair();
        }
      }
    })().catch(() => {});
    this.#watchdog = setInterval(() => this.#watch(), this.#options.heartbeat);
    this.#watchdog.unref();
  }

  async dispatch(update: Update): Promise<void> {
    this.#assertUsable();
    const payload = encode(update);
    const max = this.#nc.info?.max_payload ?? Infinity;
    if (payload.length > max) throw new TransportUnavailableError(`the update takes ${payload.length} bytes stored, more than the NATS server's max_payload (${max}): raise it, or lower --max-body`);
    let seq: number;
    try {
      // With history off (size 0) there is nothing to resume from, so an ID need not be unique.
      const expect = this.#limits.size > 0 ? { lastSubjectSequence: 0 } : {};
      const ack = await this.#guard(this.#js.publish(`${this.#options.prefix}.updates.${idToken(update.id)}`, payload, { expect, timeout: this.#options.timeout }));
      seq = ack.seq;
    } catch (error) {
      if (apiErrorCode(error) === WRONG_LAST_SEQUENCE) throw new DuplicateIdError(`an update with id "${update.id}" is already in history`);
      throw this.#unavailable(error, 'the update could not be stored');
    }
    update.seq = BigInt(seq);
    await this.#seen(seq);
  }

  subscribe(listener: (u: Update) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  onPoison(listener: (entry: PoisonEntry) => void): () => void {
    return this.#poison.add(listener);
  }

  /** Presence for the cluster, in a key-value bucket beside the stream (see presence.ts). */
  presenceStore(node: string, ttl: number): PresenceStore {
    return new NatsPresenceStore(this.#js, { bucket: `${this.#options.stream}_presence`, node, ttl, replicas: this.#options.replicas });
  }

  /** Signals between the nodes, as core NATS messages beside the stream (see signals.ts). */
  signals(node: string): NodeSignals {
    return new NatsSignals(this.#nc, this.#options.prefix, node);
  }

  /** The stream's creation time: a stream deleted and made again (its sequences start over) is a new epoch. */
  async epoch(): Promise<string> {
    this.#assertUsable();
    return this.#streamCreated ?? '';
  }

  async head(): Promise<bigint> {
    this.#assertUsable();
    try {
      return BigInt((await this.#guard(this.#jsm.streams.info(this.#options.stream))).state.last_seq);
    } catch (error) {
      throw this.#unavailable(error, 'the stream could not be read');
    }
  }

  async historyAfter(seq: bigint, filter: (u: Update) => boolean): Promise<HistoryResult> {
    this.#assertUsable();
    try {
      const { first_seq: first, last_seq: last } = (await this.#guard(this.#jsm.streams.info(this.#options.stream))).state;
      const head = BigInt(last);
      // Past the head: a position of another history (this one started over), not one to resume from.
      if (seq > head) return { updates: [], found: false, head };
      if (seq === head) return { updates: [], found: true, head };
      // Sequences are consecutive: nothing after `seq` is gone while the first kept is at most the next one.
      if (this.#limits.size === 0 || BigInt(first) > seq + 1n) return { updates: [], found: false, head };
      const updates: Update[] = [];
      const take = (u: Update) => {
        if (filter(u)) updates.push(u);
      };
      const start = Number(seq) + 1;
      const complete = await (last - start < SHORT_READ ? this.#get(start, last, take) : this.#read(start, last, take));
      // Trimmed while we read: a gap, so no resume there.
      return complete ? { updates, found: true, head } : { updates: [], found: false, head };
    } catch (error) {
      throw this.#unavailable(error, 'history could not be read');
    }
  }

  /** The message's update, or `undefined` (reported to the poison listeners) when it is not one. */
  #decode(data: Uint8Array, seq: number): Update | undefined {
    const decoded = decode(data, seq);
    if (isUpdate(decoded)) return decoded;
    this.#poison.report(decoded.ref, decoded.reason);
    return undefined;
  }

  async history(lastEventId: string, filter: (u: Update) => boolean): Promise<HistoryResult> {
    this.#assertUsable();
    try {
      const keep = this.#limits.size > 0;
      let found = lastEventId === 'earliest';
      let after = 0;
      if (!found && keep) {
        const seq = await this.#seqOf(lastEventId);
        if (seq !== undefined) {
          found = true;
          after = seq;
        }
      }
      // Read after the lookup, so head >= the ID's sequence; every update up to head is stored now.
      const { first_seq: first, last_seq: head } = (await this.#guard(this.#jsm.streams.info(this.#options.stream))).state;
      // What follows the ID was trimmed since the lookup: resuming there would be a gap.
      if (after > 0 && after + 1 < first) {
        found = false;
        after = 0;
      }
      const start = Math.max(after + 1, first);
      const updates: Update[] = [];
      if (keep && head >= start) {
        const take = (u: Update) => {
          if (filter(u)) updates.push(u);
        };
        const complete = await (head - start < SHORT_READ ? this.#get(start, head, take) : this.#read(start, head, take));
        // The same, while we read.
        if (!complete && after > 0) found = false;
      }
      return { updates, found, head: BigInt(head) };
    } catch (error) {
      throw this.#unavailable(error, 'history could not be read');
    }
  }

  async lastId(): Promise<string | undefined> {
    this.#assertUsable();
    if (this.#limits.size === 0) return undefined;
    try {
      // The newest update may be trimmed (by age) between the two requests: then look again.
      for (let attempt = 0; attempt < 3; attempt++) {
        const { state } = await this.#guard(this.#jsm.streams.info(this.#options.stream));
        if (state.messages === 0) return undefined;
        try {
          const msg = await this.#guard(this.#jsm.streams.getMessage(this.#options.stream, { seq: state.last_seq }));
          const decoded = decode(msg.data, msg.seq);
          return isUpdate(decoded) ? decoded.id : undefined;
        } catch (error) {
          if (!isNotFound(error)) throw error;
        }
      }
      return undefined;
    } catch (error) {
      throw this.#unavailable(error, 'the last ID could not be read');
    }
  }

  ready(): boolean {
    return !this.#closed && this.#connected && this.#streamReady;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#watchdog);
    this.#listeners.clear();
    this.#failInflight(new TransportUnavailableError('the nats transport is closed'));
    for (const waiter of this.#waiters) waiter.done();
    this.#feed?.close();
    await this.#nc.close().catch(() => {});
    this.#stopStatuses();
    await this.#statusLoop;
  }

  #assertUsable(): void {
    if (this.#closed) throw new TransportUnavailableError('the nats transport is closed');
    if (!this.#connected) throw new TransportUnavailableError(`not connected to NATS at ${this.#options.servers} (reconnecting)`);
  }

  /** Maps a failure to TransportUnavailableError; a missing stream is declared again. */
  #unavailable(error: unknown, what: string): Error {
    if (error instanceof TransportUnavailableError || error instanceof DuplicateIdError) return error;
    const e = error as NatsError;
    if (e.code === '503' || apiErrorCode(error) === STREAM_NOT_FOUND) {
      this.#streamReady = false;
      this.#repair();
      return new TransportUnavailableError(`${what}: the JetStream stream "${this.#options.stream}" is missing; declaring it again`);
    }
    return new TransportUnavailableError(`${what}: nats: ${e.message}`);
  }

  /** `work`, failed at once if the connection drops or the transport closes before it settles. */
  #guard<T>(work: Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#inflight.add(reject);
      work.then(resolve, reject).finally(() => this.#inflight.delete(reject));
    });
  }

  #failInflight(error: Error): void {
    const inflight = [...this.#inflight];
    this.#inflight.clear();
    for (const fail of inflight) fail(error);
  }

  #onDisconnect(): void {
    this.#connected = false;
    this.#streamReady = false;
    // Whatever was sent may or may not have reached the server: answer now rather than at the timeout.
    this.#failInflight(new TransportUnavailableError(`lost the connection to NATS at ${this.#options.servers}`));
  }

  /** Creates the stream, or updates it to this node's limits; notices a stream that was made again. */
  async #declareStream(): Promise<StreamInfo> {
    const { size, ttl } = this.#limits;
    const config: Partial<StreamConfig> = {
      name: this.#options.stream,
      subjects: [`${this.#options.prefix}.updates.*`],
      retention: RetentionPolicy.Limits,
      storage: StorageType.File,
      discard: DiscardPolicy.Old,
      // `0` keeps nothing for resume, but updates must still pass through the stream to every node.
      max_msgs: size > 0 ? size : 1,
      max_age: ttl > 0 ? nanos(ttl) : 0,
      duplicate_window: nanos(ttl > 0 ? Math.min(ttl, 120_000) : 120_000),
      num_replicas: this.#options.replicas,
    };
    let info: StreamInfo;
    try {
      info = await this.#guard(this.#jsm.streams.add(config));
    } catch (error) {
      if (apiErrorCode(error) !== STREAM_CONFIG_DIFFERS) throw error;
      info = await this.#guard(this.#jsm.streams.update(this.#options.stream, config));
    }
    if (this.#streamCreated !== undefined && info.created !== this.#streamCreated) {
      // Deleted and made again: its sequences started over, so read it from its start.
      this.#delivered = 0;
    }
    this.#streamCreated = info.created;
    this.#streamReady = true;
    return info;
  }

  /** (Re)starts the live consumer after the last delivered sequence. */
  async #openFeed(): Promise<void> {
    this.#feed?.close();
    const feed: Tail = new Tail(this.#nc, this.#jsm, this.#options.stream, this.#options.heartbeat, {
      message: (seq, _pending, msg) => {
        if (feed === this.#feed) this.#deliver(seq, msg);
      },
      idle: () => {},
      broken: () => {
        if (feed === this.#feed) this.#repair();
      },
    });
    this.#feed = feed;
    await this.#guard(feed.open(this.#delivered + 1));
  }

  #deliver(seq: number, msg: Msg): void {
    if (seq <= this.#delivered) return;
    this.#delivered = seq;
    const update = this.#decode(msg.data, seq);
    if (update !== undefined) {
      for (const listener of this.#listeners) {
        try {
          listener(update);
        } catch (error) {
          // One failing listener must not stop the others, nor the consumer feeding them.
          process.emitWarning(`nats transport: a listener threw: ${(error as Error).message}`);
        }
      }
    }
    for (const waiter of this.#waiters) if (waiter.seq <= seq) waiter.done();
  }

  /** Resolves once the live consumer handed `seq` to the listeners, or after `timeout` (it is stored either way). */
  #seen(seq: number): Promise<void> {
    if (this.#delivered >= seq || this.#closed) return Promise.resolve();
    return new Promise((resolve) => {
      const waiter = {
        seq,
        done: () => {
          clearTimeout(timer);
          this.#waiters.delete(waiter);
          resolve();
        },
      };
      const timer = setTimeout(waiter.done, this.#options.timeout);
      this.#waiters.add(waiter);
    });
  }

  /** Declares the stream and restarts the live consumer, one run at a time; retried by the watchdog on failure. */
  #repair(): void {
    this.#needsRepair = true;
    if (this.#repairing) return;
    this.#repairing = true;
    void (async () => {
      try {
        while (this.#needsRepair && this.#connected && !this.#closed) {
          this.#needsRepair = false;
          await this.#declareStream();
          await this.#openFeed();
        }
      } catch {
        this.#needsRepair = true;
      } finally {
        this.#repairing = false;
      }
    })();
  }

  /** Catches what no event reports: a failed repair, or a live consumer that went silent. */
  #watch(): void {
    if (this.#closed || !this.#connected) return;
    const silent = this.#feed !== undefined && Date.now() - this.#feed.lastActivity > 3 * this.#options.heartbeat;
    if (this.#needsRepair || !this.#streamReady || silent) this.#repair();
  }

  /** The stream sequence of the retained update with this ID. */
  async #seqOf(id: string): Promise<number | undefined> {
    try {
      const msg = await this.#guard(this.#jsm.streams.getMessage(this.#options.stream, { last_by_subj: `${this.#options.prefix}.updates.${idToken(id)}` }));
      const decoded = decode(msg.data, msg.seq);
      return isUpdate(decoded) && decoded.id === id ? msg.seq : undefined;
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  /** Reads a short range as #read does, with one get per sequence, all at once (no consumer to set up). */
  async #get(start: number, head: number, take: (u: Update) => void): Promise<boolean> {
    const seqs = Array.from({ length: head - start + 1 }, (_, i) => start + i);
    const msgs = await Promise.all(
      seqs.map((seq) =>
        this.#guard(this.#jsm.streams.getMessage(this.#options.stream, { seq })).catch((error: unknown) => {
          if (isNotFound(error)) return undefined; // trimmed
          throw error;
        }),
      ),
    );
    let complete = true;
    for (const msg of msgs) {
      if (msg === undefined) complete = false;
      else {
        const u = this.#decode(msg.data, msg.seq);
        if (u !== undefined) take(u);
      }
    }
    return complete;
  }

  /**
   * Reads the stored updates from `start` up to `head` in order, handing each to `take`. Resolves
   * `true` if they were all there, one after the other from `start`; `false` if some were trimmed.
   */
  #read(start: number, head: number, take: (u: Update) => void): Promise<boolean> {
    return new Promise<boolean>((resolve, reject) => {
      let next = start;
      let complete = true;
      let settled = false;
      const finish = (error?: Error) => {
        if (settled) return;
        settled = true;
        clearInterval(timer);
        this.#inflight.delete(finish);
        tail.close();
        if (error !== undefined) reject(error);
        else resolve(complete && next > head);
      };
      const tail = new Tail(this.#nc, this.#jsm, this.#options.stream, this.#options.heartbeat, {
        message: (seq, pending, msg) => {
          if (seq !== next) complete = false;
          next = seq + 1;
          if (seq <= head) {
            const u = this.#decode(msg.data, seq);
            if (u !== undefined) take(u);
          }
          if (seq >= head || pending === 0) finish();
        },
        idle: () => finish(),
        broken: (reason) => finish(new TransportUnavailableError(`history read interrupted: ${reason}`)),
      });
      this.#inflight.add(finish);
      // A read that stops making progress fails rather than hangs.
      const timer = setInterval(() => {
        if (Date.now() - tail.lastActivity > this.#options.timeout + this.#options.heartbeat) finish(new TransportUnavailableError('history read timed out'));
      }, 250);
      tail.open(start).then(
        (pending) => {
          if (pending === 0) finish();
        },
        (error: Error) => finish(error),
      );
    });
  }
}
