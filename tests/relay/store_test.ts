import assert from "node:assert/strict";
import * as keys from "../../relay/keys.ts";
import { MAX_WAKE_DELAY_MS, transition } from "../../relay/store.ts";
import type { DeliveryRecord } from "../../relay/types.ts";
import { WriteSet } from "../../relay/write_set.ts";
import { openTestKv } from "../_helpers.ts";

const DAY = 24 * 3600 * 1000;

function pending(id: string, nextAttemptAt: number): DeliveryRecord {
  return {
    id,
    event_id: "evt_1",
    url: "https://buyer.example/hook",
    target_id: "tgt_1",
    step_id: "step_1",
    task_status: "completed",
    objects: [],
    status: "pending",
    attempts: 1,
    cycle: 1,
    cycle_attempts: 1,
    next_attempt_at: nextAttemptAt,
    lease_until: null,
    created_at: 0,
    updated_at: 0,
    delivered_at: null,
    dead_at: null,
    last_error: null,
    last_status_code: null,
  };
}

Deno.test("transition() caps the wake-up at 30 days and keeps the real due time in the index", async () => {
  await using store = await openTestKv();
  const now = Date.now();
  const due = now + 40 * DAY;
  const record = pending("dlv_far", due);
  const writes = transition(new WriteSet(), null, record, { queue: true, now });
  assert.deepEqual(writes.enqueues.map((e) => e.options?.delay), [
    MAX_WAKE_DELAY_MS,
  ]);
  assert.equal(MAX_WAKE_DELAY_MS, 30 * DAY);
  // Deno KV refuses delays over 30 days: the uncapped write would throw here.
  const res = await transition(store.kv.atomic(), null, record, {
    queue: true,
    now,
  }).commit();
  assert.ok(res.ok);
  assert.equal(
    (await store.kv.get(keys.dueKey(due, record.id))).value,
    record.id,
  );
  const near = transition(new WriteSet(), null, pending("dlv_near", now + 5), {
    queue: true,
    now,
  });
  assert.equal(near.enqueues[0]?.options?.delay, 5, "shorter waits unchanged");
});
