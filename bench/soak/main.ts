// `npm run soak`: the long reliability run (issue 9), not part of npm test. Loopback only, bounded
// in time and count. Prints a Markdown report; with --write puts it into docs/reliability.md.
//
//   npm run soak                                  10 min steady soak, then the long chaos scenarios
//   npm run soak -- --duration 2m --only steady   a shorter run of one part
//   npm run soak -- --subscribers 2000 --transport memory
//   npm run soak -- --only chaos --scenarios hub-kill,storm
//   npm run soak -- --hub-args "--write-timeout 1m"   extra flags for the hub of the steady soak
//
// Exits non-zero when any check failed.
import { cpus, totalmem } from 'node:os';
import { readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseDuration } from '../../src/hub/config.js';
import { startRedisServer, type RedisServer } from '../../test/helpers/redis-server.js';
import { startNatsServer, type NatsServer } from '../../test/helpers/nats-server.js';
import { MAX_PER_CHILD } from '../sse/clients.js';
import { LONG, SCENARIOS, type ChaosReport, renderChaos } from '../../test/chaos/scenarios.js';
import { renderSteady, steadySoak } from './steady.js';

const log = (message: string) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${message}\n`);

const USAGE = `usage: npm run soak -- [--duration 10m] [--subscribers 10000] [--rate 50] [--topics 100] [--churn 1%]
                      [--processes N] [--seed 80000] [--warmup D] [--sample 5s] [--transport sqlite|memory|redis|nats]
                      [--hub-args "--write-timeout 2m"] [--only steady|chaos] [--scenarios ${SCENARIOS.map((x) => x.name).join(',')}] [--write]`;

/** Options as given, checked: a bad one stops the run with a message naming it. */
function options(argv: string[]) {
  const given = new Map<string, string>();
  const flags = new Set<string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--')) throw new Error(`unexpected argument "${a}"\n${USAGE}`);
    const name = a.slice(2);
    if (name === 'write') {
      flags.add(name);
      continue;
    }
    const value = argv[++i];
    if (value === undefined) throw new Error(`--${name} needs a value\n${USAGE}`);
    given.set(name, value);
  }
  const known = ['duration', 'subscribers', 'rate', 'topics', 'churn', 'processes', 'warmup', 'sample', 'transport', 'only', 'scenarios', 'hub-args', 'seed'];
  for (const name of given.keys()) if (!known.includes(name)) throw new Error(`unknown option --${name}\n${USAGE}`);
  const duration = (name: string, fallback: string) => {
    try {
      return parseDuration(given.get(name) ?? fallback);
    } catch (error) {
      throw new Error(`--${name}: ${(error as Error).message}`, { cause: error });
    }
  };
  const count = (name: string, fallback: number, min: number, max: number) => {
    const raw = given.get(name);
    const v = raw === undefined ? fallback : Number(raw);
    if (!Number.isInteger(v) || v < min || v > max) throw new Error(`--${name}: expected a whole number from ${min} to ${max}, got "${raw}"`);
    return v;
  };
  const durationMs = duration('duration', '10m');
  if (durationMs < 10_000) throw new Error('--duration: at least 10s');
  const subscribers = count('subscribers', 10_000, 1, 200_000);
  const topics = count('topics', 100, 1, 10_000);
  if (topics > subscribers) throw new Error(`--topics (${topics}) must not exceed --subscribers (${subscribers})`);
  const churnRaw = given.get('churn') ?? '1%';
  const churn = churnRaw.endsWith('%') ? Number(churnRaw.slice(0, -1)) / 100 : Number(churnRaw);
  if (!Number.isFinite(churn) || churn < 0 || churn > 0.5) throw new Error(`--churn: expected a share from 0 to 50% (e.g. 1% or 0.01), got "${churnRaw}"`);
  const processes = count('processes', Math.max(2, Math.ceil(subscribers / 2500)), 1, 64);
  if (processes * MAX_PER_CHILD < subscribers) throw new Error(`--processes: ${processes} hold at most ${processes * MAX_PER_CHILD} connections`);
  const transport = given.get('transport') ?? 'sqlite';
  if (!['sqlite', 'memory', 'redis', 'nats'].includes(transport)) throw new Error(`--transport: expected sqlite, memory, redis or nats, got "${transport}"`);
  const only = given.get('only');
  if (only !== undefined && only !== 'steady' && only !== 'chaos') throw new Error(`--only: expected steady or chaos, got "${only}"`);
  const scenarios = given.get('scenarios')?.split(',') ?? SCENARIOS.map((x) => x.name);
  for (const name of scenarios) if (!SCENARIOS.some((x) => x.name === name)) throw new Error(`--scenarios: unknown scenario "${name}"; known: ${SCENARIOS.map((x) => x.name).join(', ')}`);
  return {
    scenarios,
    durationMs,
    subscribers,
    rate: count('rate', 50, 1, 10_000),
    seed: count('seed', 80_000, 0, 10_000_000),
    topics,
    churn,
    processes,
    warmupMs: given.has('warmup') ? duration('warmup', '0') : Math.min(120_000, Math.round(durationMs / 5)),
    sampleMs: duration('sample', '5s'),
    transport,
    hubArgs: (given.get('hub-args') ?? '').split(' ').filter((a) => a !== ''),
    only,
    write: flags.has('write'),
  };
}

function machine(): string {
  const model = cpus()[0]?.model.trim() ?? 'unknown CPU';
  return `${cpus().length} cores (${model}), ${Math.round(totalmem() / 2 ** 30)} GiB, Node.js ${process.version}`;
}

/** Replaces the text between `<!-- NAME:start -->` and `<!-- NAME:end -->` in docs/reliability.md. */
function writeSection(name: string, body: string): void {
  const path = new URL('../../docs/reliability.md', import.meta.url);
  const doc = readFileSync(path, 'utf8');
  const start = `<!-- ${name}:start -->`;
  const end = `<!-- ${name}:end -->`;
  const i = doc.indexOf(start);
  const j = doc.indexOf(end);
  if (i === -1 || j === -1) throw new Error(`docs/reliability.md has no ${start} … ${end} markers`);
  writeFileSync(path, `${doc.slice(0, i)}${start}\n${body}\n${end}${doc.slice(j + end.length)}`);
  log(`wrote the ${name} section of docs/reliability.md`);
}

async function main(): Promise<void> {
  let o: ReturnType<typeof options>;
  try {
    o = options(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`soak: ${(error as Error).message}\n`);
    process.exit(2);
  }
  const command = `npm run soak${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`;
  const header = `Run of ${new Date().toISOString().slice(0, 10)} (\`${command}\`) on ${machine()}.`;
  let failed = false;

  if (o.only !== 'chaos') {
    const dir = mkdtempSync(join(tmpdir(), 'ssehub-soak-'));
    let redis: RedisServer | undefined;
    let nats: NatsServer | undefined;
    try {
      let transport: string;
      if (o.transport === 'sqlite') transport = `sqlite:${join(dir, 'hub.db')}`;
      else if (o.transport === 'redis') transport = `${(redis = await startRedisServer()).url}/0`;
      else if (o.transport === 'nats') transport = (nats = await startNatsServer()).url;
      else transport = 'memory';
      log(`steady soak: ${o.subscribers} subscribers, ${o.topics} topics, ${o.rate}/s, churn ${(o.churn * 100).toFixed(1)} %/s, ${o.durationMs / 1000} s on ${o.transport}`);
      const result = await steadySoak({ ...o, hubFlags: ['--transport', transport, ...o.hubArgs], transportName: o.transport, log });
      const report = renderSteady(result);
      process.stdout.write(`\n## Steady soak\n\n${header}\n\n${report}\n`);
      if (result.checks.some((c) => !c.ok)) failed = true;
      if (o.write) writeSection('soak', `${header}\n\n${report}`);
    } finally {
      await redis?.stop();
      await nats?.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }

  if (o.only !== 'steady') {
    const reports: ChaosReport[] = [];
    for (const scenario of SCENARIOS.filter((x) => o.scenarios.includes(x.name))) {
      log(`chaos: ${scenario.name} (long version)`);
      try {
        const report = await scenario.run(LONG);
        reports.push(report);
        log(`chaos: ${scenario.name}: ${report.failures.length === 0 ? 'pass' : `FAIL ${report.failures.join('; ')}`}`);
        if (report.failures.length > 0) failed = true;
      } catch (error) {
        failed = true;
        log(`chaos: ${scenario.name}: FAILED to run: ${(error as Error).stack}`);
      }
    }
    const scale = `Scale: ${LONG.subscribers} EventSource subscribers (ssehub/client, de-duplication off, so a repeat sent by the hub would show), ${LONG.rate} updates/s, ${LONG.faults} faults per scenario (three kinds × ${LONG.faults} for the proxy), ${LONG.faultMs / 1000} s each, ${LONG.gapMs / 1000} s apart.`;
    const table = renderChaos(reports);
    process.stdout.write(`\n## Chaos, long versions\n\n${header}\n\n${scale}\n\n${table}\n`);
    if (o.write && o.scenarios.length === SCENARIOS.length) writeSection('chaos', `${header}\n\n${scale}\n\n${table}`);
  }

  if (failed) {
    log('FAILED: see the checks above');
    process.exitCode = 1;
  }
}

process.on('SIGINT', () => process.exit(130));
await main();
