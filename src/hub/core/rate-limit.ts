/** A token bucket per key (token subject or client address), for the publish rate limit. */

/** Answer of a rate-limit check. */
export interface RateDecision {
  allowed: boolean;
  /** Seconds until one more request would be allowed (for `Retry-After`). */
  retryAfter: number;
}

/** Token buckets refilled at `rate` per second, holding at most `burst` tokens; a key whose bucket is full again is forgotten. */
export class RateLimiter {
  #rate: number;
  #burst: number;
  #buckets = new Map<string, { tokens: number; at: number }>();
  #now: () => number;

  constructor(ratePerSecond: number, burst = Math.max(1, Math.ceil(ratePerSecond)), now: () => number = Date.now) {
    this.#rate = ratePerSecond;
    this.#burst = burst;
    this.#now = now;
  }

  /** Takes one token for `key`. */
  take(key: string): RateDecision {
    const now = this.#now();
    if (this.#buckets.size > 10_000) this.#sweep(now);
    const bucket = this.#buckets.get(key) ?? { tokens: this.#burst, at: now };
    bucket.tokens = Math.min(this.#burst, bucket.tokens + ((now - bucket.at) / 1000) * this.#rate);
    bucket.at = now;
    this.#buckets.set(key, bucket);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return { allowed: true, retryAfter: 0 };
    }
    return { allowed: false, retryAfter: Math.max(1, Math.ceil((1 - bucket.tokens) / this.#rate)) };
  }

  /**
   * Forgets only buckets that have refilled completely: a forgotten key starts again with a full
   * bucket, so forgetting one that is still refilling (idle for a minute at `30/h`) would hand it
   * tokens early.
   */
  #sweep(now: number): void {
    for (const [key, b] of this.#buckets) if (b.tokens + ((now - b.at) / 1000) * this.#rate >= this.#burst) this.#buckets.delete(key);
  }
}
