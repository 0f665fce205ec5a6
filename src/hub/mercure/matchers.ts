/**
 * The parameters of a Mercure 1.0 subscription: topic matchers (`match` and `match_exact` for
 * exact topics, `match_urlpattern` for URL Patterns, `*` for every topic) and `last_event_id`,
 * from the query component and, for a `QUERY` request, a form body — the union of both, as if
 * they were one. Which generation a request speaks is decided here too: `topic` is draft-07,
 * anything in the `match` namespace is 1.0, and a request mixing them is refused.
 */
import { matcherSelector, matcherValueProblem } from '../core/access-token.js';
import { InvalidSubscriptionError } from '../core/errors.js';
import type { Selector } from '../core/selector.js';
import { MAX_TOPICS } from '../core/update.js';
import { HttpError } from './errors.js';

/** The name/value pairs of an `application/x-www-form-urlencoded` text (URL Standard), refusing what is not UTF-8. */
export function parseForm(text: string, where: string): [string, string][] {
  const pairs: [string, string][] = [];
  for (const field of text.split('&')) {
    if (field === '') continue;
    const eq = field.indexOf('=');
    const [name, value] = eq === -1 ? [field, ''] : [field.slice(0, eq), field.slice(eq + 1)];
    pairs.push([decode(name, where), decode(value, where)]);
  }
  return pairs;
}

const UTF8 = new TextDecoder('utf-8', { fatal: true });

function decode(raw: string, where: string): string {
  const plus = raw.replace(/\+/g, ' ');
  if (!plus.includes('%')) return plus;
  // Percent-decoding as the URL Standard does (a stray % stays), then UTF-8 without replacement.
  const input = Buffer.from(plus, 'utf8');
  const bytes = new Uint8Array(input.length);
  let n = 0;
  const hex = (b: number | undefined) => b !== undefined && ((b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x46) || (b >= 0x61 && b <= 0x66));
  for (let i = 0; i < input.length; i++) {
    const b = input[i] as number;
    if (b === 0x25 && hex(input[i + 1]) && hex(input[i + 2])) {
      bytes[n++] = Number.parseInt(String.fromCharCode(input[i + 1] as number, input[i + 2] as number), 16);
      i += 2;
    } else bytes[n++] = b;
  }
  try {
    return UTF8.decode(bytes.subarray(0, n));
  } catch {
    throw new HttpError(400, 'invalid-utf8', `the ${where} holds percent-encoded bytes that are not UTF-8`);
  }
}

/** The generation a set of parameters speaks: `topic` (draft-07), `match…` (1.0), or neither. */
export function generationOf(pairs: readonly (readonly [string, string])[]): '0.x' | '1.0' | undefined {
  const draft07 = pairs.some(([name]) => name === 'topic');
  const v1 = pairs.some(([name]) => isMatchName(name));
  if (draft07 && v1) {
    throw new HttpError(400, 'mixed-generations', 'the request mixes "topic" (Mercure draft-07) with "match" parameters (Mercure 1.0); use one or the other: "match"/"match_urlpattern" with a 1.0 client, "topic" with a 0.x one');
  }
  return v1 ? '1.0' : draft07 ? '0.x' : undefined;
}

/** The reserved namespace: a name equal to `match` or starting with it, in any case. */
function isMatchName(name: string): boolean {
  return name.slice(0, 5).toLowerCase() === 'match';
}

/** A Mercure 1.0 subscription, read from its parameters. */
export interface V1Subscription {
  selectors: Selector[];
  /** `last_event_id` (the first one), if any; the `Last-Event-ID` header wins over it. */
  lastEventId: string | undefined;
}

/**
 * Reads the topic matchers and `last_event_id` of a 1.0 request. `query` comes first, so its
 * `last_event_id` wins over the body's. Throws HttpError (400) naming what is wrong.
 */
export function readV1Subscription(query: readonly (readonly [string, string])[], body: readonly (readonly [string, string])[], base: string): V1Subscription {
  const selectors: Selector[] = [];
  let lastEventId: string | undefined;
  for (const [name, value] of [...query, ...body]) {
    if (name === 'last_event_id') {
      lastEventId ??= value;
      continue;
    }
    if (name === 'authorization' || name === 'access_token') {
      throw new HttpError(400, 'token-in-url', `Mercure 1.0 does not accept a token in the URL ("${name}" parameter): send it in an "Authorization: Bearer" header, or in the cookie a browser EventSource sends`);
    }
    if (!isMatchName(name)) continue;
    const matchType = name === 'match' || name === 'match_exact' ? 'exact' : name === 'match_urlpattern' ? 'urlpattern' : undefined;
    if (matchType === undefined) {
      throw new HttpError(400, 'unknown-matcher', `unknown parameter "${name}": names starting with "match" are reserved for topic matchers, and this hub knows "match" (or "match_exact") and "match_urlpattern" (names are case-sensitive)`);
    }
    const problem = matcherValueProblem(value);
    if (problem !== undefined) throw new HttpError(400, 'invalid-matcher', `the "${name}" parameter ${JSON.stringify(value.slice(0, 200))} ${problem}`);
    selectors.push(matcherSelector(matchType, value, base));
  }
  if (selectors.length === 0) throw new InvalidSubscriptionError('missing-topic', 'at least one "match" or "match_urlpattern" parameter is required');
  if (selectors.length > MAX_TOPICS) throw new InvalidSubscriptionError('too-many-topics', `a subscription may have at most ${MAX_TOPICS} topic matchers, got ${selectors.length}`);
  return { selectors, lastEventId };
}
