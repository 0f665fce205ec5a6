/** Picks a transport from its `--transport` value. */
import { MemoryTransport } from './memory.js';
import { SqliteTransport } from './sqlite.js';
import type { HistoryLimits, Transport } from './transport.js';

export type { HistoryLimits, HistoryResult, Transport } from './transport.js';
export { MemoryTransport } from './memory.js';
export { SqliteTransport } from './sqlite.js';

/** Opens the transport named by `spec` (`memory` or `sqlite:PATH`). */
export function createTransport(spec: string, limits: HistoryLimits): Transport {
  if (spec === 'memory') return new MemoryTransport(limits);
  if (spec.startsWith('sqlite:')) return new SqliteTransport(spec.slice('sqlite:'.length), limits);
  throw new Error(`unknown transport "${spec}"`);
}
