/**
 * Measuring one way of delivering: `n` sends at a given concurrency, each timed from
 * the moment it starts until its key first reaches the receiver.
 */
import type { BenchReceiver } from "./receiver.ts";

/** Throughput and latency of one run. */
export interface RunStats {
  n: number;
  concurrency: number;
  seconds: number;
  per_second: number;
  p50_ms: number;
  p99_ms: number;
}

/** What a run sends: `send(i)` starts delivery of key `keyOf(i)`. */
export interface RunPlan {
  n: number;
  concurrency: number;
  keyOf: (i: number) => string;
  send: (i: number) => Promise<void>;
  timeoutMs: number;
}

/**
 * Runs `plan.n` sends through `plan.concurrency` loops. At concurrency 1 each send
 * also waits for its receipt, so latency is that of an otherwise idle system.
 *
 * @param receiver The receiver that records receipts; it is reset first.
 * @param plan Sizes, keys and the send function.
 * @returns Deliveries per second (first send to last receipt) and latency percentiles.
 */
export async function measure(
  receiver: BenchReceiver,
  plan: RunPlan,
): Promise<RunStats> {
  receiver.reset();
  const sentAt = new Array<number>(plan.n);
  let next = 0;
  const started = performance.now();
  const loop = async () => {
    for (let i = next++; i < plan.n; i = next++) {
      sentAt[i] = performance.now();
      await plan.send(i);
      if (plan.concurrency === 1) await receiver.waitFor(i + 1, plan.timeoutMs);
    }
  };
  await Promise.all(Array.from({ length: plan.concurrency }, loop));
  await receiver.waitFor(plan.n, plan.timeoutMs);
  const latencies = sentAt.map((at, i) =>
    receiver.received.get(plan.keyOf(i))! - at
  ).sort((a, b) => a - b);
  const seconds = (lastReceipt(receiver) - started) / 1000;
  return {
    n: plan.n,
    concurrency: plan.concurrency,
    seconds: round(seconds, 3),
    per_second: Math.round(plan.n / seconds),
    p50_ms: round(percentile(latencies, 0.5), 2),
    p99_ms: round(percentile(latencies, 0.99), 2),
  };
}

/**
 * The latest receipt time.
 *
 * @param receiver The receiver.
 * @returns Its latest `performance.now()` receipt.
 */
export function lastReceipt(receiver: BenchReceiver): number {
  let last = -Infinity;
  for (const at of receiver.received.values()) last = Math.max(last, at);
  return last;
}

/**
 * The nearest-rank percentile of sorted values.
 *
 * @param sorted Values in ascending order.
 * @param q The quantile, in (0, 1].
 * @returns The value, or NaN when there is none.
 */
export function percentile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;
}

/** Rounds to `digits` decimals. */
export function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/**
 * Runs `fn(i)` for i in [0, n) through `concurrency` loops (set-up work, untimed).
 *
 * @param n How many calls.
 * @param concurrency How many at once.
 * @param fn The work.
 */
export async function pool(
  n: number,
  concurrency: number,
  fn: (i: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  const loop = async () => {
    for (let i = next++; i < n; i = next++) await fn(i);
  };
  await Promise.all(Array.from({ length: concurrency }, loop));
}
