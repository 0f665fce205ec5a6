// The Centrifugo front-end under random commands (SPEC §7): whatever a client sends, it gets a reply,
// an error reply or a disconnect code — never a crash — nothing it may not publish is stored, and
// the hub stays ready. A failure prints fast-check's seed: FUZZ_SEED=<seed> replays it,
// FUZZ_RUNS=<n> runs longer.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { FrameError, parseFrame } from '../../src/hub/centrifugo/codec.js';
import { rawClient } from '../helpers/centrifuge.js';
import { type TestHub, startTestHub } from '../helpers/hub.js';

const NUM_RUNS = Number(process.env.FUZZ_RUNS ?? 60);
const SEED = process.env.FUZZ_SEED === undefined ? undefined : Number(process.env.FUZZ_SEED);
const METHODS = ['connect', 'subscribe', 'unsubscribe', 'publish', 'presence', 'presence_stats', 'history', 'ping', 'send', 'rpc', 'refresh', 'sub_refresh', 'frobnicate'];

/** A JSON value of any shape, for parameters. */
const anyValue = fc.jsonValue({ maxDepth: 3 });

/** One command: a method with parameters of the right names and random values, or of random names. */
const command = fc.record({
  id: fc.oneof(fc.nat({ max: 1000 }), fc.constant(0), fc.integer(), fc.double(), fc.string()),
  method: fc.constantFrom(...METHODS),
  params: fc.oneof(
    fc.dictionary(fc.constantFrom('channel', 'data', 'token', 'recover', 'offset', 'epoch', 'limit', 'since', 'reverse', 'join_leave', 'flag'), anyValue),
    anyValue,
  ),
});

/** A line of a frame: a command, or any text. */
const line = fc.oneof({ weight: 4, arbitrary: command.map((c) => JSON.stringify({ id: c.id, [c.method]: c.params })) }, { weight: 1, arbitrary: fc.string() }, { weight: 1, arbitrary: anyValue.map((v) => JSON.stringify(v)) });

describe('Centrifugo front-end: random commands', () => {
  let hub: TestHub;
  let token = '';
  before(async () => {
    hub = await startTestHub(['--anonymous', '--centrifugo-max-message', '8kb', '--centrifugo-command-rate', '0']);
    // May subscribe to anything, publish nowhere: whatever the random commands say, nothing may be stored.
    token = await hub.token({ subscribe: ['*'] });
  });
  after(async () => {
    await hub.close();
  });

  it('reads any frame into commands or refuses it with a FrameError, nothing else', () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(line, fc.string()), { maxLength: 5 }), (lines) => {
        try {
          parseFrame(lines.join('\n'));
        } catch (error) {
          assert.ok(error instanceof FrameError, String(error));
        }
      }),
      { numRuns: 2000, seed: SEED },
    );
  });

  it('answers every frame of random commands, after a connect, with replies or a disconnect; the hub stays ready and stores nothing', { timeout: 120_000 }, async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(line, { minLength: 1, maxLength: 6 }), async (lines) => {
        const raw = await rawClient(hub.url);
        try {
          raw.send(JSON.stringify({ id: 1, connect: { token } }));
          await raw.reply((r) => r.id === 1, 'the connect reply');
          raw.send(lines.join('\n'));
          // A marker after the frame: its reply (or the connection's end) says the frame was handled.
          raw.send('{"id":999999,"ping":{}}');
          await Promise.race([raw.reply((r) => r.id === 999999, 'the marker'), raw.closed]);
        } finally {
          raw.close();
        }
      }),
      { numRuns: NUM_RUNS, seed: SEED },
    );
    assert.equal((await fetch(`${hub.url}/readyz`)).status, 200);
    assert.deepEqual((await hub.hub.history('earliest', () => true)).updates, []);
  });
});
