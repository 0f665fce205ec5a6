// One history per hub: a second hub on the same SQLite file is refused at start, naming the file
// and the process that holds it; the hold ends with that process, by a crash too.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { ConfigError } from '../../src/hub/errors.js';
import { startTestHub, tempDb } from '../helpers/hub.js';
import { startHubProcess } from '../helpers/hub-process.js';

const T = { timeout: 60_000 };

describe('two hubs on one sqlite file', T, () => {
  const stops: (() => Promise<unknown>)[] = [];
  after(async () => {
    for (const stop of stops.reverse()) await stop();
  });

  it('the second startHub rejects with a ConfigError naming --transport, the file and this process', async () => {
    const path = tempDb();
    const first = await startTestHub(['--transport', `sqlite:${path}`]);
    stops.push(() => first.close());
    await assert.rejects(startTestHub(['--transport', `sqlite:${path}`]), (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.equal(error.setting, '--transport');
      assert.ok(error.message.includes(path), error.message);
      assert.ok(error.message.includes(`pid ${process.pid}`), error.message);
      return true;
    });
    // The first is untouched by the attempt.
    assert.equal((await first.publish({ topic: 'urn:lock', data: 'still here' })).status, 200);
    await first.close();
    // Closed: the file is free again.
    const again = await startTestHub(['--transport', `sqlite:${path}`]);
    stops.push(() => again.close());
    assert.equal((await again.publish({ topic: 'urn:lock', data: 'mine now' })).status, 200);
  });

  it('ssehub serve exits 78 with the holder named, and starts once the holder was killed with SIGKILL', async () => {
    const path = tempDb();
    const holder = await startHubProcess(['--transport', `sqlite:${path}`]);
    stops.push(() => holder.kill('SIGKILL'));
    await assert.rejects(startHubProcess(['--transport', `sqlite:${path}`]), (error: Error) => {
      assert.match(error.message, /hub exited \(78\)/);
      assert.ok(error.message.includes(`invalid setting --transport: ${path} is in use by another process (pid ${holder.child.pid}`), error.message);
      return true;
    });
    await holder.kill('SIGKILL');
    const next = await startHubProcess(['--transport', `sqlite:${path}`]);
    stops.push(() => next.kill());
    const res = await fetch(next.hubUrl, { method: 'POST' });
    assert.equal(res.status, 401);
  });
});
