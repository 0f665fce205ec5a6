/**
 * One shared timer per heartbeat interval, whatever the number of streams.
 *
 * A timer per connection costs memory and wake-ups that grow with the subscriber count; one timer
 * walking a Set costs one wake-up per interval. The timer exists only while some stream uses it,
 * so an idle process can exit and a test can check that nothing is left behind.
 */

/** Something that can be sent a heartbeat. */
export interface HeartbeatTarget {
  heartbeat(): void;
}

/** A set of streams beating on one interval. */
export class Heartbeat {
  /** Milliseconds between heartbeats. */
  readonly interval: number;
  #targets = new Set<HeartbeatTarget>();
  #timer: NodeJS.Timeout | undefined;
  #onEmpty: () => void;

  constructor(interval: number, onEmpty: () => void = () => {}) {
    this.interval = interval;
    this.#onEmpty = onEmpty;
  }

  /** Number of streams on this timer. */
  get size(): number {
    return this.#targets.size;
  }

  add(target: HeartbeatTarget): void {
    this.#targets.add(target);
    if (this.#timer === undefined) {
      this.#timer = setInterval(() => this.#tick(), this.interval);
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
    // A stream may close itself during its heartbeat; deleting from a Set while iterating is safe.
    for (const target of this.#targets) target.heartbeat();
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
