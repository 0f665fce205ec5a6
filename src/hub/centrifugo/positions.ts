/**
 * Offsets and epochs: Centrifugo's stream positions over the transport's history. An offset is a
 * safe-integer projection of the transport's `seq` (the same for an update on every node, so a
 * client can resume on any node); the epoch names the history's lifetime and changes when history
 * is lost, which tells the SDK that it cannot recover. Offsets are per hub, not per channel: the
 * SDK needs them increasing and comparable, nothing more, and one history serves every channel.
 * An embedder's transport without these capabilities still works, without recovery.
 */
import { randomBytes } from 'node:crypto';
import type { BasicTransport } from '../transports/transport.js';

/** The positions of one hub's history. */
export class Positions {
  readonly #transport: BasicTransport;
  /** For a transport that names no epoch: this process's. */
  readonly #fallbackEpoch = randomBytes(6).toString('base64url');
  readonly #historySize: number;
  #reading: Promise<string> | undefined;

  constructor(transport: BasicTransport, historySize: number) {
    this.#transport = transport;
    this.#historySize = historySize;
  }

  /** Whether a client can recover here: history is kept and the transport can read after a position. */
  get recoverable(): boolean {
    return this.#historySize > 0 && this.#transport.historyAfter !== undefined;
  }

  /**
   * The current epoch, read from the transport (a Redis may have lost its data since the last
   * time). Calls made while a read is under way share it: a reconnect storm subscribes thousands
   * of channels at once, and each read is a round trip.
   */
  epoch(): Promise<string> {
    if (this.#reading === undefined) {
      const read = Promise.resolve(this.#transport.epoch?.() ?? this.#fallbackEpoch);
      this.#reading = read;
      const done = () => {
        if (this.#reading === read) this.#reading = undefined;
      };
      read.then(done, done);
    }
    return this.#reading;
  }

  /** The offset of `seq` (0 for none). */
  offsetOf(seq: bigint | undefined): number {
    if (seq === undefined || seq <= 0n) return 0;
    const offset = this.#transport.offsetOf?.(seq) ?? Number(seq);
    return Number.isSafeInteger(offset) && offset > 0 ? offset : 0;
  }

  /** The `seq` of an offset a client sent. */
  seqOfOffset(offset: number): bigint {
    if (!Number.isSafeInteger(offset) || offset <= 0) return 0n;
    return this.#transport.seqOfOffset?.(offset) ?? BigInt(offset);
  }
}
