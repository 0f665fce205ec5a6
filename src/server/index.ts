/** `ssehub/server`: correct, proxy-proof, bounded SSE streams for any Node framework. */
export { type Broadcastable, broadcast, toEventBytes } from './broadcast.js';
export { type HeaderMap, headerToText, lastEventIdFrom, streamHeaders, textToHeader } from './headers.js';
export { Heartbeat, type HeartbeatTarget, activeHeartbeats, sharedHeartbeat } from './heartbeat.js';
export type { Sink } from './sink.js';
export { type CloseOptions, type CloseReason, type SlowConsumerPolicy, Stream, type StreamEvents, type StreamOptions, jitter } from './stream.js';
export { type Closable, type DrainOptions, StreamSet, closeGracefully } from './stream-set.js';
export { type NodeRequest, type NodeResponse, createStream, lastEventIdOf } from './adapters/node.js';
export { expressStream } from './adapters/express.js';
export { type FastifyReplyLike, type FastifyRequestLike, fastifyStream } from './adapters/fastify.js';
export { type KoaContextLike, koaStream } from './adapters/koa.js';
export { type FetchStreamOptions, type HonoContextLike, fetchStream, honoStream } from './adapters/fetch.js';
