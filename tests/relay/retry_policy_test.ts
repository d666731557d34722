import assert from "node:assert/strict";
import { settle } from "../../relay/plan.ts";
import {
  classifyStatus,
  nextDelay,
  parseRetryAfter,
} from "../../relay/retry_policy.ts";
import type { DeliveryRecord } from "../../relay/types.ts";

Deno.test("classifyStatus() retries 408, 429, 3xx and 5xx, disables on 410, rejects other 4xx", () => {
  const kinds = [200, 204, 301, 400, 401, 404, 408, 410, 422, 429, 500, 503]
    .map((s) => classifyStatus(s).kind);
  assert.deepEqual(kinds, [
    "success",
    "success",
    "retry",
    "reject",
    "reject",
    "reject",
    "retry",
    "gone",
    "reject",
    "retry",
    "retry",
    "retry",
  ]);
});

Deno.test("parseRetryAfter() reads seconds and HTTP-dates", () => {
  const now = Date.parse("2026-01-01T00:00:00Z");
  assert.equal(parseRetryAfter("120", now), 120_000);
  assert.equal(parseRetryAfter("Thu, 01 Jan 2026 00:00:30 GMT", now), 30_000);
  assert.equal(parseRetryAfter("Wed, 31 Dec 2025 00:00:00 GMT", now), 0);
  assert.equal(parseRetryAfter("soon", now), undefined);
  assert.equal(parseRetryAfter(null, now), undefined);
});

Deno.test("nextDelay() jitters ±20%, honours Retry-After up to its cap, ends with the schedule", () => {
  const opts = { scheduleMs: [5000, 300_000], retryAfterMaxMs: 3_600_000 };
  assert.equal(nextDelay(1, { ...opts, random: 0 }), 4000);
  assert.equal(nextDelay(1, { ...opts, random: 0.999999 }), 6000);
  assert.equal(nextDelay(2, { ...opts, random: 0.5 }), 300_000);
  assert.equal(nextDelay(3, { ...opts, random: 0.5 }), null);
  assert.equal(
    nextDelay(1, { ...opts, random: 0.5, retryAfterMs: 60_000 }),
    60_000,
  );
  assert.equal(
    nextDelay(1, { ...opts, random: 0.5, retryAfterMs: 1000 }),
    5000,
    "never sooner than scheduled",
  );
  assert.equal(
    nextDelay(1, { ...opts, random: 0.5, retryAfterMs: 9e9 }),
    3_600_000,
    "clamped",
  );
});

const record: DeliveryRecord = {
  id: "msg_1",
  event_id: "evt_1",
  url: "http://x",
  target_id: "tgt_1",
  step_id: "s",
  task_status: "completed",
  objects: [],
  status: "pending",
  attempts: 0,
  cycle: 1,
  cycle_attempts: 0,
  next_attempt_at: 0,
  lease_until: 100,
  created_at: 0,
  updated_at: 0,
  delivered_at: null,
  dead_at: null,
  last_error: null,
  last_status_code: null,
};
const opts = {
  now: 1000,
  random: 0.5,
  scheduleMs: [5000],
  retryAfterMaxMs: 3_600_000,
};

Deno.test("settle() plans success, retry, exhaustion and 410", () => {
  const ok = settle(record, { status_code: 200, error: null }, opts).record;
  assert.deepEqual([
    ok.status,
    ok.delivered_at,
    ok.next_attempt_at,
    ok.lease_until,
    ok.attempts,
  ], ["succeeded", 1000, null, null, 1]);
  const retry = settle(record, { status_code: 503, error: null }, opts).record;
  assert.deepEqual([retry.status, retry.next_attempt_at, retry.last_error], [
    "failed",
    6000,
    "HTTP 503",
  ]);
  const spent =
    settle(retry, { status_code: null, error: "timeout after 10 ms" }, opts)
      .record;
  assert.deepEqual([spent.status, spent.dead_at, spent.next_attempt_at], [
    "dead",
    1000,
    null,
  ]);
  assert.equal(
    spent.last_error,
    "timeout after 10 ms: retries exhausted after 2 attempts",
  );
  const gone = settle(record, { status_code: 410, error: null }, opts);
  assert.equal(gone.verdict.kind, "gone");
  assert.equal(gone.record.status, "dead");
});
