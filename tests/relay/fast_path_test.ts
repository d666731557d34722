import assert from "node:assert/strict";
import { acceptEvent } from "../../relay/intake.ts";
import { createLogger } from "../../relay/log.ts";
import { Metrics } from "../../relay/metrics.ts";
import { getDelivery } from "../../relay/store.ts";
import { sweepDue } from "../../relay/sweeper.ts";
import {
  mediaBuy,
  openTestKv,
  startReceiver,
  startTestRelay,
  waitFor,
} from "../_helpers.ts";

const quiet = createLogger(() => {});

Deno.test("acceptEvent() with leaseMs creates deliveries leased by the caller; unsent, the sweeper sends them when the lease ends", async () => {
  await using store = await openTestKv();
  await using receiver = startReceiver();
  await using relay = startTestRelay(store.kv, { queue: false });
  assert.equal(
    (await relay.post("/v1/events", mediaBuy(receiver.url))).status,
    202,
  );
  const before = Date.now();
  // The accepting process "dies" right after the commit: nobody calls worker.send.
  const { answer, held } = await acceptEvent(
    {
      kv: store.kv,
      now: Date.now,
      log: quiet,
      metrics: new Metrics(),
      queue: false,
      leaseMs: 300,
    },
    { type: "workflow_step.updated", step_id: "step_1", status: "completed" },
    {
      fingerprint: "f",
    },
  );
  assert.equal(held.length, 1);
  const id = answer.deliveries[0]!.id;
  const stored = (await getDelivery(store.kv, id)).value!;
  assert.ok(stored.lease_until! >= before + 300);
  assert.deepEqual(stored, held[0]!.record);
  assert.equal(held[0]!.payload.includes(`"idempotency_key":"${id}"`), true);

  const sweep = () =>
    sweepDue({ kv: store.kv, now: Date.now, worker: relay.worker, log: quiet });
  assert.equal(await sweep(), 0, "not due while the lease holds");
  await new Promise((r) => setTimeout(r, 350));
  assert.equal(await sweep(), 1);
  await waitFor(() => receiver.verified().length === 1, { what: "delivery" });
  assert.equal(receiver.verified()[0]!.headers.get("webhook-id"), id);
  assert.equal((await getDelivery(store.kv, id)).value!.status, "succeeded");
});

Deno.test("POST /v1/events sends on the fast path alone (no queue, no sweeper), in one attempt", async () => {
  await using store = await openTestKv();
  await using receiver = startReceiver();
  await using relay = startTestRelay(store.kv, { queue: false });
  await relay.post("/v1/events", mediaBuy(receiver.url));
  const res = await relay.post("/v1/events", {
    type: "workflow_step.updated",
    step_id: "step_1",
    status: "completed",
  });
  const id = (await res.json()).deliveries[0].id;
  await waitFor(async () =>
    (await getDelivery(store.kv, id)).value?.status === "succeeded"
  );
  const shown = await (await relay.get(`/v1/deliveries/${id}`)).json();
  assert.equal(shown.attempts.length, 1);
  assert.equal(receiver.hits.length, 1);
});
