/** The hub as a library: start one in-process (tests, embedding) or run `ssehub serve`. */
export { type HubConfig, SETTINGS, type Setting, envName, loadConfig, parseDuration, parseSize } from './config.js';
export { ConfigError, HttpError } from './errors.js';
export { Hub } from './hub.js';
export { type RunningHub, startHub } from './serve.js';
export { RESYNC_EVENT } from './subscribe.js';
export { type Transport, type HistoryResult, MemoryTransport, SqliteTransport, createTransport } from './transports/index.js';
export type { Update } from './update.js';
