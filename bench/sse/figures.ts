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
  burstP50?: number; // ms from the start of the fan-out burst to each delivery
  burstP99?: number;
  burstMax?: number;
  steadyCpuPerEvent?: number; // µs of server CPU per delivered event at the steady rate (one event per write)
  p50?: number; // ms
  p99?: number;
  max?: number;
  latencyLost?: number;
  overloadRate?: number; // updates published per second
  overloadDeliveriesPerSecond?: number; // delivered / (last delivery − start)
  overloadP50?: number; // ms from each update's slot in the schedule
  overloadP99?: number;
  overloadMax?: number;
  overloadLost?: number;
  overloadDuplicated?: number;
  overloadReordered?: number;
  slowCpuPerEvent?: number; // µs of server CPU per delivered event, fan-out with slow readers among the subscribers
  slowDeliveriesPerSecond?: number; // to the others (not the slow readers)
  slowP50?: number; // ms from the burst's start, the others only
  slowP99?: number;
  slowAllMs?: number; // until the slow readers had everything too
  slowLost?: number;
  slowDuplicated?: number;
  slowReordered?: number;
  rssPerConnection?: number; // bytes
  idleConnections?: number;
  stormMs?: number;
  stormLost?: number;
  stormDuplicated?: number;
  publishPerSecond?: number;
  errors: string[];
}

