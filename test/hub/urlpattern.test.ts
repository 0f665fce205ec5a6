// URL Patterns as topic selectors (Mercure 1.0's urlpattern matcher type) and typed selectors:
// matching as the URL Pattern standard says, relative to the hub's URL, and the bounds that keep
// a crafted pattern from taking the hub's time (the spec's URL-pattern denial-of-service section).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InvalidSelectorError } from '../../src/hub/core/errors.js';
import { type Selector, compile, compileSelector, draft07Selector, isExactSelector, toSelector } from '../../src/hub/core/selector.js';
import { EVALUATION_BUDGET, MAX_PATTERN_LENGTH, URL_PATTERN_IMPLEMENTATION, compileUrlPattern, urlPatternStats } from '../../src/hub/core/urlpattern.js';

const BASE = 'https://hub.example/.well-known/mercure';
const pattern = (value: string, base = BASE): Selector => ({ kind: 'urlpattern', value, base });

describe('URL pattern selectors', () => {
  it('uses the platform URLPattern where there is one, the polyfill elsewhere', () => {
    const hasPlatform = typeof (globalThis as { URLPattern?: unknown }).URLPattern === 'function';
    assert.equal(URL_PATTERN_IMPLEMENTATION, hasPlatform ? 'platform' : 'polyfill');
  });

  it('a named group matches one path segment', () => {
    const m = compile(pattern('https://example.com/books/:id'));
    assert.equal(m('https://example.com/books/1'), true);
    assert.equal(m('https://example.com/books/1/reviews'), false);
    assert.equal(m('https://example.com/authors/1'), false);
  });

  it('the host is case-insensitive (URL canonicalisation), the path is not (no ignoreCase)', () => {
    const m = compile(pattern('https://example.com/books/:id'));
    assert.equal(m('https://EXAMPLE.com/books/1'), true);
    assert.equal(m('https://example.com/BOOKS/1'), false);
  });

  it('a relative pattern and a relative topic are both resolved against the hub URL', () => {
    const m = compile(pattern('/.well-known/mercure/subscriptions/:type/:match/:subscriber'));
    assert.equal(m('/.well-known/mercure/subscriptions/exact/https%3A%2F%2Fx/urn%3Auuid%3A1'), true);
    assert.equal(m('https://hub.example/.well-known/mercure/subscriptions/exact/a/b'), true);
    assert.equal(m('https://elsewhere.example/.well-known/mercure/subscriptions/exact/a/b'), false);
  });

  it('a regular-expression group and a wildcard work as the standard says', () => {
    const feed = compile(pattern('https://example.com/feed/:type(news|alerts)'));
    assert.equal(feed('https://example.com/feed/news'), true);
    assert.equal(feed('https://example.com/feed/sports'), false);
    const all = compile(pattern('https://*.example.com/*'));
    assert.equal(all('https://api.example.com/a/b/c'), true);
    assert.equal(all('https://example.org/a'), false);
  });

  it('a topic that is not a URL reference matches no URL pattern (and does not throw)', () => {
    const m = compile(pattern('https://example.com/:id'));
    assert.equal(m('urn:uuid:1'), false);
    assert.equal(m('http://[not-an-ip/x'), false);
  });

  it('`*` is every topic, whatever the matcher type', () => {
    assert.equal(compile(pattern('*'))('urn:anything'), true);
  });

  it('a malformed pattern is refused with InvalidSelectorError naming it', () => {
    assert.throws(() => compile(pattern('https://example.com/books/{')), (e: unknown) => e instanceof InvalidSelectorError && /URL pattern "https:\/\/example.com\/books\/\{" is refused: not a valid URL pattern/.test(e.message));
  });

  it(`a pattern longer than ${MAX_PATTERN_LENGTH} characters is refused`, () => {
    assert.throws(() => compile(pattern(`https://example.com/${'a'.repeat(MAX_PATTERN_LENGTH)}`)), /longer than 2048/);
  });

  it('is compiled once per pattern and base', () => {
    assert.equal(compile(pattern('https://example.com/x/:id')), compile(pattern('https://example.com/x/:id')));
    assert.notEqual(compile(pattern('/x/:id', 'https://a.example/')), compile(pattern('/x/:id', 'https://b.example/')));
  });
});

describe('URL pattern denial-of-service bounds', () => {
  for (const [name, value, why] of [
    ['a group inside a regular-expression group', 'https://example.com/:a((?:a+)+)', /group inside a regular-expression group/],
    ['a repeated regular-expression group with a quantifier', 'https://example.com/:a(a+)+', /repeated regular-expression group/],
    ['a repeated regular-expression group with an alternation', 'https://example.com/:a(a|aa)*', /repeated regular-expression group/],
    ['a repeated wildcard', 'https://example.com/x**', /repeated wildcard/],
    ['a repeated named group not after "/"', 'https://example.com/x:a+', /repeated named group/],
    ['a repeated group without a separator', 'https://example.com/a{:b}+', /repeated (named group|"\{…\}" group)/],
    ['four wildcards in one component', 'https://example.com/*a*a*a*b', /4 parts that can match the same characters/],
  ] as const) {
    it(`refuses ${name}`, () => {
      assert.throws(() => compile(pattern(value)), (e: unknown) => e instanceof InvalidSelectorError && why.test(e.message));
    });
  }

  it('accepts the common shapes: segments, a trailing wildcard, {/:id}*, repeated path segments', () => {
    for (const value of ['https://example.com/books/:id', '/.well-known/mercure/subscriptions/:a/:b/:c', 'https://example.com/files/*', 'https://example.com/a{/:id}*', 'https://example.com/p/:path+', 'https://example.com/:a(\\d+)']) {
      assert.doesNotThrow(() => compile(pattern(value)), value);
    }
  });

  it('does not evaluate a pattern of degree 3 against a topic too long for the budget: no match, quickly, and counted', () => {
    const m = compileUrlPattern('https://example.com/*a*a*b', BASE);
    const before = urlPatternStats.skipped;
    const topic = `https://example.com/${'a'.repeat(Math.ceil(EVALUATION_BUDGET ** (1 / 3)) + 10)}`;
    const started = performance.now();
    assert.equal(m(topic), false);
    assert.ok(performance.now() - started < 50, 'took too long');
    assert.equal(urlPatternStats.skipped, before + 1);
    // The same pattern still matches a topic within the budget.
    assert.equal(m('https://example.com/xaab'), true);
  });

  it('a pathological topic against an accepted pattern stays fast', () => {
    const m = compileUrlPattern('https://example.com/*a*b', BASE);
    const started = performance.now();
    for (let n = 10; n < 1000; n += 97) m(`https://example.com/${'a'.repeat(n)}`);
    assert.ok(performance.now() - started < 500, `took ${performance.now() - started} ms`);
  });
});

describe('typed selectors', () => {
  it('an exact selector containing "{" is exact (Mercure 1.0 match=), not a URI template', () => {
    const exact: Selector = { kind: 'exact', value: 'https://example.com/books/{id}' };
    assert.equal(isExactSelector(exact), true);
    assert.equal(compile(exact)('https://example.com/books/{id}'), true);
    assert.equal(compile(exact)('https://example.com/books/1'), false);
  });

  it('a string keeps its draft-07 reading', () => {
    assert.deepEqual(draft07Selector('*'), { kind: 'any', value: '*' });
    assert.deepEqual(toSelector('https://example.com/books/{id}'), { kind: 'template', value: 'https://example.com/books/{id}' });
    assert.equal(isExactSelector('https://example.com/books/{id}'), false);
    assert.equal(compile('https://example.com/books/{id}'), compileSelector('https://example.com/books/{id}'));
  });

  it('a typed template is matched as draft-07 matches it', () => {
    assert.equal(compile({ kind: 'template', value: 'https://example.com/books/{id}' })('https://example.com/books/1'), true);
  });
});
