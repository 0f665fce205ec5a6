// What the side-by-side benchmark measures of one peer.

/** Figures of one peer; undefined where a scenario was not run or failed. */
export interface Figures {
  cpuPerEvent?: number; // µs of server CPU per delivered event (fan-out)
  systemShare?: number; // share of that CPU spent in the kernel
  deliveriesPerSecond?: number;
  fanoutLost?: number;
  fanoutDuplicated?: number;
  fanoutReordered?: number;
  loadgenPerEvent?: number; // µs of load-generator CPU per received event (fan-out)
  p50?: number; // ms
  p99?: number;
  max?: number;
  latencyLost?: number;
  rssPerConnection?: number; // bytes
  idleConnections?: number;
  stormMs?: number;
  stormLost?: number;
  stormDuplicated?: number;
  publishPerSecond?: number;
  errors: string[];
}

