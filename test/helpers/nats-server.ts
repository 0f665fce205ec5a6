// Runs a real nats-server with JetStream (file storage) on a free loopback port in a temporary
// folder, for the nats transport's tests. `stop()` then `start()` brings it back on the same port
// with the same storage, as a restart of the server would.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.js';

/** The nats-server binary (`NATS_SERVER` overrides it). */
export const NATS_SERVER = process.env.NATS_SERVER ?? '/usr/sbin/nats-server';

/** A running (or stopped) nats-server process. */
export interface NatsServer {
  port: number;
  /** `nats://127.0.0.1:PORT`. */
  url: string;
  /** Its JetStream storage folder. */
  dir: string;
  /** Starts it (again) on the same port and folder; resolves once it accepts clients. */
  start(): Promise<void>;
  /** Stops it (SIGTERM, or `signal`) and waits for the process to exit. */
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** Stops it and removes its folder. */
  close(): Promise<void>;
}


/** Starts `nats-server -a 127.0.0.1 -p PORT -js -sd DIR` on a free port in a new temporary folder. */
export async function startNatsServer(): Promise<NatsServer> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'ssehub-nats-'));
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();

  const start = async () => {
    if (child !== undefined) throw new Error('nats-server is already running');
    const proc = spawn(NATS_SERVER, ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', dir], { stdio: ['ignore', 'ignore', 'pipe'] });
    child = proc;
    exited = new Promise((resolve) => proc.once('exit', () => resolve()));
    let log = '';
    await new Promise<void>((resolve, reject) => {
      const onError = (error: Error) => fail(new Error(`cannot run ${NATS_SERVER}: ${error.message}`));
      const onExit = (code: number | null) => fail(new Error(`nats-server exited (${code}) before it was ready:\n${log}`));
      const onData = (chunk: Buffer) => {
        log += chunk.toString();
        if (!log.includes('Server is ready')) return;
        settle();
        proc.stderr?.resume(); // keep draining its log, unread
        resolve();
      };
      const settle = () => {
        clearTimeout(timer);
        proc.off('error', onError);
        proc.off('exit', onExit);
        proc.stderr?.off('data', onData);
      };
      const fail = (error: Error) => {
        settle();
        proc.kill('SIGKILL');
        child = undefined;
        reject(error);
      };
      const timer = setTimeout(() => fail(new Error(`nats-server not ready after 10 s:\n${log}`)), 10_000);
      proc.once('error', onError);
      proc.once('exit', onExit);
      proc.stderr?.on('data', onData);
    });
  };

  const stop = async (signal: NodeJS.Signals = 'SIGTERM') => {
    const proc = child;
    if (proc === undefined) return;
    child = undefined;
    if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
    await exited;
  };

  await start();
  return {
    port,
    url: `nats://127.0.0.1:${port}`,
    dir,
    start,
    stop,
    async close() {
      await stop('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
