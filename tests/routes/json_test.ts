import assert from "node:assert/strict";
import { iso } from "../../routes/_json.ts";
import { deliveryView } from "../../routes/deliveries.ts";
import { targetView } from "../../routes/targets.ts";

Deno.test("iso() keeps the epoch and maps absent times to null, for targets and deliveries alike", () => {
  assert.equal(iso(0), "1970-01-01T00:00:00.000Z");
  assert.equal(iso(null), null);
  assert.equal(iso(undefined), null);
  const target = targetView({
    id: "tgt_000000000000000000000000",
    url: "https://buyer.example/hook",
    disabled_at: null,
    disabled_reason: null,
    consecutive_failures: 1,
    failing_since: 0,
  }, 0);
  assert.equal(target.failing_since, "1970-01-01T00:00:00.000Z");
  assert.equal(target.last_failure_at, null);
  const delivery = deliveryView({
    id: "dlv_1",
    event_id: "evt_1",
    url: "https://buyer.example/hook",
    target_id: "tgt_000000000000000000000000",
    step_id: "step_1",
    task_status: "completed",
    objects: [],
    status: "pending",
    attempts: 0,
    cycle: 1,
    cycle_attempts: 0,
    next_attempt_at: 0,
    lease_until: null,
    created_at: 0,
    updated_at: 0,
    delivered_at: null,
    dead_at: null,
    last_error: null,
    last_status_code: null,
  });
  assert.equal(delivery.created_at, target.failing_since);
  assert.equal(delivery.delivered_at, null);
});
