// Starts a Redis Cluster of real redis-server processes on free loopback ports: `masters` nodes
// sharing the 16384 slots evenly, each with `replicasPerMaster` replicas, joined the way
// `redis-cli --cluster create` does it (config epochs, ADDSLOTSRANGE, MEET, REPLICATE). The
// cluster bus port of each node is a free port too (not the fixed port + 10000).
import { Redis } from 'ioredis';
import { freePort } from './ports.js';
import { type RedisServer, startRedisServer } from './redis-server.js';

const SLOTS = 16384;

/** A Redis Cluster node: its server and cluster node ID. */
export interface ClusterNode {
  readonly server: RedisServer;
  readonly id: string;
  readonly busPort: number;
}

/** A running Redis Cluster. */
export interface RedisCluster {
  /** `redis+cluster://127.0.0.1:P1,…` (the masters). */
  readonly url: string;
  readonly masters: readonly ClusterNode[];
  readonly replicas: readonly ClusterNode[];
  /** A command on one node, on a short-lived connection. */
  ask(node: ClusterNode, ...args: (string | number)[]): Promise<unknown>;
  /** The slot of `key` and the master serving it now. */
  owner(key: string): Promise<{ slot: number; node: ClusterNode }>;
  /** Moves `slot` with its keys from one master to another (IMPORTING / MIGRATING, MIGRATE, SETSLOT NODE on every master). */
  moveSlot(slot: number, from: ClusterNode, to: ClusterNode): Promise<void>;
  /** Stops every node and removes their directories. */
  stop(): Promise<void>;
}

/** Polls `check` until it holds: a safety-net deadline, not a measurement. */
async function until(check: () => Promise<boolean>, what: string, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function ask(port: number, ...args: (string | number)[]): Promise<unknown> {
  const client = new Redis({ port, host: '127.0.0.1', lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0, connectTimeout: 1000 });
  client.on('error', () => {});
  try {
    await client.connect();
    return await client.call(String(args[0]), ...args.slice(1));
  } finally {
    client.disconnect();
  }
}

/** Starts and joins a cluster; resolves once every node reports `cluster_state:ok` and knows every other node. */
export async function startRedisCluster(options: { masters?: number; replicasPerMaster?: number } = {}): Promise<RedisCluster> {
  const masterCount = options.masters ?? 3;
  const perMaster = options.replicasPerMaster ?? 0;
  const all: ClusterNode[] = [];
  const stop = async () => {
    await Promise.all(all.map((n) => n.server.stop()));
  };
  try {
    const started = await Promise.all(
      Array.from({ length: masterCount * (1 + perMaster) }, async () => {
        const busPort = await freePort();
        const server = await startRedisServer({
          args: ['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', '2000', '--cluster-port', String(busPort), '--repl-diskless-sync-delay', '0'],
        });
        const id = String(await ask(server.port, 'CLUSTER', 'MYID'));
        return { server, id, busPort };
      }),
    );
    all.push(...started);
  } catch (error) {
    await stop();
    throw error;
  }
  const masters = all.slice(0, masterCount);
  const replicas = all.slice(masterCount);
  try {
    for (const [i, node] of masters.entries()) {
      await ask(node.server.port, 'CLUSTER', 'SET-CONFIG-EPOCH', i + 1);
      const first = Math.floor((SLOTS * i) / masterCount);
      const last = Math.floor((SLOTS * (i + 1)) / masterCount) - 1;
      await ask(node.server.port, 'CLUSTER', 'ADDSLOTSRANGE', first, last);
    }
    const [seed] = all as [ClusterNode];
    for (const node of all.slice(1)) await ask(seed.server.port, 'CLUSTER', 'MEET', '127.0.0.1', node.server.port, node.busPort);
    await until(async () => {
      for (const node of all) {
        const known = String(await ask(node.server.port, 'CLUSTER', 'NODES')).trim().split('\n');
        if (known.length !== all.length || known.some((line) => /handshake|noaddr|fail/.test(line))) return false;
      }
      return true;
    }, 'every node to know every other node');
    for (const [i, replica] of replicas.entries()) {
      await ask(replica.server.port, 'CLUSTER', 'REPLICATE', (masters[i % masterCount] as ClusterNode).id);
    }
    await until(async () => {
      for (const node of all) {
        const info = String(await ask(node.server.port, 'CLUSTER', 'INFO'));
        if (!info.includes('cluster_state:ok') || !info.includes(`cluster_slots_ok:${SLOTS}`)) return false;
      }
      for (const master of masters) {
        const replication = String(await ask(master.server.port, 'INFO', 'replication'));
        if ((replication.match(/^slave\d+:.*state=online/gm) ?? []).length !== perMaster) return false;
      }
      return true;
    }, 'the cluster to serve every slot, with its replicas online');
  } catch (error) {
    await stop();
    throw error;
  }

  /** A command on the first node that answers (some may be down). */
  const askAny = async (...args: (string | number)[]): Promise<unknown> => {
    let last: unknown;
    for (const node of all) {
      if (!node.server.running) continue;
      try {
        return await ask(node.server.port, ...args);
      } catch (error) {
        last = error;
      }
    }
    throw last ?? new Error('no cluster node is running');
  };
  const owner = async (key: string) => {
    const slot = Number(await askAny('CLUSTER', 'KEYSLOT', key));
    // CLUSTER NODES: id address flags master ping pong epoch state slot-ranges…
    const nodes = String(await askAny('CLUSTER', 'NODES')).trim().split('\n');
    for (const line of nodes) {
      const fields = line.split(' ');
      if (!fields[2]?.includes('master')) continue;
      for (const range of fields.slice(8)) {
        const [lo, hi] = range.split('-').map(Number) as [number, number | undefined];
        if (slot >= lo && slot <= (hi ?? lo)) {
          const node = all.find((n) => n.id === fields[0]);
          if (node !== undefined) return { slot, node };
        }
      }
    }
    throw new Error(`no master serves slot ${slot}`);
  };

  return {
    url: `redis+cluster://${masters.map((n) => `127.0.0.1:${n.server.port}`).join(',')}`,
    masters,
    replicas,
    ask: (node, ...args) => ask(node.server.port, ...args),
    owner,
    async moveSlot(slot, from, to) {
      await ask(to.server.port, 'CLUSTER', 'SETSLOT', slot, 'IMPORTING', from.id);
      await ask(from.server.port, 'CLUSTER', 'SETSLOT', slot, 'MIGRATING', to.id);
      while (true) {
        const keys = (await ask(from.server.port, 'CLUSTER', 'GETKEYSINSLOT', slot, 100)) as string[];
        if (keys.length === 0) break;
        await ask(from.server.port, 'MIGRATE', '127.0.0.1', to.server.port, '', 0, 5000, 'KEYS', ...keys);
      }
      for (const node of [to, from, ...masters.filter((m) => m !== to && m !== from)]) await ask(node.server.port, 'CLUSTER', 'SETSLOT', slot, 'NODE', to.id);
    },
    stop,
  };
}
