// Updates that cannot be encoded: refused where they enter the hub (whoever calls), and skipped
// (logged once, counted) when a transport hands one back, on every transport, live and on resume.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { Redis } from 'ioredis';
import { connect as natsConnect } from 'nats';
import { pino } from 'pino';
import { InvalidUpdateError } from '../../src/hub/errors.js';
import { type TestHub, startTestHub, tempDb } from '../helpers/hub.js';
import { subscribeUrl } from '../helpers/hub-streams.js';
import { type NatsServer, startNatsServer } from '../helpers/nats-server.js';
import { type RedisServer, startRedisServer } from '../helpers/redis-server.js';
import { openSse } from '../helpers/sse-client.js';

const T = { timeout: 30_000 };

async function metric(hub: TestHub, name: string): Promise<number> {
  const text = await (await fetch(`${hub.url}/metrics`)).text();
  return text
    .split('\n')
    .filter((l) => l.startsWith(name))
    .reduce((n, l) => n + Number(l.split(' ').pop()), 0);
}

/** A hub whose log lines are collected, to check what it says about a poison entry. */
async function hubWithLog(flags: string[]): Promise<TestHub & { logs: Record<string, unknown>[] }> {
  const logs: Record<string, unknown>[] = [];
  const destination = { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) };
  const hub = await startTestHub(flags, {}, { logger: pino({ level: 'error' }, destination) });
  return Object.assign(hub, { logs });
}

describe('an update that cannot be encoded, handed to the library API', T, () => {
  let hub: TestHub;
  before(async () => {
    hub = await startTestHub(['--anonymous']);
  });
  after(() => hub.close());

  for (const [what, update] of [
    ['an id with a line feed', { id: 'a\nb', topics: ['a'], data: 'x', private: false }],
    ['an id with a NUL', { id: 'a\0b', topics: ['a'], data: 'x', private: false }],
    ['a type with a carriage return', { id: 'ok-1', topics: ['a'], data: 'x', private: false, type: 'm\rdata: evil' }],
    ['a negative retry', { id: 'ok-2', topics: ['a'], data: 'x', private: false, retry: -1 }],
    ['no topics', { id: 'ok-3', topics: [], data: 'x', private: false }],
    ['a topic that is not a string', { id: 'ok-4', topics: [42], data: 'x', private: false }],
    ['data that is not a string', { id: 'ok-5', topics: ['a'], data: { x: 1 }, private: false }],
  ] as const) {
    it(`rejects ${what} with InvalidUpdateError and stores nothing`, async () => {
      await assert.rejects(hub.hub.publish(update as never), (error: unknown) => error instanceof InvalidUpdateError && error.field !== '');
      const history = await hub.hub.transport.history('earliest', () => true);
      assert.deepEqual(history.updates, []);
    });
  }

  it('fills in the id, data and private of a valid update, and it reaches a subscriber', async () => {
    const sse = await openSse(subscribeUrl(hub.hubUrl, ['a']));
    try {
      const stored = await hub.hub.publish({ topics: ['a'], data: 'fine' });
      assert.match(stored.id, /^urn:uuid:/);
      await sse.events_(1);
      assert.equal(sse.events[0]?.data, 'fine');
      assert.equal(sse.events[0]?.lastEventId, stored.id);
    } finally {
      sse.close();
    }
  });
});

/** What every transport must do with an entry it reads back that is not a valid update. */
interface Planted {
  flags: string[];
  /** Writes entries that are not valid updates, as another program or version would. */
  plant: () => Promise<void>;
  /** `true` when the entries can only be there before the hub starts (a file only one hub writes). */
  beforeStart?: boolean;
  stop: () => Promise<void>;
}

function poisonSuite(name: string, setup: () => Promise<Planted>): void {
  describe(`a poison entry in ${name}`, T, () => {
    let planted: Planted;
    let hub: TestHub & { logs: Record<string, unknown>[] };
    before(async () => {
      planted = await setup();
      hub = await hubWithLog([...planted.flags, '--anonymous']);
    });
    after(async () => {
      await hub.close();
      await planted.stop();
    });

    it('is skipped live and on resume, logged once and counted, and the updates behind it arrive', async () => {
      const first = await hub.publish({ topic: 'urn:poison', id: 'before-poison', data: 'one' });
      assert.equal(first.status, 200);
      if (planted.beforeStart === true) {
        await hub.close();
        await planted.plant();
        hub = await hubWithLog([...planted.flags, '--anonymous']);
      }
      const live = await openSse(subscribeUrl(hub.hubUrl, ['urn:poison']));
      try {
        if (planted.beforeStart !== true) await planted.plant();
        const behind = await hub.publish({ topic: 'urn:poison', id: 'after-poison', data: 'two' });
        assert.equal(behind.status, 200);
        await live.until((r) => r.events.some((e) => e.lastEventId === 'after-poison'), 'the update behind the poison entry');
        assert.deepEqual(
          live.events.map((e) => e.lastEventId),
          ['after-poison'],
        );
      } finally {
        live.close();
      }
      // Twice: a resume over it skips it each time, and says so once.
      for (let i = 0; i < 2; i++) {
        const resumed = await openSse(subscribeUrl(hub.hubUrl, ['urn:poison'], { lastEventID: 'before-poison' }));
        try {
          assert.equal(resumed.status, 200);
          await resumed.until((r) => r.events.some((e) => e.lastEventId === 'after-poison'), 'the resume past the poison entry');
          assert.deepEqual(
            resumed.events.map((e) => e.lastEventId),
            ['after-poison'],
          );
        } finally {
          resumed.close();
        }
      }
      assert.ok((await metric(hub, 'ssehub_poison_updates_total')) >= 2);
      const logged = hub.logs.filter((l) => l.msg === 'skipped an entry of the transport that is not a valid update');
      assert.ok(logged.length >= 1);
      const refs = logged.map((l) => l.update);
      assert.equal(new Set(refs).size, refs.length, `each poison entry is logged once: ${JSON.stringify(refs)}`);
      assert.equal((await fetch(`${hub.url}/readyz`)).status, 200);
    });
  });
}

poisonSuite('sqlite', async () => {
  const path = tempDb();
  return {
    flags: ['--transport', `sqlite:${path}`],
    beforeStart: true,
    plant: async () => {
      const db = new Database(path);
      const insert = db.prepare('INSERT INTO updates (id, topics, data, private, type, retry, published_at) VALUES (?, ?, ?, 0, NULL, NULL, ?)');
      insert.run('bad\nid', '["urn:poison"]', 'x', Date.now());
      insert.run('bad-topics', 'not json', 'x', Date.now());
      db.close();
    },
    stop: async () => {},
  };
});

poisonSuite('redis', async () => {
  const server: RedisServer = await startRedisServer();
  return {
    flags: ['--transport', server.url],
    plant: async () => {
      const client = new Redis(server.url);
      await client.xadd('{ssehub}:updates', '*', 'id', 'bad\nid', 'topics', '["urn:poison"]', 'data', 'x', 'private', '0', 'at', String(Date.now()));
      await client.xadd('{ssehub}:updates', '*', 'id', 'bad-topics', 'topics', 'not json', 'data', 'x');
      await client.xadd('{ssehub}:updates', '*', 'hello', 'world');
      client.disconnect();
    },
    stop: () => server.stop(),
  };
});

poisonSuite('nats', async () => {
  const server: NatsServer = await startNatsServer();
  return {
    flags: ['--transport', server.url],
    plant: async () => {
      const nc = await natsConnect({ servers: server.url.replace('nats://', '') });
      const js = nc.jetstream();
      const enc = new TextEncoder();
      await js.publish('ssehub.updates.bad1', enc.encode(JSON.stringify({ id: 'bad\nid', topics: ['urn:poison'], data: 'x', private: false })));
      await js.publish('ssehub.updates.bad2', enc.encode('not json at all'));
      await nc.close();
    },
    stop: () => server.close(),
  };
});
