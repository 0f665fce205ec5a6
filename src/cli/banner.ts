/** The `--dev` banner: tokens, `export` lines and curl commands a newcomer can paste as printed. */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import type { HubConfig } from '../hub/index.js';
import { signAccessToken, signToken } from '../hub/mercure/token.js';
import { HMAC } from './token.js';

/**
 * What curl needs to trust the hub's certificate: nothing for one a public CA signed; for a
 * self-signed one valid for the banner's host, `--cacert FILE` (it is its own CA); otherwise `-k`.
 */
function curlTlsFlag(config: HubConfig, host: string): string {
  if (config.tlsCert === undefined) return '';
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(readFileSync(config.tlsCert));
  } catch {
    return '-k ';
  }
  if (!cert.checkIssued(cert)) return '';
  const matches = isIP(host) !== 0 ? cert.checkIP(host) !== undefined : cert.checkHost(host) !== undefined;
  return matches ? `--cacert '${config.tlsCert}' ` : '-k ';
}

/** Prints the development-mode banner on stderr. */
export async function printDevBanner(config: HubConfig, url: string, keyGenerated: boolean): Promise<void> {
  const key = config.jwtKey as string;
  // Signed as the hub verifies them: its algorithm, and each role's own key when one is set.
  const alg = config.jwtAlg;
  const hmac = HMAC.includes(alg);
  const unsigned = `(sign ${alg} tokens with your private key)`;
  const pub = hmac ? await signToken(config.publisherJwtKey ?? key, { publish: ['*'], subscribe: ['*'] }, alg) : unsigned;
  const subTok = hmac ? await signToken(config.subscriberJwtKey ?? key, { subscribe: ['*'] }, alg) : unsigned;
  const hub = `${url.replace('0.0.0.0', '127.0.0.1')}/.well-known/mercure`;
  // Mercure 1.0 access tokens name the hub (aud) as clients reach it: this URL, unless pinned.
  const v1 = { issuer: config.tokenIssuers[0] ?? 'urn:ssehub:dev', audience: config.tokenAudience ?? hub, expiresIn: 24 * 3_600_000 };
  const pubV1 = hmac ? await signAccessToken(config.publisherJwtKey ?? key, { ...v1, publish: [{ match: '*' }], subscribe: [{ match: '*' }] }, alg) : unsigned;
  const subV1 = hmac ? await signAccessToken(config.subscriberJwtKey ?? key, { ...v1, subscribe: [{ match: '*' }] }, alg) : unsigned;
  const tls = curlTlsFlag(config, new URL(hub).hostname.replace(/^\[|\]$/g, ''));
  const exports = hmac ? `\nIn the shell where you run the README's commands:\n  export PUBLISHER_TOKEN=${pub}\n  export SUBSCRIBER_TOKEN=${subTok}\n` : '';
  process.stderr.write(`
==================== ssehub DEVELOPMENT MODE — never use in production ====================
${keyGenerated ? `Ephemeral key (changes on every start): ${key}` : 'Key: the one you configured.'}
Anonymous subscribers allowed; transport: ${config.transport}.

Publisher token:  ${pub}
Subscriber token (may also read private updates): ${subTok}
${exports}
Mercure 1.0 access tokens (iss ${v1.issuer}, aud ${v1.audience}, valid 24 h; either kind works with either kind of client):
  publisher:  ${pubV1}
  subscriber: ${subV1}

Dashboard:  ${hub.replace('/.well-known/mercure', '/ui')}
Subscribe:  curl ${tls}-N -g '${hub}?topic=https://example.com/books/{id}'
  (1.0)     curl ${tls}-N '${hub}?match_urlpattern=https://example.com/books/:id'
Publish:    curl ${tls}-d 'topic=https://example.com/books/1' -d 'data={"title":"SSE"}' \\
              -H 'Authorization: Bearer ${pub}' ${hub}
${tls === '-k ' ? 'The certificate is self-signed for another name: -k skips its check (curl --cacert FILE checks it).\n' : ''}============================================================================================
`);
}

