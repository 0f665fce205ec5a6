// `npm run bench [-- NAME...]`: runs the benchmarks under bench/ (not part of npm test).
// Available: transports (publish-to-delivery latency per transport).
import { spawnSync } from 'node:child_process';

const all = { transports: 'bench/transport-latency.ts' };
const names = process.argv.slice(2).length > 0 ? process.argv.slice(2) : Object.keys(all);
for (const name of names) {
  const file = all[name];
  if (file === undefined) {
    console.error(`unknown benchmark "${name}"; available: ${Object.keys(all).join(', ')}`);
    process.exit(2);
  }
  const r = spawnSync(process.execPath, ['--import', 'tsx', file], { stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
}
