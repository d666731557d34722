/** Pure planning of a delivery's next state after one attempt. */
import { classifyStatus, nextDelay, type Verdict } from "./retry_policy.ts";
import type { DeliveryRecord } from "./types.ts";

/** What one HTTP attempt produced. */
export interface AttemptResult {
  status_code: number | null;
  error: string | null;
  retry_after_ms?: number;
  /** The target may not be called (blocked address): end without retrying. */
  blocked?: boolean;
}

/** Inputs to {@link settle} besides the record and result. */
export interface SettleOptions {
  now: number;
  random: number;
  scheduleMs: readonly number[];
  retryAfterMaxMs: number;
}

/**
 * Decides the record after an attempt: succeeded, failed with a next attempt, or
 * dead with the reason kept.
 *
 * @param record The record as claimed for the attempt.
 * @param result The attempt's status code or error.
 * @param opts Clock, randomness and retry schedule.
 * @returns The new record and the verdict behind it.
 * @example
 * ```ts
 * const { record: next } = settle(record, { status_code: 500, error: null }, opts);
 * ```
 */
export function settle(
  record: DeliveryRecord,
  result: AttemptResult,
  opts: SettleOptions,
): { record: DeliveryRecord; verdict: Verdict } {
  const verdict: Verdict = result.blocked
    ? { kind: "reject" }
    : result.status_code === null
    ? { kind: "retry" }
    : classifyStatus(result.status_code, result.retry_after_ms);
  const base: DeliveryRecord = {
    ...record,
    attempts: record.attempts + 1,
    cycle_attempts: record.cycle_attempts + 1,
    lease_until: null,
    updated_at: opts.now,
    last_status_code: result.status_code,
    last_error: result.error ??
      (verdict.kind === "success" ? null : `HTTP ${result.status_code}`),
  };
  const dead = (why: string): DeliveryRecord => ({
    ...base,
    status: "dead",
    next_attempt_at: null,
    dead_at: opts.now,
    last_error: `${base.last_error}: ${why}`,
  });
  switch (verdict.kind) {
    case "success":
      return {
        verdict,
        record: {
          ...base,
          status: "succeeded",
          next_attempt_at: null,
          delivered_at: opts.now,
        },
      };
    case "gone":
      return { verdict, record: dead("target disabled (410 Gone)") };
    case "reject":
      return {
        verdict,
        record: dead(
          result.blocked
            ? "target blocked, not retried"
            : "rejected by receiver, not retried",
        ),
      };
    case "retry": {
      const delay = nextDelay(base.cycle_attempts, {
        scheduleMs: opts.scheduleMs,
        random: opts.random,
        retryAfterMs: verdict.retryAfterMs,
        retryAfterMaxMs: opts.retryAfterMaxMs,
      });
      if (delay === null) {
        return {
          verdict,
          record: dead(
            `retries exhausted after ${base.cycle_attempts} attempts`,
          ),
        };
      }
      return {
        verdict,
        record: {
          ...base,
          status: "failed",
          next_attempt_at: opts.now + delay,
        },
      };
    }
  }
}
