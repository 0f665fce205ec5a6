/** The operations routes: liveness, readiness and Prometheus metrics. */
import type { NodeResponse } from '../../server/adapters/node.js';
import type { Hub } from '../core/hub.js';

/** Answers a plain-text body (one line, not cached). */
export function sendText(res: NodeResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store', ...headers }).end(body.endsWith('\n') ? body : `${body}\n`);
}

/** Answers `/healthz`, `/readyz` and `/metrics`; resolves `false` for any other path. */
export async function handleOps(hub: Hub, path: string, res: NodeResponse): Promise<boolean> {
  switch (path) {
    case '/healthz':
      sendText(res, 200, 'ok');
      return true;
    case '/readyz': {
      const reason = hub.notReady();
      if (reason === undefined) sendText(res, 200, 'ready');
      else sendText(res, 503, `not ready: ${reason}`, { 'retry-after': '1' });
      return true;
    }
    case '/metrics': {
      // Under --workers, the whole process group's figures (HubMetrics.group).
      const body = await hub.metrics.text();
      res.writeHead(200, { 'content-type': hub.metrics.registry.contentType, 'cache-control': 'no-store' }).end(body);
      return true;
    }
    default:
      return false;
  }
}
