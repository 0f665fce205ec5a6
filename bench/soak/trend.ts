// Pure helpers of the soak's verdicts: reading a Prometheus exposition, the slope of a series, and
// quantiles. (A leak shows as a rising floor under the garbage collector's sawtooth; the soak reads
// that floor right after forcing a full collection, and takes the slope of those readings.)

/** One reading of a series: `t` in ms (any origin), `v` its value. */
export interface Point {
  t: number;
  v: number;
}

/** The samples of a Prometheus text exposition, keyed by series as written (`name{labels}`); comments skipped. */
export function parseExposition(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const space = line.lastIndexOf(' ');
    if (space <= 0) continue;
    const value = Number(line.slice(space + 1));
    if (Number.isFinite(value)) out.set(line.slice(0, space), value);
  }
  return out;
}

/** Least-squares slope of `points`, in value units per minute (0 for fewer than two distinct times). */
export function slopePerMinute(points: readonly Point[]): number {
  const n = points.length;
  if (n < 2) return 0;
  let st = 0;
  let sv = 0;
  for (const p of points) {
    st += p.t;
    sv += p.v;
  }
  const mt = st / n;
  const mv = sv / n;
  let num = 0;
  let den = 0;
  for (const p of points) {
    num += (p.t - mt) * (p.v - mv);
    den += (p.t - mt) ** 2;
  }
  return den === 0 ? 0 : (num / den) * 60_000;
}

/** The q-quantile (0..1, nearest rank) of `values`; NaN when empty. */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}
