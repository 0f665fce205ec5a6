/** Koa adapter. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Stream, StreamOptions } from '../stream.js';
import { createStream } from './node.js';

/** The part of a Koa context the adapter uses. */
export interface KoaContextLike {
  req: IncomingMessage;
  res: ServerResponse;
  respond?: boolean;
}

/**
 * Starts an SSE stream in a Koa middleware. `ctx.respond = false` tells Koa (and koa-compress,
 * which works on `ctx.body`) to leave the response to us; headers set with `ctx.set` are kept.
 */
export function koaStream(ctx: KoaContextLike, options: StreamOptions = {}): Stream {
  ctx.respond = false;
  return createStream(ctx.req, ctx.res, options);
}
