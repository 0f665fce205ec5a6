/**
 * Signals: messages between the nodes of a cluster that are not updates. Some things a front-end
 * does concern a client held by another node — a command of a bidirectional-SSE client whose
 * POST a round-robin balancer sent elsewhere, a join or leave to push to subscribers everywhere,
 * a server-API disconnect of a user connected anywhere — and must reach that node now, but must
 * not be stored in history or replayed to anyone. A transport that links nodes offers them as a
 * capability (Redis PUBLISH/SUBSCRIBE, NATS core subjects); with one node (memory, sqlite) they
 * stay in the process. Delivery is at most once: a message to a node that is gone is lost, so a
 * sender that needs to know waits for an answer of its own.
 */

/** Messages to and from this node. */
export interface NodeSignals {
  /** Sends `message` to node `to`, or with `*` to every node, this one included. Resolves once the broker has it. */
  send(to: string, message: string): Promise<void>;
  /** Resolves once messages sent to this node are received (a message sent to it before is lost). */
  ready(): Promise<void>;
  /** Calls `listener` with every message sent to this node or to every node; returns a function that stops it. */
  listen(listener: (message: string) => void): () => void;
  /** Stops listening and releases the connection. */
  close(): Promise<void>;
}

/** Every node, as a signal's address. */
export const ALL_NODES = '*';

/** Listeners of a node's signals (a helper for the transports that have them). */
export class SignalListeners {
  readonly #listeners = new Set<(message: string) => void>();

  /** Adds a listener; returns a function that removes it. */
  add(listener: (message: string) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Hands a message to every listener; one that throws does not keep it from the others. */
  deliver(message: string): void {
    for (const listener of this.#listeners) {
      try {
        listener(message);
      } catch (error) {
        process.emitWarning(`a signal listener threw: ${(error as Error).stack ?? String(error)}`);
      }
    }
  }

  clear(): void {
    this.#listeners.clear();
  }
}

/** Signals within one process: the only node there is (the memory and sqlite transports). */
export class LocalSignals implements NodeSignals {
  readonly #node: string;
  readonly #listeners = new SignalListeners();
  #closed = false;

  constructor(node: string) {
    this.#node = node;
  }

  async send(to: string, message: string): Promise<void> {
    if (this.#closed || (to !== ALL_NODES && to !== this.#node)) return;
    // Never synchronously: a sender must not be re-entered by its own message.
    setImmediate(() => {
      if (!this.#closed) this.#listeners.deliver(message);
    });
  }

  async ready(): Promise<void> {}

  listen(listener: (message: string) => void): () => void {
    return this.#listeners.add(listener);
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#listeners.clear();
  }
}
