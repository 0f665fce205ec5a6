// The load generator's counting rules, one update at a time: the reference its property tests
// compare the counters with.

/** The counts a connection must come to for updates `seqs` arriving in this order (baseline 0). */
export function sequenceReference(seqs: readonly number[]): { events: number; lost: number; duplicated: number; reordered: number; last: number } {
  let last = 0;
  const missing = new Set<number>();
  let lost = 0;
  let duplicated = 0;
  let reordered = 0;
  for (const s of seqs) {
    if (s > last) {
      for (let k = last + 1; k < s; k++) missing.add(k);
      lost += s - last - 1;
      last = s;
    } else if (missing.delete(s)) {
      lost--;
      reordered++;
    } else duplicated++;
  }
  return { events: seqs.length, lost, duplicated, reordered, last };
}
