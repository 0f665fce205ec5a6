/**
 * Signals between the nodes on one NATS (core/signals.ts) as core NATS messages, never stored in
 * the JetStream stream: every node listens on `PREFIX.signals.all` and on a subject of its own,
 * `PREFIX.signals.node.<hash of its ID>` (a node ID holds characters a subject token may not).
 */
import { createHash } from 'node:crypto';
import type { NatsConnection, Subscription } from 'nats';
import { ALL_NODES, type NodeSignals, SignalListeners } from '../../core/signals.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The subject token of a node. */
function nodeToken(node: string): string {
  return createHash('sha256').update(node).digest('base64url').slice(0, 22);
}

/** Signals of node `node` over `nc`. */
export class NatsSignals implements NodeSignals {
  readonly #nc: NatsConnection;
  readonly #prefix: string;
  readonly #listeners = new SignalListeners();
  readonly #subscriptions: Subscription[];

  constructor(nc: NatsConnection, prefix: string, node: string) {
    this.#nc = nc;
    this.#prefix = prefix;
    const callback = (error: unknown, msg: { data: Uint8Array }) => {
      if (error === null) this.#listeners.deliver(decoder.decode(msg.data));
    };
    this.#subscriptions = [`${prefix}.signals.all`, this.#subject(node)].map((subject) => nc.subscribe(subject, { callback }));
  }

  #subject(node: string): string {
    return node === ALL_NODES ? `${this.#prefix}.signals.all` : `${this.#prefix}.signals.node.${nodeToken(node)}`;
  }

  /** Once the server has this node's subscriptions (a flush round trip). */
  async ready(): Promise<void> {
    if (!this.#nc.isClosed()) await this.#nc.flush().catch(() => {});
  }

  async send(to: string, message: string): Promise<void> {
    if (this.#nc.isClosed()) return;
    // Buffered by the client while it reconnects; lost if it never does (signals are at most once).
    this.#nc.publish(this.#subject(to), encoder.encode(message));
  }

  listen(listener: (message: string) => void): () => void {
    return this.#listeners.add(listener);
  }

  async close(): Promise<void> {
    this.#listeners.clear();
    if (this.#nc.isClosed()) return;
    for (const subscription of this.#subscriptions) subscription.unsubscribe();
  }
}
