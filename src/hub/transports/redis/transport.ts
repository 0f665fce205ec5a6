/**
 * `redis://[USER:PASSWORD@]HOST:PORT[/DB][?OPTIONS]` (`rediss://` for TLS), `redis+sentinel://…`
 * and `redis+cluster://…`: Redis Streams, so that several hub nodes share one history and every
 * node sees every update. URLs and options: redis/url.ts; connections: redis/client.ts.
 * How the contract maps onto Redis (the publish script, seq from entry IDs, the XREAD reader,
 * paged history reads that notice a trim, WAIT for replicas): docs/scaling.md, "Redis: how it works".
 */
import { DuplicateIdError, TransportUnavailableError } from '../../core/errors.js';
import type { Update } from '../../core/update.js';
import { type HistoryLimits, type HistoryResult, type PoisonEntry, PoisonListeners, type Transport } from '../transport.js';
import { randomBytes } from 'node:crypto';
import type { PresenceStore } from '../../core/presence.js';
import type { NodeSignals } from '../../core/signals.js';
import { RedisPresenceStore } from './presence.js';
import { EPOCH, POSITION, entryIdOfSeq, epochStart, offsetOfSeq, seqOfOffset } from './positions.js';
import { RedisSignals } from './signals.js';
import { type Entry, decodeEntry, entryIdAt, fieldsOf, isEntries, isUpdate, seqOfEntryId } from './codec.js';
import { type RedisClient, createClient, isReady, onError, watchFailovers } from './client.js';
import { ReplicatedPublisher } from './replicated.js';
import { DUPLICATE, LOCATE, PUBLISH, type Script, TRIM } from './scripts.js';
import { type RedisSettings, backoff, describeConnectError, parseRedisUrl } from './url.js';

/** Entries per XREAD and per XRANGE page. */
const PAGE = 1000;
/** How long one XREAD blocks; a dead reader connection is noticed within this plus the timeout. */
const BLOCK_MS = 5000;
/** Entries kept when history is off (`maxlen=0`): the stream still carries live updates between nodes. */
const LIVE_WINDOW = 1000;
/** Interval of the background age trim and health check. */
const MAINTENANCE_MS = 5000;

/** Redis Streams transport. */
export class RedisTransport implements Transport {
  #settings: RedisSettings;
  /** Commands: history, trim, and publish when no replica has to acknowledge it. */
  #cmd: RedisClient;
  /** The blocking XREAD loop. */
  #reader: RedisClient;
  /**
   * Publishes: `#cmd`, or with `replicas` a connection of its own, because WAIT holds the
   * connection until the replicas answer and history reads must not wait behind it.
   */
  #publisher: RedisClient;
  /** With `replicas`: publishes on `#publisher`, answered once the replicas have them. */
  #replicated: ReplicatedPublisher | undefined;
  /** The slot of the transport's keys (Cluster), 0 otherwise. */
  #slot = 0;
  #started = false;
  /** Stops watching the Sentinels for a new primary. */
  #unwatch: () => void = () => {};
  #listeners = new Set<(u: Update) => void>();
  #poison = new PoisonListeners();
  /** Entry ID of the last entry given to the listeners, and its seq. */
  #lastSeen = '0-0';
  #lastSeenSeq = 0n;
  /** Dispatches waiting for the reader to pass their entry. */
  #waiters: Waiter[] = [];
  #loop: Promise<void> = Promise.resolve();
  #timer: NodeJS.Timeout | undefined;
  #wakeReader: (() => void) | undefined;
  #lastError = '';
  /** The start of the epoch (`T0-random`, see positions.ts) as last read. */
  #t0 = 0;
  /** The first error either connection reported, for the message of a failed start. */
  #firstError: Error | undefined;
  #closed = false;

  /** Connects to the server named by `url` (see the file comment for its options). */
  static async connect(url: string, limits: HistoryLimits): Promise<Transport> {
    const transport = new RedisTransport(parseRedisUrl(url, limits));
    try {
      await transport.#start();
    } catch (error) {
      await transport.close();
      // ioredis rejects with "Connection is closed." whatever happened; what did is in the first error event.
      const reason = transport.#firstError ?? (error as Error);
      throw new Error(`cannot connect to ${transport.#settings.label}: ${describeConnectError(reason, transport.#settings)}`, { cause: error });
    }
    return transport;
  }

  private constructor(settings: RedisSettings) {
    this.#settings = settings;
    const { timeout } = settings;
    const started = () => this.#started;
    this.#cmd = createClient(settings, 'ssehub', { commandTimeout: timeout, socketTimeout: timeout * 2, patient: true }, started);
    // No command timeout on the reader (XREAD blocks on purpose); a socket silent for longer than
    // one block plus the timeout is dead.
    this.#reader = createClient(settings, 'ssehub-reader', { socketTimeout: BLOCK_MS + timeout * 2 }, started);
    // The script, then WAIT for up to `timeout`.
    this.#publisher = settings.replicas === 0 ? this.#cmd : createClient(settings, 'ssehub-publisher', { commandTimeout: timeout * 2, socketTimeout: timeout * 2, patient: true }, started);
    if (settings.replicas > 0) this.#replicated = new ReplicatedPublisher(this.#publisher, settings);
    for (const client of new Set([this.#cmd, this.#reader, this.#publisher])) {
      onError(client, (error: Error) => {
        // "Connection is closed." says nothing of why; a later error may.
        if (error.message !== 'Connection is closed.') this.#firstError ??= error;
        this.#lastError = error.message;
      });
      // ioredis stops reconnecting in a few races (a connection closed while it is being made);
      // a transport that is not closed keeps trying.
      client.on('end', () => {
        if (!this.#started || this.#closed) return;
        setTimeout(() => {
          if (!this.#closed && client.status === 'end') client.connect().catch(() => {});
        }, backoff(1)).unref();
      });
    }
  }

  async #start(): Promise<void> {
    await Promise.all([...new Set([this.#cmd, this.#reader, this.#publisher])].map((client) => client.connect()));
    if (this.#settings.mode === 'cluster') {
      this.#slot = Number(await this.#cmd.call('CLUSTER', 'KEYSLOT', this.#settings.stream));
      // A cluster connects to a node on its first command: to the stream's node now, so that `ready()` holds once started.
      await Promise.all([...new Set([this.#cmd, this.#reader, this.#publisher])].map((client) => client.call('EXISTS', this.#settings.stream)));
    }
    this.#started = true;
    this.#unwatch = watchFailovers(this.#settings);
    await this.#readEpoch();
    // Listeners start after the newest entry that exists now.
    const newest = await this.#cmd.call('XREVRANGE', this.#settings.stream, '+', '-', 'COUNT', 1);
    if (isEntries(newest) && newest[0] !== undefined) this.#advance(newest[0][0]);
    this.#loop = this.#readLoop();
    this.#timer = setInterval(() => void this.#maintain(), MAINTENANCE_MS);
    this.#timer.unref();
  }

  async dispatch(update: Update): Promise<void> {
    if (this.#closed) throw new TransportUnavailableError('the redis transport is closed');
    const { stream, ids, size, ttl } = this.#settings;
    let entryId: string;
    try {
      const args = [update.id, size, ttl, LIVE_WINDOW, ...fieldsOf(update, update.publishedAt ?? Date.now())];
      entryId = this.#replicated === undefined ? String(await this.#eval(PUBLISH, [stream, ids], args)) : await this.#replicated.publish([stream, ids], args);
    } catch (error) {
      if ((error as Error).message.includes(DUPLICATE)) throw new DuplicateIdError(`an update with id "${update.id}" is already in history`);
      throw error instanceof TransportUnavailableError ? error : this.#unavailable(error);
    }
    update.seq = seqOfEntryId(entryId);
    await this.#delivered(update.seq);
  }

  subscribe(listener: (u: Update) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  onPoison(listener: (entry: PoisonEntry) => void): () => void {
    return this.#poison.add(listener);
  }

  /** Presence for the cluster, kept beside the stream under the same key prefix (see presence.ts). */
  presenceStore(node: string, ttl: number): PresenceStore {
    const { stream } = this.#settings;
    return new RedisPresenceStore({ eval: (s, keys, args) => this.#eval(s, keys, args), cmd: this.#cmd, prefix: stream.slice(0, stream.indexOf('}') + 1), node, ttl });
  }

  /** Signals between the nodes, as Pub/Sub messages beside the stream (see signals.ts). */
  signals(node: string): NodeSignals {
    const { stream } = this.#settings;
    // No socket timeout: a subscribed connection is silent while no signal comes.
    const subscriber = createClient(this.#settings, 'ssehub-signals', {}, () => this.#started);
    return new RedisSignals(subscriber, (channel, message) => this.#cmd.call('PUBLISH', channel, message), stream.slice(0, stream.indexOf('}') + 1), node);
  }

  /** The epoch: made beside the stream when missing (a Redis that lost its data makes a new one). See positions.ts. */
  async epoch(): Promise<string> {
    if (this.#closed) throw new TransportUnavailableError('the redis transport is closed');
    try {
      return await this.#readEpoch();
    } catch (error) {
      throw this.#unavailable(error);
    }
  }

  async #readEpoch(): Promise<string> {
    const epoch = String(await this.#eval(EPOCH, [this.#epochKey(), this.#settings.stream], [randomBytes(6).toString('base64url')]));
    this.#t0 = epochStart(epoch);
    return epoch;
  }

  #epochKey(): string {
    return this.#settings.stream.replace(/:updates$/, ':epoch');
  }

  /** `seq` as an offset of this epoch (see positions.ts). */
  offsetOf(seq: bigint): number {
    return offsetOfSeq(seq, this.#t0);
  }

  seqOfOffset(offset: number): bigint {
    return seqOfOffset(offset, this.#t0);
  }

  async head(): Promise<bigint> {
    return (await this.#position('')).head;
  }

  async historyAfter(seq: bigint, filter: (u: Update) => boolean): Promise<HistoryResult> {
    if (this.#closed) throw new TransportUnavailableError('the redis transport is closed');
    try {
      const at = await this.#position(seq > 0n ? entryIdOfSeq(seq) : '');
      const { head } = at;
      // Past the head: a position of another history (this one started over), not one to resume from.
      if (seq > head) return { updates: [], found: false, head };
      if (seq === head) return { updates: [], found: true, head };
      const gone = { updates: [], found: false, head };
      if (this.#settings.size === 0 || seq < at.minSeq) return gone;
      // Trimming drops the oldest entries only: with the entry at `seq` still there, so is all after it.
      const complete = seq > 0n ? at.exists : at.added === at.length && (at.first === '' || seqOfEntryId(at.first) >= at.minSeq);
      if (!complete) return gone;
      const from = seq > 0n ? entryIdOfSeq(seq) : undefined;
      const snapshot: Snapshot = { head: entryIdOfSeq(head), headUpdate: '', at: from ?? '', minSeq: at.minSeq };
      const updates = await this.#read(snapshot, filter, from);
      // The entry at `seq` was trimmed while we read: there may be a gap.
      return updates === undefined ? gone : { updates, found: true, head };
    } catch (error) {
      throw error instanceof TransportUnavailableError ? error : this.#unavailable(error);
    }
  }

  /** One snapshot of the stream's positions (see POSITION in positions.ts). */
  async #position(entryId: string): Promise<{ head: bigint; added: number; length: number; exists: boolean; first: string; minSeq: bigint }> {
    const reply = await this.#eval(POSITION, [this.#settings.stream], [entryId]);
    if (!Array.isArray(reply) || reply.length !== 7) throw new Error('unexpected reply to the position script');
    const [last, added, length, exists, first, seconds, micros] = reply.map(String) as [string, string, string, string, string, string, string];
    const now = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
    const minSeq = this.#settings.ttl > 0 ? BigInt(Math.max(now - this.#settings.ttl, 0)) << 32n : 0n;
    return { head: last === '' ? 0n : seqOfEntryId(last), added: Number(added), length: Number(length), exists: exists === '1', first, minSeq };
  }

  /** The entry's update, or `undefined` (reported to the poison listeners) when it is not one. */
  #decode(entry: Entry): Update | undefined {
    const decoded = decodeEntry(entry);
    if (isUpdate(decoded)) return decoded;
    this.#poison.report(decoded.ref, decoded.reason);
    return undefined;
  }

  async history(lastEventId: string, filter: (u: Update) => boolean): Promise<HistoryResult> {
    if (this.#closed) throw new TransportUnavailableError('the redis transport is closed');
    try {
      return await this.#history(lastEventId, filter);
    } catch (error) {
      throw error instanceof TransportUnavailableError ? error : this.#unavailable(error);
    }
  }

  async lastId(): Promise<string | undefined> {
    if (this.#closed) throw new TransportUnavailableError('the redis transport is closed');
    let snapshot: Snapshot;
    try {
      snapshot = await this.#locate('');
    } catch (error) {
      throw this.#unavailable(error);
    }
    if (this.#settings.size === 0 || snapshot.head === '' || seqOfEntryId(snapshot.head) < snapshot.minSeq) return undefined;
    return snapshot.headUpdate === '' ? undefined : snapshot.headUpdate;
  }

  ready(): boolean {
    return !this.#closed && isReady(this.#cmd, this.#slot) && isReady(this.#reader, this.#slot) && isReady(this.#publisher, this.#slot);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#unwatch();
    clearInterval(this.#timer);
    this.#wakeReader?.();
    for (const waiter of this.#waiters.splice(0)) waiter.done();
    this.#listeners.clear();
    for (const client of new Set([this.#cmd, this.#reader, this.#publisher])) client.disconnect();
    await this.#loop;
  }

  async #history(lastEventId: string, filter: (u: Update) => boolean): Promise<HistoryResult> {
    const earliest = lastEventId === 'earliest';
    const snapshot = await this.#locate(earliest ? '' : lastEventId);
    if (this.#settings.size === 0) return { updates: [], found: earliest, head: 0n };
    if (snapshot.head === '') return { updates: [], found: earliest, head: 0n };
    const head = seqOfEntryId(snapshot.head);
    if (!earliest && snapshot.at !== '' && seqOfEntryId(snapshot.at) >= snapshot.minSeq) {
      const updates = await this.#read(snapshot, filter, snapshot.at);
      if (updates !== undefined) return { updates, found: true, head };
    }
    return { updates: (await this.#read(snapshot, filter, undefined)) ?? [], found: earliest, head };
  }

  /**
   * Reads the entries after `from` (or every kept entry) up to the snapshot's head. Each page
   * starts at the last entry of the one before and checks it is still there: trimming removes the
   * oldest entries first, so as long as it is, nothing after it is missing. A resume point that
   * disappears mid-read gives `undefined`, which the caller answers as an unknown ID.
   */
  async #read(snapshot: Snapshot, filter: (u: Update) => boolean, from: string | undefined): Promise<Update[] | undefined> {
    const updates: Update[] = [];
    let cursor = from ?? (snapshot.minSeq > 0n ? entryIdAt(Number(snapshot.minSeq >> 32n)) : '-');
    let anchored = from !== undefined;
    while (true) {
      const page = await this.#cmd.call('XRANGE', this.#settings.stream, cursor, snapshot.head, 'COUNT', PAGE);
      if (!isEntries(page)) throw new Error('unexpected XRANGE reply');
      let entries: Entry[] = page;
      if (anchored) {
        if (page[0]?.[0] === cursor) entries = page.slice(1);
        else if (from !== undefined) return undefined;
      }
      for (const entry of entries) {
        if (seqOfEntryId(entry[0]) < snapshot.minSeq) continue;
        const update = this.#decode(entry);
        if (update !== undefined && filter(update)) updates.push(update);
      }
      const last = page[page.length - 1];
      if (page.length < PAGE || last === undefined) return updates;
      cursor = last[0];
      anchored = true;
    }
  }

  async #locate(updateId: string): Promise<Snapshot> {
    const reply = await this.#eval(LOCATE, [this.#settings.stream, this.#settings.ids], [updateId]);
    if (!Array.isArray(reply) || reply.length !== 5) throw new Error('unexpected reply to the history script');
    const [head, headUpdate, at, seconds, micros] = reply.map(String) as [string, string, string, string, string];
    const now = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
    const minSeq = this.#settings.ttl > 0 ? BigInt(Math.max(now - this.#settings.ttl, 0)) << 32n : 0n;
    return { head, headUpdate, at, minSeq };
  }

  /** Feeds the listeners from the stream, in order, from the last entry they got, across reconnects. */
  async #readLoop(): Promise<void> {
    while (!this.#closed) {
      let reply: unknown;
      try {
        reply = await this.#reader.call('XREAD', 'COUNT', PAGE, 'BLOCK', BLOCK_MS, 'STREAMS', this.#settings.stream, this.#lastSeen);
      } catch {
        if (this.#closed) return;
        await this.#pause();
        continue;
      }
      // RESP2: null on timeout, else [[key, entries]].
      const entries = Array.isArray(reply) && Array.isArray(reply[0]) ? (reply[0] as unknown[])[1] : undefined;
      if (!isEntries(entries)) continue;
      for (const entry of entries) {
        if (this.#closed) return;
        this.#advance(entry[0]);
        const update = this.#decode(entry);
        if (update === undefined) continue;
        for (const listener of this.#listeners) {
          try {
            listener(update);
          } catch (error) {
            process.emitWarning(`a listener of the redis transport threw: ${(error as Error).stack ?? String(error)}`);
          }
        }
      }
      this.#release();
    }
  }

  #advance(entryId: string): void {
    this.#lastSeen = entryId;
    this.#lastSeenSeq = seqOfEntryId(entryId);
  }

  /** Waits until the reader is ready again (or a short while, for an error the connection survived). */
  #pause(): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#reader.off('ready', done);
        this.#wakeReader = undefined;
        resolve();
      };
      const timer = setTimeout(done, 500);
      this.#reader.once('ready', done);
      this.#wakeReader = done;
    });
  }

  /** Resolves once the reader has delivered `seq` here, or after the timeout (the update is stored either way). */
  #delivered(seq: bigint): Promise<void> {
    if (this.#lastSeenSeq >= seq || this.#closed) return Promise.resolve();
    return new Promise((resolve) => {
      const waiter = {
        seq,
        done: () => {
          clearTimeout(timer);
          resolve();
        },
      };
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w !== waiter);
        resolve();
      }, this.#settings.timeout);
      this.#waiters.push(waiter);
    });
  }

  #release(): void {
    if (this.#waiters.length === 0) return;
    const waiting: Waiter[] = [];
    for (const waiter of this.#waiters) {
      if (waiter.seq <= this.#lastSeenSeq) waiter.done();
      else waiting.push(waiter);
    }
    this.#waiters = waiting;
  }

  /** Background work: drops expired entries even when nobody publishes, keeps an idle connection checked, and looks whether lagging replicas are back. */
  async #maintain(): Promise<void> {
    if (this.#replicated?.lagging === true) void this.#replicated.probe();
    if (this.#closed || this.#cmd.status !== 'ready') return;
    try {
      // EXISTS rather than PING: it has a key, so on a cluster it checks the connection to the stream's node.
      if (this.#settings.ttl > 0) await this.#eval(TRIM, [this.#settings.stream, this.#settings.ids], [this.#settings.ttl]);
      else await this.#cmd.call('EXISTS', this.#settings.stream);
      // A Redis that lost its data has lost the epoch: offsets are made against the new one.
      await this.#readEpoch();
    } catch {
      // A dead connection is closed by its socket timeout and reconnected; nothing to do here.
    }
  }

  /** Runs a script by its SHA, loading it when the server does not know it (first use, or after a restart). */
  async #eval(s: Script, keys: string[], args: (string | number)[]): Promise<unknown> {
    try {
      return await this.#cmd.call('EVALSHA', s.sha, keys.length, ...keys, ...args);
    } catch (error) {
      if (!(error as Error).message.startsWith('NOSCRIPT')) throw error;
      return this.#cmd.call('EVAL', s.lua, keys.length, ...keys, ...args);
    }
  }

  #unavailable(error: unknown): TransportUnavailableError {
    const message = (error as Error).message;
    // ioredis' wording for "not connected" (offline queue off, connection lost mid-command).
    if (/isn't writeable|Connection is closed|MaxRetriesPerRequest|Cluster isn't ready|Cluster is ended|None of startup nodes/i.test(message)) {
      return new TransportUnavailableError(`${this.#settings.label} is not reachable${this.#lastError === '' ? '' : ` (${this.#lastError})`}`);
    }
    return new TransportUnavailableError(`${this.#settings.label}: ${message}`);
  }
}


interface Waiter {
  seq: bigint;
  done: () => void;
}

interface Snapshot {
  /** Newest entry ID ('' when the stream is empty) and the update ID it holds. */
  head: string;
  headUpdate: string;
  /** Entry ID of the requested update, '' when it is not in the stream. */
  at: string;
  /** Entries with a lower seq are past the maximum age. */
  minSeq: bigint;
}
