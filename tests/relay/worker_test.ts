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

Deno.test("worker.close(): nothing new starts, a waiting attempt sends nothing, and idle() awaits the one in flight", async () => {
  await using store = await openTestKv();
  const release = Promise.withResolvers<void>();
  await using receiver = startReceiver(async (hit) => {
    if (hit.n === 1) await release.promise;
    return new Response("ok");
  });
  await using relay = startTestRelay(store.kv, {
    queue: false,
    env: { RELAY_TARGET_CONCURRENCY: "1" },
  });
  const ids: string[] = [];
  let idle: Promise<void> | undefined;
  try {
    for (const n of [1, 2]) {
      await relay.post(
        "/v1/events",
        mediaBuy(receiver.url, { step_id: `s${n}`, media_buy_id: `m${n}` }),
      );
      const answer =
        await (await relay.post("/v1/events", stepUpdate({ step_id: `s${n}` })))
          .json();
      ids.push(answer.deliveries[0].id);
      // The second waits for the target's only slot, held by the first.
      await waitFor(() => receiver.hits.length === 1, {
        what: "first attempt",
      });
    }
    relay.worker.close();
    await relay.post(
      "/v1/events",
      mediaBuy(receiver.url, { step_id: "s3", media_buy_id: "m3" }),
    );
    await relay.post("/v1/events", stepUpdate({ step_id: "s3" }));
    relay.worker.kickMany(ids);
    await relay.worker.run(ids[1]!);
    let settled = false;
    idle = relay.worker.idle().then(() => void (settled = true));
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(settled, false, "idle() waits for the attempt in flight");
  } finally {
    release.resolve();
  }
  await idle;
  assert.equal(receiver.hits.length, 1, "only the request already in flight");
  assert.equal(
    (await getDelivery(store.kv, ids[0]!)).value!.status,
    "succeeded",
    "its outcome is recorded",
  );
  assert.equal((await getDelivery(store.kv, ids[1]!)).value!.status, "pending");
  assert.equal((await listAttempts(store.kv, ids[1]!)).length, 0);
});
