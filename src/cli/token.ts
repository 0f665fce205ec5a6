/** `ssehub token`: print a signed token for this hub. */
import { ConfigError, parseDuration } from '../hub/index.js';
import { signToken } from '../hub/mercure/token.js';

export const TOKEN_HELP = `Usage: ssehub token [--publish SELECTOR]... [--subscribe SELECTOR]... [options]

Prints a JWT for this hub, signed with the HMAC key of --jwt-key (or SSEHUB_JWT_KEY).

  --publish SELECTOR    topic selector the token may publish to (repeatable; * for all)
  --subscribe SELECTOR  selector of private updates the token may receive (repeatable)
  --jwt-key KEY         the secret (default: $SSEHUB_JWT_KEY)
  --jwt-alg ALG         HS256 (default), HS384 or HS512
  --exp DURATION        lifetime such as 1h or 30d (default: no expiry)
  --sub SUBJECT         the token's subject (used as its rate-limit key)
  --ui                  may read the /ui dashboard (claim ssehub.ui)
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


/** Prints a token; resolves with the exit code. */
export async function token(argv: string[]): Promise<number> {
  const publish: string[] = [];
  const subscribe: string[] = [];
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
    const value = argv[++i];
    if (value === undefined) throw new ConfigError(flag, 'expected a value');
    if (flag === '--publish') publish.push(value);
    else if (flag === '--subscribe') subscribe.push(value);
    else if (flag === '--jwt-key') key = value;
    else if (flag === '--jwt-alg') alg = value;
    else if (flag === '--exp') exp = parseOption(flag, value, parseDuration);
    else if (flag === '--sub') sub = value;
    else throw new ConfigError(flag, 'unknown option; run "ssehub token --help"');
  }
  if (key === undefined) throw new ConfigError('--jwt-key', 'no key: pass --jwt-key or set SSEHUB_JWT_KEY');
  if (!HMAC.includes(alg)) throw new ConfigError('--jwt-alg', `ssehub token signs with an HMAC secret (${HMAC.join(', ')}), not "${alg}"; sign other algorithms with your identity provider`);
  // The hub refuses shorter secrets, so a token signed with one could never be used.
  if (key.length < 32) throw new ConfigError('--jwt-key', `an ${alg} secret must be at least 32 characters (256 bits) long`);
  if (publish.length === 0 && subscribe.length === 0 && !ui) throw new ConfigError('--publish', 'give at least one --publish or --subscribe selector, or --ui');
  const signed = await signToken(key, { publish: publish.length > 0 ? publish : undefined, subscribe: subscribe.length > 0 ? subscribe : undefined, subject: sub, expiresIn: exp, ui }, alg as 'HS256');
  process.stdout.write(`${signed}\n`);
  return 0;
}
