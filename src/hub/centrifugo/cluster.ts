/**
 * What the Centrifugo front-end's nodes tell each other, over the hub's signals (core/signals.ts:
 * Redis Pub/Sub, NATS core subjects, or the process with one node) — never through history:
 * - `emulation`: the commands of a bidirectional-SSE or HTTP-streaming client whose POST reached
 *   a node that does not hold its stream, forwarded to the node that does, which acknowledges;
 * - `join` / `leave`: a subscriber came to or left a channel on some node, for the clients
 *   everywhere that asked for join and leave pushes;
 * - `disconnect` / `unsubscribe`: the server API's, for a user's clients wherever they are;
 * - `info`: each node's counts, every few seconds, for `/api/info`.
 */
import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import { ALL_NODES } from '../core/signals.js';
import { isExactSelector } from '../core/selector.js';
import type { Subscriber } from '../core/subscriber.js';
import { Raw, pushJson } from './codec.js';
import type { GatewayContext } from './context.js';
import type { Disconnect } from './errors.js';
import { rawOf } from './session.js';

/** How long a forwarded emulation request waits for the node holding its session. */
const FORWARD_TIMEOUT_MS = 3000;
/** How often a node tells the others its counts, and how long they remember it. */
const INFO_INTERVAL_MS = 5000;
const INFO_EXPIRY_MS = 3 * INFO_INTERVAL_MS;

/** A node's counts, as `/api/info` answers them. */
export interface NodeInfo {
  uid: string;
  name: string;
  version: string;
  num_clients: number;
  num_users: number;
  num_channels: number;
  num_subs: number;
  uptime: number;
}

/** Which clients a server-API command is for. */
export interface ClientFilter {
  user: string;
  client?: string | undefined;
  session?: string | undefined;
  whitelist?: readonly string[] | undefined;
}

type Signal =
  | { t: 'emulation'; id: string; from: string; session: string; data: string }
  | { t: 'emulation-ack'; id: string; found: boolean }
  | { t: 'join' | 'leave'; channels: string[]; info: { client: string; user: string; conn_info?: string | undefined } }
  | ({ t: 'disconnect'; code: number; reason: string } & ClientFilter)
  | ({ t: 'unsubscribe'; channel: string } & ClientFilter)
  | { t: 'info'; node: NodeInfo };

/** The Centrifugo front-end's side of the cluster, on one node. */
export class Cluster {
  readonly #ctx: GatewayContext;
  readonly #acks = new Map<string, (found: boolean) => void>();
  readonly #nodes = new Map<string, { info: NodeInfo; at: number }>();
  readonly #stop: (() => void)[] = [];
  #timer: NodeJS.Timeout | undefined;

  constructor(ctx: GatewayContext) {
    this.#ctx = ctx;
    const { hub } = ctx;
    this.#stop.push(hub.signals.listen((message) => this.#receive(message)));
    if (hub.config.centrifugoJoinLeave) {
      const joined = (s: Subscriber) => this.#announce('join', s);
      const left = (s: Subscriber) => this.#announce('leave', s);
      hub.on('subscribed', joined);
      hub.on('unsubscribed', left);
      this.#stop.push(() => hub.off('subscribed', joined), () => hub.off('unsubscribed', left));
    }
    // A transport that is down rejects; the next interval sends again (an unhandled rejection would end the process).
    this.#timer = setInterval(() => void this.#send(ALL_NODES, { t: 'info', node: this.nodeInfo() }).catch(() => {}), INFO_INTERVAL_MS);
    this.#timer.unref();
  }

  /** Resolves once this node receives signals (an emulation request forwarded to it before would be lost). */
  async ready(): Promise<void> {
    await this.#ctx.hub.signals.ready();
    await this.#send(ALL_NODES, { t: 'info', node: this.nodeInfo() });
  }

  /** Hands emulation commands to the node holding the session: `delivered`, `unknown-session` (that node no longer has it), or `no-node` (no answer). */
  forward(node: string, session: string, data: string): Promise<'delivered' | 'unknown-session' | 'no-node'> {
    const id = randomUUID();
    return new Promise((resolve) => {
      const done = (outcome: 'delivered' | 'unknown-session' | 'no-node') => {
        clearTimeout(timer);
        this.#acks.delete(id);
        resolve(outcome);
      };
      const timer = setTimeout(() => done('no-node'), FORWARD_TIMEOUT_MS);
      this.#acks.set(id, (found) => done(found ? 'delivered' : 'unknown-session'));
      this.#send(node, { t: 'emulation', id, from: this.#ctx.hub.node, session, data }).catch(() => done('no-node'));
    });
  }

  /** Disconnects a user's clients on every node. */
  disconnect(filter: ClientFilter, advice: Disconnect): Promise<void> {
    return this.#send(ALL_NODES, { t: 'disconnect', ...filter, code: advice.code, reason: advice.reason });
  }

  /** Unsubscribes a user's clients from a channel on every node. */
  unsubscribe(filter: ClientFilter, channel: string): Promise<void> {
    return this.#send(ALL_NODES, { t: 'unsubscribe', ...filter, channel });
  }

  /** This node's counts, and the others' as they last told them. */
  nodes(): NodeInfo[] {
    const now = Date.now();
    const others: NodeInfo[] = [];
    for (const [node, { info, at }] of this.#nodes) {
      if (now - at > INFO_EXPIRY_MS) this.#nodes.delete(node);
      else if (node !== this.#ctx.hub.node) others.push(info);
    }
    return [this.nodeInfo(), ...others.sort((a, b) => a.uid.localeCompare(b.uid))];
  }

  /** This node's counts: its client connections (any protocol), their users, channels and subscriptions. */
  nodeInfo(): NodeInfo {
    const { hub } = this.#ctx;
    const users = new Set<string>();
    const channels = new Set<string>();
    let subs = 0;
    for (const s of hub.subscribers) {
      users.add(s.subject ?? '');
      for (const selector of s.selectors) channels.add(selector);
      subs += s.selectors.length;
    }
    return { uid: hub.node, name: hostname(), version: this.#ctx.version, num_clients: hub.connections.size, num_users: users.size, num_channels: channels.size, num_subs: subs, uptime: Math.floor((Date.now() - hub.startedAt) / 1000) };
  }

  close(): void {
    clearInterval(this.#timer);
    for (const stop of this.#stop) stop();
    for (const resolve of this.#acks.values()) resolve(false);
    this.#acks.clear();
  }

  #announce(t: 'join' | 'leave', s: Subscriber): void {
    const channels = s.typedSelectors.filter(isExactSelector).map((selector) => selector.value);
    if (channels.length === 0) return;
    const conn = rawOf(s.payload)?.json;
    void this.#send(ALL_NODES, { t, channels, info: { client: s.connection?.id ?? s.id, user: s.subject ?? '', conn_info: conn } }).catch(() => {});
  }

  #send(to: string, signal: Signal): Promise<void> {
    return this.#ctx.hub.signals.send(to, JSON.stringify(signal));
  }

  #receive(message: string): void {
    let signal: Signal;
    try {
      signal = JSON.parse(message) as Signal;
    } catch {
      return;
    }
    const { sessions } = this.#ctx;
    switch (signal.t) {
      case 'emulation': {
        const session = sessions.byEmulation(signal.session);
        if (session !== undefined) session.receive(signal.data);
        void this.#send(signal.from, { t: 'emulation-ack', id: signal.id, found: session !== undefined }).catch(() => {});
        return;
      }
      case 'emulation-ack':
        this.#acks.get(signal.id)?.(signal.found);
        return;
      case 'join':
      case 'leave': {
        const info = { client: signal.info.client, user: signal.info.user, conn_info: signal.info.conn_info === undefined ? undefined : new Raw(signal.info.conn_info) };
        const wanted = new Set(signal.channels);
        for (const session of sessions) {
          for (const channel of session.joinLeaveChannels()) if (wanted.has(channel)) session.push(pushJson(channel, signal.t, { info }));
        }
        return;
      }
      case 'disconnect':
        for (const session of [...sessions]) if (matches(session.user, session.id, session.emulationId, signal)) session.disconnect('disconnected', { code: signal.code, reason: signal.reason });
        // The Mercure front-end's streams of that user end too (their clients reconnect, as SSE clients do).
        if (signal.client === undefined && signal.session === undefined) {
          for (const s of [...this.#ctx.hub.subscribers]) if (s.protocol === 'sse' && (s.subject ?? '') === signal.user && !(signal.whitelist ?? []).includes(s.id)) s.outlet?.close('disconnected');
        }
        return;
      case 'unsubscribe':
        for (const session of sessions) if (matches(session.user, session.id, session.emulationId, signal)) session.unsubscribe(signal.channel);
        return;
      case 'info':
        this.#nodes.set(signal.node.uid, { info: signal.node, at: Date.now() });
        return;
    }
  }
}

function matches(user: string, client: string, session: string | undefined, filter: ClientFilter): boolean {
  if (user !== filter.user) return false;
  if (filter.client !== undefined && filter.client !== '' && filter.client !== client) return false;
  if (filter.session !== undefined && filter.session !== '' && filter.session !== session) return false;
  return !(filter.whitelist ?? []).includes(client);
}
