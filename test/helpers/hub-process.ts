// Runs `ssehub serve` as a real process (dist/cli.js; `npm test` builds first), for tests that
// kill hubs, run several nodes, or restart them.
import { type ChildProcess, spawn } from 'node:child_process';
import { TEST_KEY } from './hub.js';
import { freePort } from './ports.js';
export { freePort };

const cli = new URL('../../dist/cli.js', import.meta.url).pathname;


/** A hub process. */
export interface HubProcess {
  port: number;
  url: string;
  hubUrl: string;
  child: ChildProcess;
  /** stderr so far, for failure messages. */
  stderr(): string;
  /** stdout so far (the log), when started with `stdout: true`. */
  stdout(): string;
  /** Resolves with the exit code (or signal) once it exited. */
  exited: Promise<number | string>;
  kill(signal?: NodeJS.Signals): Promise<number | string>;
}

/**
 * Starts `ssehub serve --jwt-key TEST_KEY --listen 127.0.0.1:PORT` plus `flags` (`nodeArgs`: flags
 * for node itself; `fdLimit`: its open-file limit, as `ulimit -n`); resolves once /readyz answers 200.
 */
export async function startHubProcess(flags: string[], port?: number, nodeArgs: string[] = [], options: { fdLimit?: number; stdout?: boolean } = {}): Promise<HubProcess> {
  const p = port ?? (await freePort());
  const argv = [...nodeArgs, cli, 'serve', '--jwt-key', TEST_KEY, '--listen', `127.0.0.1:${p}`, '--log-level', 'warn', ...flags];
  // bash execs node, so the child's PID is the hub's.
  const stdio = ['ignore', options.stdout === true ? 'pipe' : 'ignore', 'pipe'] as const;
  const child =
    options.fdLimit === undefined
      ? spawn(process.execPath, argv, { stdio: [...stdio] })
      : spawn('bash', ['-c', `ulimit -n ${options.fdLimit} && exec "$0" "$@"`, process.execPath, ...argv], { stdio: [...stdio] });
  let err = '';
  let out = '';
  child.stderr?.on('data', (c: Buffer) => (err += c.toString()));
  child.stdout?.on('data', (c: Buffer) => (out += c.toString()));
  const exited = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? -1)));
  const url = `http://127.0.0.1:${p}`;
  const deadline = Date.now() + 20_000;
  while (true) {
    if (child.exitCode !== null) throw new Error(`hub exited (${child.exitCode}) before it was ready: ${err}`);
    const ok = await fetch(`${url}/readyz`).then((r) => r.ok, () => false);
    if (ok) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`hub not ready after 20 s: ${err}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    port: p,
    url,
    hubUrl: `${url}/.well-known/mercure`,
    child,
    stderr: () => err,
    stdout: () => out,
    exited,
    kill(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}
