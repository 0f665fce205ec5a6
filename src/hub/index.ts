/**
 * The hub as a library: start one in-process (tests, embedding) or run `ssehub serve`.
 *
 * `startHub(config, { transport?, logger?, tracing? })` runs a whole hub; `running.hub` is its
 * protocol-neutral core (publish, join, history, subscribers); the errors it throws are typed.
 */
export { ConfigError, type HubConfig, SETTINGS, type Setting, envName, loadConfig, parseDuration, parseSize } from './config.js';
export * from './errors.js';
export { Connections, type ConnectionEnd, Hub, type HubEvents, type NotReady } from './core/hub.js';
export { type JoinRequest, type Resume, type Subscription, newSubscriberId } from './core/join.js';
export { type ClientTransport, Connection, type ConnectionInit } from './core/connection.js';
export { type Encoder, SSE_ENCODER } from './core/encoder.js';
export { type NodeSignals, LocalSignals } from './core/signals.js';
export type { EndReason, Outlet } from './core/outlet.js';
export { Subscriber } from './core/subscriber.js';
export type { Grant } from './core/grant.js';
export { MAX_TOPICS, type Update, type UpdateInput, newUpdateId, toUpdate, updateProblem } from './core/update.js';
export { type RunningHub, type StartOptions, startHub } from './serve.js';
export { RESYNC_EVENT } from '../protocol/index.js';
export { type HistoryLimits, type HistoryResult, MemoryTransport, type PoisonEntry, SqliteTransport, type BasicTransport, type Transport, assertTransport, createTransport } from './transports/index.js';
