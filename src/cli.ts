#!/usr/bin/env node
/** The `ssehub` command: `serve`, `token`, `doctor` (one file each under src/cli/). */
import { readFileSync } from 'node:fs';
import { doctor } from './cli/doctor.js';
import { serve } from './cli/serve.js';
import { token } from './cli/token.js';
import { ConfigError } from './hub/index.js';

const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };

const HELP = `ssehub ${version} — production-grade Server-Sent Events

Usage:
  ssehub serve [settings]        run the hub (Mercure protocol) on /.well-known/mercure
  ssehub serve --dev             zero-config demo: prints tokens and curl commands
  ssehub token [options]         print a signed token
  ssehub doctor URL [options]    diagnose an SSE endpoint through the proxies in front of it
  ssehub --help | --version

Run "ssehub serve --help" for every setting, "ssehub token --help" for token options,
"ssehub doctor --help" for the doctor's.
`;


async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case undefined:
    case 'help':
    case '-h':
    case '--help':
      process.stdout.write(HELP);
      return 0;
    case '-v':
    case '--version':
      process.stdout.write(`${version}\n`);
      return 0;
    case 'serve':
      return serve(rest);
    case 'token':
      return token(rest);
    case 'doctor':
      return doctor(rest);
    default:
      process.stderr.write(`ssehub: unknown command "${command}"; run "ssehub --help" for the list.\n`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    if (error instanceof ConfigError) process.stderr.write(`ssehub: invalid setting ${error.message}\n`);
    else process.stderr.write(`ssehub: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = error instanceof ConfigError ? 78 : 1;
  },
);

