/**
 * Which `--workers` process takes new connections. The workers accept from the one listening
 * socket themselves (node:cluster's SCHED_NONE), so a reconnect storm waits in the kernel's accept
 * queue, not in a process; and each worker stops accepting (closes its copy of the listening
 * socket, which the others keep open) while it holds more than its share, or comes near its
 * descriptor limit, then listens again.
 *
 * Why not node:cluster's round-robin: its primary accepts every connection and hands it to a
 * worker over IPC, one at a time per worker, each waiting for the worker's next turn of its event
 * loop. In a storm of 120,000 reconnections the workers took ~800 connections a second between
 * them, the primary held the rest, reached its 20,000 descriptors, and from then on libuv accepted
 * and closed connections to stay alive: a million resets, 150 s until everyone was back
 * (docs/benchmarks.md). Accepting in the workers takes a whole queue per turn; left alone it is
 * uneven (one worker took 20,000 and had to shed), which the balance here prevents.
 *
 * The primary (`AdmissionBoard`) is told every worker's open connections four times a second and
 * tells each whether to accept: those more than `slack` above the least loaded stop until they are
 * within half of it. One worker, the least loaded of those listening, is the keeper: it is never
 * stopped, and only while it listens are others stopped (were the last copy of the socket closed,
 * the kernel would reset its queue and refuse the next connections). A worker at its descriptor
 * ceiling is stopped the same way; one that comes within a few descriptors of running out
 * before the primary has answered (`WorkerAdmission`) stops on its own, unless it is the only one
 * listening.
 */
import type { Worker } from 'node:cluster';
import { readFileSync } from 'node:fs';
import { Server as NetServer, type Server } from 'node:net';
import type { Logger } from 'pino';

/** How often a worker reports its connections, and the primary decides. */
export const ADMISSION_TICK_MS = 250;

/** What workers and the primary say to each other about accepting. */
export type AdmissionMessage =
  /** worker → primary: its open connections, whether it is listening, and its descriptor ceiling (`null`: none). */
  | { type: 'ssehub:admission-load'; connections: number; accepting: boolean; ceiling: number | null }
  /**
   * primary → worker: accept new connections (`on`) or leave them to the others; `keep`: it is
   * the only one listening, and keeps listening whatever its load, so that the socket is never
   * left without one.
   */
  | { type: 'ssehub:admission-set'; on: boolean; keep: boolean };

export function isAdmissionMessage(message: unknown): message is AdmissionMessage {
  return typeof message === 'object' && message !== null && typeof (message as { type?: unknown }).type === 'string' && (message as { type: string }).type.startsWith('ssehub:admission-');
}

/** The process's open-file limit (`Infinity` where it cannot be read or is unlimited). */
export function descriptorLimit(limits: string | undefined = readLimits()): number {
  const match = /^Max open files\s+(\d+|unlimited)/m.exec(limits ?? '');
  return match === null || match[1] === 'unlimited' ? Number.POSITIVE_INFINITY : Number(match[1]);
}

/**
 * The most connections a process should hold: its open-file limit less a reserve for its own
 * files and connections (the transport's, webhooks', JWKS) and for the connections accepted while
 * the primary is told. `Infinity` where the limit cannot be read.
 */
export function descriptorCeiling(limits: string | undefined = readLimits()): number {
  const limit = descriptorLimit(limits);
  return Number.isFinite(limit) ? Math.max(1, limit - Math.max(256, Math.ceil(limit / 20))) : limit;
}

/** Where a worker stops at once, without asking the primary: just short of running out (a few dozen kept for its own files). */
export function hardDescriptorCeiling(limits: string | undefined = readLimits()): number {
  const limit = descriptorLimit(limits);
  return Number.isFinite(limit) ? Math.max(1, limit - Math.max(32, Math.ceil(limit / 100))) : limit;
}

function readLimits(): string | undefined {
  try {
    return readFileSync('/proc/self/limits', 'utf8');
  } catch {
    return undefined;
  }
}

/** How far above the least loaded worker one may be before it stops accepting. */
export function balanceSlack(mean: number): number {
  return Math.max(256, Math.ceil(mean / 20));
}

interface Seat {
  connections: number;
  /** Its descriptor ceiling, as it said. */
  ceiling: number;
  /** Listening, as the worker last said. */
  accepting: boolean;
  /** What the primary last told it (a worker starts accepting, as if alone). */
  on: boolean;
  keep: boolean;
  reported: boolean;
}

/**
 * The primary's side: keeps each worker's load and tells each whether to accept: not when it is
 * above its share or at its descriptor ceiling. One worker is the keeper, the least loaded of those
 * listening: it is never stopped, others are stopped only while it listens, and while no other
 * worker listens it is told to keep listening whatever its load. Every stop is decided here, in
 * one place, so two workers cannot both stop at once, each believing the other listens. Pure
 * decisions (`decide`) on what the workers reported, sent through `send`.
 */
export class AdmissionBoard {
  readonly #seats = new Map<Worker, Seat>();
  #keeper: Worker | undefined;

  constructor(private readonly send: (worker: Worker, message: AdmissionMessage) => void = sendToWorker) {}

  joined(worker: Worker): void {
    this.#seats.set(worker, { connections: 0, ceiling: Number.POSITIVE_INFINITY, accepting: true, on: true, keep: true, reported: false });
  }

  left(worker: Worker): void {
    this.#seats.delete(worker);
    this.decide();
  }

  received(worker: Worker, message: unknown): void {
    if (!isAdmissionMessage(message) || message.type !== 'ssehub:admission-load') return;
    const seat = this.#seats.get(worker);
    if (seat === undefined) return;
    seat.connections = message.connections;
    seat.ceiling = message.ceiling ?? Number.POSITIVE_INFINITY;
    seat.accepting = message.accepting;
    seat.reported = true;
    this.decide();
  }

  /** Which workers should accept, from their last reports. */
  decide(): void {
    // A worker not heard from yet is left as it starts: accepting, as if alone.
    const seats = [...this.#seats.entries()].filter(([, s]) => s.reported);
    if (seats.length === 0) return;
    let least = Number.POSITIVE_INFINITY;
    let total = 0;
    for (const [, s] of seats) {
      least = Math.min(least, s.connections);
      total += s.connections;
    }
    const slack = balanceSlack(total / seats.length);
    // The least loaded of those listening, or if none is, the least loaded (told to listen).
    const byLoad = [...seats].sort(([, a], [, b]) => a.connections - b.connections);
    const keeper = (byLoad.find(([, s]) => s.on && s.accepting) ?? byLoad[0])?.[0] as Worker;
    this.#keeper = keeper;
    const keeperListens = this.#seats.get(keeper)?.accepting === true;
    const on = new Map<Worker, boolean>();
    for (const [worker, seat] of seats) {
      // At its ceiling a worker stops like one above its share; it starts again 1 % below it.
      const full = seat.connections >= seat.ceiling;
      const roomy = !Number.isFinite(seat.ceiling) || seat.connections < seat.ceiling - Math.ceil(seat.ceiling / 100);
      let next = seat.on;
      if (worker === keeper || (!next && seat.connections <= least + slack / 2 && roomy)) next = true;
      else if (next && (seat.connections > least + slack || full) && keeperListens) next = false;
      on.set(worker, next);
    }
    const othersListen = seats.some(([w, s]) => w !== keeper && on.get(w) === true && s.accepting);
    for (const [worker, seat] of seats) this.#set(worker, seat, on.get(worker) === true, worker === keeper && !othersListen);
  }

  /** What the board last told each worker, and which is the keeper (for tests). */
  state(): Array<{ worker: Worker; connections: number; on: boolean; keep: boolean; keeper: boolean }> {
    return [...this.#seats.entries()].map(([worker, s]) => ({ worker, connections: s.connections, on: s.on, keep: s.keep, keeper: worker === this.#keeper }));
  }

  #set(worker: Worker, seat: Seat, on: boolean, keep: boolean): void {
    if (seat.on === on && seat.keep === keep) return;
    seat.on = on;
    seat.keep = keep;
    this.send(worker, { type: 'ssehub:admission-set', on, keep });
  }
}

function sendToWorker(worker: Worker, message: AdmissionMessage): void {
  if (worker.isConnected()) worker.send(message, undefined, () => {});
}

/** Where a worker's server listens again after a pause (as it first listened). */
export interface ListenOptions {
  port: number;
  host: string;
  backlog: number;
}

/**
 * A worker's side: reports its connections, and stops and starts listening as the primary says.
 * It reports at once when it reaches its descriptor ceiling, and the primary stops it; should the
 * connections taken meanwhile (a whole accept queue can come in one turn) reach the hard ceiling,
 * just short of the limit, it stops on its own (checked on every connection: closing the socket
 * ends libuv's accept loop at once), unless the primary said it listens alone (`keep`; and until
 * the primary has spoken). Alone it listens on to the limit, where libuv sheds connections: the
 * group is then full, and a reset client tries again, where closing the last copy of the socket
 * would reset every connection waiting in its queue as well.
 *
 * Stopping closes only this process's copy of the listening socket, with net.Server's own close:
 * http.Server's would also close idle keep-alive connections, which have nothing to do with it.
 */
export class WorkerAdmission {
  /** What the primary last said (until it speaks, a worker accepts, as if alone). */
  #on = true;
  #keep = true;
  #listening = true;
  #relistening = false;
  #stopped = false;
  /** A report is due at the end of this turn (connections closed while not listening). */
  #reportDue = false;
  readonly #timer: NodeJS.Timeout;
  readonly #onMessage = (message: unknown) => {
    if (isAdmissionMessage(message) && message.type === 'ssehub:admission-set') {
      this.#on = message.on;
      this.#keep = message.keep;
      this.log.debug({ on: message.on, keep: message.keep, connections: this.connections() }, 'admission');
      this.#apply();
    }
  };
  readonly #onConnection = () => {
    const n = this.connections();
    if (n === this.ceiling) this.#report();
    if (this.#listening && !this.#keep && n >= this.hardCeiling) {
      this.log.warn({ connections: n, ceiling: this.hardCeiling }, 'out of descriptors but for a few: this worker stops accepting until connections close (the other workers take them)');
      this.#pause();
    }
  };

  constructor(
    private readonly server: Server,
    private readonly listen: ListenOptions,
    /** Open connections of this process. */
    private readonly connections: () => number,
    private readonly log: Logger,
    readonly ceiling = descriptorCeiling(),
    readonly hardCeiling = hardDescriptorCeiling(),
    private readonly report: (message: AdmissionMessage) => void = sendToPrimary,
  ) {
    server.on('connection', this.#onConnection);
    process.on('message', this.#onMessage);
    this.#timer = setInterval(() => this.#tick(), ADMISSION_TICK_MS);
    this.#timer.unref();
    // At once, so that the primary knows of this worker before a first storm.
    this.#tick();
  }

  /**
   * A connection closed. While not listening, the primary hears of it at the end of the turn (once
   * for all that closed in it), so a worker with room again is not left out until the next tick.
   */
  closed(): void {
    if (this.#listening || this.#reportDue || this.#stopped) return;
    this.#reportDue = true;
    setImmediate(() => {
      this.#reportDue = false;
      if (!this.#stopped) this.#report();
    });
  }

  /** For the hub's shutdown: no more pauses or resumes (the server is closed by the hub). */
  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    clearInterval(this.#timer);
    this.server.off('connection', this.#onConnection);
    process.off('message', this.#onMessage);
  }

  #tick(): void {
    this.#apply();
    this.#report();
  }

  #report(): void {
    this.report({ type: 'ssehub:admission-load', connections: this.connections(), accepting: this.#listening, ceiling: Number.isFinite(this.ceiling) ? this.ceiling : null });
  }

  /** Listening when the primary says so, unless at the hard ceiling and not alone. */
  #apply(): void {
    if (this.#stopped) return;
    if (this.#listening && !this.#on) this.#pause();
    else if (!this.#listening && this.#on && (this.#keep || this.connections() < this.hardCeiling)) this.#resume();
  }

  #pause(): void {
    if (!this.#listening || this.#stopped) return;
    this.#listening = false;
    this.log.debug({ connections: this.connections() }, 'not accepting');
    netClose(this.server);
    this.#report();
  }

  #resume(): void {
    if (this.#listening || this.#relistening || this.#stopped) return;
    this.#relistening = true;
    const done = (error?: Error) => {
      this.server.off('listening', listening);
      this.server.off('error', failed);
      this.#relistening = false;
      if (error !== undefined) {
        this.log.error({ err: error }, 'could not listen again; trying at the next tick');
        return;
      }
      this.#listening = true;
      this.log.debug({ connections: this.connections() }, 'accepting');
      if (this.#stopped) netClose(this.server);
      else {
        this.#report();
        this.#apply();
      }
    };
    const listening = () => done();
    const failed = (error: Error) => done(error);
    this.server.once('listening', listening);
    this.server.once('error', failed);
    this.server.listen(this.listen);
  }
}

function sendToPrimary(message: AdmissionMessage): void {
  if (process.connected) process.send?.(message, undefined, undefined, () => {});
}

/** Stops listening with net.Server's close, not the HTTP server's (see `WorkerAdmission`); open connections stay. */
function netClose(server: Server): void {
  NetServer.prototype.close.call(server);
}
