/** Express adapter. Express's req/res are Node's, so this is `createStream` under a name Express users look for. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Stream, StreamOptions } from '../stream.js';
import { createStream } from './node.js';

/**
 * Starts an SSE stream in an Express handler. The `no-transform` cache directive it sends makes
 * the `compression()` middleware leave the stream alone, so events are neither gzipped nor held back.
 */
export function expressStream(req: IncomingMessage, res: ServerResponse, options: StreamOptions = {}): Stream {
  return createStream(req, res, options);
}
