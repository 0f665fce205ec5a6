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
  if (value !== undefined && value !== null) return headerToText(value);
  return search.get('lastEventID') ?? search.get('lastEventId') ?? undefined;
}

/**
 * Node hands header values over as Latin-1, one character per byte, but browsers send a
 * non-ASCII `Last-Event-ID` as UTF-8: decode those bytes so the ID matches the one published.
 * A value that is not valid UTF-8 is kept as it came.
 */
export function headerToText(value: string): string {
  // eslint-disable-next-line no-control-regex
  if (/^[\x00-\x7f]*$/.test(value) || /[^\x00-\xff]/.test(value)) return value;
  const decoded = Buffer.from(value, 'latin1').toString('utf8');
  return decoded.includes('\uFFFD') ? value : decoded;
}

/** The inverse of headerToText: a string as the Latin-1 characters of its UTF-8 bytes, which Node will put on the wire as UTF-8. */
export function textToHeader(value: string): string {
  if (/^[\x20-\x7e]*$/.test(value)) return value;
  // Control characters cannot appear in a header at all: percent-encode rather than throw.
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x08\x0a-\x1f\x7f]/.test(value)) return encodeURIComponent(value);
  return Buffer.from(value, 'utf8').toString('latin1');
}
