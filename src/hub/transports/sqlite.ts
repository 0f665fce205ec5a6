/**
 * `sqlite:PATH`: the embedded default for one node. History survives restarts; a background
 * task trims it by count and age. WAL mode with `synchronous = NORMAL`: a committed update
 * survives a crash of the process (what a restart test checks); a power loss may lose the last
 * transactions, which is the usual trade for publish latency. The file's epoch is made with it
 * (a table `meta`), so a new file is a new epoch.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { DuplicateIdError, TransportUnavailableError } from '../core/errors.js';
import type { Update } from '../core/update.js';
import { type HistoryLimits, type HistoryResult, type PoisonEntry, PoisonListeners, type Transport } from './transport.js';

interface Row {
  seq: number | bigint;
  id: string;
  topics: string;
  data: string;
  private: number;
  type: string | null;
  retry: number | null;
  published_at: number;
}

/** The row's update, or why it is not one (a row written by hand or another version); never throws. */
function toUpdate(row: Row): Update | { ref: string; reason: string } {
  let topics: unknown;
  try {
    topics = JSON.parse(row.topics);
  } catch {
    return { ref: row.id, reason: `the "topics" column of row ${row.seq} is not JSON` };
  }
  if (!Array.isArray(topics)) return { ref: row.id, reason: `the "topics" column of row ${row.seq} is not a JSON array` };
  return {
    seq: BigInt(row.seq),
    id: row.id,
    topics: topics as string[],
    data: row.data,
    private: row.private === 1,
    type: row.type ?? undefined,
    retry: row.retry ?? undefined,
    publishedAt: row.published_at,
  };
}

/**
 * The file is held by another process: two hubs on one file would each store into one history
 * but deliver live only their own publishes, so the second one is refused at start.
 */
export class DatabaseInUseError extends Error {
  override readonly name = 'DatabaseInUseError';
  /** The file. */
  readonly path: string;
  /** Who holds it, as its owner file says (`pid 123 on host, since …`), when that could be read. */
  readonly holder: string | undefined;
  constructor(path: string, holder: string | undefined) {
    super(`${path} is in use by another process${holder === undefined ? '' : ` (${holder})`}: two hubs on one SQLite file would each deliver only their own publishes live. Stop that process, or give this hub a file of its own`);
    this.path = path;
    this.holder = holder;
  }
}

/** A publish waiting for its batch. */
interface Pending {
  update: Update;
  resolve: () => void;
  reject: (error: Error) => void;
}

/** Newest updates also kept in memory for resumes (see `#recent`). */
const RECENT = 1024;

/** SQLite transport. */
export class SqliteTransport implements Transport {
  #db: Database.Database;
  /** The owner file beside the database, naming this process to a second one that finds the file locked. */
  #ownerFile: string | undefined;
  #listeners = new Set<(u: Update) => void>();
  #poison = new PoisonListeners();
  #limits: HistoryLimits;
  #timer: NodeJS.Timeout;
  #closed = false;
  /**
   * The newest updates (at most RECENT, and never more than the history size), kept in memory as
   * well: a resume from one of them (the common case, a client back after seconds; a reconnect
   * storm after a restart of a proxy) is answered without a query, with the very objects the live
   * fan-out used, so their encoded events are reused too. Only this process writes the file
   * (it holds SQLite's exclusive lock, see `#lock`), so this is exactly the tail of the table.
   */
  #recent: Update[] = [];
  /** Publishes waiting for the next batch insert. */
  #pending: Pending[] = [];
  #recentIds = new Map<string, Update>();
  #insert: Database.Statement;
  #insertBatch: (batch: Pending[], duplicates: Set<Pending>) => void;
  #findSeq: Database.Statement;
  #forgetStale: Database.Statement;
  #after: Database.Statement;
  #head: Database.Statement;
  #last: Database.Statement;
  #lastSeq: Database.Statement;
  #oldestKept: Database.Statement;
  readonly #epoch: string;

  constructor(path: string, limits: HistoryLimits, trimInterval = 10_000) {
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
    this.#db = new Database(path);
    if (path !== ':memory:') this.#lock(path);
    this.#db.pragma('journal_mode = WAL');
    this.#db.pragma('synchronous = NORMAL');
    this.#db.pragma('busy_timeout = 5000');
    this.#db.exec(`CREATE TABLE IF NOT EXISTS updates (
      seq INTEGER PRIMARY KEY AUTOINCREMENT,
      id TEXT NOT NULL UNIQUE,
      topics TEXT NOT NULL,
      data TEXT NOT NULL,
      private INTEGER NOT NULL,
      type TEXT,
      retry INTEGER,
      published_at INTEGER NOT NULL
    )`);
    this.#db.exec('CREATE INDEX IF NOT EXISTS updates_published_at ON updates (published_at)');
    this.#db.exec('CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)');
    this.#db.prepare("INSERT OR IGNORE INTO meta (key, value) VALUES ('epoch', ?)").run(randomBytes(6).toString('base64url'));
    this.#epoch = this.#db.prepare("SELECT value FROM meta WHERE key = 'epoch'").pluck().get() as string;
    this.#insert = this.#db.prepare('INSERT INTO updates (id, topics, data, private, type, retry, published_at) VALUES (?, ?, ?, ?, ?, ?, ?)');
    // A batch in one transaction; a duplicate ID fails only its own row (SQLite rolls back that statement alone).
    this.#insertBatch = this.#db.transaction((batch: Pending[], duplicates: Set<Pending>) => {
      for (const p of batch) {
        const u = p.update;
        u.publishedAt ??= Date.now();
        const insert = () => {
          const result = this.#insert.run(u.id, JSON.stringify(u.topics), u.data, u.private ? 1 : 0, u.type ?? null, u.retry ?? null, u.publishedAt);
          u.seq = BigInt(result.lastInsertRowid);
        };
        try {
          insert();
        } catch (error) {
          if ((error as { code?: string }).code !== 'SQLITE_CONSTRAINT_UNIQUE') throw error;
          // An ID is known only while its update is kept: one past the limits, not yet removed by
          // the background trim, is gone for resume already, so it may be used again.
          if (this.#forgetStale.run(u.id, (this.#head.get() as bigint) - BigInt(this.#limits.size), this.#since()).changes === 0) {
            duplicates.add(p);
            continue;
          }
          insert();
        }
      }
    });
    this.#forgetStale = this.#db.prepare('DELETE FROM updates WHERE id = ? AND (seq <= ? OR published_at < ?)');
    this.#findSeq = this.#db.prepare('SELECT seq FROM updates WHERE id = ? AND seq > ? AND published_at >= ?').pluck().safeIntegers(true);
    this.#after = this.#db.prepare('SELECT * FROM updates WHERE seq > ? AND published_at >= ? ORDER BY seq');
    this.#head = this.#db.prepare("SELECT COALESCE(MAX(seq), 0) FROM updates").pluck().safeIntegers(true);
    this.#last = this.#db.prepare('SELECT id FROM updates WHERE published_at >= ? ORDER BY seq DESC LIMIT 1').pluck();
    // AUTOINCREMENT's counter: the last seq ever given, even once its row is trimmed.
    this.#lastSeq = this.#db.prepare("SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'updates'), 0)").pluck().safeIntegers(true);
    this.#oldestKept = this.#db.prepare('SELECT MIN(seq) FROM updates WHERE seq > ? AND published_at >= ?').pluck().safeIntegers(true);
    this.#limits = limits;
    this.#trim();
    this.#timer = setInterval(() => this.#trim(), trimInterval);
    this.#timer.unref();
  }

  /**
   * Takes the file for the life of this process: in EXCLUSIVE locking mode SQLite keeps the lock
   * of its first write until the connection closes, and the operating system drops it when the
   * process ends, by a crash too, so a lock is never left behind. A second process gets
   * SQLITE_BUSY at once (no busy wait here), and the owner file tells it who has the file.
   */
  #lock(path: string): void {
    const owner = `${path}.owner`;
    try {
      this.#db.pragma('busy_timeout = 0');
      this.#db.pragma('locking_mode = EXCLUSIVE');
      this.#db.exec('BEGIN EXCLUSIVE; COMMIT');
    } catch (error) {
      this.#db.close();
      if (!/SQLITE_BUSY|SQLITE_LOCKED/.test((error as { code?: string }).code ?? '')) throw error;
      let holder: string | undefined;
      try {
        holder = readFileSync(owner, 'utf8').trim() || undefined;
      } catch {
        holder = undefined;
      }
      throw new DatabaseInUseError(path, holder);
    }
    try {
      writeFileSync(owner, `pid ${process.pid} on ${hostname()}, since ${new Date().toISOString()}\n`);
      this.#ownerFile = owner;
    } catch {
      // Only a courtesy to the next process: the lock itself is SQLite's.
    }
  }

  /**
   * Stores the update. Publishes that arrive in the same turn of the event loop are written in one
   * transaction (a commit costs more than the rows in it: 39 µs for one row alone, 6 µs per row in
   * a transaction of 32), then delivered in order; each publish still learns its own outcome.
   */
  dispatch(update: Update): Promise<void> {
    if (this.#closed) return Promise.reject(new TransportUnavailableError('the sqlite transport is closed'));
    return new Promise((resolve, reject) => {
      this.#pending.push({ update, resolve, reject });
      if (this.#pending.length === 1) setImmediate(() => this.#flush());
    });
  }

  #flush(): void {
    const batch = this.#pending;
    this.#pending = [];
    if (this.#closed) {
      for (const p of batch) p.reject(new TransportUnavailableError('the sqlite transport is closed'));
      return;
    }
    const duplicates = new Set<Pending>();
    try {
      this.#insertBatch(batch, duplicates);
    } catch (error) {
      // Rolled back as a whole: none of them is stored.
      for (const p of batch) p.reject(new TransportUnavailableError(`sqlite: ${(error as Error).message}`));
      return;
    }
    for (const p of batch) {
      const { update } = p;
      if (duplicates.has(p)) {
        p.reject(new DuplicateIdError(`an update with id "${update.id}" is already in history`));
        continue;
      }
      if (this.#limits.size === 0) this.#db.prepare('DELETE FROM updates WHERE seq = ?').run(update.seq);
      else this.#remember(update);
      for (const listener of this.#listeners) listener(update);
      p.resolve();
    }
  }


  #remember(update: Update): void {
    this.#recent.push(update);
    this.#recentIds.set(update.id, update);
    if (this.#recent.length > Math.min(RECENT, this.#limits.size)) {
      const oldest = this.#recent.shift() as Update;
      // Unless the ID was used again since (by an update kept now).
      if (this.#recentIds.get(oldest.id) === oldest) this.#recentIds.delete(oldest.id);
    }
  }

  /** A history read served from the recent updates, or `undefined` when the ID is not among them. */
  #fromRecent(lastEventId: string, filter: (u: Update) => boolean): HistoryResult | undefined {
    const hit = this.#recentIds.get(lastEventId);
    if (hit === undefined || (hit.publishedAt ?? 0) < this.#since()) return undefined;
    const updates: Update[] = [];
    for (let i = this.#recent.indexOf(hit) + 1; i < this.#recent.length; i++) {
      const u = this.#recent[i] as Update;
      if (filter(u)) updates.push(u);
    }
    return { updates, found: true, head: (this.#recent[this.#recent.length - 1] as Update).seq as bigint };
  }

  subscribe(listener: (u: Update) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  onPoison(listener: (entry: PoisonEntry) => void): () => void {
    return this.#poison.add(listener);
  }

  async history(lastEventId: string, filter: (u: Update) => boolean): Promise<HistoryResult> {
    const recent = lastEventId === 'earliest' ? undefined : this.#fromRecent(lastEventId, filter);
    if (recent !== undefined) return recent;
    // better-sqlite3 is synchronous: no dispatch can interleave between these reads, so `head` is exact.
    const head = this.#head.get() as bigint;
    // The limits apply at read time too: the background trim runs only every few seconds, and
    // an update past them must be neither replayed nor accepted as a resume point.
    const floor = head - BigInt(this.#limits.size);
    const since = this.#since();
    let after = floor > 0n ? floor : 0n;
    let found = lastEventId === 'earliest';
    if (!found) {
      const seq = this.#findSeq.get(lastEventId, after, since) as bigint | undefined;
      if (seq !== undefined) {
        found = true;
        after = seq;
      }
    }
    const updates: Update[] = [];
    for (const row of this.#after.iterate(after, since) as IterableIterator<Row>) {
      const u = toUpdate(row);
      if (!('topics' in u)) this.#poison.report(u.ref, u.reason);
      else if (filter(u)) updates.push(u);
    }
    return { updates, found, head };
  }

  async lastId(): Promise<string | undefined> {
    return (this.#last.get(this.#since()) as string | undefined) ?? undefined;
  }

  async epoch(): Promise<string> {
    return this.#epoch;
  }

  async head(): Promise<bigint> {
    return this.#lastSeq.get() as bigint;
  }

  async historyAfter(seq: bigint, filter: (u: Update) => boolean): Promise<HistoryResult> {
    // Synchronous reads (better-sqlite3): no dispatch interleaves, as in history().
    const head = this.#lastSeq.get() as bigint;
    // Past the head: a position of another history (this one started over), not one to resume from.
    if (seq > head) return { updates: [], found: false, head };
    if (seq === head) return { updates: [], found: true, head };
    const floor = head - BigInt(this.#limits.size);
    const since = this.#since();
    // Positions are consecutive (a failed insert gives none up): nothing after `seq` is gone while the oldest kept is at most the next one.
    const oldest = this.#oldestKept.get(floor > 0n ? floor : 0n, since) as bigint | null;
    if (oldest === null || oldest > seq + 1n) return { updates: [], found: false, head };
    const updates: Update[] = [];
    for (const row of this.#after.iterate(seq, since) as IterableIterator<Row>) {
      const u = toUpdate(row);
      if (!('topics' in u)) this.#poison.report(u.ref, u.reason);
      else if (filter(u)) updates.push(u);
    }
    return { updates, found: true, head };
  }

  /** The oldest `published_at` the TTL keeps (0 without a TTL). */
  #since(): number {
    return this.#limits.ttl > 0 ? Date.now() - this.#limits.ttl : 0;
  }

  ready(): boolean {
    return !this.#closed && this.#db.open;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    // Publishes already handed over are stored, not refused.
    if (this.#pending.length > 0) this.#flush();
    this.#closed = true;
    clearInterval(this.#timer);
    this.#listeners.clear();
    this.#db.close();
    if (this.#ownerFile !== undefined) rmSync(this.#ownerFile, { force: true });
  }

  /** Drops updates past the count limit and older than the TTL. */
  #trim(): void {
    if (this.#closed) return;
    const { size, ttl } = this.#limits;
    if (ttl > 0) this.#db.prepare('DELETE FROM updates WHERE published_at < ?').run(Date.now() - ttl);
    this.#db.prepare('DELETE FROM updates WHERE seq <= (SELECT MAX(seq) FROM updates) - ?').run(size);
  }
}
