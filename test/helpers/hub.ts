// Starts a real hub in-process on a loopback port, with keys and tokens ready for tests.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Logger, pino } from 'pino';
import { type HubConfig, type RunningHub, loadConfig, startHub } from '../../src/hub/index.js';
import { type TokenClaims, signToken } from '../../src/hub/mercure/token.js';

export const TEST_KEY = 'test-secret-key-that-is-at-least-32-chars-long!';
export const HUB_PATH = '/.well-known/mercure';

export interface TestHub extends RunningHub {
  /** URL of /.well-known/mercure. */
  hubUrl: string;
  /** A token allowed to publish anywhere and read every private update. */
  adminToken: string;
  /** Signs a token with the test key. */
  token(claims: TokenClaims): Promise<string>;
  /** Publishes a form; returns status, body and headers. */
  publish(fields: Record<string, string | string[]> | URLSearchParams, token?: string | null, headers?: Record<string, string>): Promise<{ status: number; body: string; headers: Headers }>;
}

/** A fresh temporary sqlite path. */
export function tempDb(): string {
  return join(mkdtempSync(join(tmpdir(), 'ssehub-test-')), 'hub.db');
}

/** Starts a hub with `--jwt-key TEST_KEY --listen 127.0.0.1:0 --transport memory` plus `flags` (as `ssehub serve` flags). */
export async function startTestHub(flags: string[] = [], env: NodeJS.ProcessEnv = {}, options: { logger?: Logger } = {}): Promise<TestHub> {
  const config: HubConfig = loadConfig({ argv: ['--jwt-key', TEST_KEY, '--listen', '127.0.0.1:0', '--transport', 'memory', '--log-level', 'silent', ...flags], env });
  const running = await startHub(config, { logger: options.logger ?? pino({ level: 'silent' }) });
  const hubUrl = `${running.url}${HUB_PATH}`;
  const adminToken = await signToken(TEST_KEY, { publish: ['*'], subscribe: ['*'] });
  return {
    ...running,
    hubUrl,
    adminToken,
    token: (claims) => signToken(TEST_KEY, claims),
    async publish(fields, token = adminToken, headers = {}) {
      const form = fields instanceof URLSearchParams ? fields : new URLSearchParams();
      if (!(fields instanceof URLSearchParams)) {
        for (const [k, v] of Object.entries(fields)) for (const one of Array.isArray(v) ? v : [v]) form.append(k, one);
      }
      const res = await fetch(hubUrl, {
        method: 'POST',
        body: form.toString(),
        headers: { 'content-type': 'application/x-www-form-urlencoded', ...(token === null ? {} : { authorization: `Bearer ${token}` }), ...headers },
      });
      return { status: res.status, body: await res.text(), headers: res.headers };
    },
  };
}
