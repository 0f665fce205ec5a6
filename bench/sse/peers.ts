// The servers under test of the side-by-side SSE benchmark (issue 7): each is started as its own
// process pinned to one core (`taskset -c CORE`), on a free loopback port, serving topic "bench":
//
//   nchan          Debian nginx + libnginx-mod-nchan: one worker, memory storage, a 1,000-message
//                  buffer (Last-Event-ID resume), `nchan_subscriber eventsource`, generated config
//                  in a temporary folder (bench/setup.sh installs the packages when missing)
//   better-sse     bench/sse/peers/better-sse.mjs (npm better-sse on node:http)
//   bare           bench/sse/peers/bare.mjs (node:http writing one Buffer to every response)
//   ssehub-memory  `node dist/cli.js serve --transport memory` (npm run build first)
//   ssehub-sqlite  `node dist/cli.js serve --transport sqlite:<tmp>/hub.db`
//
// and the WebSocket peers (wire 'websocket'), published to the same way as their SSE twins:
//
//   nchan-ws       the same nginx and configuration; subscribers on /ws/bench, a location with
//                  `nchan_subscriber websocket` (the data of each update as a text message)
//   ssehub-ws      the memory-transport hub; subscribers on /connection/websocket, the Centrifugo
//                  client protocol (anonymous connect, subscribe to channel "bench")
//
// Every peer keeps the last 1,000 updates for Last-Event-ID, has no connection limit below 20,000
// and logs nothing per connection; the SSE peers send a heartbeat comment every 15 s, the
// WebSocket peers a ping every 25 s (the hub's default; nchan-ws a ping frame, the hub `{}`).
// CPU and memory are read from /proc for the processes that do the work (nginx: the worker, not
// the master).
// Every process started here is killed when this process exits, even on failure.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { signToken } from '../../src/hub/mercure/token.js';
import { onProcessExit } from '../../test/helpers/exit-hook.js';
import { freePort } from '../../test/helpers/ports.js';
import type { Wire } from './clients.js';

export type PeerName = 'nchan' | 'better-sse' | 'bare' | 'ssehub-memory' | 'ssehub-sqlite' | 'nchan-ws' | 'ssehub-ws';

export const PEERS: PeerName[] = ['nchan', 'better-sse', 'bare', 'ssehub-memory', 'ssehub-sqlite', 'nchan-ws', 'ssehub-ws'];

/** How the subscribers of peer `name` speak to it. */
export function wireOf(name: PeerName): Wire {
  return name === 'nchan-ws' || name === 'ssehub-ws' ? 'websocket' : 'sse';
}

export interface Peer {
  name: PeerName;
  /** How its subscribers speak to it: SSE, or WebSocket (nchan-ws, ssehub-ws). */
  wire: Wire;
  /** WebSocket: the Centrifugo channel its subscribers subscribe to after the upgrade (ssehub-ws); undefined where the path alone subscribes. */
  channel?: string;
  /** 127.0.0.1 and the listening port. */
  host: string;
  port: number;
  /** GET path of the SSE stream of topic "bench" (WebSocket: of the upgrade). */
  subscribePath: string;
  /** Publishes one update (data = payload) to topic "bench" and resolves when the server answered 2xx (rejects otherwise). Keep-alive connection(s). */
  publish(data: string): Promise<void>;
  /** PIDs whose CPU and memory count as the server's (nchan: the nginx worker, not the master; node peers: the node process). */
  pids(): number[];
  /** Sum over pids of utime and stime from /proc/PID/stat, in microseconds. */
  cpu(): { user: number; system: number };
  /** Sum of RSS (bytes) over pids, from /proc/PID/status VmRSS. */
  rss(): number;
  stop(): Promise<void>;
}

export const NGINX_BINARY = '/usr/sbin/nginx';
export const NCHAN_MODULE = '/usr/lib/nginx/modules/ngx_nchan_module.so';
const HOST = '127.0.0.1';
const HISTORY = 1000;
const LISTEN_BACKLOG = 4096;
/** Publishes in flight at once per peer (more wait in the agent's queue). */
const PUBLISH_SOCKETS = 8;
const PUBLISH_TIMEOUT_MS = 60_000;
const READY_TIMEOUT_MS = 20_000;
const STOP_GRACE_MS = 5_000;
const HUB_KEY = 'bench-secret-key-that-is-at-least-32-characters';

const root = new URL('../../', import.meta.url).pathname;
const CLI = join(root, 'dist/cli.js');
const BARE = join(root, 'bench/sse/peers/bare.mjs');
const BETTER_SSE = join(root, 'bench/sse/peers/better-sse.mjs');

// ---------------------------------------------------------------------------------------------
// /proc readings

let clockTicks: number | undefined;
/** CLK_TCK (`getconf CLK_TCK`, 100 when it cannot be asked). */
function ticksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      const value = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
      clockTicks = Number.isFinite(value) && value > 0 ? value : 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/** The fields of /proc/PID/stat after the command name (index 0 = field 3, "state"), or undefined when the process is gone. */
function statFields(pid: number): string[] | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  return text.slice(text.lastIndexOf(')') + 2).split(' ');
}

/** Whether `pid` exists and is not a zombie. */
export function alive(pid: number): boolean {
  const fields = statFields(pid);
  return fields !== undefined && fields[0] !== 'Z' && fields[0] !== 'X';
}

/** The PIDs of the live children of `pid`. */
export function childrenOf(pid: number): number[] {
  let found: number[];
  try {
    found = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    // No CONFIG_PROC_CHILDREN: scan /proc for the parent PID (field 4 of stat).
    found = [];
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      if (statFields(Number(entry))?.[1] === String(pid)) found.push(Number(entry));
    }
  }
  return found.filter(alive);
}

export function cpuOf(pids: number[]): { user: number; system: number } {
  const scale = 1e6 / ticksPerSecond();
  let user = 0;
  let system = 0;
  for (const pid of pids) {
    const fields = statFields(pid);
    if (fields === undefined) continue;
    // utime and stime are fields 14 and 15 of stat (1-based), i.e. 11 and 12 here.
    user += Number(fields[11]) * scale;
    system += Number(fields[12]) * scale;
  }
  return { user: Math.round(user), system: Math.round(system) };
}

/** Open file descriptors of `pid` (0 once it is gone). */
export function fdsOf(pid: number): number {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return 0;
  }
}

export function rssOf(pids: number[]): number {
  let bytes = 0;
  for (const pid of pids) {
    try {
      const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      if (match !== null) bytes += Number(match[1]) * 1024;
    } catch {
      // gone
    }
  }
  return bytes;
}

// ---------------------------------------------------------------------------------------------
// Processes: killed on exit

/** What to clean up if this process exits before stop(): each running peer's live PIDs (SIGKILL) and its folder. */
const live = new Map<ChildProcess, { pids: () => number[]; dir: string }>();
let exitHookInstalled = false;

function killAll(): void {
  for (const [child, { pids, dir }] of live) {
    const all = new Set([...pids(), ...(child.pid === undefined ? [] : [child.pid])]);
    for (const pid of all) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    rmSync(dir, { recursive: true, force: true });
  }
  live.clear();
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  onProcessExit(killAll);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The status of `GET path`, or 0 when no answer came. */
function getStatus(port: number, path: string): Promise<number> {
  return new Promise((resolve) => {
    const req = request({ host: HOST, port, path, agent: false, timeout: 1000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(0));
    req.end();
  });
}

interface Launch {
  name: PeerName;
  /** The command (run under `taskset -c CORE`). */
  command: string;
  args: string[];
  dir: string;
  port: number;
  /** A GET path that answers `readyStatus` once the peer serves. */
  readyPath: string;
  readyStatus: (status: number) => boolean;
  /** The PIDs that count, given the PID of the started process. */
  workers: (pid: number) => number[];
  /** Extra text for failure messages (e.g. nginx's error log). */
  extraLog?: () => string;
  subscribePath: string;
  /** The channel of a Centrifugo subscriber (see Peer.channel). */
  channel?: string;
  publishPath: string;
  /** Headers and body of the publish request for `data`. */
  publishRequest: (data: string) => { headers: Record<string, string>; body: string };
}

async function launch(spec: Launch, core: number): Promise<Peer> {
  installExitHook();
  const child = spawn('taskset', ['-c', String(core), spec.command, ...spec.args], { cwd: spec.dir, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const collect = (chunk: Buffer) => {
    output += chunk.toString();
    if (output.length > 32_768) output = output.slice(-16_384);
  };
  child.on('error', (error) => collect(Buffer.from(`${error.message}\n`)));
  const pid = child.pid;
  if (pid === undefined) {
    rmSync(spec.dir, { recursive: true, force: true });
    throw new Error(`${spec.name}: could not start taskset (util-linux; bench/setup.sh installs it)`);
  }
  // Every PID that ever counted: an nginx worker outlives a master killed with SIGKILL.
  const seen = new Set<number>();
  const pids = () => {
    const now = alive(pid) ? spec.workers(pid) : [];
    for (const p of now) seen.add(p);
    return now;
  };
  live.set(child, { pids: () => [...pids(), ...seen].filter(alive), dir: spec.dir });
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  // A peer someone forgot to stop must not keep this process alive (the exit hook kills it).
  child.unref();
  for (const stream of [child.stdout, child.stderr]) (stream as unknown as { unref?: () => void } | null)?.unref?.();
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const log = () => `${output}${spec.extraLog?.() ?? ''}`;

  const agent = new Agent({ keepAlive: true, maxSockets: PUBLISH_SOCKETS, keepAliveMsecs: 10_000 });
  let stopped: Promise<void> | undefined;
  const stop = () =>
    (stopped ??= (async () => {
      agent.destroy();
      pids();
      const workers = [...seen];
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timedOut = await Promise.race([exited.then(() => false), sleep(STOP_GRACE_MS).then(() => true)]);
        if (timedOut) {
          child.kill('SIGKILL');
          await exited;
        }
      }
      // nginx's worker normally exits with its master; make sure no process is left behind.
      for (let i = 0; i < 50 && workers.some(alive); i++) await sleep(100);
      for (const worker of workers.filter(alive)) {
        try {
          process.kill(worker, 'SIGKILL');
        } catch {
          // gone
        }
      }
      live.delete(child);
      rmSync(spec.dir, { recursive: true, force: true });
    })());

  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (true) {
    if (child.exitCode !== null || child.signalCode !== null) {
      const text = log();
      await stop();
      throw new Error(`${spec.name} exited (${child.exitCode ?? child.signalCode}) before it was ready:\n${text}`);
    }
    if (spec.readyStatus(await getStatus(spec.port, spec.readyPath)) && pids().length > 0) break;
    if (Date.now() > deadline) {
      const text = log();
      await stop();
      throw new Error(`${spec.name} not ready on port ${spec.port} within ${READY_TIMEOUT_MS / 1000} s:\n${text}`);
    }
    await sleep(50);
  }

  const send = (data: string, retried: boolean): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      const { headers, body } = spec.publishRequest(data);
      const req = request(
        { host: HOST, port: spec.port, path: spec.publishPath, method: 'POST', agent, headers: { ...headers, 'Content-Length': String(Buffer.byteLength(body)) } },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => {
            if (text.length < 1000) text += chunk;
          });
          res.on('error', reject);
          res.on('end', () => {
            const status = res.statusCode ?? 0;
            if (status >= 200 && status < 300) resolve();
            else reject(new Error(`${spec.name}: publish answered ${status}: ${text.slice(0, 200)}`));
          });
        },
      );
      req.setTimeout(PUBLISH_TIMEOUT_MS, () => req.destroy(new Error(`${spec.name}: no answer to a publish within ${PUBLISH_TIMEOUT_MS / 1000} s`)));
      req.on('error', (error: NodeJS.ErrnoException) => {
        // A kept-alive socket the server closed while idle: the request never reached it (as
        // Node's documentation advises, retry once on a new socket).
        if (!retried && req.reusedSocket && (error.code === 'ECONNRESET' || error.code === 'EPIPE')) {
          send(data, true).then(resolve, reject);
          return;
        }
        reject(error);
      });
      req.end(body);
    });

  return {
    name: spec.name,
    wire: wireOf(spec.name),
    ...(spec.channel === undefined ? {} : { channel: spec.channel }),
    host: HOST,
    port: spec.port,
    subscribePath: spec.subscribePath,
    publish: (data) => send(data, false),
    pids,
    cpu: () => cpuOf(pids()),
    rss: () => rssOf(pids()),
    stop,
  };
}

// ---------------------------------------------------------------------------------------------
// The peers

function nchanConfig(dir: string, port: number): string {
  return `# Generated by bench/sse/peers.ts (the nchan peer of the SSE benchmark).
load_module ${NCHAN_MODULE};
daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile 20000;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;

events {
    # Above the 20,000 descriptors: nchan holds about 6 % more connection slots than it has
    # subscribers (with 20000 it refused new ones at about 18,700, "worker_connections are not
    # enough"); the file descriptor limit stays the real bound.
    worker_connections 40000;
    multi_accept on;
}

http {
    access_log off;
    client_body_temp_path ${dir}/client_body_temp;
    proxy_temp_path ${dir}/proxy_temp;
    fastcgi_temp_path ${dir}/fastcgi_temp;
    uwsgi_temp_path ${dir}/uwsgi_temp;
    scgi_temp_path ${dir}/scgi_temp;
    keepalive_timeout 3600s;
    keepalive_requests 1000000;
    client_body_buffer_size 64k;

    server {
        listen ${HOST}:${port} backlog=${LISTEN_BACKLOG};

        location = /sub/bench {
            nchan_subscriber eventsource;
            nchan_channel_id bench;
            # Only updates published after the subscription (like every other peer), unless the
            # request carries Last-Event-ID (nchan's default, "oldest", would replay the buffer).
            nchan_subscriber_first_message newest;
            # A heartbeat comment ":" every 15 s (nchan's default is none).
            nchan_eventsource_ping_interval 15;
            nchan_eventsource_ping_event "";
            nchan_eventsource_ping_comment "";
        }

        # The WebSocket subscribers of the nchan-ws peer: the same channel, a ping every 25 s
        # (the hub's interval; nchan's default is none).
        location = /ws/bench {
            nchan_subscriber websocket;
            nchan_channel_id bench;
            nchan_subscriber_first_message newest;
            nchan_websocket_ping_interval 25;
        }

        location = /pub/bench {
            nchan_publisher;
            nchan_channel_id bench;
            nchan_storage_engine memory;
            nchan_message_buffer_length ${HISTORY};
            nchan_message_timeout 24h;
        }

        location = /healthz {
            return 200 "ok";
        }
    }
}
`;
}

async function startNchan(name: 'nchan' | 'nchan-ws', core: number): Promise<Peer> {
  if (!existsSync(NGINX_BINARY) || !existsSync(NCHAN_MODULE)) {
    throw new Error(`nchan needs ${NGINX_BINARY} and ${NCHAN_MODULE} (bench/setup.sh installs the Debian packages nginx and libnginx-mod-nchan)`);
  }
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'ssehub-bench-nchan-'));
  const conf = join(dir, 'nginx.conf');
  const errorLog = join(dir, 'error.log');
  writeFileSync(conf, nchanConfig(dir, port));
  return launch(
    {
      name,
      command: NGINX_BINARY,
      args: ['-p', dir, '-c', conf, '-e', errorLog],
      dir,
      port,
      readyPath: '/healthz',
      readyStatus: (status) => status === 200,
      workers: childrenOf,
      extraLog: () => (existsSync(errorLog) ? `--- error.log\n${readFileSync(errorLog, 'utf8')}` : ''),
      subscribePath: name === 'nchan' ? '/sub/bench' : '/ws/bench',
      publishPath: '/pub/bench',
      publishRequest: (data) => ({ headers: { 'Content-Type': 'text/plain' }, body: data }),
    },
    core,
  );
}

async function startNode(name: 'bare' | 'better-sse', core: number): Promise<Peer> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), `ssehub-bench-${name}-`));
  return launch(
    {
      name,
      command: process.execPath,
      args: [name === 'bare' ? BARE : BETTER_SSE, String(port), HOST],
      dir,
      port,
      readyPath: '/healthz',
      readyStatus: (status) => status === 200,
      workers: (pid) => [pid],
      subscribePath: '/sub',
      publishPath: '/pub',
      publishRequest: (data) => ({ headers: { 'Content-Type': 'text/plain' }, body: data }),
    },
    core,
  );
}

async function startHub(name: 'ssehub-memory' | 'ssehub-sqlite' | 'ssehub-ws', core: number): Promise<Peer> {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build first`);
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), `ssehub-bench-${name}-`));
  const transport = name === 'ssehub-sqlite' ? `sqlite:${join(dir, 'hub.db')}` : 'memory';
  const authorization = `Bearer ${await signToken(HUB_KEY, { publish: ['*'] })}`;
  return launch(
    {
      name,
      command: process.execPath,
      // HUB_NODE_ARGS: node flags for the hub only, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof" to profile it.
      args: [
        ...(process.env.HUB_NODE_ARGS?.split(' ').filter((a) => a !== '') ?? []),
        CLI, 'serve',
        '--jwt-key', HUB_KEY,
        '--anonymous',
        '--transport', transport,
        '--listen', `${HOST}:${port}`,
        '--max-connections', '0',
        '--log-level', 'warn',
        '--history-size', String(HISTORY),
        // The other peers never end a stream on their own (the hub's default is 10 min).
        '--write-timeout', '0',
        // stop() is not measured: close the streams at once.
        '--drain-timeout', '1s',
      ],
      dir,
      port,
      readyPath: '/readyz',
      readyStatus: (status) => status === 200,
      workers: (pid) => [pid],
      ...(name === 'ssehub-ws' ? { subscribePath: '/connection/websocket', channel: 'bench' } : { subscribePath: '/.well-known/mercure?topic=bench' }),
      publishPath: '/.well-known/mercure',
      publishRequest: (data) => ({
        headers: { 'Content-Type': 'application/x-www-form-urlencoded', Authorization: authorization },
        body: new URLSearchParams({ topic: 'bench', data }).toString(),
      }),
    },
    core,
  );
}

/** Starts peer `name` pinned to `core` (default 1) on a free loopback port; resolves once it serves. */
export function startPeer(name: PeerName, options: { core?: number } = {}): Promise<Peer> {
  const core = options.core ?? 1;
  switch (name) {
    case 'nchan':
    case 'nchan-ws':
      return startNchan(name, core);
    case 'bare':
    case 'better-sse':
      return startNode(name, core);
    case 'ssehub-memory':
    case 'ssehub-sqlite':
    case 'ssehub-ws':
      return startHub(name, core);
    default:
      throw new Error(`unknown peer "${String(name)}"; known: ${PEERS.join(', ')}`);
  }
}
