import assert from "node:assert/strict";
import * as keys from "../../relay/keys.ts";
import { getDelivery, listAttempts } from "../../relay/store.ts";
import type { AttemptRecord, DeliveryRecord } from "../../relay/types.ts";
import {
  mediaBuy,
  openTestKv,
  startReceiver,
  startTestRelay,
  stepUpdate,
  waitFor,
} from "../_helpers.ts";

Deno.test("an attempt superseded by another process's claim is logged beside the winner's attempt, never over it", async () => {
  await using store = await openTestKv();
  const winner: AttemptRecord = {
    n: 1,
    cycle: 1,
    at: 1,
    duration_ms: 5,
    status_code: 200,
    error: null,
    response_body: "winner",
  };
  await using receiver = startReceiver(async (hit) => {
    if (hit.n === 1) {
      // While this request is in flight, "another process" claims the delivery
      // (its lease expired, say) and records its own attempt 1.
      const key = keys.deliveryKey(id);
      const current = (await store.kv.get<DeliveryRecord>(key)).value!;
      await store.kv.atomic()
        .set(key, { ...current, lease_until: current.lease_until! + 60_000 })
        .set(keys.attemptKey(id, 1), winner)
        .commit();
    }
    return new Response("loser");
  });
  await using relay = startTestRelay(store.kv, { queue: false });
  await relay.post("/v1/events", mediaBuy(receiver.url));
  const id = (await (await relay.post("/v1/events", stepUpdate())).json())
    .deliveries[0].id as string;
  await waitFor(() => receiver.hits.length === 1, { what: "the attempt" });
  await relay.worker.idle();
  const attempts = await listAttempts(store.kv, id);
  assert.equal(attempts.length, 2, "the winner's and the superseded request");
  assert.deepEqual(attempts[0], winner);
  assert.equal(attempts[1]!.n, 1);
  assert.equal(attempts[1]!.superseded, true);
  assert.equal(attempts[1]!.response_body, "loser");
  assert.ok(
    relay.logs().some((l) => l.msg === "attempt outcome superseded"),
    "the superseded outcome is logged",
  );
  assert.equal(
    (await getDelivery(store.kv, id)).value!.status,
    "pending",
    "the winner's claim stands",
  );
});
