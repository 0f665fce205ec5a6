/**
 * Mercure helpers: subscribe URLs for Mercure 1.0 (`match`, `match_urlpattern`, `last_event_id`)
 * and draft-07 (`topic`, `lastEventID`), the form body of a 1.0 `QUERY` subscription, and hub
 * discovery from a `Link` header.
 */

/** The topic matchers of a Mercure 1.0 subscription: exact topics, and WHATWG URL Patterns (`https://example.com/books/:id`). */
export interface Matchers {
  /** Exact topics (`match`); `*` for every topic. */
  exact?: string | string[];
  /** URL Patterns (`match_urlpattern`), absolute or relative to the hub's URL. */
  urlpattern?: string | string[];
}

/** Options of a Mercure 1.0 subscribe URL or body. */
export interface MatchOptions {
  /** Resume after this ID (`last_event_id`, for the first connection of a client that cannot set headers; `earliest` for all history). */
  lastEventId?: string;
}

/** The Mercure 1.0 parameters of `matchers`, in order. */
function matchParams(matchers: Matchers, options: MatchOptions): URLSearchParams {
  const params = new URLSearchParams();
  const list = (v: string | string[] | undefined) => (v === undefined ? [] : Array.isArray(v) ? v : [v]);
  for (const topic of list(matchers.exact)) params.append('match', topic);
  for (const pattern of list(matchers.urlpattern)) params.append('match_urlpattern', pattern);
  if ([...params].length === 0) throw new TypeError('subscribe to at least one topic or URL pattern');
  if (options.lastEventId !== undefined) params.set('last_event_id', options.lastEventId);
  return params;
}

/**
 * Builds a Mercure 1.0 subscribe URL on `hub`: `match` for exact topics, `match_urlpattern` for URL
 * Patterns. A token goes in an `Authorization` header (the `headers` option of this package's
 * EventSource) or the hub's cookie, never in the URL.
 */
export function mercureMatchUrl(hub: string | URL, matchers: Matchers, options: MatchOptions = {}): string {
  const url = new URL(hub);
  for (const [name, value] of matchParams(matchers, options)) url.searchParams.append(name, value);
  return url.toString();
}

/**
 * The form body of a Mercure 1.0 `QUERY` subscription, for matcher lists too long for a URL: pass
 * it with `method: 'QUERY'` and `headers: { 'content-type': 'application/x-www-form-urlencoded' }`.
 */
export function mercureQueryBody(matchers: Matchers, options: MatchOptions = {}): string {
  return matchParams(matchers, options).toString();
}

/** Options of a subscribe URL. */
export interface SubscribeUrlOptions {
  /** Resume after this ID (sent as the `lastEventID` query parameter, for clients that cannot set headers). */
  lastEventId?: string;
  /** A token sent as the `authorization` query parameter (prefer the header: URLs end up in logs). */
  authorization?: string;
}

/** Builds a Mercure draft-07 URL subscribing to `topics` (exact topics or URI-template selectors) on `hub`, for 0.x hubs. */
export function mercureSubscribeUrl(hub: string | URL, topics: string | string[], options: SubscribeUrlOptions = {}): string {
  const url = new URL(hub);
  const list = Array.isArray(topics) ? topics : [topics];
  if (list.length === 0) throw new TypeError('subscribe to at least one topic');
  for (const topic of list) url.searchParams.append('topic', topic);
  if (options.lastEventId !== undefined) url.searchParams.set('lastEventID', options.lastEventId);
  if (options.authorization !== undefined) url.searchParams.set('authorization', options.authorization);
  return url.toString();
}

/** One link of a `Link` header. */
interface Link {
  href: string;
  rel: string[];
}

/** Parses a `Link` header (RFC 8288) into its links. */
export function parseLinkHeader(header: string): Link[] {
  const links: Link[] = [];
  const re = /<([^>]*)>((?:\s*;\s*[^;,"=]+(?:=(?:"[^"]*"|[^;,]*))?)*)/g;
  for (let m = re.exec(header); m !== null; m = re.exec(header)) {
    const params = m[2] ?? '';
    const rel = /;\s*rel\s*=\s*(?:"([^"]*)"|([^;,\s]+))/i.exec(params);
    links.push({ href: m[1] as string, rel: (rel?.[1] ?? rel?.[2] ?? '').toLowerCase().split(/\s+/).filter(Boolean) });
  }
  return links;
}

/** What a resource advertises: its hubs (`rel="mercure"`) and its canonical topic (`rel="self"`). */
export interface Discovery {
  hubs: string[];
  topic: string | undefined;
}

/** Reads the Mercure links of a response; relative links are resolved against `baseUrl` (default: the response URL). */
export function discoverFromHeaders(headers: { get(name: string): string | null }, baseUrl: string): Discovery {
  const links = parseLinkHeader(headers.get('link') ?? '');
  const resolve = (href: string) => new URL(href, baseUrl).toString();
  return {
    hubs: links.filter((l) => l.rel.includes('mercure')).map((l) => resolve(l.href)),
    topic: links.filter((l) => l.rel.includes('self')).map((l) => resolve(l.href))[0],
  };
}

/** Fetches `resource` (HEAD, then GET if HEAD is refused) and returns the hubs and topic it advertises. */
export async function discoverHub(resource: string | URL, init: { fetch?: typeof fetch; headers?: Record<string, string> } = {}): Promise<Discovery> {
  const doFetch = init.fetch ?? globalThis.fetch.bind(globalThis);
  let response = await doFetch(resource, { method: 'HEAD', headers: init.headers });
  if (response.status === 405 || response.status === 501) response = await doFetch(resource, { headers: init.headers });
  const found = discoverFromHeaders(response.headers, response.url || String(resource));
  if (found.hubs.length === 0) throw new Error(`${String(resource)} advertises no Mercure hub (no Link header with rel="mercure")`);
  return found;
}
