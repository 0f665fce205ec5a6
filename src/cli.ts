#!/usr/bin/env node
/** The `ssehub` command. */
import { readFileSync } from 'node:fs';

const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };

const HELP = `ssehub ${version} — production-grade Server-Sent Events

Usage:
  ssehub <command> [options]

Commands:
  serve     run the hub (Mercure protocol) — not implemented yet
  help      show this help

Options:
  -h, --help     show this help
  -v, --version  print the version
`;

/** Runs the CLI with `argv` (without node and script); returns the exit code. */
function main(argv: string[], out: (s: string) => void = (s) => process.stdout.write(s), err: (s: string) => void = (s) => process.stderr.write(s)): number {
  const [command] = argv;
  if (command === undefined || command === 'help' || command === '-h' || command === '--help') {
    out(HELP);
    return 0;
  }
  if (command === '-v' || command === '--version') {
    out(`${version}\n`);
    return 0;
  }
  if (command === 'serve') {
    err('ssehub serve: the hub is not implemented yet in this version; see the README for the server library.\n');
    return 1;
  }
  err(`ssehub: unknown command "${command}"; run "ssehub --help" for the list.\n`);
  return 2;
}

process.exitCode = main(process.argv.slice(2));
