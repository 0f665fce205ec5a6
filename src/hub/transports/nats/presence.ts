/**
 * Presence in NATS: a JetStream key-value bucket beside the stream (`<STREAM>_presence`, file
 * storage, one value per key). Keys:
 *
 * - `lease.<node>`               this node is alive; its age on the server's clock is its lease
 * - `entry.<node>.<h(sub,topic)>` one subscription of one of its subscribers (JSON)
 * - `count.<h(topic)>.<node>`     how many of its subscriptions have this selector
 * - `state.<h(topic)>`            the topic's occupancy (`occupied`; absent: vacated)
 *
 * Each node writes only its own lease, entries and counts; occupancy changes by compare-and-set
 * on the key's revision, and a lost node is claimed by deleting its lease at the revision seen,
 * which only one node can do. Every node keeps a replica of the bucket through a watcher, so
 * counting and listing are local reads; its own counts are taken from what it wrote, never from
 * the replica, so its own writes are counted at once.
 */
import { createHash } from 'node:crypto';
import type { JetStreamClient, KV, KvEntry, QueuedIterator } from 'nats';
import { StorageType } from 'nats';
import type { LostNode, Occupancy, PresenceEntry, PresenceStore } from '../../core/presence.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A key token for any string: base64url of its SHA-256 (KV keys take letters, digits, `-`, `_`, `=`, `.`, `/`). */
function token(value: string): string {
  return createHash('sha256').update(value).digest('base64url');
}

/** The presence store of one node in a NATS cluster of hubs. */
export class NatsPresenceStore implements PresenceStore {
  readonly #node: string;
  readonly #nodeToken: string;
  readonly #ttl: number;
  readonly #open: Promise<KV>;
  /** The bucket as last seen, key → entry. */
  readonly #replica = new Map<string, KvEntry>();
  #watcher: QueuedIterator<KvEntry> | undefined;
  /** This node's subscriptions per selector, as written. */
  readonly #mine = new Map<string, number>();
  #closed = false;

  constructor(js: JetStreamClient, options: { bucket: string; node: string; ttl: number; replicas: number }) {
    this.#node = options.node;
    this.#nodeToken = token(options.node);
    this.#ttl = options.ttl;
    this.#open = js.views.kv(options.bucket, { history: 1, storage: StorageType.File, replicas: options.replicas }).then(async (kv) => {
      await this.#watch(kv);
      return kv;
    });
    // Failures surface on the first call; nothing may be left unhandled here.
    this.#open.catch(() => {});
  }

  /** Fills the replica and keeps it current; resolves once the bucket's current values are in. */
  async #watch(kv: KV): Promise<void> {
    let initialized!: () => void;
    const ready = new Promise<void>((resolve) => (initialized = resolve));
    const watcher = await kv.watch({ key: '>', initializedFn: () => initialized() });
    this.#watcher = watcher;
    void (async () => {
      for await (const entry of watcher) {
        if (entry.operation === 'PUT') this.#replica.set(entry.key, entry);
        else this.#replica.delete(entry.key);
      }
    })().catch(() => {});
    // An empty bucket calls initializedFn at once too.
    await ready;
  }

  #alive(node: string, now = Date.now()): boolean {
    const lease = this.#replica.get(`lease.${node}`);
    return lease !== undefined && now - lease.created.getTime() < this.#ttl;
  }

  async add(entries: readonly PresenceEntry[]): Promise<void> {
    const kv = await this.#open;
    await kv.put(`lease.${this.#nodeToken}`, encoder.encode(this.#node));
    const touched = new Set<string>();
    for (const e of entries) {
      await kv.put(`entry.${this.#nodeToken}.${token(`${e.subscriber}\n${e.topic}`)}`, encoder.encode(JSON.stringify(e)));
      this.#mine.set(e.topic, (this.#mine.get(e.topic) ?? 0) + 1);
      touched.add(e.topic);
    }
    for (const topic of touched) await kv.put(`count.${token(topic)}.${this.#nodeToken}`, encoder.encode(String(this.#mine.get(topic))));
  }

  async remove(subscriber: string, topics: readonly string[]): Promise<void> {
    const kv = await this.#open;
    for (const topic of new Set(topics)) {
      await kv.delete(`entry.${this.#nodeToken}.${token(`${subscriber}\n${topic}`)}`);
      const left = (this.#mine.get(topic) ?? 1) - 1;
      if (left <= 0) {
        this.#mine.delete(topic);
        await kv.delete(`count.${token(topic)}.${this.#nodeToken}`);
      } else {
        this.#mine.set(topic, left);
        await kv.put(`count.${token(topic)}.${this.#nodeToken}`, encoder.encode(String(left)));
      }
    }
  }

  async list(filter: { topic?: string; subscriber?: string } = {}): Promise<PresenceEntry[]> {
    await this.#open;
    const now = Date.now();
    const entries: PresenceEntry[] = [];
    for (const [key, entry] of this.#replica) {
      if (!key.startsWith('entry.')) continue;
      const node = key.split('.')[1] as string;
      if (!this.#alive(node, now)) continue;
      let e: PresenceEntry;
      try {
        e = JSON.parse(decoder.decode(entry.value)) as PresenceEntry;
      } catch {
        continue;
      }
      if ((filter.topic === undefined || e.topic === filter.topic) && (filter.subscriber === undefined || e.subscriber === filter.subscriber)) entries.push(e);
    }
    return entries;
  }

  async count(topic: string): Promise<number> {
    await this.#open;
    const prefix = `count.${token(topic)}.`;
    const now = Date.now();
    let total = this.#mine.get(topic) ?? 0;
    for (const [key, entry] of this.#replica) {
      if (!key.startsWith(prefix)) continue;
      const node = key.slice(prefix.length);
      if (node === this.#nodeToken || !this.#alive(node, now)) continue;
      total += Number(decoder.decode(entry.value)) || 0;
    }
    return total;
  }

  async transition(topic: string, from: Occupancy, to: Occupancy): Promise<boolean> {
    const kv = await this.#open;
    const key = `state.${token(topic)}`;
    // Read from the server, not the replica: the compare must be against the newest revision.
    const current = await kv.get(key);
    const state: Occupancy = current !== null && current.operation === 'PUT' && decoder.decode(current.value) === 'occupied' ? 'occupied' : 'vacated';
    if (state !== from) return false;
    try {
      if (to === 'occupied') {
        if (current === null) await kv.create(key, encoder.encode('occupied'));
        else await kv.update(key, encoder.encode('occupied'), current.revision);
      } else {
        await kv.delete(key, { previousSeq: (current as KvEntry).revision });
      }
      return true;
    } catch {
      // Another node changed it first.
      return false;
    }
  }

  async heartbeat(): Promise<{ renewed: boolean; lost: LostNode[] }> {
    const kv = await this.#open;
    const now = Date.now();
    const renewed = this.#alive(this.#nodeToken, now);
    await kv.put(`lease.${this.#nodeToken}`, encoder.encode(this.#node));
    const lost: LostNode[] = [];
    for (const [key, lease] of [...this.#replica]) {
      if (!key.startsWith('lease.')) continue;
      const node = key.slice('lease.'.length);
      if (node === this.#nodeToken || now - lease.created.getTime() < this.#ttl) continue;
      try {
        // Only one node can delete the lease at the revision it saw: that node claims it.
        await kv.delete(key, { previousSeq: lease.revision });
      } catch {
        continue;
      }
      lost.push({ node: decoder.decode(lease.value), entries: await this.#forget(kv, node) });
    }
    return { renewed, lost };
  }

  /** Removes a claimed node's entries and counts; returns the entries. */
  async #forget(kv: KV, node: string): Promise<PresenceEntry[]> {
    const entries: PresenceEntry[] = [];
    for (const [key, entry] of [...this.#replica]) {
      if (key.startsWith(`entry.${node}.`)) {
        try {
          entries.push(JSON.parse(decoder.decode(entry.value)) as PresenceEntry);
        } catch {
          // Not an entry of ours.
        }
        await kv.delete(key);
      } else if (key.startsWith('count.') && key.endsWith(`.${node}`)) {
        await kv.delete(key);
      }
    }
    return entries;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    let kv: KV;
    try {
      kv = await this.#open;
    } catch {
      return;
    }
    this.#watcher?.stop();
    await this.#forget(kv, this.#nodeToken);
    await kv.delete(`lease.${this.#nodeToken}`);
  }
}
