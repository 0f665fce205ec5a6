/** `redis://…`: Redis Streams (placeholder until the transport lands; refuses to start). */
import type { HistoryLimits, Transport } from './transport.js';

export class RedisTransport {
  static async connect(_url: string, _limits: HistoryLimits): Promise<Transport> {
    throw new Error('the redis transport is not available in this build');
  }
}
