// Starts a Redis primary, its replicas and Redis Sentinels watching them, all as real processes
// on free loopback ports (Sentinel is redis-server with --sentinel: Debian's redis-sentinel
// package only adds a service around the same binary). The Sentinels declare the primary down
// after `downAfterMs` without an answer and then fail over to a replica.
import { type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort } from './ports.js';
import { type RedisServer, redisServerBinary, spawnKilledOnExit, startRedisServer, untilLogged } from './redis-server.js';

/** One redis-sentinel process. */
export interface Sentinel {
  readonly port: number;
  /** Kills it with SIGKILL and waits for it to exit. */
  kill(): Promise<void>;
}

/** A primary, its replicas and the Sentinels that watch them. */
export interface SentinelGroup {
  /** The primary's name as the Sentinels know it. */
  readonly name: string;
  /** `redis+sentinel://127.0.0.1:S1,…/NAME`. */
  readonly url: string;
  /** The Redis servers: the first primary, then its replicas (after a failover one of them is the primary). */
  readonly servers: readonly RedisServer[];
  readonly sentinels: readonly Sentinel[];
  /** The port of the primary the Sentinels name now. */
  primaryPort(): Promise<number>;
  /** The server the Sentinels name as primary now. */
  primary(): Promise<RedisServer>;
  /** Resolves once the Sentinels name a primary other than the one on `port` and it has `replicas` replicas online; returns its port. */
  failedOver(port: number, replicas: number): Promise<number>;
  /** Resolves once the primary on `port` has `count` replicas online (safety-net deadline). */
  replicasOnline(port: number, count: number): Promise<void>;
  /** Stops every process and removes their directories. */
  stop(): Promise<void>;
}

const NAME = 'ssehub-primary';

/** Polls `check` until it holds: a safety-net deadline, not a measurement. */
async function until(check: () => Promise<boolean>, what: string, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Asks a server or Sentinel one command on a short-lived connection. */
async function ask(port: number, ...args: string[]): Promise<unknown> {
  const client = new Redis({ port, host: '127.0.0.1', lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0, connectTimeout: 1000 });
  client.on('error', () => {});
  try {
    await client.connect();
    return await client.call(args[0] as string, ...args.slice(1));
  } finally {
    client.disconnect();
  }
}

/** The replicas a primary reports online. */
async function onlineReplicas(port: number): Promise<number> {
  const info = String(await ask(port, 'INFO', 'replication'));
  if (!/role:master/.test(info)) return -1;
  return (info.match(/^slave\d+:.*state=online/gm) ?? []).length;
}

/** Starts a primary with `replicas` replicas, and `sentinels` Sentinels (quorum: a majority of them) that know all of them and one another. */
export async function startSentinelGroup(options: { replicas?: number; sentinels?: number; downAfterMs?: number } = {}): Promise<SentinelGroup> {
  const replicaCount = options.replicas ?? 1;
  const sentinelCount = options.sentinels ?? 1;
  const downAfterMs = options.downAfterMs ?? 1000;
  const binary = redisServerBinary();
  if (binary === undefined) throw new Error('redis-server not found');
  const servers: RedisServer[] = [];
  const sentinels: (Sentinel & { dir: string })[] = [];
  const children: ChildProcess[] = [];
  const stop = async () => {
    for (const child of children) child.kill('SIGKILL');
    await Promise.all(servers.map((s) => s.stop()));
    for (const s of sentinels) rmSync(s.dir, { recursive: true, force: true });
  };
  try {
    // A replica's first sync starts at once instead of after the default 5 s wait for more replicas.
    const sync = ['--repl-diskless-sync-delay', '0'];
    const first = await startRedisServer({ args: sync });
    servers.push(first);
    for (let i = 0; i < replicaCount; i++) servers.push(await startRedisServer({ args: [...sync, '--replicaof', '127.0.0.1', String(first.port)] }));
    await until(async () => (await onlineReplicas(first.port)) === replicaCount, `${replicaCount} replicas online`);

    const quorum = Math.floor(sentinelCount / 2) + 1;
    for (let i = 0; i < sentinelCount; i++) {
      const port = await freePort();
      const dir = mkdtempSync(join(tmpdir(), 'ssehub-sentinel-'));
      const conf = join(dir, 'sentinel.conf');
      writeFileSync(
        conf,
        [
          `port ${port}`,
          'bind 127.0.0.1',
          `dir ${dir}`,
          `sentinel monitor ${NAME} 127.0.0.1 ${first.port} ${quorum}`,
          `sentinel down-after-milliseconds ${NAME} ${downAfterMs}`,
          `sentinel failover-timeout ${NAME} 10000`,
          `sentinel parallel-syncs ${NAME} ${replicaCount}`,
          '',
        ].join('\n'),
      );
      const child = spawnKilledOnExit(binary, [conf, '--sentinel']);
      children.push(child);
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      sentinels.push({
        port,
        dir,
        async kill() {
          child.kill('SIGKILL');
          await exited;
        },
      });
      await untilLogged(child, '+monitor master', 'redis-sentinel');
    }
    // A failover needs the Sentinels to know the replicas and, for a vote, one another.
    for (const s of sentinels) {
      await until(async () => {
        const known = await ask(s.port, 'SENTINEL', 'REPLICAS', NAME);
        const peers = await ask(s.port, 'SENTINEL', 'SENTINELS', NAME);
        return Array.isArray(known) && known.length === replicaCount && Array.isArray(peers) && peers.length === sentinelCount - 1;
      }, `Sentinel ${s.port} to know ${replicaCount} replicas and ${sentinelCount - 1} other Sentinels`);
    }
  } catch (error) {
    await stop();
    throw error;
  }

  const primaryPort = async (): Promise<number> => {
    const reply = await ask((sentinels[0] as Sentinel).port, 'SENTINEL', 'GET-MASTER-ADDR-BY-NAME', NAME);
    return Number((reply as string[])[1]);
  };
  const replicasOnline = (port: number, count: number) => until(async () => (await onlineReplicas(port)) >= count, `the primary on ${port} to have ${count} replicas online`);
  return {
    name: NAME,
    url: `redis+sentinel://${sentinels.map((s) => `127.0.0.1:${s.port}`).join(',')}/${NAME}`,
    servers,
    sentinels,
    primaryPort,
    async primary() {
      const port = await primaryPort();
      const server = servers.find((s) => s.port === port);
      if (server === undefined) throw new Error(`the Sentinels name an unknown primary on port ${port}`);
      return server;
    },
    async failedOver(port, replicas) {
      let now = port;
      await until(async () => (now = await primaryPort()) !== port, `the Sentinels to name a primary other than ${port}`);
      await replicasOnline(now, replicas);
      return now;
    },
    replicasOnline,
    stop,
  };
}
