// Runs every test file under test/ with Node's test runner (TypeScript through tsx).
// A file list rather than a glob, because `node --test <glob>` needs Node 21+.
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

function find(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return find(path);
    return name.endsWith('.test.ts') ? [path] : [];
  });
}

// The system programs the tests run against (Redis, NATS, nginx, HAProxy, Chromium, openssl):
// checked, and installed from Debian packages when missing, so that `npm test` alone sets up a
// fresh machine. Idempotent and quick when everything is there. SSEHUB_SKIP_SETUP=1 skips it.
if (process.env.SSEHUB_SKIP_SETUP !== '1') {
  const setup = spawnSync('bash', ['scripts/ci-setup.sh'], { stdio: 'inherit' });
  if (setup.status !== 0) {
    console.error('scripts/ci-setup.sh failed: the tests need the packages it names (installing them needs root, or install them yourself)');
    process.exit(setup.status ?? 1);
  }
}

const filters = process.argv.slice(2);
const files = find('test').filter((f) => filters.length === 0 || filters.some((x) => f.includes(x))).sort();
if (files.length === 0) {
  console.error(`no test files match ${filters.join(' ')}`);
  process.exit(1);
}
const result = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-concurrency=2', ...files], { stdio: 'inherit' });
process.exit(result.status ?? 1);
