/** The sink under a stream, where its bytes go: a Node response or socket, or the controller of a Fetch `Response` body. */
export interface Sink {
  /** Writes bytes; `false` means the sink's buffer is full and the stream should wait for `ondrain`. */
  write(chunk: Uint8Array): boolean;
  /** Sends what was written, then closes. */
  end(): void;
  /** Closes at once; bytes not yet sent are discarded (the client never dispatches a cut-off event). */
  destroy(): void;
  /** Set by the stream: called when a full buffer has room again. */
  ondrain: (() => void) | null;
  /** Set by the stream: called once when the sink has closed, for whatever reason. */
  onclose: ((error?: Error) => void) | null;
  /**
   * `false` once the underlying connection is gone. Checked on every heartbeat as a safety net:
   * whatever way a close notification gets lost, a dead stream is cleaned up within one interval.
   */
  alive?(): boolean;
}
