// The parent side of the load generator: spawns bench/sse/loadgen.ts children (pinned to one core
// with taskset) and drives them over IPC. Each child holds at most MAX_PER_CHILD connections (the
// limit is 20,000 open files per process); connections are spread over the children and over
// source addresses 127.0.0.2… (one address has only ~28k ephemeral ports).
//
// Counting, per connection (lastSeq = the highest seq seen, or the baseline given to connect):
//   seq = lastSeq + 1        in order
//   seq > lastSeq + 1        the seqs in between are lost (and remembered as missing)
//   seq <= lastSeq, missing  reordered (no longer lost)
//   seq <= lastSeq, seen     duplicated (no latency recorded)
// A connection that never reaches the last published seq is caught by waitFor.
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** Connections one child may hold: 20,000 open files per process, less some for the runtime. */
export const MAX_PER_CHILD = 9_900;

/**
 * The 64-byte data of update `seq`: `s=SSSSSS t=TTTTTTTTTTTTTTTT ` padded with 'x', where t is the
 * time latency is counted from, in µs of CLOCK_MONOTONIC: now (the publish), or `at` — when the
 * update was due (its slot in a schedule, or the start of a burst), so that a server that holds its
 * publisher back cannot hide the wait.
 */
export function payload(seq: number, at?: number): string {
  const t = at === undefined ? process.hrtime.bigint() / 1000n : Math.round(at);
  return `s=${String(seq).padStart(6, '0')} t=${String(t).padStart(16, '0')} `.padEnd(64, 'x');
}

/** Now, in µs of CLOCK_MONOTONIC (the clock of payload()'s t=). */
export function monotonicMicros(): number {
  return Number(process.hrtime.bigint() / 1000n);
}

/**
 * Sends `count` updates at `rate` per second, `send(k, due)` for the k-th with `due` its slot in
 * the schedule (µs of CLOCK_MONOTONIC, for payload()'s t=). In order: each goes out at its slot, or
 * as soon as the one before was answered if that came later (concurrent publishes would reach the
 * server in another order than their seqs); a server slow to answer holds its publisher back, and
 * every update then held back counts the wait in its latency.
 */
export async function onSchedule(count: number, rate: number, send: (k: number, due: number) => Promise<void>): Promise<void> {
  const interval = 1000 / rate;
  const start = performance.now();
  const t0 = monotonicMicros();
  for (let k = 0; k < count; k++) {
    const wait = start + k * interval - performance.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    await send(k, t0 + k * interval * 1000);
  }
}

export interface ClientStats {
  connections: number; failed: number;   // open now / failed to open (non-200, refused, reset) or dropped by the server
  events: number;                        // data events received (all connections)
  lost: number; duplicated: number; reordered: number;
  resumes: number;                       // reopenings with Last-Event-ID by churn() or, with resume: true, after the server ended a stream
  serverCloses: number;                  // streams the server ended while open
  retries: number; retryReasons: Record<string, number>; // with retryMs: openings that failed and were tried again, by reason
  churning: number;                      // connections closed by churn() (or by the server, in resume mode) and not open again yet
  late: string[];                        // the first deliveries later than 5 s (a few per child), each with its connection's story
  latency: { count: number; p50: number; p99: number; max: number; over1s: number; over10s: number };   // µs, since last resetLatency(); over*: deliveries later than that
  cpu: { user: number; system: number }; // µs used by the load-generator processes since start
}

export interface Clients {
  /**
   * Opens `count` SSE (or, with `target.wire` 'websocket', WebSocket) connections to host:port path (spread over the children and source addresses); resolves when all got their response headers (a WebSocket: the 101, or the subscribe reply of a `target.channel`) or failed. Throws if more than 1% failed.
   * With `target.paths`, connection i (counted over this call, across the children) asks for paths[i % paths.length] instead.
   * slow: the connections read at most `readSize` bytes at a time and `bytesPerSecond` on average (needs children started with `preconnected`, whose sockets they use).
   * concurrency: connections being opened at once, over all children (default 500: Node's and nginx's listen backlog is 511,
   * and 500 per child overran it, costing 1 s SYN retransmits).
   * lastSeq: the seq of the last update published before these connections open (default 0); the first event expected is lastSeq + 1.
   */
  connect(target: Target & { paths?: string[] }, count: number, options?: { concurrency?: number; lastSeq?: number; slow?: SlowReading }): Promise<void>;
  /** Resolves when every open connection has seen seq >= `seq` (or after timeoutMs: then rejects with how many are behind). Returns the ms it took. */
  waitFor(seq: number, timeoutMs: number): Promise<number>;
  /** How many connections, open or being resumed (churn, resume mode), have not seen seq >= `seq`. */
  behind(seq: number): Promise<number>;
  /**
   * Closes `count` open connections (that have seen an id) chosen at random, spread over the children, and reopens each with
   * `Last-Event-ID: <its last id>` after a random 0–maxDelayMs; their counting goes on across the gap. Returns how many were closed.
   */
  churn(count: number, maxDelayMs: number): Promise<number>;
  /** Closes all connections (client side) but remembers each one's last id and last seq. */
  disconnectAll(): Promise<void>;
  /** Re-opens every remembered connection at once (or `concurrency` at a time, over all children) with `Last-Event-ID: <its last id>`; resolves when all got headers. Throws if more than 1% failed. */
  reconnectAll(options?: { concurrency?: number }): Promise<void>;
  resetLatency(): void;
  stats(): Promise<ClientStats>;
  close(): Promise<void>;                 // kills children
}

// --- Latency histogram: log-scale buckets of 2% width from 1 µs to 100 s (shared with loadgen.ts).

const GROWTH = 1.02;
const INV_LN_GROWTH = 1 / Math.log(GROWTH);
/** Number of histogram buckets. */
export const HISTOGRAM_BUCKETS = Math.ceil(Math.log(1e8) * INV_LN_GROWTH) + 1;

/** The bucket of a latency in µs (bucket i holds [1.02^i, 1.02^(i+1)); below 1 µs goes to 0). */
export function histogramBucket(us: number): number {
  if (us < GROWTH) return 0;
  const i = Math.floor(Math.log(us) * INV_LN_GROWTH);
  return i < HISTOGRAM_BUCKETS ? i : HISTOGRAM_BUCKETS - 1;
}

/** The p-quantile (0..1) of a histogram, as its bucket's geometric middle, at most `max`. */
export function histogramQuantile(histogram: ArrayLike<number>, count: number, p: number, max: number): number {
  if (count === 0) return 0;
  const rank = Math.max(1, Math.ceil(p * count));
  let seen = 0;
  for (let i = 0; i < histogram.length; i++) {
    seen += histogram[i]!;
    if (seen >= rank) return Math.min(max, i === 0 ? 1 : GROWTH ** (i + 0.5));
  }
  return max;
}

/** How many latencies fell in buckets that start at or above `us` (exact to the bucket width, 2 %). */
export function histogramCountAbove(histogram: ArrayLike<number>, us: number): number {
  let n = 0;
  for (let i = histogramBucket(us); i < histogram.length; i++) n += histogram[i]!;
  return n;
}

// --- IPC messages between clients.ts and loadgen.ts.

/**
 * Where connections go. `wire` is how subscribers speak to the server: SSE over HTTP/1.1 (the
 * default), or 'websocket' (RFC 6455; no Last-Event-ID resume, no slow readers). `channel`, for a
 * WebSocket: the Centrifugo channel a connection subscribes to after the upgrade (the hub's
 * `/connection/websocket`), and it is open at the subscribe reply; without it, at the 101 (nchan).
 */
export interface Target { host: string; port: number; path: string; wire?: Wire; channel?: string }
/** How a subscriber speaks to the server. */
export type Wire = 'sse' | 'websocket';
/** How a slow reader reads: at most `readSize` bytes per read, `bytesPerSecond` on average. */
export interface SlowReading { readSize: number; bytesPerSecond: number }
/** Parent → child. */
export type ChildRequest =
  | ({ op: 'connect'; req: number; count: number; concurrency: number; lastSeq: number; sources: number; sourceOffset: number; paths?: string[]; pathOffset?: number; slow?: SlowReading } & Target)
  | { op: 'reconnect'; req: number; concurrency: number }
  | { op: 'disconnect' | 'resetLatency' | 'stats' | 'close'; req: number }
  | { op: 'waitFor'; req: number; seq: number }
  | { op: 'churn'; req: number; count: number; maxDelayMs: number }
  | { op: 'progress'; req: number; seq: number; cancel: boolean; everyConnection?: boolean };
/** A child's counters. */
export interface ChildStats {
  op: 'stats'; req: number;
  connections: number; failed: number; events: number; lost: number; duplicated: number; reordered: number;
  resumes: number; serverCloses: number; churning: number;
  retries: number; retryReasons: Record<string, number>;
  late: string[];
  histogram: number[]; latencyCount: number; latencyMax: number;
  cpu: { user: number; system: number };
}
/** Child → parent. */
export type ChildReply =
  | { op: 'ready'; req: 0; pid: number }
  | { op: 'done'; req: number; failed: number; errors: string[] }
  | { op: 'progress'; req: number; behind: number; lowest: number; open: number }
  | { op: 'churned'; req: number; count: number }
  | { op: 'error'; req: number; message: string }
  | ChildStats;

type Pending = { resolve: (reply: ChildReply) => void; reject: (error: Error) => void };
type Request = ChildRequest extends infer R ? (R extends ChildRequest ? Omit<R, 'req'> : never) : never;

const live = new Set<ChildProcess>();
let exitHook = false;

class Child {
  readonly pending = new Map<number, Pending>();
  private nextReq = 1;
  /** Connections assigned to this child so far. */
  assigned = 0;
  exited: string | null = null;

  constructor(readonly proc: ChildProcess) {
    proc.on('message', (message) => {
      const reply = message as ChildReply;
      const p = this.pending.get(reply.req);
      if (p === undefined) return;
      this.pending.delete(reply.req);
      if (reply.op === 'error') p.reject(new Error(`load generator ${proc.pid}: ${reply.message}`));
      else p.resolve(reply);
    });
    proc.on('exit', (code, signal) => {
      live.delete(proc);
      this.exited = `load generator ${proc.pid} exited (${signal ?? `code ${code}`})`;
      for (const p of this.pending.values()) p.reject(new Error(this.exited));
      this.pending.clear();
    });
  }

  request<R extends ChildReply = ChildReply>(message: Request, req = this.nextReq++): Promise<R> {
    if (this.exited !== null) return Promise.reject(new Error(this.exited));
    return new Promise<R>((resolve, reject) => {
      this.pending.set(req, { resolve: resolve as (r: ChildReply) => void, reject });
      this.proc.send({ ...message, req });
    });
  }
}

/**
 * Connects `count` sockets to host:port with a receive buffer of `receiveBuffer` bytes (SO_RCVBUF,
 * which Node cannot set), then runs the command given after it with them open, their descriptors
 * in SSEHUB_LOADGEN_FDS. Perl, because Debian always has it (perl-base is essential).
 */
const PRECONNECT = `
use strict; use Socket;
$^F = 1 << 20; # the sockets stay open across exec
my ($host, $port, $count, $rcvbuf, $sources, @command) = @ARGV;
my (@keep, @fds);
for my $i (0 .. $count - 1) {
  socket(my $s, PF_INET, SOCK_STREAM, 0) or die "socket: $!";
  setsockopt($s, SOL_SOCKET, SO_RCVBUF, pack('i', $rcvbuf)) or die "SO_RCVBUF: $!";
  bind($s, pack_sockaddr_in(0, inet_aton('127.0.0.' . (2 + $i % $sources)))) or die "bind: $!";
  connect($s, pack_sockaddr_in($port, inet_aton($host))) or die "connect: $!";
  push @keep, $s;
  push @fds, fileno($s);
}
$ENV{SSEHUB_LOADGEN_FDS} = join(',', @fds);
exec { $command[0] } @command or die "exec: $!";
`;

/** Sockets a child connects before it starts (see PRECONNECT): how many, where, and their receive buffer. */
export interface Preconnected { host: string; port: number; count: number; receiveBuffer: number }

function spawnChild(core: number, batchMs: number, resume: boolean, retryMs: number, preconnected?: Preconnected): Promise<Child> {
  const file = fileURLToPath(new URL('./loadgen.ts', import.meta.url));
  const root = fileURLToPath(new URL('../../', import.meta.url));
  // LOADGEN_NODE_ARGS adds node flags to the children (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof").
  const extra = (process.env.LOADGEN_NODE_ARGS ?? '').split(' ').filter((a) => a !== '');
  const node = [process.execPath, ...extra, '--import', 'tsx', file];
  const command = preconnected === undefined ? node : ['perl', '-e', PRECONNECT, preconnected.host, String(preconnected.port), String(preconnected.count), String(preconnected.receiveBuffer), '16', ...node];
  const proc = spawn('taskset', ['-c', String(core), ...command], {
    cwd: root,
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, SSEHUB_LOADGEN: '1', SSEHUB_LOADGEN_BATCH_MS: String(batchMs), SSEHUB_LOADGEN_RESUME: resume ? '1' : '0', SSEHUB_LOADGEN_RETRY_MS: String(retryMs) },
  });
  live.add(proc);
  const child = new Child(proc);
  return new Promise<Child>((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error('a load generator child did not start within 30 s'));
    }, 30_000);
    child.pending.set(0, {
      resolve: () => {
        clearTimeout(timer);
        resolve(child);
      },
      reject: (error) => {
        clearTimeout(timer);
        reject(error);
      },
    });
    proc.on('error', (error) => {
      clearTimeout(timer);
      live.delete(proc);
      reject(new Error(`cannot start a load generator with taskset: ${error.message}`));
    });
  });
}

function checkFailures(what: string, count: number, replies: ChildReply[]): void {
  let failed = 0;
  const errors = new Set<string>();
  for (const r of replies) {
    if (r.op !== 'done') continue;
    failed += r.failed;
    for (const e of r.errors) errors.add(e);
  }
  if (failed > count * 0.01) throw new Error(`${what}: ${failed} of ${count} connections failed (${[...errors].join('; ')})`);
}

/**
 * Starts `processes` load-generator children pinned to `core` (default 0), using `sources` source addresses 127.0.0.2… (default 64).
 * batchMs (default 1): after a turn of its event loop that found fewer than 200 sockets readable, a child blocks this long before
 * polling again, so reads come in batches: that costs about a third less CPU per event, and adds up to batchMs to some latencies (0: off).
 * resume (default false): a stream the server ends is reopened with Last-Event-ID after 0–1 s, as an EventSource does, instead of counting as failed.
 * retryMs (default 0: off): an opening that fails (refused, reset, a non-200 answer) is tried again after a random 0–retryMs, as an
 * EventSource does after a network error, up to 30 times, within its batch: counted in `retries`, not in `failed`.
 * preconnected: each child starts with its share of `count` sockets already connected to host:port with a small receive buffer
 * (SO_RCVBUF `receiveBuffer`, which Node cannot set): the slow readers' (connect with `slow`). Connect them soon after, before the server's request timeout.
 */
export async function startClients(options: { processes: number; core?: number; sources?: number; batchMs?: number; resume?: boolean; retryMs?: number; preconnected?: Preconnected }): Promise<Clients> {
  const { processes, core = 0, sources = 64, batchMs = 1, resume = false, retryMs = 0, preconnected } = options;
  if (!(processes >= 1) || !(sources >= 1 && sources <= 250)) throw new Error('startClients: processes >= 1 and 1 <= sources <= 250');
  if (!exitHook) {
    exitHook = true;
    process.on('exit', () => {
      for (const proc of live) proc.kill('SIGKILL');
    });
  }
  const perProcess = (k: number): Preconnected | undefined =>
    preconnected === undefined ? undefined : { ...preconnected, count: Math.floor(preconnected.count / processes) + (k < preconnected.count % processes ? 1 : 0) };
  const started = await Promise.allSettled(Array.from({ length: processes }, (_, k) => spawnChild(core, batchMs, resume, retryMs, perProcess(k))));
  const children = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  const failure = started.find((s) => s.status === 'rejected');
  if (failure !== undefined) {
    for (const c of children) c.proc.kill('SIGKILL');
    throw (failure as PromiseRejectedResult).reason;
  }
  let remembered = 0;
  const perChild = (total: number): number => Math.max(1, Math.floor(total / children.length));
  const all = <R extends ChildReply>(message: Request): Promise<R[]> => Promise.all(children.map((c) => c.request<R>(message)));

  return {
    async connect(target, count, options = {}) {
      const { concurrency = 500, lastSeq = 0 } = options;
      if (options.slow !== undefined && preconnected === undefined) throw new Error('connect: slow readers need children started with `preconnected`');
      // Fill the children evenly, never beyond MAX_PER_CHILD each.
      const order = [...children].sort((a, b) => b.assigned - a.assigned);
      const shares = new Map<Child, number>();
      let left = count;
      order.forEach((c, k) => {
        const share = Math.min(MAX_PER_CHILD - c.assigned, Math.ceil(left / (order.length - k)));
        shares.set(c, share);
        left -= share;
      });
      if (left > 0) throw new Error(`connect: ${count} connections need more than ${processes} load generator processes (${MAX_PER_CHILD} each)`);
      let pathOffset = 0;
      const replies = await Promise.all(children.map((c, k) => {
        const n = shares.get(c) ?? 0;
        c.assigned += n;
        const request = c.request({ op: 'connect', ...target, count: n, concurrency: perChild(concurrency), lastSeq, sources, sourceOffset: k, pathOffset, slow: options.slow });
        pathOffset += n;
        return request;
      }));
      remembered += count;
      checkFailures('connect', count, replies);
    },

    async waitFor(seq, timeoutMs) {
      const begin = performance.now();
      let timer: NodeJS.Timeout | undefined;
      const waits = all({ op: 'waitFor', seq });
      const outcome = await Promise.race([
        waits.then(() => true),
        new Promise<false>((resolve) => {
          timer = setTimeout(() => resolve(false), timeoutMs);
        }),
      ]);
      clearTimeout(timer);
      if (outcome) return performance.now() - begin;
      waits.catch(() => {});
      const progress = await all<Extract<ChildReply, { op: 'progress' }>>({ op: 'progress', seq, cancel: true });
      const behind = progress.reduce((n, p) => n + p.behind, 0);
      const open = progress.reduce((n, p) => n + p.open, 0);
      const lowest = Math.min(...progress.filter((p) => p.behind > 0).map((p) => p.lowest));
      throw new Error(`waitFor(${seq}): after ${timeoutMs} ms ${behind} of ${open} open connections have not seen it (lowest last seq ${lowest})`);
    },

    async behind(seq) {
      const progress = await all<Extract<ChildReply, { op: 'progress' }>>({ op: 'progress', seq, cancel: false, everyConnection: true });
      return progress.reduce((n, p) => n + p.behind, 0);
    },

    async churn(count, maxDelayMs) {
      const shares = children.map((_, k) => Math.floor(count / children.length) + (k < count % children.length ? 1 : 0));
      const replies = await Promise.all(children.map((c, k) => c.request<Extract<ChildReply, { op: 'churned' }>>({ op: 'churn', count: shares[k]!, maxDelayMs })));
      return replies.reduce((n, r) => n + r.count, 0);
    },

    async disconnectAll() {
      await all({ op: 'disconnect' });
    },

    async reconnectAll(options = {}) {
      const replies = await all({ op: 'reconnect', concurrency: options.concurrency === undefined ? 0 : perChild(options.concurrency) });
      checkFailures('reconnectAll', remembered, replies);
    },

    resetLatency() {
      for (const c of children) void c.request({ op: 'resetLatency' }).catch(() => {});
    },

    async stats() {
      const replies = await all<ChildStats>({ op: 'stats' });
      const histogram = new Array<number>(HISTOGRAM_BUCKETS).fill(0);
      const sum = (key: 'connections' | 'failed' | 'events' | 'lost' | 'duplicated' | 'reordered' | 'resumes' | 'serverCloses' | 'churning' | 'retries' | 'latencyCount'): number =>
        replies.reduce((n, r) => n + r[key], 0);
      for (const r of replies) r.histogram.forEach((v, i) => (histogram[i]! += v));
      const count = sum('latencyCount');
      const max = Math.max(0, ...replies.map((r) => r.latencyMax));
      return {
        connections: sum('connections'),
        failed: sum('failed'),
        events: sum('events'),
        lost: sum('lost'),
        duplicated: sum('duplicated'),
        reordered: sum('reordered'),
        resumes: sum('resumes'),
        serverCloses: sum('serverCloses'),
        retries: sum('retries'),
        retryReasons: replies.reduce<Record<string, number>>((all, r) => {
          for (const [reason, n] of Object.entries(r.retryReasons)) all[reason] = (all[reason] ?? 0) + n;
          return all;
        }, {}),
        churning: sum('churning'),
        late: replies.flatMap((r) => r.late),
        latency: {
          count,
          p50: histogramQuantile(histogram, count, 0.5, max),
          p99: histogramQuantile(histogram, count, 0.99, max),
          max,
          over1s: histogramCountAbove(histogram, 1e6),
          over10s: histogramCountAbove(histogram, 1e7),
        },
        cpu: {
          user: replies.reduce((n, r) => n + r.cpu.user, 0),
          system: replies.reduce((n, r) => n + r.cpu.system, 0),
        },
      };
    },

    async close() {
      await Promise.all(children.map(async (c) => {
        if (c.exited !== null) return;
        const exited = new Promise<void>((resolve) => c.proc.once('exit', () => resolve()));
        c.request({ op: 'close' }).catch(() => {});
        const timer = setTimeout(() => c.proc.kill('SIGKILL'), 5_000);
        await exited;
        clearTimeout(timer);
      }));
    },
  };
}
