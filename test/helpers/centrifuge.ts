// The real Centrifugo JS SDK (`centrifuge` from npm) against a hub, in Node: `ws` as its WebSocket,
// the project's own EventSource for its sse transport, Node's fetch and ReadableStream for
// http_stream. And a raw WebSocket client that speaks the protocol by hand, for what the SDK
// would never send.
import { Centrifuge, type Options, type PublicationContext, type Subscription, type SubscribedContext } from 'centrifuge';
import WebSocket from 'ws';
import { EventSource } from '../../src/client/index.js';

/** The client transports of the SDK. */
export type SdkTransport = 'websocket' | 'sse' | 'http_stream';

/** A Centrifuge client for a hub at `base` (http://host:port), over `transport` (or a list, tried in order). */
export function sdkClient(base: string, transport: SdkTransport | SdkTransport[], options: Partial<Options> = {}): Centrifuge {
  const ws = base.replace(/^http/, 'ws');
  const endpoints = (Array.isArray(transport) ? transport : [transport]).map((t) => ({ transport: t, endpoint: t === 'websocket' ? `${ws}/connection/websocket` : `${base}/connection/${t}` }));
  const endpoint = endpoints.length === 1 && endpoints[0]?.transport === 'websocket' ? endpoints[0].endpoint : endpoints;
  return new Centrifuge(endpoint, {
    websocket: WebSocket,
    eventsource: EventSource,
    fetch,
    readableStream: ReadableStream,
    emulationEndpoint: `${base}/emulation`,
    minReconnectDelay: 50,
    maxReconnectDelay: 300,
    ...options,
  } as Partial<Options>);
}

/** What a subscription went through: its subscribed events and publications, in order. */
export interface Recorded {
  subscribed: SubscribedContext[];
  publications: PublicationContext[];
  /** Resolves once `check` holds (checked after every event). */
  until(check: () => boolean, what: string): Promise<void>;
}

/** Records a subscription's events. */
export function record(sub: Subscription): Recorded {
  const waiters: { check: () => boolean; resolve: () => void }[] = [];
  const settle = () => {
    for (const w of [...waiters]) {
      if (w.check()) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve();
      }
    }
  };
  const recorded: Recorded = {
    subscribed: [],
    publications: [],
    until(check) {
      if (check()) return Promise.resolve();
      return new Promise((resolve) => waiters.push({ check, resolve }));
    },
  };
  sub.on('subscribed', (ctx) => {
    recorded.subscribed.push(ctx);
    settle();
  });
  sub.on('publication', (ctx) => {
    recorded.publications.push(ctx);
    settle();
  });
  return recorded;
}

/** A client's `disconnected` and `connecting` events, in order. */
export function states(client: Centrifuge): { events: { type: string; code: number; reason: string }[]; until(check: () => boolean): Promise<void> } {
  const events: { type: string; code: number; reason: string }[] = [];
  const waiters: { check: () => boolean; resolve: () => void }[] = [];
  const push = (type: string) => (ctx: { code: number; reason: string }) => {
    events.push({ type, code: ctx.code, reason: ctx.reason });
    for (const w of [...waiters]) {
      if (!w.check()) continue;
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve();
    }
  };
  client.on('disconnected', push('disconnected'));
  client.on('connecting', push('connecting'));
  client.on('connected', () => push('connected')({ code: 0, reason: '' }));
  return {
    events,
    until: (check) => (check() ? Promise.resolve() : new Promise((resolve) => waiters.push({ check, resolve }))),
  };
}

/** A WebSocket that speaks the protocol by hand: every message received, and how it closed. */
export interface RawClient {
  ws: WebSocket;
  /** Each line of each message, parsed. */
  replies: Record<string, unknown>[];
  closed: Promise<{ code: number; reason: string }>;
  send(text: string | Buffer, options?: { binary?: boolean }): void;
  /** Resolves with the first reply `check` accepts. */
  reply(check: (r: Record<string, unknown>) => boolean, what: string): Promise<Record<string, unknown>>;
  close(): void;
}

/** Opens a raw WebSocket to a hub at `base`. */
export async function rawClient(base: string, path = '/connection/websocket', headers: Record<string, string> = {}): Promise<RawClient> {
  const ws = new WebSocket(`${base.replace(/^http/, 'ws')}${path}`, { headers });
  const replies: Record<string, unknown>[] = [];
  const waiters: { check: (r: Record<string, unknown>) => boolean; resolve: (r: Record<string, unknown>) => void }[] = [];
  ws.on('message', (data: Buffer) => {
    for (const line of data.toString('utf8').split('\n')) {
      if (line === '') continue;
      const reply = JSON.parse(line) as Record<string, unknown>;
      replies.push(reply);
      for (const w of [...waiters]) {
        if (!w.check(reply)) continue;
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(reply);
      }
    }
  });
  const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  ws.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('unexpected-response', (_req, res) => reject(new Error(`upgrade refused: ${res.statusCode}`)));
    ws.once('error', reject);
  });
  return {
    ws,
    replies,
    closed,
    send: (text, options) => ws.send(text, { binary: options?.binary ?? false }),
    reply: (check) => {
      const seen = replies.find(check);
      if (seen !== undefined) return Promise.resolve(seen);
      return new Promise((resolve) => waiters.push({ check, resolve }));
    },
    close: () => ws.close(),
  };
}
