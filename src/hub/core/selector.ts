/**
 * Topic selectors. A selector is typed: `exact` (the topic itself), `any` (`*`, every topic),
 * `template` (an RFC 6570 URI template: the topics it could expand to) or `urlpattern` (a WHATWG
 * URL Pattern, Mercure 1.0). A bare string is read as Mercure draft-07 reads it: `*` is any, a
 * string containing `{` a template, anything else exact — so a Mercure 1.0 `match=…/{id}` is
 * given as a typed exact selector and indexed as exact although it contains `{`.
 *
 * Selectors are compiled once and cached, since every update is matched against every
 * subscriber's selectors.
 */
import { InvalidSelectorError } from './errors.js';
import { compileUrlPattern } from './urlpattern.js';

/** A compiled selector. */
export type Matcher = (topic: string) => boolean;

/** How a selector's value is read. */
export type SelectorKind = 'exact' | 'any' | 'template' | 'urlpattern';

/** A typed selector; `base` resolves relative URL patterns and topics (the hub's URL). */
export interface Selector {
  readonly kind: SelectorKind;
  readonly value: string;
  readonly base?: string | undefined;
}

/** A typed selector, or a string read as draft-07 reads it. */
export type SelectorLike = string | Selector;

/** The base of relative URL patterns when none is given (a hub URL that names no real host). */
export const DEFAULT_PATTERN_BASE = 'https://ssehub.invalid/.well-known/mercure';

const cache = new Map<string, Matcher>();
/** Compiled URL patterns, by base and pattern (apart from draft-07 strings, which could be any text). */
const patternCache = new Map<string, Matcher>();
const CACHE_LIMIT = 10_000;

/**
 * Templates are matched by a small NFA simulation, linear in the topic's length: a regular
 * expression built from a template nests quantifiers over overlapping classes and backtracks
 * exponentially on a crafted selector, and selectors come from anonymous subscribers.
 *
 * Each expression matches what its operator could expand to (RFC 6570 §3.2): an optional prefix
 * (`.`, `/`, `;`, `?`, `&`, `#`) and then any run of the characters its values may contain. Variable
 * names are not checked, so `{?x}` matches any query; a match is a slight over-approximation of
 * the expansions, never an under-approximation.
 */
type Node = { kind: 'lit'; ch: number } | { kind: 'star'; cls: Uint8Array } | { kind: 'opt'; ch: number };

function charClass(chars: string, withReserved: boolean): Uint8Array {
  const cls = new Uint8Array(128);
  const add = (s: string) => {
    for (let i = 0; i < s.length; i++) cls[s.charCodeAt(i)] = 1;
  };
  // Unreserved characters, `%` of pct-encoded ones, `,` between list items, and `=` between the
  // key and value of an exploded associative array, which every operator can produce
  // (RFC 6570 §3.2.2: `{keys*}` expands to `semi=%3B,dot=.,comma=%2C`).
  add('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~%,=');
  if (withReserved) add(":/?#[]@!$&'()*+;=");
  add(chars);
  return cls;
}

const OPERATORS: Record<string, { prefix: string; cls: Uint8Array }> = {
  '': { prefix: '', cls: charClass('', false) },
  '+': { prefix: '', cls: charClass('', true) },
  '#': { prefix: '#', cls: charClass('', true) },
  '.': { prefix: '.', cls: charClass('', false) },
  '/': { prefix: '/', cls: charClass('/', false) },
  ';': { prefix: ';', cls: charClass(';', false) },
  '?': { prefix: '?', cls: charClass('&', false) },
  '&': { prefix: '&', cls: charClass('&', false) },
};
const VARSPEC = /^([A-Za-z0-9_]|%[0-9A-Fa-f]{2})(\.?([A-Za-z0-9_]|%[0-9A-Fa-f]{2}))*(:[1-9][0-9]{0,3}|\*)?$/;
const MAX_TEMPLATE_LENGTH = 2048;

/** Compiles a URI template to the NFA nodes of its expansions; throws SyntaxError when malformed. */
export function parseTemplate(template: string): Node[] {
  if (template.length > MAX_TEMPLATE_LENGTH) throw new SyntaxError(`longer than ${MAX_TEMPLATE_LENGTH} characters`);
  const nodes: Node[] = [];
  let i = 0;
  while (i < template.length) {
    const c = template[i] as string;
    if (c === '}') throw new SyntaxError(`unmatched "}" at position ${i}`);
    if (c !== '{') {
      nodes.push({ kind: 'lit', ch: template.charCodeAt(i) });
      i++;
      continue;
    }
    const end = template.indexOf('}', i);
    if (end === -1) throw new SyntaxError(`unclosed "{" at position ${i}`);
    let body = template.slice(i + 1, end);
    if (body.includes('{')) throw new SyntaxError(`nested "{" at position ${i}`);
    let op = '';
    if (body.length > 0 && '+#./;?&'.includes(body[0] as string)) {
      op = body[0] as string;
      body = body.slice(1);
    } else if (body.length > 0 && '=,!@|'.includes(body[0] as string)) {
      throw new SyntaxError(`reserved operator "${body[0]}" at position ${i + 1}`);
    }
    for (const varspec of body.split(',')) {
      if (!VARSPEC.test(varspec)) throw new SyntaxError(`invalid variable "${varspec}" at position ${i + 1}`);
    }
    const spec = OPERATORS[op] as { prefix: string; cls: Uint8Array };
    if (spec.prefix !== '') nodes.push({ kind: 'opt', ch: spec.prefix.charCodeAt(0) });
    nodes.push({ kind: 'star', cls: spec.cls });
    i = end + 1;
  }
  return nodes;
}

/** Epsilon moves only go forward (an `opt` may be skipped with its `star`; a `star` may end), so one pass closes a set. */
function close(set: Uint8Array, nodes: Node[]): void {
  for (let i = 0; i < nodes.length; i++) {
    if (set[i] !== 1) continue;
    const node = nodes[i] as Node;
    if (node.kind === 'opt') set[i + 2] = 1;
    else if (node.kind === 'star') set[i + 1] = 1;
  }
}

/** A matcher for a URI template, linear in the topic's length. */
export function templateMatcher(template: string): Matcher {
  const nodes = parseTemplate(template);
  const n = nodes.length;
  return (topic) => {
    let current = new Uint8Array(n + 1);
    current[0] = 1;
    close(current, nodes);
    for (let k = 0; k < topic.length; k++) {
      const c = topic.charCodeAt(k);
      const next = new Uint8Array(n + 1);
      let alive = false;
      for (let i = 0; i < n; i++) {
        if (current[i] !== 1) continue;
        const node = nodes[i] as Node;
        if (node.kind === 'star') {
          if (c < 128 && node.cls[c] === 1) {
            next[i] = 1;
            alive = true;
          }
        } else if (node.ch === c) {
          next[i + 1] = 1;
          alive = true;
        }
      }
      if (!alive) return false;
      close(next, nodes);
      current = next;
    }
    return current[n] === 1;
  };
}

/** A string as Mercure draft-07 reads it: `*` any, containing `{` a URI template, else exact. */
export function draft07Selector(value: string): Selector {
  return { kind: value === '*' ? 'any' : value.includes('{') ? 'template' : 'exact', value };
}

/** The typed form of a selector (a string is read as draft-07 reads it). */
export function toSelector(selector: SelectorLike): Selector {
  return typeof selector === 'string' ? draft07Selector(selector) : selector;
}

/** `true` for a selector that matches exactly one topic, itself (not `*`, not a template or pattern). */
export function isExactSelector(selector: SelectorLike): boolean {
  if (typeof selector === 'string') return selector !== '*' && !selector.includes('{');
  return selector.kind === 'exact';
}

/** Compiles a typed selector (cached); throws InvalidSelectorError for a malformed template or URL pattern. */
export function compile(selector: SelectorLike): Matcher {
  if (typeof selector === 'string') return compileSelector(selector);
  switch (selector.kind) {
    case 'any':
      return compileSelector('*');
    case 'template':
      return selector.value.includes('{') ? compileSelector(selector.value) : exactMatcher(selector.value);
    case 'exact':
      return exactMatcher(selector.value);
    case 'urlpattern': {
      if (selector.value === '*') return compileSelector('*');
      const base = selector.base ?? DEFAULT_PATTERN_BASE;
      const key = `${base} ${selector.value}`;
      let matcher = patternCache.get(key);
      if (matcher !== undefined) return matcher;
      try {
        matcher = compileUrlPattern(selector.value, base);
      } catch (error) {
        throw new InvalidSelectorError(selector.value, `URL pattern "${selector.value}" is refused: ${(error as Error).message}`);
      }
      remember(patternCache, key, matcher);
      return matcher;
    }
  }
}

function exactMatcher(value: string): Matcher {
  return (topic) => topic === value;
}

function remember(map: Map<string, Matcher>, key: string, matcher: Matcher): void {
  if (map.size >= CACHE_LIMIT) map.delete(map.keys().next().value as string);
  map.set(key, matcher);
}

/** Compiles a selector (cached); throws InvalidSelectorError for a malformed template. */
export function compileSelector(selector: string): Matcher {
  let matcher = cache.get(selector);
  if (matcher !== undefined) return matcher;
  if (selector === '*') {
    matcher = () => true;
  } else if (selector.includes('{')) {
    try {
      matcher = templateMatcher(selector);
    } catch (error) {
      throw new InvalidSelectorError(selector, `topic selector "${selector}" is not a valid URI template: ${(error as Error).message}`);
    }
  } else {
    matcher = (topic) => topic === selector;
  }
  remember(cache, selector, matcher);
  return matcher;
}

/** `true` when any of `topics` is matched by any of `selectors`. */
export function matchesAny(topics: readonly string[], matchers: readonly Matcher[]): boolean {
  for (const m of matchers) for (const t of topics) if (m(t)) return true;
  return false;
}

/** `true` when every topic is matched by at least one selector (what a publisher needs for each topic). */
export function matchesEach(topics: readonly string[], matchers: readonly Matcher[]): boolean {
  return topics.every((t) => matchers.some((m) => m(t)));
}
