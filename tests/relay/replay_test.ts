import assert from "node:assert/strict";
import {
  mediaBuy,
  openTestKv,
  startReceiver,
  startTestRelay,
  stepUpdate,
  waitFor,
} from "../_helpers.ts";

Deno.test("redeliver during an attempt in flight sends no second request beside it, then starts the fresh cycle when it ends", async () => {
  await using store = await openTestKv();
  const release = Promise.withResolvers<void>();
  await using receiver = startReceiver(async (hit) => {
    if (hit.n === 1) await release.promise;
    return new Response(hit.n === 1 ? "late" : "ok");
  });
  // A lease (timeout + margin) longer than waitFor's 5 s: the fresh cycle must not
  // wait for it to end.
  await using relay = startTestRelay(store.kv, {
    env: { RELAY_TIMEOUT_MS: "6000" },
  });
  await relay.post("/v1/events", mediaBuy(receiver.url));
  const id = (await (await relay.post("/v1/events", stepUpdate())).json())
    .deliveries[0].id as string;
  try {
    await waitFor(() => receiver.hits.length === 1, { what: "first attempt" });
    const re = await relay.post(`/v1/deliveries/${id}/redeliver`, {});
    assert.equal(re.status, 202);
    const shown = await re.json();
    assert.equal(shown.cycle, 2);
    assert.equal(
      shown.in_flight,
      true,
      "the attempt in flight keeps its lease",
    );
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(receiver.hits.length, 1, "no second request while in flight");
  } finally {
    release.resolve();
  }
  await waitFor(() => receiver.verified().length === 2, {
    what: "the fresh cycle's attempt",
  });
  await relay.worker.idle();
  const after = await (await relay.get(`/v1/deliveries/${id}`)).json();
  assert.equal(after.status, "succeeded");
  assert.equal(after.attempts.length, 2, "both requests are in the log");
  assert.deepEqual(
    after.attempts.map((a: { n: number; cycle: number }) => [a.n, a.cycle]),
    [[1, 1], [2, 2]],
  );
  assert.equal(after.attempts[0].response_body, "late");
});
