/** `redis://…`: Redis Streams (see transport.ts, and docs/scaling.md for how it works). */
export { RedisTransport } from './transport.js';
export { type RedisSettings, describeConnectError, parseRedisUrl } from './url.js';
export { decodeEntry, seqOfEntryId } from './codec.js';
