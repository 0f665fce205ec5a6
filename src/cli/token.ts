/** `ssehub token`: print a signed token for this hub. */
import { ConfigError, parseDuration } from '../hub/index.js';
import { type TopicMatcher, signAccessToken, signToken } from '../hub/mercure/token.js';

export const TOKEN_HELP = `Usage: ssehub token [--publish SELECTOR]... [--subscribe SELECTOR]... [options]

Prints a JWT for this hub, signed with the HMAC key of --jwt-key (or SSEHUB_JWT_KEY): a draft-07
token (a "mercure" claim) for Mercure 0.x clients, or with --access-token a Mercure 1.0 access
token (typ at+jwt, iss, aud, exp and authorization_details). The hub accepts both at once.

  --publish SELECTOR    topic the token may publish to (repeatable; * for all); a draft-07
                        selector (URI templates allowed), or with --access-token an exact topic
  --subscribe SELECTOR  topic of private updates the token may receive (repeatable), likewise
  --jwt-key KEY         the secret (default: $SSEHUB_JWT_KEY)
  --jwt-alg ALG         HS256 (default), HS384 or HS512
  --exp DURATION        lifetime such as 1h or 30d (default: no expiry; 1h for an access token)
  --sub SUBJECT         the token's subject (used as its rate-limit key)
  --ui                  may read the /ui dashboard (claim ssehub.ui)
  --payload JSON        a JSON object shown in subscription events

Mercure 1.0 access tokens:
  --access-token                  sign an access token instead of a draft-07 token
  --publish-urlpattern PATTERN    URL Pattern the token may publish to (repeatable)
  --subscribe-urlpattern PATTERN  URL Pattern of private updates it may receive (repeatable)
  --iss ISSUER                    its issuer, one of the hub's --token-issuers
                                  (default: the first of $SSEHUB_TOKEN_ISSUERS)
  --aud URL                       the hub's resource identifier: its URL of /.well-known/mercure
                                  as clients reach it, or --token-audience
                                  (default: $SSEHUB_TOKEN_AUDIENCE)
`;


/** The algorithms `ssehub token` signs with (an HMAC secret). */
export const HMAC = ['HS256', 'HS384', 'HS512'];

/** Parses an option's value, turning a parse failure into a ConfigError naming the option. */
function parseOption<T>(flag: string, value: string, parse: (value: string) => T): T {
  try {
    return parse(value);
  } catch (error) {
    throw new ConfigError(flag, (error as Error).message);
  }
}


function parsePayload(value: string): Record<string, unknown> {
  const parsed: unknown = JSON.parse(value);
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('expected a JSON object, such as {"user":"alice"}');
  return parsed as Record<string, unknown>;
}

/** Prints a token; resolves with the exit code. */
export async function token(argv: string[]): Promise<number> {
  const publish: string[] = [];
  const subscribe: string[] = [];
  const publishPatterns: string[] = [];
  const subscribePatterns: string[] = [];
  let accessToken = false;
  let iss = process.env.SSEHUB_TOKEN_ISSUERS?.split(',')[0]?.trim() || undefined;
  let aud = process.env.SSEHUB_TOKEN_AUDIENCE || undefined;
  let payload: Record<string, unknown> | undefined;
  let key = process.env.SSEHUB_JWT_KEY;
  let alg = process.env.SSEHUB_JWT_ALG ?? 'HS256';
  let exp: number | undefined;
  let sub: string | undefined;
  let ui = false;
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i] as string;
    if (flag === '--help' || flag === '-h') {
      process.stdout.write(TOKEN_HELP);
      return 0;
    }
    if (flag === '--ui') {
      ui = true;
      continue;
    }
    if (flag === '--access-token') {
      accessToken = true;
      continue;
    }
    const value = argv[++i];
    if (value === undefined) throw new ConfigError(flag, 'expected a value');
    if (flag === '--publish') publish.push(value);
    else if (flag === '--subscribe') subscribe.push(value);
    else if (flag === '--jwt-key') key = value;
    else if (flag === '--jwt-alg') alg = value;
    else if (flag === '--exp') exp = parseOption(flag, value, parseDuration);
    else if (flag === '--sub') sub = value;
    else if (flag === '--publish-urlpattern') publishPatterns.push(value);
    else if (flag === '--subscribe-urlpattern') subscribePatterns.push(value);
    else if (flag === '--iss') iss = value;
    else if (flag === '--aud') aud = value;
    else if (flag === '--payload') payload = parseOption(flag, value, parsePayload);
    else throw new ConfigError(flag, 'unknown option; run "ssehub token --help"');
  }
  if (key === undefined) throw new ConfigError('--jwt-key', 'no key: pass --jwt-key or set SSEHUB_JWT_KEY');
  if (!HMAC.includes(alg)) throw new ConfigError('--jwt-alg', `ssehub token signs with an HMAC secret (${HMAC.join(', ')}), not "${alg}"; sign other algorithms with your identity provider`);
  // The hub refuses shorter secrets, so a token signed with one could never be used.
  if (key.length < 32) throw new ConfigError('--jwt-key', `an ${alg} secret must be at least 32 characters (256 bits) long`);
  const v1Only = ['--publish-urlpattern', '--subscribe-urlpattern', '--iss', '--aud'].find((f) => argv.includes(f));
  if (v1Only !== undefined && !accessToken) throw new ConfigError(v1Only, 'is for Mercure 1.0 access tokens: add --access-token');
  if (publish.length + subscribe.length + publishPatterns.length + subscribePatterns.length === 0 && !ui) throw new ConfigError('--publish', 'give at least one --publish or --subscribe selector, or --ui');
  if (accessToken) {
    if (iss === undefined) throw new ConfigError('--iss', 'an access token needs an issuer: pass --iss (one of the hub\'s --token-issuers) or set SSEHUB_TOKEN_ISSUERS');
    if (aud === undefined) throw new ConfigError('--aud', 'an access token needs an audience: pass --aud with the hub\'s URL of /.well-known/mercure (e.g. https://hub.example.com/.well-known/mercure) or set SSEHUB_TOKEN_AUDIENCE');
    const matchers = (exact: string[], patterns: string[]): TopicMatcher[] => [...exact.map((match) => ({ match })), ...patterns.map((match) => ({ match, match_type: 'urlpattern' as const }))];
    const signed = await signAccessToken(key, { issuer: iss, audience: aud, publish: matchers(publish, publishPatterns), subscribe: matchers(subscribe, subscribePatterns), payload, subject: sub, expiresIn: exp, ui }, alg as 'HS256');
    process.stdout.write(`${signed}\n`);
    return 0;
  }
  const signed = await signToken(key, { publish: publish.length > 0 ? publish : undefined, subscribe: subscribe.length > 0 ? subscribe : undefined, subject: sub, expiresIn: exp, ui, payload }, alg as 'HS256');
  process.stdout.write(`${signed}\n`);
  return 0;
}
