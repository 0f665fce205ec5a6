// Preloaded into the soak's hub (node --expose-gc --import ./gc-on-signal.mjs): SIGUSR2 runs a
// full garbage collection, so the soak can read the heap's floor (what is still referenced)
// instead of a point somewhere on the collector's sawtooth. Nothing of the hub is changed.
process.on('SIGUSR2', () => globalThis.gc?.());
