/**
 * OAuth 2.0 access tokens as Mercure 1.0 defines them (draft-dunglas-mercure-08): what an
 * `authorization_details` claim grants. A detail of the Mercure type names `actions` (`publish`,
 * `subscribe`; others grant nothing) and `topics`, each `{ "match": …, "match_type": "exact" |
 * "urlpattern" }` (`*` for every topic). One detail that does not validate rejects the whole
 * token: acting on the others would silently change what it allows.
 */
import { InvalidTokenError } from './errors.js';
import type { DetailPayload, Grant } from './grant.js';
import { type Selector, compile } from './selector.js';

/** The `type` of a Mercure authorization detail. */
export const MERCURE_DETAIL_TYPE = 'https://mercure.rocks/authorization-detail';

/** The most Mercure details one token may carry, and the most topics one of them may name. */
export const MAX_DETAILS = 100;
export const MAX_DETAIL_TOPICS = 1000;

/** The matcher types of Mercure 1.0. */
export const MATCH_TYPES = ['exact', 'urlpattern'] as const;

// C0 and C1 controls, DEL, and Unicode format characters (bidirectional and zero-width controls).
// eslint-disable-next-line no-control-regex
const FORBIDDEN = /[\u0000-\u001f\u007f-\u009f]|\p{Cf}/u;

/** Why a Mercure 1.0 topic matcher value is not acceptable, or `undefined` (also for subscribe requests). */
export function matcherValueProblem(value: string): string | undefined {
  if (value === '') return 'is empty';
  if (FORBIDDEN.test(value)) return 'contains a control or invisible formatting character';
  return undefined;
}

/** A typed selector for a Mercure 1.0 matcher; `*` is every topic whatever its type. */
export function matcherSelector(matchType: 'exact' | 'urlpattern', value: string, base: string | undefined): Selector {
  if (value === '*') return { kind: 'any', value };
  return matchType === 'exact' ? { kind: 'exact', value } : { kind: 'urlpattern', value, base };
}

function invalid(message: string): InvalidTokenError {
  return new InvalidTokenError('invalid-claim', `invalid access token: ${message}`);
}

/**
 * Reads `authorization_details` into the selectors a Grant holds; `base` resolves relative URL
 * patterns. Throws InvalidTokenError naming the detail that does not validate.
 */
export function readAuthorizationDetails(claim: unknown, base: string | undefined): Pick<Grant, 'publish' | 'subscribe' | 'payloads'> {
  if (claim === undefined) return { publish: undefined, subscribe: undefined, payloads: [] };
  if (!Array.isArray(claim)) throw invalid('"authorization_details" must be an array');
  let publish: Selector[] | undefined;
  let subscribe: Selector[] | undefined;
  const payloads: DetailPayload[] = [];
  let count = 0;
  claim.forEach((detail: unknown, i) => {
    const at = `authorization_details[${i}]`;
    if (typeof detail !== 'object' || detail === null || Array.isArray(detail)) throw invalid(`${at} must be an object`);
    const d = detail as Record<string, unknown>;
    if (typeof d.type !== 'string') throw invalid(`${at}.type must be a string`);
    // Details of other types are for other resources: not ours to judge.
    if (d.type !== MERCURE_DETAIL_TYPE) return;
    if (++count > MAX_DETAILS) throw invalid(`more than ${MAX_DETAILS} Mercure authorization details`);
    const actions = d.actions;
    if (!Array.isArray(actions) || actions.length === 0 || !actions.every((a) => typeof a === 'string')) throw invalid(`${at}.actions must be a non-empty array of strings`);
    const topics = d.topics;
    if (!Array.isArray(topics) || topics.length === 0) throw invalid(`${at}.topics must be a non-empty array of topic matchers`);
    if (topics.length > MAX_DETAIL_TOPICS) throw invalid(`${at}.topics has more than ${MAX_DETAIL_TOPICS} matchers`);
    const selectors = topics.map((topic: unknown, j) => readMatcher(topic, `${at}.topics[${j}]`, base));
    if (d.payload !== undefined && (typeof d.payload !== 'object' || d.payload === null || Array.isArray(d.payload))) throw invalid(`${at}.payload must be a JSON object`);
    // Unknown actions grant nothing (they may come from a later version of the protocol).
    if (actions.includes('publish')) (publish ??= []).push(...selectors);
    if (actions.includes('subscribe')) {
      (subscribe ??= []).push(...selectors);
      if (d.payload !== undefined) payloads.push({ selectors, payload: d.payload });
    }
  });
  return { publish, subscribe, payloads };
}

function readMatcher(topic: unknown, at: string, base: string | undefined): Selector {
  if (typeof topic !== 'object' || topic === null || Array.isArray(topic)) throw invalid(`${at} must be an object such as {"match": "https://example.com/books/1"}`);
  const t = topic as Record<string, unknown>;
  if (typeof t.match !== 'string') throw invalid(`${at}.match must be a string`);
  const matchType = t.match_type ?? 'exact';
  if (matchType !== 'exact' && matchType !== 'urlpattern') throw invalid(`${at}.match_type must be "exact" or "urlpattern", got ${JSON.stringify(matchType)}`);
  const problem = matcherValueProblem(t.match);
  if (problem !== undefined) throw invalid(`${at}.match ${problem}`);
  const selector = matcherSelector(matchType, t.match, base);
  try {
    compile(selector);
  } catch (error) {
    throw invalid(`${at}: ${(error as Error).message}`);
  }
  return selector;
}
