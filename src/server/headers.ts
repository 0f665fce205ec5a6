/**
 * The response headers of every stream (SPEC §1).
 *
 * `no-transform` is added to `no-cache` because it is the standard signal that intermediaries
 * and compression middleware (Express `compression()`, many CDNs) must not re-encode the body:
 * a gzip stream holds bytes back until its window fills, which is buffering by another name.
 * `X-Accel-Buffering: no` turns off nginx's proxy buffering for this response only.
 */

/** Header names and values, lower-case names. */
export type HeaderMap = Record<string, string>;

/** The headers a stream is sent with; `Connection` only on HTTP/1.x, where it is allowed. */
export function streamHeaders(http1: boolean, extra: HeaderMap = {}): HeaderMap {
  const headers: HeaderMap = {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache, no-transform',
    'x-accel-buffering': 'no',
    'x-content-type-options': 'nosniff',
  };
  if (http1) headers.connection = 'keep-alive';
  for (const [name, value] of Object.entries(extra)) headers[name.toLowerCase()] = value;
  return headers;
}

/**
 * The client's last event ID: the `Last-Event-ID` header, else the `lastEventID` (Mercure) or
 * `lastEventId` query parameter, which is how a browser EventSource, unable to set headers on its
 * first connection, passes one. `undefined` when none was given.
 */
export function lastEventIdFrom(header: string | string[] | null | undefined, search: URLSearchParams): string | undefined {
  const value = Array.isArray(header) ? header[0] : header;
  if (value !== undefined && value !== null) return value;
  return search.get('lastEventID') ?? search.get('lastEventId') ?? undefined;
}
