import assert from "node:assert/strict";
import { RECOVER_CHUNK } from "../../relay/replay.ts";
import {
  mediaBuy,
  openTestKv,
  startReceiver,
  startTestRelay,
  stepUpdate,
  waitFor,
} from "../_helpers.ts";

// No KV queue and no sweeper run here: only the in-process sends and kicks can deliver.
Deno.test("a burst beyond the target's line, and a recovered backlog, are all sent by this process, one at a time per target", async () => {
  await using store = await openTestKv();
  let accept = false;
  let inFlight = 0;
  let maxInFlight = 0;
  await using receiver = startReceiver(async () => {
    maxInFlight = Math.max(maxInFlight, ++inFlight);
    await new Promise((r) => setTimeout(r, 2));
    inFlight--;
    return new Response("", { status: accept ? 200 : 400 });
  });
  await using relay = startTestRelay(store.kv, {
    queue: false,
    env: { RELAY_TARGET_CONCURRENCY: "1" },
  });
  const n = 2 * RECOVER_CHUNK + 5;
  const steps = Array.from({ length: n }, (_, i) => `step_b${i}`);
  for (const [i, step_id] of steps.entries()) {
    await relay.post(
      "/v1/events",
      mediaBuy(receiver.url, { step_id, media_buy_id: `mb_b${i}` }),
    );
  }
  const since = new Date().toISOString();
  // All at once: far more than the 1 + 4 a target's line holds for wake-ups.
  await Promise.all(
    steps.map((step_id) => relay.post("/v1/events", stepUpdate({ step_id }))),
  );
  await waitFor(() => receiver.hits.length === n, {
    what: "every fast-path send (400: dead at once)",
  });
  await relay.worker.idle();
  accept = true;
  const res = await relay.post("/v1/deliveries/recover", { since });
  const recovered = await res.json();
  assert.equal(recovered.requeued, n);
  assert.equal(new Set(recovered.ids).size, n);
  await waitFor(
    () => receiver.hits.filter((h) => h.status === 200).length === n,
    {
      what: "every recovered delivery",
    },
  );
  assert.equal(maxInFlight, 1);
  const again = await relay.post("/v1/deliveries/recover", { since });
  assert.equal((await again.json()).requeued, 0);
});
