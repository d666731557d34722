import assert from "node:assert/strict";
import {
  mediaBuy,
  openTestKv,
  startReceiver,
  startTestRelay,
  stepUpdate,
  waitFor,
} from "../_helpers.ts";

Deno.test("GET /v1/deliveries filters, pages newest first, and validates its query", async () => {
  await using store = await openTestKv();
  await using receiver = startReceiver();
  await using relay = startTestRelay(store.kv);
  const ids: string[] = [];
  for (let i = 0; i < 5; i++) {
    await relay.post(
      "/v1/events",
      mediaBuy(receiver.url, { step_id: `step_${i}`, media_buy_id: `mb_${i}` }),
    );
    const answer = await (await relay.post(
      "/v1/events",
      stepUpdate({ step_id: `step_${i}` }),
    )).json();
    ids.push(answer.deliveries[0].id);
  }
  await waitFor(() => receiver.verified().length === 5);
  const page1 = await (await relay.get("/v1/deliveries?limit=2")).json();
  assert.deepEqual(page1.items.map((d: { id: string }) => d.id), [
    ids[4],
    ids[3],
  ]);
  const page2 = await (await relay.get(
    `/v1/deliveries?limit=2&cursor=${page1.next_cursor}`,
  )).json();
  assert.deepEqual(page2.items.map((d: { id: string }) => d.id), [
    ids[2],
    ids[1],
  ]);
  const page3 = await (await relay.get(
    `/v1/deliveries?limit=2&cursor=${page2.next_cursor}`,
  )).json();
  assert.deepEqual(page3.items.map((d: { id: string }) => d.id), [ids[0]]);
  assert.equal(page3.next_cursor, null);
  const byObject = await (await relay.get("/v1/deliveries?object_id=mb_2"))
    .json();
  assert.deepEqual(byObject.items.map((d: { id: string }) => d.id), [ids[2]]);
  const byStep =
    await (await relay.get("/v1/deliveries?step_id=step_3&status=succeeded"))
      .json();
  assert.deepEqual(byStep.items.map((d: { id: string }) => d.id), [ids[3]]);
  const none = await (await relay.get("/v1/deliveries?status=dead")).json();
  assert.deepEqual(none.items, []);
  const bad = await relay.get("/v1/deliveries?limit=0&status=lost");
  assert.equal(bad.status, 400);
  const paths = (await bad.json()).error.issues.map((i: { path: string }) =>
    i.path
  ).sort();
  assert.deepEqual(paths, ["query.limit", "query.status"]);
});

Deno.test("GET /v1/deliveries/{id} answers 404 for an unknown id and 400 for a malformed one", async () => {
  await using store = await openTestKv();
  await using relay = startTestRelay(store.kv);
  const missing = await relay.get(
    "/v1/deliveries/msg_01M90VDAS9BKRWJZ77XDFMR664",
  );
  assert.equal(missing.status, 404);
  assert.equal((await missing.json()).error.code, "not_found");
  const malformed = await relay.get("/v1/deliveries/nope");
  assert.equal(malformed.status, 400);
  assert.equal((await malformed.json()).error.issues[0].path, "param.id");
});

Deno.test("redeliver starts a fresh cycle with the same webhook-id; recover re-queues the dead", async () => {
  await using store = await openTestKv();
  let healthy = false;
  await using receiver = startReceiver(() =>
    new Response("", { status: healthy ? 200 : 500 })
  );
  await using relay = startTestRelay(store.kv, {
    env: { RELAY_RETRY_SCHEDULE: "0.02" },
  });
  await relay.post("/v1/events", mediaBuy(receiver.url));
  await relay.post(
    "/v1/events",
    mediaBuy(receiver.url, { step_id: "step_2", media_buy_id: "mb_2" }),
  );
  const a =
    (await (await relay.post("/v1/events", stepUpdate())).json()).deliveries[0]
      .id;
  const b =
    (await (await relay.post("/v1/events", stepUpdate({ step_id: "step_2" })))
      .json()).deliveries[0].id;
  const dead = async (id: string) =>
    (await (await relay.get(`/v1/deliveries/${id}`)).json()).status === "dead";
  await waitFor(async () => await dead(a) && await dead(b), {
    what: "both dead",
  });
  assert.equal(receiver.hits.length, 4);
  healthy = true;
  const re = await relay.post(`/v1/deliveries/${a}/redeliver`, {});
  assert.equal(re.status, 202);
  assert.equal((await re.json()).cycle, 2);
  await waitFor(() => receiver.verified().length === 5);
  assert.equal(receiver.hits[4]!.headers.get("webhook-id"), a);
  const since = new Date(Date.now() - 60_000).toISOString();
  const recovered =
    await (await relay.post("/v1/deliveries/recover", { since })).json();
  assert.deepEqual(recovered, { requeued: 1, ids: [b] });
  await waitFor(() => receiver.verified().length === 6);
  const shown = await (await relay.get(`/v1/deliveries/${b}`)).json();
  assert.equal(shown.status, "succeeded");
  assert.deepEqual(shown.attempts.map((x: { cycle: number }) => x.cycle), [
    1,
    1,
    2,
  ]);
  const badWindow = await relay.post("/v1/deliveries/recover", {
    since,
    until: "2000-01-01T00:00:00Z",
  });
  assert.equal(badWindow.status, 400);
  // Counters move just after the outcome commits; wait for them rather than race.
  let metrics = "";
  await waitFor(async () => {
    metrics = await (await relay.get("/metrics")).text();
    return metrics.includes('relay_deliveries_total{outcome="succeeded"} 2');
  }, { what: "succeeded counter" });
  assert.match(metrics, /relay_queue_depth 0/);
  assert.match(metrics, /relay_attempt_duration_ms_count 6/);
  const rss = /relay_process_memory_bytes\{kind="rss"\} (\d+)/.exec(metrics);
  assert.ok(Number(rss?.[1]) > 1_000_000, "the process's resident memory");
  assert.match(metrics, /relay_process_memory_bytes\{kind="heapUsed"\} \d+/);
});

Deno.test("GET /v1/deliveries?step_id= pages through every delivery of a step, newest first, and filters by status", async () => {
  await using store = await openTestKv();
  await using a = startReceiver();
  await using b = startReceiver();
  await using relay = startTestRelay(store.kv);
  await relay.post("/v1/events", mediaBuy(a.url, { step_id: "step_9" }));
  await relay.post(
    "/v1/events",
    mediaBuy(b.url, { step_id: "step_9", media_buy_id: "mb_2" }),
  );
  await relay.post("/v1/events", mediaBuy(a.url, { step_id: "step_other" }));
  const made: string[] = [];
  for (const status of ["working", "input-required", "completed"]) {
    const answer = await (await relay.post(
      "/v1/events",
      stepUpdate({ step_id: "step_9", status }),
    )).json();
    made.push(...answer.deliveries.map((d: { id: string }) => d.id));
  }
  await relay.post("/v1/events", stepUpdate({ step_id: "step_other" }));
  assert.equal(made.length, 6);
  // Later statuses wait for earlier ones per target, so some arrive after a hold.
  await waitFor(
    () => a.verified().length + b.verified().length === 7,
    { what: "every delivery" },
  );
  const seen: string[] = [];
  let cursor = "";
  for (let page = 0; page < 5; page++) {
    const body = await (await relay.get(
      `/v1/deliveries?step_id=step_9&limit=4${cursor}`,
    )).json();
    seen.push(...body.items.map((d: { id: string }) => d.id));
    if (!body.next_cursor) break;
    cursor = `&cursor=${body.next_cursor}`;
  }
  assert.deepEqual(seen, [...made].sort().reverse());
  const completed = await (await relay.get(
    "/v1/deliveries?step_id=step_9&status=succeeded&limit=100",
  )).json();
  assert.equal(completed.items.length, 6);
  assert.ok(
    completed.items.every((d: { step_id: string }) => d.step_id === "step_9"),
  );
});
