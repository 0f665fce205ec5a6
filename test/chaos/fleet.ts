// The chaos suite's instruments: a fleet of ssehub/client EventSource subscribers that records
// every event it is handed, a publisher that publishes numbered updates at a steady pace and
// records which ones were acknowledged (answered 200), and the verdict comparing the two.
//
// The client's de-duplication is off, so a repeat sent by the hub cannot be hidden; every
// subscriber starts from `earliest`, so a first connection cut before its first event loses
// nothing either. Update n has the id `<prefix>-n` and data starting with `n` (then padding, when
// a scenario needs volume).
import { EventSource, type EventSourceErrorEvent } from '../../src/client/index.js';

/** One subscriber's view. */
interface Member {
  source: EventSource;
  /** Update numbers in the order delivered. */
  got: number[];
  seen: Set<number>;
  /** Times (performance.now()) each number arrived, for the recovery figures. */
  at: Map<number, number>;
}

/** What the subscribers saw, over the whole scenario. */
export interface ClientView {
  /** Opens after the first, i.e. reconnections that succeeded. */
  reconnects: number;
  /** `error` events, by message (first words), with counts. */
  errors: Map<string, number>;
  resyncs: number;
  /** Sources that gave up for good (readyState CLOSED while the scenario still ran). */
  closed: number;
}

/** A set of subscribers of one topic. */
export class Fleet {
  readonly members: Member[] = [];
  readonly view: ClientView = { reconnects: 0, errors: new Map(), resyncs: 0, closed: 0 };
  #waiters: { n: number; resolve: () => void }[] = [];

  /** Opens `count` EventSources on `urls` (subscribe URLs, taken in turn); resolves once every one is open. */
  static async open(urls: string | string[], count: number, init: { heartbeatTimeout?: number } = {}): Promise<Fleet> {
    const fleet = new Fleet();
    const opened: Promise<void>[] = [];
    const list = typeof urls === 'string' ? [urls] : urls;
    for (let i = 0; i < count; i++) {
      const source = new EventSource(list[i % list.length]!, {
        dedupe: false,
        lastEventId: 'earliest',
        reconnect: { initialDelay: 50, maxDelay: 1000 },
        ...(init.heartbeatTimeout === undefined ? {} : { heartbeatTimeout: init.heartbeatTimeout }),
      });
      const member: Member = { source, got: [], seen: new Set(), at: new Map() };
      fleet.members.push(member);
      let opens = 0;
      opened.push(new Promise((resolve) => source.addEventListener('open', () => resolve(), { once: true })));
      source.addEventListener('open', () => {
        if (opens++ > 0) fleet.view.reconnects++;
      });
      source.addEventListener('error', (ev) => {
        const e = ev as EventSourceErrorEvent;
        const key = (e.message ?? 'error').split(/[;:(]/)[0]!.trim().slice(0, 60);
        fleet.view.errors.set(key, (fleet.view.errors.get(key) ?? 0) + 1);
        if (!e.willRetry) fleet.view.closed++;
      });
      source.addEventListener('resync', () => fleet.view.resyncs++);
      source.addEventListener('message', (ev) => {
        const n = Number.parseInt(String((ev as MessageEvent).data), 10);
        member.got.push(n);
        member.seen.add(n);
        member.at.set(n, performance.now());
        if (fleet.#waiters.length > 0) fleet.#check();
      });
    }
    await Promise.all(opened);
    return fleet;
  }

  #check(): void {
    this.#waiters = this.#waiters.filter((w) => {
      if (!this.members.every((m) => m.seen.has(w.n))) return true;
      w.resolve();
      return false;
    });
  }

  /** Resolves when every subscriber holds update `n`, with the time (performance.now()) the last one got it. */
  async allHave(n: number): Promise<number> {
    if (!this.members.every((m) => m.seen.has(n))) await new Promise<void>((resolve) => this.#waiters.push({ n, resolve }));
    return Math.max(...this.members.map((m) => m.at.get(n)!));
  }

  close(): void {
    for (const m of this.members) m.source.close();
  }
}

/** The publisher's record. */
export interface Published {
  /** Numbers answered 200, in publish order. */
  acked: number[];
  /** When each acknowledged number was answered (performance.now()). */
  ackedAt: Map<number, number>;
  /** Numbers not answered 200, by answer (`503`, `ECONNREFUSED`, …). */
  refused: Map<string, number[]>;
  /** The last number attempted. */
  last: number;
}

/**
 * Publishes update 1, 2, 3, … to `topic` at `rate` per second, one request at a time (the next
 * waits for the answer when it is late, so order is publish order), until `stop()` is called.
 * `hubUrl()` is asked before each publish, so a scenario can move the publisher between hubs.
 */
export class Publisher {
  readonly record: Published = { acked: [], ackedAt: new Map(), refused: new Map(), last: 0 };
  #running = true;
  #done: Promise<void>;
  #ackWaiters: { after: number; resolve: (n: number) => void }[] = [];

  /** `pad`: bytes of padding after the number in each update's data. */
  constructor(hubUrl: () => string, token: string, topic: string, rate: number, options: { prefix?: string; pad?: number } = {}) {
    const interval = 1000 / rate;
    const prefix = options.prefix ?? 'u';
    const padding = options.pad === undefined || options.pad === 0 ? '' : ` ${'x'.repeat(options.pad)}`;
    this.#done = (async () => {
      const start = performance.now();
      for (let n = 1; this.#running; n++) {
        const wait = start + (n - 1) * interval - performance.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        if (!this.#running) break;
        this.record.last = n;
        const outcome = await publishOnce(hubUrl(), token, { topic, id: `${prefix}-${n}`, data: `${n}${padding}` });
        if (outcome === '200') {
          this.record.acked.push(n);
          this.record.ackedAt.set(n, performance.now());
          this.#ackWaiters = this.#ackWaiters.filter((w) => {
            if (n <= w.after) return true;
            w.resolve(n);
            return false;
          });
        } else {
          const list = this.record.refused.get(outcome) ?? [];
          list.push(n);
          this.record.refused.set(outcome, list);
        }
      }
    })();
  }

  /** Resolves with the first acknowledged number published after now (a probe of recovery). */
  nextAck(): Promise<number> {
    const after = this.record.last;
    return new Promise((resolve) => this.#ackWaiters.push({ after, resolve }));
  }

  /** Stops publishing; resolves once the last request was answered. */
  async stop(): Promise<Published> {
    this.#running = false;
    await this.#done;
    for (const w of this.#ackWaiters) w.resolve(-1);
    return this.record;
  }
}

/** One publish: `'200'`, another status, or the error code of a request that got no answer. */
export async function publishOnce(hubUrl: string, token: string, fields: Record<string, string>): Promise<string> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), 10_000);
  try {
    const res = await fetch(hubUrl, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(fields).toString(),
      signal: controller.signal,
    });
    await res.text();
    return String(res.status);
  } catch (error) {
    const cause = (error as { cause?: { code?: string } }).cause;
    return cause?.code ?? (error as Error).name;
  } finally {
    clearTimeout(timer);
  }
}

/** Losses, repeats and inversions of the fleet against what was acknowledged. */
export interface Verdict {
  /** Acknowledged updates some subscriber never got (summed over subscribers). */
  lost: number;
  duplicated: number;
  reordered: number;
  /**
   * Updates delivered though the publisher never saw a 200: stored, but the answer was lost (the
   * hub died after storing, or a transport timed out after taking it). Allowed: the publisher
   * was not told "stored", and nothing it was told is missing.
   */
  unanswered: number;
  /** Numbers delivered that were never published (must be 0). */
  invented: number;
  /** A line per problem, for a failure message (at most 10). */
  problems: string[];
}

/** Compares every subscriber's deliveries with the acknowledged updates. */
export function judge(fleet: Fleet, published: Published): Verdict {
  const acked = new Set(published.acked);
  const v: Verdict = { lost: 0, duplicated: 0, reordered: 0, unanswered: 0, invented: 0, problems: [] };
  const note = (p: string) => {
    if (v.problems.length < 10) v.problems.push(p);
  };
  const unanswered = new Set<number>();
  fleet.members.forEach((m, i) => {
    const lost = published.acked.filter((n) => !m.seen.has(n));
    if (lost.length > 0) note(`subscriber ${i} is missing ${lost.length} acknowledged updates, the first ${lost.slice(0, 5).join(', ')}`);
    v.lost += lost.length;
    v.duplicated += m.got.length - m.seen.size;
    if (m.got.length !== m.seen.size) note(`subscriber ${i} got ${m.got.length - m.seen.size} updates twice`);
    for (let k = 1; k < m.got.length; k++) {
      if (m.got[k]! < m.got[k - 1]!) {
        v.reordered++;
        note(`subscriber ${i} got ${m.got[k]} after ${m.got[k - 1]}`);
      }
    }
    for (const n of m.seen) {
      if (!(n >= 1 && n <= published.last)) {
        v.invented++;
        note(`subscriber ${i} got ${n}, which was never published`);
      } else if (!acked.has(n)) unanswered.add(n);
    }
  });
  v.unanswered = unanswered.size;
  return v;
}
