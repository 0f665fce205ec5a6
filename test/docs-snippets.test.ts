// Every TypeScript snippet of README.md and docs/client.md compiles under `tsc --strict`, as a
// user would write it: each snippet is its own module importing `ssehub/client`, `ssehub/server`…
// by the package name, and the names it leaves to the reader (a token, a chunk, the app's own
// functions) are declared in a small prelude. One tsc run checks them all.
//
// The snippets are written to a temporary folder inside the package, so that `ssehub/…` resolves
// as a package importing itself by name (package.json "exports" → dist/*.d.ts, built by
// `npm run build`) and express, fastify, koa, hono resolve from node_modules. The folder is under
// dist/, which git and eslint ignore, so one left behind by a killed run gets in nobody's way.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const DOCS = ['README.md', 'docs/client.md'];

/**
 * What the snippets use without defining, as a reader fills it in. Keep this short and true to
 * the docs: a name added here must be one a snippet really leaves to the reader.
 */
const PRELUDE = `
declare const token: string;
declare const chunk: Uint8Array;
declare function reloadState(): void;
declare function reloadOrders(): Promise<void>;
declare function handle(type: string, data: unknown, lastEventId: string): void;
`;

/** One fenced TypeScript block: where it is (`line` is the file line of its first code line) and its code. */
interface Snippet {
  file: string;
  line: number;
  code: string;
}

/** The ```ts and ```typescript blocks of a Markdown file. */
function snippetsOf(file: string): Snippet[] {
  const lines = readFileSync(join(root, file), 'utf8').split('\n');
  const found: Snippet[] = [];
  let open: { line: number; code: string[] } | undefined;
  lines.forEach((text, i) => {
    if (open === undefined) {
      if (/^```(ts|typescript)\s*$/.test(text)) open = { line: i + 2, code: [] };
    } else if (/^```\s*$/.test(text)) {
      found.push({ file, line: open.line, code: open.code.join('\n') });
      open = undefined;
    } else {
      open.code.push(text);
    }
  });
  assert.equal(open, undefined, `${file}: a \`\`\`ts block opened on line ${(open?.line ?? 0) - 1} is never closed`);
  return found;
}

describe('docs snippets', () => {
  it('every TypeScript snippet in README.md and docs/client.md compiles with tsc --strict against the built package', { timeout: 120_000 }, () => {
    assert.ok(existsSync(join(root, 'dist/client/index.d.ts')), 'dist/ is missing: run `npm run build` first (the snippets import the built package)');
    const snippets = DOCS.flatMap(snippetsOf);
    for (const file of DOCS) assert.ok(snippets.some((s) => s.file === file), `no \`\`\`ts snippet found in ${file}`);

    const dir = mkdtempSync(join(root, 'dist/.docs-snippets-'));
    try {
      const names = snippets.map((_, i) => `snippet-${i + 1}.ts`);
      // `export {}` makes each snippet a module of its own, even one without an import.
      snippets.forEach((s, i) => writeFileSync(join(dir, names[i] as string), `${s.code}\nexport {};\n`));
      writeFileSync(join(dir, 'prelude.d.ts'), PRELUDE);
      writeFileSync(
        join(dir, 'tsconfig.json'),
        JSON.stringify({
          compilerOptions: {
            strict: true,
            noEmit: true,
            module: 'nodenext',
            moduleResolution: 'nodenext',
            target: 'es2022',
            lib: ['es2022', 'dom'],
            types: ['node'],
            skipLibCheck: true,
          },
          files: ['prelude.d.ts', ...names],
        }),
      );
      const tsc = spawnSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', join(dir, 'tsconfig.json'), '--pretty', 'false'], { cwd: dir, encoding: 'utf8' });
      const output = `${tsc.stdout}${tsc.stderr}`;
      // `snippet-3.ts(4,10): error TS2339: …` → `README.md:161:10 error TS2339: …`, continuation lines kept.
      const report = output
        .split('\n')
        .filter((l) => l.trim() !== '')
        .map((l) => {
          const m = /^snippet-(\d+)\.ts\((\d+),(\d+)\): (.*)$/.exec(l);
          const s = m === null ? undefined : snippets[Number(m[1]) - 1];
          return m === null || s === undefined ? l : `${s.file}:${s.line + Number(m[2]) - 1}:${m[3]} ${m[4]}`;
        });
      assert.equal(tsc.status, 0, `tsc found errors in ${snippets.length} snippets:\n${report.join('\n')}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
