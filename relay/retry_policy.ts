/**
 * What to do after an attempt: pure functions of the response, the schedule and a
 * random number, so retries are planned the same way in tests and in production.
 */

/** How an attempt ended, as far as retrying is concerned. */
export type Verdict =
  | { kind: "success" }
  | { kind: "retry"; retryAfterMs?: number }
  | { kind: "gone" }
  | { kind: "reject" };

/**
 * Parses a `Retry-After` header: delay-seconds or an HTTP-date.
 *
 * @param value The header value, if any.
 * @param now Milliseconds since the epoch.
 * @returns Milliseconds to wait, or `undefined` when absent or unparseable.
 */
export function parseRetryAfter(
  value: string | null | undefined,
  now: number,
): number | undefined {
  if (!value) return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const at = Date.parse(trimmed);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/**
 * Classifies an HTTP status: only 2xx succeeds; 408, 429, 3xx and 5xx are retried;
 * 410 disables the target; any other 4xx ends the delivery.
 *
 * @param status The response status.
 * @param retryAfterMs The parsed `Retry-After`, honoured on retried statuses.
 * @returns The verdict.
 */
export function classifyStatus(status: number, retryAfterMs?: number): Verdict {
  if (status >= 200 && status < 300) return { kind: "success" };
  if (status === 410) return { kind: "gone" };
  if (status === 408 || status === 429 || status < 400 || status >= 500) {
    return { kind: "retry", retryAfterMs };
  }
  return { kind: "reject" };
}

/** Inputs to {@link nextDelay}. */
export interface DelayOptions {
  scheduleMs: readonly number[];
  /** A number in [0, 1). */
  random: number;
  retryAfterMs?: number;
  retryAfterMaxMs: number;
}

/**
 * The wait before the next attempt, with ±20% jitter, or `null` when the schedule
 * is spent. A `Retry-After` longer than the scheduled wait wins, up to the maximum.
 *
 * @param attemptsInCycle Attempts already made in this cycle (≥ 1).
 * @param opts The schedule, randomness and receiver's request.
 * @returns Milliseconds, or `null` for no more attempts.
 */
export function nextDelay(
  attemptsInCycle: number,
  opts: DelayOptions,
): number | null {
  const base = opts.scheduleMs[attemptsInCycle - 1];
  if (base === undefined) return null;
  const jittered = Math.round(base * (0.8 + 0.4 * opts.random));
  if (opts.retryAfterMs === undefined) return jittered;
  return Math.max(jittered, Math.min(opts.retryAfterMs, opts.retryAfterMaxMs));
}
