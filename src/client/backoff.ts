/**
 * When to reconnect. A pure function of the failure count, so the schedule is tested by
 * computing it, not by waiting.
 *
 * The server's `retry` (the spec's reconnection time) is a floor: the first reconnect after a
 * healthy stream waits exactly that, as the standard says. Each further consecutive failure adds
 * an exponentially growing, jittered backoff on top, so a hub that comes back after an outage
 * is not hit by every client in the same second.
 */

/** How a client reconnects. All durations in milliseconds. */
export interface ReconnectPolicy {
  /** Backoff added after the first failed attempt (doubling, by default, after each further one). Default 1000. */
  initialDelay?: number;
  /** Growth factor of the backoff. Default 2. */
  factor?: number;
  /** Ceiling of the whole delay (unless the server's `retry` is higher, which always wins). Default 30000. */
  maxDelay?: number;
  /** Share of the backoff that is random: 0 none, 1 "full jitter". Default 0.5. */
  jitter?: number;
  /** Consecutive failed attempts after which the client gives up and closes. Default: never. */
  maxAttempts?: number;
  /** A connection that stayed open this long, or delivered an event, counts as healthy and resets the failure count. Default 5000. */
  resetAfter?: number;
}

/** A policy with every field set. */
export type ResolvedPolicy = Required<ReconnectPolicy>;

/** Fills a policy's defaults and checks its values. */
export function resolvePolicy(policy: ReconnectPolicy = {}): ResolvedPolicy {
  const p: ResolvedPolicy = {
    initialDelay: policy.initialDelay ?? 1000,
    factor: policy.factor ?? 2,
    maxDelay: policy.maxDelay ?? 30_000,
    jitter: policy.jitter ?? 0.5,
    maxAttempts: policy.maxAttempts ?? Number.POSITIVE_INFINITY,
    resetAfter: policy.resetAfter ?? 5000,
  };
  for (const [name, value] of Object.entries(p)) {
    if (typeof value !== 'number' || Number.isNaN(value) || value < 0) throw new RangeError(`reconnect.${name} must be a non-negative number`);
  }
  if (p.jitter > 1) throw new RangeError('reconnect.jitter must be between 0 and 1');
  if (p.factor < 1) throw new RangeError('reconnect.factor must be at least 1');
  return p;
}

/**
 * The delay before the next attempt, after `failures` consecutive failed attempts (0: the stream
 * was healthy and just ended), given the server's `retry`.
 */
export function reconnectDelay(failures: number, retry: number, policy: ResolvedPolicy, random: () => number = Math.random): number {
  if (failures <= 0) return Math.min(retry, MAX_TIMER);
  // 0 · factor^n is NaN once factor^n overflows to Infinity: no initial delay means no backoff.
  const growth = policy.initialDelay === 0 ? 0 : policy.initialDelay * policy.factor ** (failures - 1);
  const backoff = Math.min(policy.maxDelay, growth);
  const jittered = backoff * (1 - policy.jitter * random());
  return Math.min(MAX_TIMER, Math.round(Math.max(retry, Math.min(policy.maxDelay, retry + jittered))));
}

/** Timers fire at once when asked for more than 2^31−1 ms, which would turn a long wait into a reconnect storm. */
export const MAX_TIMER = 2 ** 31 - 1;
