/**
 * One shared timer per heartbeat interval, whatever the number of streams.
 *
 * A timer per connection costs memory and wake-ups that grow with the subscriber count; one timer
 * walking a Set costs one wake-up per interval. The timer exists only while some stream uses it,
 * so an idle process can exit and a test can check that nothing is left behind.
 */

/** Something that can be sent a heartbeat. */
export interface HeartbeatTarget {
  /**
   * Called every half interval with the tick number (see `Heartbeat.ticks`). A target that wrote
   * during this or the previous tick skips it: only a stream silent for a while needs a comment.
   */
  heartbeat(tick: number): void;
}

/** Targets served per turn of the event loop, so a tick over many streams does not hold up publishes. */
const SLICE = 2000;

/** A set of streams beating on one interval. */
export class Heartbeat {
  /** Milliseconds between heartbeats. */
  readonly interval: number;
  #targets = new Set<HeartbeatTarget>();
  #timer: NodeJS.Timeout | undefined;
  #onEmpty: () => void;
  #ticks = 0;

  constructor(interval: number, onEmpty: () => void = () => {}) {
    this.interval = interval;
    this.#onEmpty = onEmpty;
  }

  /**
   * Ticks so far. The timer ticks every half interval, and a target beats when it wrote nothing
   * since the tick before last: an idle stream still gets a comment every interval, a stream that
   * carries events gets none (they keep proxies from timing out as well), and no stream is ever
   * silent for longer than the interval.
   */
  get ticks(): number {
    return this.#ticks;
  }

  /** Number of streams on this timer. */
  get size(): number {
    return this.#targets.size;
  }

  add(target: HeartbeatTarget): void {
    this.#targets.add(target);
    if (this.#timer === undefined) {
      this.#timer = setInterval(() => this.#tick(), Math.max(1, Math.floor(this.interval / 2)));
      this.#timer.unref();
    }
  }

  delete(target: HeartbeatTarget): void {
    if (!this.#targets.delete(target) || this.#targets.size > 0) return;
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#onEmpty();
  }

  #tick(): void {
    const tick = ++this.#ticks;
    // A snapshot, served in slices: a stream may close itself during its heartbeat, and the event
    // loop gets a turn between slices (one tick over 20,000 streams would otherwise block it).
    const targets = [...this.#targets];
    let next = 0;
    const slice = (): void => {
      const end = Math.min(next + SLICE, targets.length);
      for (; next < end; next++) (targets[next] as HeartbeatTarget).heartbeat(tick);
      if (next < targets.length) setImmediate(slice);
    };
    slice();
  }
}

const shared = new Map<number, Heartbeat>();

/** The process-wide heartbeat for `interval` ms, created on first use and dropped when its last stream leaves. */
export function sharedHeartbeat(interval: number): Heartbeat {
  let heartbeat = shared.get(interval);
  if (heartbeat === undefined) {
    heartbeat = new Heartbeat(interval, () => shared.delete(interval));
    shared.set(interval, heartbeat);
  }
  return heartbeat;
}

/** Number of heartbeat timers currently running in this process (one per distinct interval in use). */
export function activeHeartbeats(): number {
  return shared.size;
}
