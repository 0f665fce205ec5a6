/** `nats://…`: NATS JetStream (see transport.ts, and docs/scaling.md for how it works). */
export { NatsTransport } from './transport.js';
export { type NatsOptions, parseNatsUrl, reconnectDelay } from './url.js';
export { decode } from './codec.js';
