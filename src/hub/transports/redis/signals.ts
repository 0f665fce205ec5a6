/**
 * Signals between the nodes on one Redis (core/signals.ts) as Redis Pub/Sub messages, never
 * written to the stream: every node subscribes, on a connection of its own (a subscribed
 * connection runs no other command), to `{PREFIX}:signals:all` and `{PREFIX}:signals:<its ID>`;
 * a message is PUBLISHed on the transport's command connection. On a Redis Cluster, PUBLISH
 * reaches the subscribers on every node of the cluster.
 */
import { ALL_NODES, type NodeSignals, SignalListeners } from '../../core/signals.js';
import type { RedisClient } from './client.js';

/** Signals of node `node`. */
export class RedisSignals implements NodeSignals {
  readonly #subscriber: RedisClient;
  readonly #publish: (channel: string, message: string) => Promise<unknown>;
  readonly #prefix: string;
  readonly #listeners = new SignalListeners();
  readonly #subscribed: Promise<void>;
  #closed = false;

  /** `subscriber`: a connection for this alone (not yet connected); `publish`: PUBLISH on another. `prefix`: `{KEY}`. */
  constructor(subscriber: RedisClient, publish: (channel: string, message: string) => Promise<unknown>, prefix: string, node: string) {
    this.#subscriber = subscriber;
    this.#publish = publish;
    this.#prefix = prefix;
    subscriber.on('message', (_channel: string, message: string) => this.#listeners.deliver(message));
    // ioredis subscribes again after a reconnect; an error is only logged by the transport's own connections.
    subscriber.on('error', () => {});
    this.#subscribed = subscriber
      .connect()
      .then(() => subscriber.subscribe(this.#channel(ALL_NODES), this.#channel(node)))
      .then(
        () => {},
        () => new Promise<void>((resolve) => subscriber.once('ready', () => resolve())),
      );
    // Not reachable now: ioredis keeps reconnecting, and subscribes again when it is (autoResubscribe).
    this.#subscribed.catch(() => {});
  }

  ready(): Promise<void> {
    return this.#subscribed;
  }

  #channel(node: string): string {
    return `${this.#prefix}:signals:${node === ALL_NODES ? 'all' : `node:${node}`}`;
  }

  async send(to: string, message: string): Promise<void> {
    if (this.#closed) return;
    await this.#publish(this.#channel(to), message);
  }

  listen(listener: (message: string) => void): () => void {
    return this.#listeners.add(listener);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#listeners.clear();
    this.#subscriber.disconnect();
  }
}
