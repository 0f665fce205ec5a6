/**
 * Bidirectional emulation: the Centrifugo protocol for clients that cannot use WebSocket (a proxy
 * in between that does not pass `Upgrade`), over plain HTTP. The server-to-client half is one
 * long response — `GET /connection/sse?cf_connect=…` (SSE: each reply is an event's data) or
 * `POST /connection/http_stream` (each reply is a line) — that carries the connect command in its
 * request. The client-to-server half is `POST /emulation` with `{session, node, data}`: the
 * session and node the connect reply named, and the commands. Behind a round-robin balancer that
 * POST may reach another node than the one holding the stream: that node forwards the commands
 * over the hub's signals (cluster.ts) and answers 404 if no node has the session's node.
 */
import type { ClientTransport } from '../core/connection.js';
import type { NodeRequest, NodeResponse } from '../../server/adapters/node.js';
import { audiencesOf } from '../mercure/oauth.js';
import { HttpError } from '../mercure/errors.js';
import type { Cluster } from './cluster.js';
import type { GatewayContext } from './context.js';
import { ClientStream, ResponseSink } from './outlet.js';
import { Session, newClientId } from './session.js';

/** The paths of bidirectional emulation. */
export const SSE_PATH = '/connection/sse';
export const HTTP_STREAM_PATH = '/connection/http_stream';
export const EMULATION_PATH = '/emulation';

const CACHE_CONTROL = 'private, no-cache, no-store, must-revalidate, max-age=0, no-transform';

/** Reads a request body of at most `max` bytes (413 past it, naming --centrifugo-max-message). */
export function readLimited(req: NodeRequest, max: number): Promise<Buffer> {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > max) return Promise.reject(new HttpError(413, 'body-too-large', `the body is ${declared} bytes; this hub accepts at most ${max} (--centrifugo-max-message)`));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > max) {
        req.off('data', onData);
        req.resume();
        reject(new HttpError(413, 'body-too-large', `the body is larger than ${max} bytes (--centrifugo-max-message)`));
        return;
      }
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.once('end', () => resolve(Buffer.concat(chunks, size)));
    req.once('error', (error) => reject(new HttpError(400, 'bad-body', `could not read the body: ${error.message}`)));
    req.once('aborted', () => reject(new HttpError(400, 'bad-body', 'the client aborted the request')));
  });
}

/** `GET /connection/sse?cf_connect=<commands>`: a session whose replies are SSE events. */
export async function handleSse(ctx: GatewayContext, req: NodeRequest, res: NodeResponse, query: URLSearchParams): Promise<void> {
  if (req.method !== 'GET') throw new HttpError(405, 'method-not-allowed', `${req.method ?? ''} is not supported on ${SSE_PATH}: GET with the connect command in cf_connect`, { allow: 'GET, OPTIONS' });
  const commands = query.get('cf_connect');
  if (commands === null || commands === '') throw new HttpError(400, 'missing-connect', 'the connect command is the cf_connect query parameter (what the Centrifugo SDK\'s sse transport sends)');
  if (Buffer.byteLength(commands) > ctx.hub.config.centrifugoMaxMessage) throw new HttpError(413, 'body-too-large', `cf_connect is larger than ${ctx.hub.config.centrifugoMaxMessage} bytes (--centrifugo-max-message)`);
  open(ctx, req, res, 'sse', commands);
}

/** `POST /connection/http_stream` with the connect command as the body: a session whose replies are lines of the response. */
export async function handleHttpStream(ctx: GatewayContext, req: NodeRequest, res: NodeResponse): Promise<void> {
  if (req.method !== 'POST') throw new HttpError(405, 'method-not-allowed', `${req.method ?? ''} is not supported on ${HTTP_STREAM_PATH}: POST the connect command`, { allow: 'POST, OPTIONS' });
  if ((req.headers['content-type'] ?? '').startsWith('application/octet-stream')) throw new HttpError(415, 'protobuf', 'this hub speaks the JSON protocol only: use the SDK\'s JSON build (not centrifuge/build/protobuf)');
  const body = await readLimited(req, ctx.hub.config.centrifugoMaxMessage);
  open(ctx, req, res, 'http_stream', body.toString('utf8'));
}

/** Opens the stream of an emulated connection and hands it its first commands. */
function open(ctx: GatewayContext, req: NodeRequest, res: NodeResponse, transport: Exclude<ClientTransport, 'websocket'>, commands: string): void {
  const { hub } = ctx;
  const connection = hub.connect({ id: newClientId(), address: req.socket.remoteAddress ?? 'unknown', protocol: 'centrifugo', transport });
  const http1 = req.httpVersionMajor < 2;
  const headers: Record<string, string> = {
    'content-type': transport === 'sse' ? 'text/event-stream; charset=utf-8' : 'text/plain; charset=utf-8',
    'cache-control': CACHE_CONTROL,
    'x-accel-buffering': 'no',
    'x-content-type-options': 'nosniff',
  };
  if (http1) {
    headers.connection = 'keep-alive';
    req.socket.setNoDelay(true);
  }
  res.writeHead(200, headers);
  // The headers at once: the client sees the stream open before the first reply.
  (res as { flushHeaders?: () => void }).flushHeaders?.();
  const config = hub.config;
  // SSE keeps the Stream's first comment (browsers ignore it); a stream of lines takes replies only.
  const outlet = new ClientStream(new ResponseSink(res, transport === 'http_stream'), { lifetime: config.writeTimeout > 0 ? config.writeTimeout : undefined, lifetimeJitter: 0.2 });
  connection.attach(outlet);
  const session = new Session(ctx, { connection, outlet, framing: transport === 'sse' ? 'sse' : 'lines', emulationId: newClientId(), audiences: audiencesOf(ctx, req) });
  session.receive(commands);
}

/** `POST /emulation` `{session, node, data}`: commands for an emulated connection, on this node or another. */
export async function handleEmulation(ctx: GatewayContext, cluster: Cluster, req: NodeRequest, res: NodeResponse): Promise<void> {
  if (req.method !== 'POST') throw new HttpError(405, 'method-not-allowed', `${req.method ?? ''} is not supported on ${EMULATION_PATH}: POST {"session", "node", "data"}`, { allow: 'POST, OPTIONS' });
  if ((req.headers['content-type'] ?? '').startsWith('application/octet-stream')) throw new HttpError(415, 'protobuf', 'this hub speaks the JSON protocol only');
  const body = await readLimited(req, ctx.hub.config.centrifugoMaxMessage);
  let request: unknown;
  try {
    request = JSON.parse(body.toString('utf8'));
  } catch {
    throw new HttpError(400, 'bad-json', 'the body must be JSON: {"session", "node", "data"}');
  }
  const { session, node, data } = (typeof request === 'object' && request !== null ? request : {}) as Record<string, unknown>;
  if (typeof session !== 'string' || session === '' || typeof node !== 'string' || typeof data !== 'string') {
    throw new HttpError(400, 'bad-emulation-request', 'expected {"session": string, "node": string, "data": string (the commands)}');
  }
  if (node === ctx.hub.node || node === '') {
    // A session gone from this node is answered 204 all the same: its stream has ended, which the client sees.
    ctx.sessions.byEmulation(session)?.receive(data);
    res.writeHead(204).end();
    return;
  }
  if ((await cluster.forward(node, session, data)) === 'no-node') {
    throw new HttpError(404, 'unknown-node', `no node "${node}" answered: the node that held the session's stream is gone (the client reconnects)`);
  }
  res.writeHead(204).end();
}
