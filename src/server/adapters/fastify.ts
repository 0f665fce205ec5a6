/** Fastify adapter. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Stream, StreamOptions } from '../stream.js';
import { createStream } from './node.js';

/** The part of a Fastify request the adapter uses. */
export interface FastifyRequestLike {
  raw: IncomingMessage;
}

/** The part of a Fastify reply the adapter uses. */
export interface FastifyReplyLike {
  raw: ServerResponse;
  hijack(): unknown;
  getHeaders?(): Record<string, number | string | string[] | undefined>;
}

/**
 * Starts an SSE stream in a Fastify handler. The reply is hijacked so Fastify's serializers and
 * onSend hooks (where @fastify/compress works) never see the stream; headers already set on the
 * reply (CORS, for instance) are carried over to the raw response.
 */
export function fastifyStream(request: FastifyRequestLike, reply: FastifyReplyLike, options: StreamOptions = {}): Stream {
  const pending = reply.getHeaders?.() ?? {};
  reply.hijack();
  for (const [name, value] of Object.entries(pending)) {
    if (value !== undefined) reply.raw.setHeader(name, value);
  }
  return createStream(request.raw, reply.raw, options);
}
