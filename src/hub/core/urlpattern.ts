/**
 * WHATWG URL Patterns as topic selectors (Mercure 1.0's `urlpattern` matcher type): the
 * platform's `URLPattern` where it exists (Node 23.8 and later, browsers), the maintained
 * `urlpattern-polyfill` elsewhere (Node 20 and 22), so a pattern means the same on every Node.
 *
 * A URL pattern compiles to regular expressions run by a backtracking engine, and patterns come
 * from anonymous subscribers: `/*a*a*a*a*b` takes 24 s against a 200-character topic. So each
 * pattern is bounded where it is compiled, and each evaluation where it runs:
 * - exponential constructs are refused: a nested group inside a regular-expression group, a
 *   repeated group (`+`, `*`) over anything but one delimited segment, a repeated wildcard;
 * - each URL component's *degree* — how many of its parts can absorb the same characters
 *   (wildcards, repeated groups, regular expressions with quantifiers, segments not separated by
 *   a literal) — is at most MAX_PATTERN_DEGREE. A match costs at worst about n^degree steps;
 * - a topic whose length^degree exceeds EVALUATION_BUDGET is not evaluated: the pattern does not
 *   match it (the spec's "treated as not matching and the evaluation aborted"), and it is counted.
 */
import { URLPattern as URLPatternPolyfill } from 'urlpattern-polyfill/urlpattern';

/** The parts of a URLPattern this module uses (the platform's and the polyfill's alike). */
interface URLPatternLike {
  test(input: string, baseURL?: string): boolean;
  readonly protocol: string;
  readonly username: string;
  readonly password: string;
  readonly hostname: string;
  readonly port: string;
  readonly pathname: string;
  readonly search: string;
  readonly hash: string;
}
type URLPatternConstructor = new (input: string, baseURL?: string) => URLPatternLike;

const platform = (globalThis as { URLPattern?: URLPatternConstructor }).URLPattern;
const Impl: URLPatternConstructor = platform ?? (URLPatternPolyfill as unknown as URLPatternConstructor);

/** Which implementation compiles patterns in this process. */
export const URL_PATTERN_IMPLEMENTATION: 'platform' | 'polyfill' = platform !== undefined ? 'platform' : 'polyfill';

/** The longest pattern accepted (the draft-07 limit on a URI template). */
export const MAX_PATTERN_LENGTH = 2048;
/** The most parts of one URL component that may absorb the same characters. */
export const MAX_PATTERN_DEGREE = 3;
/** The most steps (topic length ^ degree) one evaluation may take. */
export const EVALUATION_BUDGET = 1_000_000;

/** Evaluations skipped because they would have exceeded EVALUATION_BUDGET (for diagnostics). */
export const urlPatternStats = { skipped: 0 };

const COMPONENTS = ['protocol', 'username', 'password', 'hostname', 'port', 'pathname', 'search', 'hash'] as const;

/**
 * Compiles a URL pattern; relative patterns and topics are resolved against `base` (the hub's
 * URL). Throws SyntaxError saying what is wrong: malformed, too long, or too costly to evaluate.
 */
export function compileUrlPattern(pattern: string, base: string): (topic: string) => boolean {
  if (pattern.length > MAX_PATTERN_LENGTH) throw new SyntaxError(`longer than ${MAX_PATTERN_LENGTH} characters`);
  let compiled: URLPatternLike;
  try {
    compiled = new Impl(pattern, base);
  } catch (error) {
    throw new SyntaxError(`not a valid URL pattern (${(error as Error).message.replace(/^Failed to construct 'URLPattern': /, '')})`, { cause: error });
  }
  let degree = 0;
  for (const component of COMPONENTS) degree = Math.max(degree, componentDegree(compiled[component], component));
  const maxLength = degree < 2 ? Number.POSITIVE_INFINITY : Math.floor(EVALUATION_BUDGET ** (1 / degree));
  return (topic) => {
    if (topic.length > maxLength) {
      urlPatternStats.skipped++;
      return false;
    }
    try {
      return compiled.test(topic, base);
    } catch {
      // A topic that is not a URL reference matches no URL pattern.
      return false;
    }
  };
}

/** What one part of a component pattern is. */
type Part = { kind: 'literal'; char: string } | { kind: 'segment' | 'wildcard'; repeated: boolean } | { kind: 'regexp'; quantifiers: number; alternation: boolean; repeated: boolean } | { kind: 'group'; parts: Part[]; repeated: boolean };

/**
 * The degree of one component's pattern (as the URLPattern normalised it); throws SyntaxError for
 * a construct whose matching time can grow exponentially.
 */
export function componentDegree(pattern: string, component: string): number {
  const parts = parseParts(pattern, { i: 0 }, false);
  return degreeOf(parts, component);
}

function parseParts(p: string, at: { i: number }, inGroup: boolean): Part[] {
  const parts: Part[] = [];
  const modifier = (): boolean => {
    const c = p[at.i];
    if (c === '?' || c === '*' || c === '+') {
      at.i++;
      return c !== '?';
    }
    return false;
  };
  while (at.i < p.length) {
    const c = p[at.i] as string;
    if (c === '\\') {
      parts.push({ kind: 'literal', char: p[at.i + 1] ?? '' });
      at.i += 2;
    } else if (c === '}' && inGroup) {
      at.i++;
      return parts;
    } else if (c === '{') {
      at.i++;
      const inner = parseParts(p, at, true);
      parts.push({ kind: 'group', parts: inner, repeated: modifier() });
    } else if (c === ':' || c === '(') {
      if (c === ':') {
        at.i++;
        while (at.i < p.length && /[\p{ID_Continue}$\u200C\u200D]/u.test(p[at.i] as string)) at.i++;
      }
      if (p[at.i] === '(') {
        const body = readRegexp(p, at);
        parts.push({ kind: 'regexp', quantifiers: body.quantifiers, alternation: body.alternation, repeated: modifier() });
      } else {
        parts.push({ kind: 'segment', repeated: modifier() });
      }
    } else if (c === '*') {
      at.i++;
      parts.push({ kind: 'wildcard', repeated: modifier() });
    } else {
      at.i++;
      parts.push({ kind: 'literal', char: c });
    }
  }
  return parts;
}

/** Reads a `(…)` regular expression; only a flat one (no group inside) is accepted. */
function readRegexp(p: string, at: { i: number }): { quantifiers: number; alternation: boolean } {
  at.i++;
  let quantifiers = 0;
  let alternation = false;
  let inClass = false;
  while (at.i < p.length) {
    const c = p[at.i] as string;
    if (c === '\\') {
      at.i += 2;
      continue;
    }
    at.i++;
    if (inClass) {
      if (c === ']') inClass = false;
      continue;
    }
    if (c === '[') inClass = true;
    else if (c === ')') return { quantifiers, alternation };
    else if (c === '(') throw new SyntaxError('a group inside a regular-expression group is not accepted (its matching time can grow exponentially)');
    else if (c === '*' || c === '+' || c === '{') quantifiers++;
    else if (c === '|') alternation = true;
  }
  return { quantifiers, alternation };
}

function degreeOf(parts: Part[], component: string): number {
  let degree = 0;
  let previous: Part | undefined;
  for (const part of parts) {
    const afterLiteral = previous === undefined || previous.kind === 'literal';
    switch (part.kind) {
      case 'literal':
        break;
      case 'wildcard':
        if (part.repeated) throw new SyntaxError('a repeated wildcard ("**", "*+") is not accepted (its matching time can grow exponentially)');
        degree++;
        break;
      case 'segment':
        // Repeated, it compiles to a group repeating its segment: unambiguous only with a `/` or `.` prefix between the repetitions.
        if (part.repeated && (component !== 'pathname' || previous?.kind !== 'literal' || (previous.char !== '/' && previous.char !== '.'))) throw new SyntaxError(`a repeated named group must follow a "/" in the pathname (elsewhere its matching time can grow exponentially)`);
        if (part.repeated || !afterLiteral) degree++;
        break;
      case 'regexp':
        if (part.repeated && (part.quantifiers > 0 || part.alternation)) throw new SyntaxError('a repeated regular-expression group may hold neither a quantifier nor "|" (its matching time can grow exponentially)');
        degree += part.quantifiers + (part.repeated ? 1 : 0);
        break;
      case 'group': {
        const inner = degreeOf(part.parts, component);
        if (part.repeated) {
          const variable = part.parts.filter((q) => q.kind !== 'literal');
          if (variable.length > 1 || inner > 0 || part.parts[0]?.kind !== 'literal') throw new SyntaxError('a repeated "{…}" group must be one literal separator followed by one segment, such as {/:id}* (otherwise its matching time can grow exponentially)');
          degree++;
        } else degree += inner;
        break;
      }
    }
    previous = part;
  }
  if (degree > MAX_PATTERN_DEGREE) throw new SyntaxError(`its ${component} has ${degree} parts that can match the same characters (wildcards, repeated or regular-expression groups, adjacent segments); at most ${MAX_PATTERN_DEGREE} are accepted, as matching time grows as the topic's length to that power`);
  return degree;
}
