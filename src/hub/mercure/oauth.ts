/**
 * The hub as an OAuth 2.0 protected resource (Mercure 1.0): its resource identifier (what access
 * tokens name in `aud`), the RFC 9728 metadata document that advertises it, and the RFC 6750
 * `WWW-Authenticate: Bearer` challenges its 1.0 answers carry. Which requests speak 1.0 is marked
 * here, so that mercure/errors.ts answers each generation in its own form.
 */
import type { NodeRequest, NodeResponse } from '../../server/adapters/node.js';
import { MATCH_TYPES, MERCURE_DETAIL_TYPE } from '../core/access-token.js';
import { DEFAULT_PATTERN_BASE } from '../core/selector.js';
import type { HubContext } from './context.js';
import { HUB_PATH } from './paths.js';

/** Where the RFC 9728 metadata of the hub's resource is served (the hub path after the well-known prefix). */
export const RESOURCE_METADATA_PATH = `/.well-known/oauth-protected-resource${HUB_PATH}`;

const v1Requests = new WeakSet<object>();

/** Marks a request as Mercure 1.0: its errors are answered as RFC 6750 challenges. */
export function markV1(req: NodeRequest): void {
  v1Requests.add(req);
}

/** `true` once a handler found the request to speak Mercure 1.0. */
export function isV1(req: NodeRequest): boolean {
  return v1Requests.has(req);
}

/** The `host` a request was sent to (HTTP/2's `:authority`), or `undefined`. */
function hostOf(req: NodeRequest): string | undefined {
  const host = req.headers.host ?? (req.headers[':authority'] as string | undefined);
  // A host is a name or address and a port; anything else is not used to build a URL.
  return host !== undefined && /^[A-Za-z0-9.\-_~%!$&'()*+,;=:[\]]+$/.test(host) ? host.toLowerCase() : undefined;
}

/** The scheme the client used: TLS on the socket, else a proxy's `X-Forwarded-Proto`, else http. */
function schemeOf(req: NodeRequest): 'http' | 'https' {
  if ((req.socket as { encrypted?: boolean }).encrypted === true) return 'https';
  const forwarded = String(req.headers['x-forwarded-proto'] ?? '').split(',')[0]?.trim().toLowerCase();
  return forwarded === 'https' ? 'https' : 'http';
}

/**
 * The resource identifiers access tokens may name in `aud`: `--token-audience` when set; else the
 * hub's URL as this request reached it, with either scheme (a proxy terminating TLS changes the
 * scheme the hub sees, not the host the token is bound to).
 */
export function audiencesOf(ctx: HubContext, req: NodeRequest): string[] {
  const configured = ctx.hub.config.tokenAudience;
  if (configured !== undefined) return [configured];
  const host = hostOf(req);
  if (host === undefined) return [];
  return [`https://${host}${HUB_PATH}`, `http://${host}${HUB_PATH}`];
}

/** The hub's resource identifier for this request: `--token-audience`, else its URL as reached. */
export function resourceOf(ctx: HubContext, req: NodeRequest): string {
  const configured = ctx.hub.config.tokenAudience;
  if (configured !== undefined) return configured;
  const host = hostOf(req) ?? 'localhost';
  return `${schemeOf(req)}://${host}${HUB_PATH}`;
}

/** The base of relative URL patterns and topics: the configured resource identifier, else a fixed one. */
export function patternBaseOf(config: { tokenAudience: string | undefined }): string {
  return config.tokenAudience ?? DEFAULT_PATTERN_BASE;
}

/** The URL of the resource's metadata document (RFC 9728 §3.1: the well-known prefix before the resource's path). */
export function resourceMetadataUrl(ctx: HubContext, req: NodeRequest): string {
  const resource = new URL(resourceOf(ctx, req));
  return `${resource.origin}/.well-known/oauth-protected-resource${resource.pathname === '/' ? '' : resource.pathname}`;
}

/** An RFC 6750 auth-param value: a quoted string of the characters it allows (no `"` or `\`). */
function quoted(text: string): string {
  return `"${text.replace(/["\\]/g, "'").replace(/[^\x20-\x7e]/g, '?')}"`;
}

/**
 * A `WWW-Authenticate: Bearer` challenge (RFC 6750 §3): always with `resource_metadata` (RFC 9728
 * §5.1); with `error` and `error_description` unless the request simply carried no token.
 */
export function bearerChallengeV1(resourceMetadata: string, error?: 'invalid_request' | 'invalid_token' | 'insufficient_scope', description?: string): Record<string, string> {
  let value = `Bearer realm="ssehub", resource_metadata=${quoted(resourceMetadata)}`;
  if (error !== undefined) value += `, error="${error}"`;
  if (description !== undefined) value += `, error_description=${quoted(description)}`;
  return { 'www-authenticate': value };
}

/** Serves the RFC 9728 protected-resource metadata of the hub. */
export function handleResourceMetadata(ctx: HubContext, req: NodeRequest, res: NodeResponse): void {
  const config = ctx.hub.config;
  const doc: Record<string, unknown> = {
    resource: resourceOf(ctx, req),
    bearer_methods_supported: ['header'],
    authorization_details_types_supported: [MERCURE_DETAIL_TYPE],
    mercure_cookie: config.accessTokenCookie,
    mercure_matcher_types_supported: [...MATCH_TYPES],
  };
  if (config.subscriptions) doc.mercure_subscriptions = true;
  // Public by nature, so readable from any origin (no credentials).
  res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'max-age=300', 'access-control-allow-origin': '*' });
  if (req.method === 'HEAD') res.end();
  else res.end(JSON.stringify(doc));
}
