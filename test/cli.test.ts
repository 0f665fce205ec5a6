import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';

const cli = new URL('../dist/cli.js', import.meta.url).pathname;
const run = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });
const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };

describe('ssehub command', () => {
  it('prints the package version with --version', () => {
    const r = run('--version');
    assert.equal(r.status, 0);
    assert.equal(r.stdout, `${version}\n`);
  });

  it('prints usage with --help and with no command', () => {
    for (const r of [run('--help'), run()]) {
      assert.equal(r.status, 0);
      assert.match(r.stdout, /Usage:\n {2}ssehub serve \[settings\]/);
    }
  });

  it('names an unknown command and exits non-zero', () => {
    const r = run('frobnicate');
    assert.equal(r.status, 2);
    assert.match(r.stderr, /unknown command "frobnicate"/);
  });
});
