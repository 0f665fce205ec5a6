// A webhook receiver for tests: a real HTTP server that verifies every request with the
// `standardwebhooks` package (as a backend would) and records what it accepted.
import { Webhook } from 'standardwebhooks';
import { type TestServer, listen } from './http.js';

/** A Standard Webhooks secret for tests: whsec_ and the base64 of 32 bytes. */
export const WEBHOOK_SECRET = `whsec_${Buffer.alloc(32, 42).toString('base64')}`;

/** One accepted webhook. */
export interface Received {
  id: string;
  type: string;
  timestamp: string;
  data: Record<string, unknown>;
}

/** A running receiver. */
export interface WebhookReceiver extends TestServer {
  /** Verified events, in arrival order (a repeated `webhook-id` is recorded again: tests look for repeats). */
  received: Received[];
  /** Requests whose signature did not verify. */
  rejected: number;
  /** Answers the next `n` requests with `status` instead of 204 (to test retries). */
  failNext(n: number, status?: number): void;
  /** Resolves once `check` holds over what was received. */
  until(check: (received: Received[]) => boolean, what: string): Promise<void>;
}

/** Starts a receiver verifying with `secret`. */
export async function startWebhookReceiver(secret = WEBHOOK_SECRET): Promise<WebhookReceiver> {
  const verifier = new Webhook(secret);
  const received: Received[] = [];
  let failing = 0;
  let failStatus = 500;
  let rejected = 0;
  const server = await listen((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      if (failing > 0) {
        failing--;
        res.writeHead(failStatus).end();
        return;
      }
      let event: { type: string; timestamp: string; data: Record<string, unknown> };
      try {
        event = verifier.verify(body, req.headers as Record<string, string>) as typeof event;
      } catch {
        rejected++;
        receiver.rejected = rejected;
        res.writeHead(401).end();
        return;
      }
      received.push({ id: String(req.headers['webhook-id']), ...event });
      res.writeHead(204).end();
    });
  });
  const receiver: WebhookReceiver = {
    ...server,
    received,
    rejected,
    failNext(n, status = 500) {
      failing = n;
      failStatus = status;
    },
    async until(check, what) {
      const deadline = Date.now() + 30_000;
      while (!check(received)) {
        if (Date.now() > deadline) throw new Error(`webhooks: timed out waiting for ${what}; received ${JSON.stringify(received.map((r) => [r.type, r.data]))}`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    },
  };
  return receiver;
}
