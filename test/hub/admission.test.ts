// Which --workers process accepts: the primary's board (pure decisions on reported loads), the
// descriptor ceiling, and a worker's side on a real listening socket.
import assert from 'node:assert/strict';
import type { Worker } from 'node:cluster';
import { createServer } from 'node:http';
import { type Socket, connect } from 'node:net';
import { after, describe, it } from 'node:test';
import fc from 'fast-check';
import { pino } from 'pino';
import { type AdmissionMessage, AdmissionBoard, WorkerAdmission, balanceSlack, descriptorCeiling, hardDescriptorCeiling } from '../../src/hub/ops/admission.js';
import { freePort } from '../helpers/ports.js';
import { loadConfig, startHub } from '../../src/hub/index.js';
import { Writable } from 'node:stream';

const limits = (n: string) => `Limit                     Soft Limit           Hard Limit           Units\nMax cpu time              unlimited            unlimited            seconds\nMax open files            ${n}                20000                files\n`;

describe('descriptorCeiling', () => {
  it('keeps 5 % of the open-file limit (at least 256) for the process itself', () => {
    assert.equal(descriptorCeiling(limits('20000')), 19_000);
    assert.equal(descriptorCeiling(limits('1024')), 768);
    assert.equal(descriptorCeiling(limits('400')), 144);
    assert.equal(descriptorCeiling(limits('100')), 1);
  });
  it('stops a worker on its own only a few descriptors short of the limit (1 %, at least 32)', () => {
    assert.equal(hardDescriptorCeiling(limits('20000')), 19_800);
    assert.equal(hardDescriptorCeiling(limits('400')), 368);
    assert.equal(hardDescriptorCeiling(limits('unlimited')), Number.POSITIVE_INFINITY);
  });
  it('is unbounded where the limit is unlimited or cannot be read', () => {
    assert.equal(descriptorCeiling(limits('unlimited')), Number.POSITIVE_INFINITY);
    assert.equal(descriptorCeiling(''), Number.POSITIVE_INFINITY);
  });
});

/** Stand-ins for node:cluster workers: the board only uses them as keys and hands them to `send`. */
function fakeWorkers(n: number): Worker[] {
  return Array.from({ length: n }, (_, i) => ({ id: i + 1 }) as unknown as Worker);
}

function board(n: number) {
  const workers = fakeWorkers(n);
  const sent: Array<{ worker: number; on: boolean }> = [];
  const b = new AdmissionBoard((worker, message) => {
    if (message.type === 'ssehub:admission-set') sent.push({ worker: workers.indexOf(worker), on: message.on });
  });
  for (const w of workers) b.joined(w);
  const report = (i: number, connections: number, accepting = b.state()[i]?.on ?? true, ceiling: number | null = null) =>
    b.received(workers[i] as Worker, { type: 'ssehub:admission-load', connections, accepting, ceiling } satisfies AdmissionMessage);
  const on = () => b.state().map((s) => s.on);
  const keeper = () => b.state().map((s) => s.keeper);
  return { b, workers, sent, report, on, keeper };
}

describe('AdmissionBoard', () => {
  it('stops a worker more than the slack above the least loaded, and starts it again within half the slack', () => {
    const { report, on, keeper } = board(3);
    report(0, 0);
    report(1, 0);
    report(2, 0);
    assert.deepEqual(on(), [true, true, true], 'everyone accepts at the start');
    assert.deepEqual(keeper(), [true, false, false], 'one keeper');
    report(0, 1000);
    assert.deepEqual(on(), [false, true, true]);
    assert.deepEqual(keeper(), [false, true, false], 'the keeper is the least loaded of those listening');
    report(1, 800);
    assert.deepEqual(on(), [false, false, true], 'the second one too, while the third accepts');
    assert.deepEqual(keeper(), [false, false, true]);
    report(2, 750);
    // least 750, slack 256: 800 is within half of it again; 1000 is not within the slack.
    assert.deepEqual(on(), [false, true, true]);
    report(2, 900);
    report(1, 900);
    assert.deepEqual(on(), [true, true, true], '1000 is within 128 of 900');
  });

  it('never stops the keeper, and stops no one while the keeper does not listen', () => {
    const { report, on, keeper } = board(2);
    report(0, 0);
    report(1, 5000, false); // stopped at its descriptor ceiling
    report(0, 9000);
    assert.deepEqual(keeper(), [true, false], 'the only one listening keeps the socket, however loaded');
    assert.deepEqual(on(), [true, true]);
    // Nobody listening (both stopped at their ceilings, on stale news): the least loaded is told to, as keeper.
    report(0, 9000, false);
    assert.deepEqual(keeper(), [false, true]);
    assert.deepEqual(on(), [true, true], 'the other one is not stopped before the keeper listens');
    report(1, 5000, true);
    assert.deepEqual(on(), [false, true], 'now it is');
  });

  it('stops a worker at its descriptor ceiling while the keeper listens, and starts it again 1 % below', () => {
    const { report, on, keeper } = board(3);
    report(0, 990, true, 1000);
    report(1, 900, true, 1000);
    report(2, 950, true, 1000);
    assert.deepEqual(on(), [true, true, true], 'within the slack, below the ceilings');
    report(0, 1000, true, 1000);
    assert.deepEqual(on(), [false, true, true], 'at its ceiling');
    report(0, 995, false, 1000);
    assert.deepEqual(on(), [false, true, true], 'not yet 1 % below it');
    report(0, 989, false, 1000);
    assert.deepEqual(on(), [true, true, true]);
    // Everyone at the ceiling: the keeper (the least loaded listening) keeps listening, alone.
    report(1, 1000, true, 1000);
    report(2, 1000, true, 1000);
    report(0, 1000, true, 1000);
    const states = on();
    assert.equal(states.filter(Boolean).length, 1, 'one listens');
    assert.deepEqual(states, keeper());
  });

  it('lets a single reporting worker accept, and decides again when a worker leaves', () => {
    const { b, workers, report, on } = board(3);
    report(0, 2000);
    assert.deepEqual(on(), [true, true, true], 'one report is no comparison');
    report(1, 0);
    report(2, 0);
    assert.deepEqual(on(), [false, true, true]);
    b.left(workers[1] as Worker);
    b.left(workers[2] as Worker);
    assert.deepEqual(on(), [true], 'alone again: accepts');
  });

  it('keeps someone accepting and converges to every accepting worker within the slack (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 2, max: 8 }),
        fc.array(fc.record({ worker: fc.nat(7), connections: fc.nat(50_000), accepting: fc.boolean(), ceiling: fc.option(fc.integer({ min: 1, max: 60_000 })) }), { maxLength: 60 }),
        (n, reports) => {
          const { report, on, keeper } = board(n);
          for (const r of reports) {
            report(r.worker % n, r.connections, r.accepting, r.ceiling);
            assert.ok(on().some(Boolean), 'some worker is told to accept');
          }
          // Loads held still (no ceilings), every worker saying truly whether it listens: a few rounds settle it.
          const loads = on().map((_, i) => reports.filter((r) => r.worker % n === i).at(-1)?.connections ?? 0);
          for (let round = 0; round < 3; round++) for (let i = 0; i < n; i++) report(i, loads[i] as number, on()[i]);
          const least = Math.min(...loads);
          const slack = balanceSlack(loads.reduce((a, b) => a + b, 0) / n);
          const states = on();
          const keepers = keeper().flatMap((k, i) => (k ? [i] : []));
          assert.equal(keepers.length, 1, 'one keeper');
          assert.equal(loads[keepers[0] as number], least, 'the keeper holds the fewest');
          for (let i = 0; i < n; i++) {
            if (loads[i] === least) assert.equal(states[i], true, `worker ${i} holds the fewest and accepts`);
            if (states[i]) assert.ok((loads[i] as number) <= least + slack, `worker ${i} accepts only within the slack`);
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});

/** Opens a TCP connection, or fails with the connect error. */
function open(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => resolve(socket));
    socket.once('error', reject);
  });
}

async function until(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('WorkerAdmission', () => {
  it('reports its ceiling, stops on its own at the hard one, keeps serving the connections it has, and listens again once some close', async () => {
    const port = await freePort();
    const server = createServer((_req, res) => res.end('ok'));
    const sockets = new Set<Socket>();
    server.on('connection', (s: Socket) => {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
    });
    const listen = { port, host: '127.0.0.1', backlog: 16 };
    await new Promise<void>((resolve) => server.listen(listen, resolve));
    const reports: AdmissionMessage[] = [];
    // Ceiling 2 (reported at once), hard ceiling 3 (where it stops on its own).
    const admission = new WorkerAdmission(server, listen, () => sockets.size, pino({ level: 'silent' }), 2, 3, (m) => reports.push(m));
    after(() => {
      admission.stop();
      server.close();
      server.closeAllConnections();
    });
    const set = (on: boolean, keep: boolean) => process.emit('message', { type: 'ssehub:admission-set', on, keep } satisfies AdmissionMessage, undefined);

    // Until the primary has spoken, a worker listens as if alone: past its ceilings.
    const spare = await Promise.all([open(port), open(port), open(port), open(port)]);
    await until(() => sockets.size === 4, 'four connections');
    assert.equal(server.listening, true);
    spare.forEach((c) => c.destroy());
    await until(() => sockets.size === 0, 'them closed');
    set(true, false);

    const clients = [await open(port), await open(port)];
    await until(() => reports.some((r) => r.type === 'ssehub:admission-load' && r.connections === 2 && r.ceiling === 2), 'the ceiling reported');
    assert.equal(server.listening, true, 'at its ceiling a worker waits for the primary');
    clients.push(await open(port));
    await until(() => !server.listening, 'the third connection (the hard ceiling) stops the listening');
    await assert.rejects(open(port), { code: 'ECONNREFUSED' }, 'no one else listens on this port: refused');
    // The connections it holds are still served.
    const answer = await new Promise<string>((resolve) => {
      const c = clients[0] as Socket;
      c.once('data', (d) => resolve(d.toString()));
      c.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    });
    assert.match(answer, /^HTTP\/1\.1 200 OK[\s\S]*ok$/);

    clients.splice(0, 2).forEach((c) => c.destroy());
    await until(() => server.listening, 'listening again below the ceiling');
    clients.push(await open(port));
    await until(() => reports.some((r) => r.type === 'ssehub:admission-load' && r.connections === 2 && r.accepting), 'a report of the new load');
    clients.forEach((c) => c.destroy());
  });

  it('stops and starts as the primary says', async () => {
    const port = await freePort();
    const server = createServer((_req, res) => res.end('ok'));
    const listen = { port, host: '127.0.0.1', backlog: 16 };
    await new Promise<void>((resolve) => server.listen(listen, resolve));
    const admission = new WorkerAdmission(server, listen, () => 0, pino({ level: 'silent' }), 100, 100, () => {});
    after(() => {
      admission.stop();
      server.close();
    });
    process.emit('message', { type: 'ssehub:admission-set', on: false, keep: false } satisfies AdmissionMessage, undefined);
    assert.equal(server.listening, false);
    await assert.rejects(open(port), { code: 'ECONNREFUSED' });
    process.emit('message', { type: 'ssehub:admission-set', on: true, keep: false } satisfies AdmissionMessage, undefined);
    await until(() => server.listening, 'listening again');
    (await open(port)).destroy();
    // Other messages are not its business.
    process.emit('message', { type: 'ssehub:metrics-collect', id: 1 }, undefined);
    process.emit('message', 'nonsense', undefined);
    assert.equal(server.listening, true);
  });
});

describe('a single hub and its descriptors', () => {
  async function warnings(maxConnections: string): Promise<string[]> {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    const config = loadConfig({ argv: ['--jwt-key', 'k'.repeat(32), '--listen', '127.0.0.1:0', '--transport', 'memory', '--max-connections', maxConnections], env: {} });
    const running = await startHub(config, { logger: pino({ level: 'warn' }, sink) });
    await running.close();
    return lines.filter((l) => l.includes('--max-connections'));
  }

  it('warns at start when --max-connections is above what the process can hold', { skip: Number.isFinite(descriptorCeiling()) ? false : 'no open-file limit to read here' }, async () => {
    const ceiling = descriptorCeiling();
    const [unlimited] = await warnings('0');
    assert.match(unlimited ?? '', new RegExp(`--max-connections 0 \\(no limit\\) is above the ${ceiling} connections`));
    assert.match(unlimited ?? '', /ulimit -n/);
    assert.equal((await warnings(String(ceiling + 1))).length, 1);
    assert.deepEqual(await warnings(String(ceiling)), []);
  });
});
