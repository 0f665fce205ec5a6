// Bundles ssehub/client into one ESM file for browsers (no Node built-ins, no dependencies):
// dist/browser/ssehub-client.js, served as-is or imported from a CDN-less page.
import { build } from 'esbuild';

await build({
  entryPoints: ['src/client/index.ts'],
  outfile: 'dist/browser/ssehub-client.js',
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: ['es2022'],
  minify: true,
  sourcemap: true,
  legalComments: 'none',
  logLevel: 'warning',
});
