import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { settingsTable } from '../scripts/config-docs.js';
import { SETTINGS } from '../src/hub/config.js';

const root = fileURLToPath(new URL('..', import.meta.url));

describe('docs', () => {
  it('docs/configuration.md lists every setting with its default, as the code defines them', () => {
    const doc = readFileSync(new URL('../docs/configuration.md', import.meta.url), 'utf8');
    assert.ok(doc.includes(settingsTable()), 'regenerate with: npx tsx scripts/config-docs.ts --write');
    for (const s of SETTINGS) assert.ok(doc.includes(`\`--${s.name}\``), s.name);
  });

  it('every relative link in README.md and docs/ points to a file that exists', () => {
    const files = ['README.md', ...readdirSync(join(root, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
    const broken: string[] = [];
    for (const file of files) {
      const text = readFileSync(join(root, file), 'utf8');
      for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) {
        const target = (m[1] as string).split('#')[0] as string;
        if (target === '' || /^[a-z]+:/i.test(target)) continue;
        if (!existsSync(join(root, dirname(file), target))) broken.push(`${file} → ${m[1]}`);
      }
    }
    assert.deepEqual(broken, []);
  });

  it('no page promises what already exists ("once published", "coming soon", TODO, TBD)', () => {
    const files = ['README.md', ...readdirSync(join(root, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
    const stale: string[] = [];
    for (const file of files) {
      readFileSync(join(root, file), 'utf8')
        .split('\n')
        .forEach((line, i) => {
          if (/once published|coming soon|\bTODO\b|\bTBD\b/i.test(line)) stale.push(`${file}:${i + 1}: ${line.trim()}`);
        });
    }
    assert.deepEqual(stale, []);
  });
});
