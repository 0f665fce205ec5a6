// Pure helpers of the soak's verdicts: reading a Prometheus exposition, and telling a flat series
// from a growing one. A leak shows as a rising floor under the garbage collector's sawtooth, so
// the slope that decides is the one of each window's minimum, not of the raw samples (whose
// slope a single late GC cycle can tilt either way).

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

/**
 * The lowest point of each consecutive window of `windowMs` (windows start at the first point's
 * time; empty windows give nothing): the floor of a sawtooth.
 */
export function windowMinima(points: readonly Point[], windowMs: number): Point[] {
  if (points.length === 0) return [];
  if (!(windowMs > 0)) throw new Error('windowMinima: windowMs must be > 0');
  const start = points[0]!.t;
  const minima = new Map<number, Point>();
  for (const p of points) {
    const w = Math.floor((p.t - start) / windowMs);
    const low = minima.get(w);
    if (low === undefined || p.v < low.v) minima.set(w, p);
  }
  return [...minima.keys()].sort((a, b) => a - b).map((w) => minima.get(w)!);
}

/** The q-quantile (0..1, nearest rank) of `values`; NaN when empty. */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}
