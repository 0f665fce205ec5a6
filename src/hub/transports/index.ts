/** Picks a transport from its `--transport` value. */
import { MemoryTransport } from './memory.js';
import { ConfigError } from '../config.js';
import { withRecentHistory } from './recent.js';
import { DatabaseInUseError, SqliteTransport } from './sqlite.js';
import type { HistoryLimits, Transport } from './transport.js';

export type { BasicTransport, HistoryLimits, HistoryResult, PoisonEntry, Transport } from './transport.js';
export { PoisonListeners, assertTransport, isReady } from './transport.js';
export { MemoryTransport } from './memory.js';
export { DatabaseInUseError, SqliteTransport } from './sqlite.js';
export { RecentUpdates, withRecentHistory } from './recent.js';

/**
 * Opens the transport named by `spec`: `memory`, `sqlite:PATH`, `redis://…` (or `redis+sentinel://…`, `redis+cluster://…`) or `nats://…`.
 * The networked ones are loaded only when used, so a single-node hub needs neither client, and
 * resume from their newest updates in memory (recent.ts: a reconnect storm must not be a read of
 * Redis or NATS per client).
 */
export async function createTransport(spec: string, limits: HistoryLimits): Promise<Transport> {
  if (spec === 'memory') return new MemoryTransport(limits);
  if (spec.startsWith('sqlite:')) {
    try {
      return new SqliteTransport(spec.slice('sqlite:'.length), limits);
    } catch (error) {
      if (error instanceof DatabaseInUseError) throw new ConfigError('--transport', error.message);
      throw error;
    }
  }
  if (/^(rediss?|redis\+sentinel|redis\+cluster):\/\//.test(spec)) {
    const { RedisTransport } = await import('./redis/index.js');
    return withRecentHistory(await RedisTransport.connect(spec, limits), limits);
  }
  if (spec.startsWith('nats://')) {
    const { NatsTransport } = await import('./nats/index.js');
    return withRecentHistory(await NatsTransport.connect(spec, limits), limits);
  }
  throw new Error(`unknown transport "${spec}"`);
}
