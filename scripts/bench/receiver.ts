/**
 * The bench's receiver: a loopback server that verifies every delivery with the
 * published `standardwebhooks` verifier (through the receiver kit) and notes when each
 * key (the payload's `task_id`) first arrived. It can be stopped and restarted on the
 * same port to play a receiver that is down.
 */
import { verifyWebhook } from "../../receiver/verify.ts";

/** A receiver the bench phases share. */
export interface BenchReceiver {
  readonly url: string;
  /** First receipt time (`performance.now()`) of each `task_id`. */
  readonly received: Map<string, number>;
  /** Requests that failed verification. */
  readonly rejected: () => number;
  /** Resolves once `n` distinct keys have arrived (or rejects after `timeoutMs`). */
  waitFor(n: number, timeoutMs: number): Promise<void>;
  /** Forgets every receipt, for the next phase. */
  reset(): void;
  /** Stops listening: deliveries now fail with connection refused. */
  down(): Promise<void>;
  /** Listens again on the same port. */
  up(): void;
  close(): Promise<void>;
}

/**
 * Starts the receiver on 127.0.0.1.
 *
 * @param secret The `whsec_` secret deliveries are signed with.
 * @returns The receiver.
 */
export function startBenchReceiver(secret: string): BenchReceiver {
  const received = new Map<string, number>();
  let rejected = 0;
  let waiter: { n: number; resolve: () => void } | undefined;
  const handler = async (req: Request) => {
    const body = await req.text();
    let key: string;
    try {
      const { payload } = verifyWebhook(body, req.headers, {
        secrets: [secret],
      });
      key = (payload as { task_id: string }).task_id;
    } catch {
      rejected++;
      return new Response("bad signature", { status: 401 });
    }
    if (!received.has(key)) received.set(key, performance.now());
    if (waiter && received.size >= waiter.n) waiter.resolve();
    return new Response("ok");
  };
  let server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    handler,
  );
  const port = server.addr.port;
  return {
    url: `http://127.0.0.1:${port}/hooks`,
    received,
    rejected: () => rejected,
    waitFor(n, timeoutMs) {
      if (received.size >= n) return Promise.resolve();
      const done = Promise.withResolvers<void>();
      const timer = setTimeout(
        () =>
          done.reject(
            new Error(
              `Timed out after ${timeoutMs} ms: ${received.size} of ${n} deliveries arrived`,
            ),
          ),
        timeoutMs,
      );
      waiter = { n, resolve: done.resolve };
      return done.promise.finally(() => {
        clearTimeout(timer);
        waiter = undefined;
      });
    },
    reset() {
      received.clear();
      rejected = 0;
    },
    down: () => server.shutdown(),
    up() {
      server = Deno.serve(
        { hostname: "127.0.0.1", port, onListen() {} },
        handler,
      );
    },
    close: () => server.shutdown(),
  };
}
