// Starts a private redis-server for a test file: a free loopback port, its own temporary data
// directory, and an append-only file synced on every write, so that data survives a kill and a
// restart on the same port and directory (what the outage tests do). Extra arguments make it a
// replica or a cluster node (test/helpers/redis-sentinel.ts, test/helpers/redis-cluster.ts).
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onProcessExit } from './exit-hook.js';
import { freePort } from './ports.js';

/** Where the server binary is looked for, in order. */
const BINARIES = ['/usr/bin/redis-server', '/usr/local/bin/redis-server'];

/** A redis-server child process. */
export interface RedisServer {
  readonly port: number;
  /** Its data directory (kept across `kill` and `start`). */
  readonly dir: string;
  /** `redis://127.0.0.1:PORT`. */
  readonly url: string;
  /** `true` while the process runs. */
  readonly running: boolean;
  /** Kills the process with SIGKILL (a crash: only what was fsynced survives) and waits for it to exit. */
  kill(): Promise<void>;
  /** Sends the process a signal (SIGSTOP freezes it: it stops reading its sockets; SIGCONT thaws it). */
  signal(signal: NodeJS.Signals): void;
  /** Starts the process again on the same port and data directory; resolves once it accepts connections. */
  start(): Promise<void>;
  /** Kills the process and removes the data directory. */
  stop(): Promise<void>;
}

/** The redis-server binary, or `undefined` when none is installed. */
export function redisServerBinary(): string | undefined {
  return BINARIES.find((path) => existsSync(path));
}


/** Starts a redis-server on a free 127.0.0.1 port in a fresh temporary directory, with `options.args` after the helper's own. */
export async function startRedisServer(options: { args?: string[] } = {}): Promise<RedisServer> {
  const binary = redisServerBinary();
  if (binary === undefined) throw new Error(`redis-server not found (looked in ${BINARIES.join(', ')})`);
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'ssehub-redis-'));
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();

  const start = async (): Promise<void> => {
    if (child !== undefined) throw new Error('redis-server is already running');
    const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'yes', '--appendfsync', 'always', '--dir', dir, '--loglevel', 'notice', ...(options.args ?? [])];
    const proc = spawnKilledOnExit(binary, args);
    child = proc;
    exited = new Promise((resolve) => proc.once('exit', () => resolve()));
    void exited.then(() => {
      if (child === proc) child = undefined;
    });
    await untilLogged(proc, 'Ready to accept connections', 'redis-server');
  };

  const kill = async (): Promise<void> => {
    if (child === undefined) return;
    child.kill('SIGKILL');
    await exited;
  };

  await start();
  return {
    port,
    dir,
    url: `redis://127.0.0.1:${port}`,
    get running() {
      return child !== undefined;
    },
    kill,
    signal(name) {
      child?.kill(name);
    },
    start,
    async stop() {
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Child processes to kill however this test process ends (normally or by a signal). */
const children = new Set<ChildProcess>();
let hooked = false;

/** Spawns a Redis process that does not outlive the test process. */
export function spawnKilledOnExit(binary: string, args: string[]): ChildProcess {
  if (!hooked) {
    hooked = true;
    onProcessExit(() => {
      for (const proc of children) proc.kill('SIGKILL');
    });
  }
  const proc = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(proc);
  proc.once('exit', () => children.delete(proc));
  return proc;
}

/** Resolves once `proc` wrote `text` to its standard output; rejects if it exits first or takes longer than 10 s. */
export function untilLogged(proc: ChildProcess, text: string, name: string): Promise<void> {
  let log = '';
  return new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} did not start within 10 s:\n${log}`)), 10_000);
    const onData = (chunk: Buffer) => {
      log += chunk.toString();
      if (log.includes(text)) {
        clearTimeout(timer);
        proc.stdout?.off('data', onData);
        proc.stdout?.resume();
        resolve();
      }
    };
    proc.stdout?.on('data', onData);
    proc.stderr?.on('data', (chunk: Buffer) => (log += chunk.toString()));
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited with ${code}:\n${log}`));
    });
  });
}
