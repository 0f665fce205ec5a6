// `npm run bench [-- NAME [options]]`: runs the benchmarks under bench/ (not part of npm test).
//   sse         the side-by-side benchmark: nchan, better-sse, bare node:http and the hub
//               (options: --write, --peers a,b, --scenarios fanout,latency,idle,storm,publish)
//   transports  publish-to-delivery latency per transport
//   replicas    what replicas=1 (WAIT) costs a Redis publish, through Sentinel (not run without its name)
//   scale       120,000 subscribers of a --workers hub over Redis (or --transport nats) on this machine
//               (options: --write, --transport redis|nats; not run without its name)
// Without a name, runs both. bench/setup.sh installs what the sse benchmark needs (nginx + nchan).
import { spawnSync } from 'node:child_process';

const all = { sse: 'bench/sse/main.ts', transports: 'bench/transport-latency.ts', replicas: 'bench/redis-replicas.ts', scale: 'bench/scale/main.ts' };
const [first, ...rest] = process.argv.slice(2);
const names = first === undefined || first.startsWith('--') ? ['sse', 'transports'] : [first];
const options = first === undefined || first.startsWith('--') ? process.argv.slice(2) : rest;
for (const name of names) {
  const file = all[name];
  if (file === undefined) {
    console.error(`unknown benchmark "${name}"; available: ${Object.keys(all).join(', ')}`);
    process.exit(2);
  }
  if (name === 'sse') {
    const setup = spawnSync('bash', ['bench/setup.sh'], { stdio: 'inherit' });
    if (setup.status !== 0) process.exit(setup.status ?? 1);
  }
  const r = spawnSync(process.execPath, ['--import', 'tsx', file, ...(name === 'sse' || name === 'scale' ? options : [])], { stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
}
