/**
 * Publishing when replicas must have an update before it is answered 200 (option `replicas=N`):
 * Redis replicates asynchronously, so a failover can lose a write its old primary acknowledged.
 * The publish scripts and one `WAIT N timeout` go in one pipeline: they run on one connection to
 * one node (a cluster routes the pipeline by the scripts' keys, which share one slot), and WAIT
 * counts the replicas that have every write of that connection. Publishes that arrive while a
 * pipeline is out go together in the next one (group commit): one WAIT for many publishes.
 *
 * When WAIT falls short, those publishes are answered 503 (stored on the primary, not
 * replicated), the connection is reset so that the publishes queued behind that WAIT are not run
 * late, and later publishes are refused at once until a probe (WAIT alone) sees the replicas again.
 */
import { TransportUnavailableError } from '../../core/errors.js';
import type { RedisClient } from './client.js';
import { PUBLISH } from './scripts.js';
import type { RedisSettings } from './url.js';

/** Publishes per pipeline at most. */
const MAX_BATCH = 500;
/** Pause before a publish the cluster redirected because its slot is moving (ASK, TRYAGAIN) or the cluster is down is sent again. */
const REDIRECT_PAUSE_MS = 100;

interface Pending {
  keys: string[];
  args: (string | number)[];
  resolve: (entryId: string) => void;
  reject: (error: unknown) => void;
  /** After this (2 × timeout from the publish), a redirected publish is not sent again. */
  deadline: number;
}

/** Runs publish scripts whose success needs `replicas` replicas to acknowledge them. */
export class ReplicatedPublisher {
  readonly #client: RedisClient;
  readonly #settings: Pick<RedisSettings, 'label' | 'replicas' | 'timeout' | 'stream'>;
  #queue: Pending[] = [];
  #sending = false;
  /** Why publishes are refused until a probe sees enough replicas again, or undefined. */
  #lagging: string | undefined;
  #probing = false;

  /** Publishes over `client`, a connection of their own (WAIT holds it until the replicas answer). */
  constructor(client: RedisClient, settings: Pick<RedisSettings, 'label' | 'replicas' | 'timeout' | 'stream'>) {
    this.#client = client;
    this.#settings = settings;
  }

  /** Whether publishes are refused for lagging replicas. */
  get lagging(): boolean {
    return this.#lagging !== undefined;
  }

  /** Runs the publish script with `keys` and `args` and resolves with its entry ID once `replicas` replicas have it. */
  publish(keys: string[], args: (string | number)[]): Promise<string> {
    if (this.#lagging !== undefined) {
      void this.probe();
      return Promise.reject(this.#refusal());
    }
    const { timeout, label } = this.#settings;
    return new Promise((resolve, reject) => {
      // The answer comes within 2 × timeout (the script, then WAIT), whatever the cluster does meanwhile.
      const timer = setTimeout(() => {
        const queued = this.#queue.indexOf(pending);
        if (queued !== -1) this.#queue.splice(queued, 1);
        reject(new TransportUnavailableError(`${label}: no answer within ${2 * timeout} ms${queued === -1 ? ' (the update may have been stored)' : ''}`));
      }, 2 * timeout);
      const pending: Pending = {
        keys,
        args,
        resolve: (entryId) => {
          clearTimeout(timer);
          resolve(entryId);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
        deadline: Date.now() + 2 * timeout,
      };
      this.#queue.push(pending);
      if (!this.#sending) void this.#drain();
    });
  }

  /** Asks whether enough replicas have this connection's writes (WAIT behind a keyed command, so that a cluster sends it to the stream's node); publishes are taken again once they do. */
  async probe(): Promise<void> {
    if (this.#probing || this.#lagging === undefined) return;
    this.#probing = true;
    try {
      const replies = await this.#client.pipeline().call('EXISTS', this.#settings.stream).call('WAIT', this.#settings.replicas, this.#settings.timeout).exec();
      const wait = replies?.[1];
      if (wait !== undefined && wait[0] === null && Number(wait[1]) >= this.#settings.replicas) this.#lagging = undefined;
    } catch {
      // Not reachable: the next publish or maintenance tick probes again.
    } finally {
      this.#probing = false;
    }
  }

  async #drain(): Promise<void> {
    this.#sending = true;
    try {
      while (this.#queue.length > 0) {
        const batch = this.#queue.splice(0, MAX_BATCH);
        if (this.#lagging !== undefined) {
          for (const p of batch) p.reject(this.#refusal());
          continue;
        }
        await this.#send(batch, 'EVALSHA');
      }
    } finally {
      this.#sending = false;
    }
  }

  /**
   * One pipeline: the batch's scripts, then WAIT. A script unknown to the server (first use, a
   * restart, a new primary) is sent again with EVAL. A script a cluster node redirected did not
   * run: it is sent again once ioredis knows where its slot is (ioredis follows redirections of
   * single commands, not of a pipeline holding a write).
   */
  async #send(batch: Pending[], command: 'EVALSHA' | 'EVAL'): Promise<void> {
    const { replicas, timeout, label } = this.#settings;
    const pipeline = this.#client.pipeline();
    for (const p of batch) pipeline.call(command, command === 'EVALSHA' ? PUBLISH.sha : PUBLISH.lua, p.keys.length, ...p.keys, ...p.args);
    pipeline.call('WAIT', replicas, timeout);
    let replies: [Error | null, unknown][];
    try {
      replies = (await pipeline.exec()) ?? [];
    } catch (error) {
      for (const p of batch) p.reject(error);
      return;
    }
    const [waitError, waitReply] = replies[batch.length] ?? [new Error('Connection is closed.'), undefined];
    const acked = waitError === null ? Number(waitReply) : undefined;
    const unknownScript: Pending[] = [];
    const redirected: Pending[] = [];
    /** Whether a redirection says to wait (the slot is moving, or the cluster is down) rather than where to go. */
    let wait = false;
    let wrote = false;
    for (const [i, p] of batch.entries()) {
      const [error, entryId] = replies[i] ?? [new Error('Connection is closed.'), undefined];
      wrote ||= error === null;
      if (error !== null && error.message.startsWith('NOSCRIPT')) unknownScript.push(p);
      else if (error !== null && /^(MOVED|ASK|TRYAGAIN|CLUSTERDOWN) /.test(error.message) && Date.now() < p.deadline) {
        redirected.push(p);
        wait ||= !error.message.startsWith('MOVED ');
      }
      else if (error !== null) p.reject(error);
      else if (acked === undefined) p.reject(waitError);
      else if (acked < replicas) p.reject(this.#unreplicated(acked));
      else p.resolve(String(entryId));
    }
    // WAIT answered on the stream's node (a script ran there, or was unknown there): too few replicas.
    if ((wrote || unknownScript.length > 0) && acked !== undefined && acked < replicas) {
      this.#lagging = `only ${acked} of the ${replicas} replica${replicas === 1 ? '' : 's'} required acknowledged a publish within ${timeout} ms`;
      // Drops what was sent behind this WAIT before Redis runs it: each would wait as long, and run late.
      if (wrote) this.#client.disconnect(true);
      // Not run: sending them again would wait as long, for the same answer.
      for (const p of unknownScript.splice(0)) p.reject(this.#refusal());
    }
    if (unknownScript.length > 0 && command === 'EVALSHA') await this.#send(unknownScript, 'EVAL');
    else for (const p of unknownScript) p.reject(new Error(`${label}: the publish script could not be loaded`));
    if (redirected.length > 0) {
      // A keyed command on its own: ioredis follows its MOVED and learns the slot's node.
      await this.#client.call('EXISTS', this.#settings.stream).catch(() => undefined);
      if (wait) await new Promise((resolve) => setTimeout(resolve, REDIRECT_PAUSE_MS));
      this.#queue.unshift(...redirected);
    }
  }

  #unreplicated(acked: number): TransportUnavailableError {
    const { replicas, timeout, label } = this.#settings;
    return new TransportUnavailableError(
      `${label}: the update is stored on the primary, but only ${acked} of the ${replicas} replica${replicas === 1 ? '' : 's'} required acknowledged it within ${timeout} ms, so a failover could lose it (option replicas=${replicas}); publishing it again with the same id answers 409 while it is kept`,
    );
  }

  #refusal(): TransportUnavailableError {
    const { replicas, label } = this.#settings;
    return new TransportUnavailableError(`${label}: ${this.#lagging ?? 'replicas lag'}; publishes are refused until ${replicas === 1 ? 'a replica is' : `${replicas} replicas are`} back (option replicas=${replicas})`);
  }
}
