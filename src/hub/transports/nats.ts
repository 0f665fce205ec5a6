/** `nats://…`: NATS JetStream (placeholder until the transport lands; refuses to start). */
import type { HistoryLimits, Transport } from './transport.js';

export class NatsTransport {
  static async connect(_url: string, _limits: HistoryLimits): Promise<Transport> {
    throw new Error('the nats transport is not available in this build');
  }
}
