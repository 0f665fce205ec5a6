// Starts real nginx and HAProxy processes in front of a hub, configured from the files users
// deploy (deploy/nginx.conf, deploy/haproxy.cfg) so that the tests check those very files. Each
// proxy runs in its own temporary directory on a free loopback port; nothing of the system's
// nginx or HAProxy set-up (/etc, the service, ports 80/443) is used.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onProcessExit } from './exit-hook.js';
import { freePort } from './ports.js';

export const NGINX_BINARY = '/usr/sbin/nginx';
export const HAPROXY_BINARY = '/usr/sbin/haproxy';

/** The deployment files the proxies are configured from. */
export const NGINX_DEPLOY_FILE = new URL('../../deploy/nginx.conf', import.meta.url).pathname;
export const HAPROXY_DEPLOY_FILE = new URL('../../deploy/haproxy.cfg', import.meta.url).pathname;

/** The upstream address the deploy files point at, replaced by the hub's. */
const DEPLOY_UPSTREAM = '127.0.0.1:3000';

/** A running proxy. */
export interface Proxy {
  /** `http://127.0.0.1:PORT`. */
  url: string;
  port: number;
  /** Everything the proxy logged so far (output and error log), for failure messages. */
  log(): string;
  /** Stops the proxy (SIGTERM, then SIGKILL) and removes its directory. */
  stop(): Promise<void>;
}

/** When `start…` resolves: once `GET /healthz` through the proxy gets an answer from the upstream (`http`, the default), or once the port accepts TCP connections (`tcp`, for upstreams without /healthz). */
export type Readiness = 'http' | 'tcp';

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Replaces every match of `pattern` (global) with `replacement`; throws if there is none, so that a changed deploy file cannot silently make a test vacuous. */
function replaceRequired(text: string, pattern: RegExp, replacement: (...groups: string[]) => string, what: string): string {
  let found = 0;
  const result = text.replace(pattern, (...args: unknown[]) => {
    found++;
    return replacement(...(args.slice(0, -2) as string[]));
  });
  if (found === 0) throw new Error(`${what} not found in the configuration`);
  return result;
}

/** Sets every (uncommented) `name …;` directive in an nginx configuration to `name value;`. */
export function setNginxDirective(conf: string, name: string, value: string): string {
  const pattern = new RegExp(`^([ \\t]*)${escapeRegExp(name)}(?:[ \\t]+[^;\\n]*)?;`, 'gm');
  return replaceRequired(conf, pattern, (_all, indent) => `${indent}${name} ${value};`, `nginx directive "${name}"`);
}

/** Sets every (uncommented) `timeout client|server …` line in a HAProxy configuration to `value`. */
export function setHaproxyTimeout(cfg: string, which: 'client' | 'server', value: string): string {
  const pattern = new RegExp(`^([ \\t]*)timeout[ \\t]+${which}[ \\t]+\\S+`, 'gm');
  return replaceRequired(cfg, pattern, (_all, indent) => `${indent}timeout ${which} ${value}`, `"timeout ${which}"`);
}

/** One upstream ("127.0.0.1:PORT") or several. */
export type Upstreams = string | readonly string[];

function upstreamList(upstreams: Upstreams): readonly string[] {
  const list = typeof upstreams === 'string' ? [upstreams] : upstreams;
  if (list.length === 0) throw new Error('no upstream given');
  return list;
}

/**
 * Points the deploy file's upstream (`DEPLOY_UPSTREAM`) at `upstreams`: each (uncommented) line
 * naming it is repeated once per upstream. `keyword` (without capture groups) matches what
 * precedes the address on that line; `rename` may change that part per copy (HAProxy's server name).
 */
function pointAt(text: string, upstreams: Upstreams, keyword: RegExp, rename: (head: string, index: number) => string = (head) => head): string {
  const list = upstreamList(upstreams);
  const pattern = new RegExp(`^([ \\t]*${keyword.source}[ \\t]+)${escapeRegExp(DEPLOY_UPSTREAM)}(?=[\\s;])(.*)$`, 'gm');
  return replaceRequired(
    text,
    pattern,
    (_all, head, tail) => list.map((upstream, i) => `${rename(head ?? '', i)}${upstream}${tail ?? ''}`).join('\n'),
    `upstream ${DEPLOY_UPSTREAM}`,
  );
}

/** Replaces the first (uncommented) line matching `pattern` with `line` and deletes the others. */
function replaceListeners(text: string, pattern: RegExp, line: (indent: string) => string, what: string): string {
  let first = true;
  return replaceRequired(
    text,
    pattern,
    (_all, indent) => {
      if (!first) return `${indent}# (removed for the test)`;
      first = false;
      return line(indent ?? '');
    },
    what,
  );
}

/** The deploy file with its listen address and upstream rewritten for a test. */
export function nginxServerConfig(conf: string, port: number, upstreams: Upstreams): string {
  let text = replaceListeners(conf, /^([ \t]*)listen[ \t]+[^;\n]*;/gm, (indent) => `${indent}listen 127.0.0.1:${port};`, 'nginx "listen"');
  text = pointAt(text, upstreams, /server/);
  return text;
}

/** A complete nginx.conf around `server` (text for the http {} context), everything inside `dir`. */
function nginxMainConfig(dir: string, server: string, http: string): string {
  return `# Generated by test/helpers/proxies.ts from deploy/nginx.conf.
daemon off;
# One process that serves (the same code as a worker): nothing to orphan if it is killed.
master_process off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log info;

events {
    worker_connections 1024;
}

http {
    access_log ${dir}/access.log;
    client_body_temp_path ${dir}/client_body_temp;
    proxy_temp_path ${dir}/proxy_temp;
    fastcgi_temp_path ${dir}/fastcgi_temp;
    uwsgi_temp_path ${dir}/uwsgi_temp;
    scgi_temp_path ${dir}/scgi_temp;

    # opts.http
    ${http}

    # deploy/nginx.conf
${server}
}
`;
}

/** The deploy file with its listen address and upstream rewritten for a test, and what only a system service needs (chroot, user, stats socket, syslog) taken out. */
export function haproxyTestConfig(cfg: string, port: number, upstreams: Upstreams): string {
  let text = cfg
    // A chroot, a user switch and an admin socket in /run need root and a system set-up.
    .replace(/^([ \t]*)(chroot|user|group|stats[ \t]+socket|daemon)\b.*$/gm, '$1# (removed for the test) $2')
    // Logs to stdout (read by log()) rather than to syslog.
    .replace(/^([ \t]*)log[ \t]+(?!global\b)\S+.*$/gm, '$1log stdout format raw local0')
    // maxconn 20000 needs 40000 file descriptors, which a container may not allow (HAProxy 2.6 then refuses to start).
    .replace(/^([ \t]*)maxconn[ \t]+\d+/gm, '$1maxconn 1000');
  text = replaceListeners(text, /^([ \t]*)bind[ \t]+.*$/gm, (indent) => `${indent}bind 127.0.0.1:${port}`, 'HAProxy "bind"');
  // Server names must be unique: the copies of `server hub1 …` become hub1, hub1-2, hub1-3…
  text = pointAt(text, upstreams, /server[ \t]+\S+/, (head, i) => (i === 0 ? head : head.replace(/^([ \t]*server[ \t]+\S+)/, `$1-${i + 1}`)));
  return text;
}

/** Live proxy processes, killed if the test process exits or is signalled without stopping them. */
const live = new Set<ChildProcess>();
let exitHookInstalled = false;

function killAll(): void {
  for (const child of live) child.kill('SIGKILL');
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

/** The status of `GET /healthz` through the proxy, or 0 when no answer came. */
function healthStatus(port: number): Promise<number> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path: '/healthz', agent: false, timeout: 1000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(0));
    req.end();
  });
}

function tcpOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** Spawns `binary` and waits until it serves on `port`. */
async function launch(name: string, binary: string, args: string[], dir: string, port: number, readiness: Readiness, extraLog: () => string): Promise<Proxy> {
  if (!existsSync(binary)) throw new Error(`${name} not found at ${binary} (scripts/ci-setup.sh installs it)`);
  installExitHook();
  const child = spawn(binary, args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(child);
  let output = '';
  const collect = (chunk: Buffer) => (output += chunk.toString());
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  // A proxy a test forgot to stop must not keep the test process alive (the exit hook kills it).
  child.unref();
  for (const stream of [child.stdout, child.stderr]) (stream as unknown as { unref?: () => void } | null)?.unref?.();
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  void exited.then(() => live.delete(child));

  let finalLog: string | undefined;
  const log = () => finalLog ?? `${output}${extraLog()}`;
  let stopped: Promise<void> | undefined;
  const stop = () =>
    (stopped ??= (async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timedOut = await Promise.race([exited.then(() => false), sleep(3000).then(() => true)]);
        if (timedOut) {
          child.kill('SIGKILL');
          await exited;
        }
      }
      finalLog = `${output}${extraLog()}`;
      live.delete(child);
      rmSync(dir, { recursive: true, force: true });
    })());

  const deadline = Date.now() + 10_000;
  let last = '';
  while (true) {
    if (child.exitCode !== null || child.signalCode !== null) {
      await stop();
      throw new Error(`${name} exited (${child.exitCode ?? child.signalCode}) before it was ready:\n${log()}`);
    }
    if (readiness === 'tcp') {
      if (await tcpOpen(port)) break;
    } else {
      // 502/503/504 come from the proxy itself (upstream not reached, or not yet marked up by a health check).
      const status = await healthStatus(port);
      if (status !== 0 && status !== 502 && status !== 503 && status !== 504) break;
      last = status === 0 ? 'no answer' : `status ${status}`;
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`${name} not ready on port ${port} within 10 s (${readiness === 'tcp' ? 'no TCP connection' : `GET /healthz: ${last}`}):\n${log()}`);
    }
    await sleep(50);
  }
  return { url: `http://127.0.0.1:${port}`, port, log, stop };
}

/** nginx in front of `upstreams` ("127.0.0.1:PORT", or several: one `server` line each) using deploy/nginx.conf; `edit` rewrites the deploy file's text before use; `http` adds directives to the http{} block. Resolves once it accepts connections. */
export async function startNginx(upstreams: Upstreams, opts: { edit?: (conf: string) => string; http?: string; ready?: Readiness } = {}): Promise<Proxy> {
  const deploy = readFileSync(NGINX_DEPLOY_FILE, 'utf8');
  const edited = opts.edit === undefined ? deploy : opts.edit(deploy);
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'ssehub-nginx-'));
  const confPath = join(dir, 'nginx.conf');
  try {
    writeFileSync(confPath, nginxMainConfig(dir, nginxServerConfig(edited, port, upstreams), opts.http ?? ''));
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  const errorLog = join(dir, 'error.log');
  const extraLog = () => (existsSync(errorLog) ? `--- error.log\n${readFileSync(errorLog, 'utf8')}` : '');
  return launch('nginx', NGINX_BINARY, ['-p', dir, '-c', confPath, '-e', errorLog], dir, port, opts.ready ?? 'http', extraLog);
}

/** HAProxy in front of `upstreams` ("127.0.0.1:PORT", or several: one `server` line each) using deploy/haproxy.cfg; `edit` rewrites the deploy file's text before use. Resolves once it accepts connections. */
export async function startHaproxy(upstreams: Upstreams, opts: { edit?: (cfg: string) => string; ready?: Readiness } = {}): Promise<Proxy> {
  const deploy = readFileSync(HAPROXY_DEPLOY_FILE, 'utf8');
  const edited = opts.edit === undefined ? deploy : opts.edit(deploy);
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'ssehub-haproxy-'));
  const cfgPath = join(dir, 'haproxy.cfg');
  try {
    writeFileSync(cfgPath, haproxyTestConfig(edited, port, upstreams));
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  return launch('HAProxy', HAPROXY_BINARY, ['-f', cfgPath, '-db'], dir, port, opts.ready ?? 'http', () => '');
}

/** A skip reason when `binary` is not installed, else `false` (for `describe(name, { skip })`). */
export function proxySkipReason(binary: string): string | false {
  return existsSync(binary) ? false : `${binary} is not installed (run scripts/ci-setup.sh, which installs the Debian nginx and haproxy packages)`;
}
