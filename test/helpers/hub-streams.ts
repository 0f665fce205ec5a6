// Helpers for the hub's subscribe, history, subscriptions and shutdown tests: subscribe URLs,
// metrics read over HTTP, a client that never reads, and a cleanup stack run in reverse order.
import { type Socket, connect } from 'node:net';

/** `hubUrl?topic=…&topic=…` plus any extra query parameters. */
export function subscribeUrl(hubUrl: string, topics: string[], extra: Record<string, string> = {}): string {
  const query = new URLSearchParams();
  for (const t of topics) query.append('topic', t);
  for (const [k, v] of Object.entries(extra)) query.append(k, v);
  return `${hubUrl}?${query.toString()}`;
}

/** The value of `ssehub_connections_closed_total{reason="…"}` read from the hub's /metrics (0 when absent). */
export async function closedCount(baseUrl: string, reason: string): Promise<number> {
  const text = await (await fetch(`${baseUrl}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`ssehub_connections_closed_total{reason="${reason}"}`));
  return line === undefined ? 0 : Number(line.split(' ').pop());
}

/** Polls `check` until it holds; the test's own timeout bounds the wait. */
export async function eventually(check: () => boolean | Promise<boolean>, interval = 10): Promise<void> {
  while (!(await check())) await new Promise((r) => setTimeout(r, interval));
}

/** A subscriber on a raw socket that sends its request and then never reads a byte. */
export function stalledSubscriber(url: string, headers: Record<string, string> = {}): Promise<Socket> {
  const { hostname, port, pathname, search } = new URL(url);
  const extra = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => {
      socket.write(`GET ${pathname}${search} HTTP/1.1\r\nHost: ${hostname}:${port}\r\nAccept: text/event-stream\r\n${extra}\r\n`);
      socket.pause();
      resolve(socket);
    });
    socket.once('error', reject);
    socket.on('error', () => {});
  });
}

/** Cleanups registered during a suite, run last-in first-out (clients before the hub they use). */
export class Cleanups {
  #fns: (() => unknown)[] = [];
  add<T>(value: T, fn: (value: T) => unknown): T {
    this.#fns.push(() => fn(value));
    return value;
  }
  async run(): Promise<void> {
    for (const fn of this.#fns.splice(0).reverse()) await fn();
  }
}
