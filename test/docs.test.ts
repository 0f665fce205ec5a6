import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { settingsTable } from '../scripts/config-docs.js';
import { SETTINGS } from '../src/hub/config.js';

describe('docs', () => {
  it('docs/configuration.md lists every setting with its default, as the code defines them', () => {
    const doc = readFileSync(new URL('../docs/configuration.md', import.meta.url), 'utf8');
    assert.ok(doc.includes(settingsTable()), 'regenerate with: npx tsx scripts/config-docs.ts --write');
    for (const s of SETTINGS) assert.ok(doc.includes(`\`--${s.name}\``), s.name);
  });
});
