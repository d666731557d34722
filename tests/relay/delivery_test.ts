import assert from "node:assert/strict";
import { Webhook } from "standardwebhooks";
import {
  HMAC_SECRET,
  mediaBuy,
  openTestKv,
  SECRET,
  startReceiver,
  startTestRelay,
  stepUpdate,
  waitFor,
} from "../_helpers.ts";

async function delivery(relay: ReturnType<typeof startTestRelay>, id: string) {
  const res = await relay.get(`/v1/deliveries/${id}`);
  assert.equal(res.status, 200);
  return await res.json();
}

async function completeStep(
  relay: ReturnType<typeof startTestRelay>,
  url: string,
  buy: Record<string, unknown> = {},
) {
  assert.equal(
    (await relay.post("/v1/events", mediaBuy(url, buy))).status,
    202,
  );
  const res = await relay.post(
    "/v1/events",
    stepUpdate({ result: { media_buy_id: "mb_1" } }),
  );
  assert.equal(res.status, 202);
  const answer = await res.json();
  assert.equal(answer.deliveries.length, 1);
  return answer.deliveries[0].id as string;
}

Deno.test("a completed step reaches the receiver, verified by standardwebhooks", async () => {
  await using store = await openTestKv();
  await using receiver = startReceiver();
  await using relay = startTestRelay(store.kv);
  const id = await completeStep(relay, receiver.url, {
    operation_id: "op_1",
    push_notification_config: {
      url: receiver.url,
      token: "buyer-token-0123456789",
    },
  });
  await waitFor(() => receiver.verified().length === 1, { what: "delivery" });
  const hit = receiver.verified()[0]!;
  assert.equal(hit.headers.get("webhook-id"), id);
  assert.equal(hit.headers.get("content-type"), "application/json");
  // Verified independently with the published package, on the exact bytes received.
  const payload = new Webhook(SECRET).verify(
    hit.body,
    Object.fromEntries(hit.headers),
  );
  assert.deepEqual(payload, {
    idempotency_key: id,
    task_id: "step_1",
    task_type: "create_media_buy",
    status: "completed",
    timestamp: (payload as { timestamp: string }).timestamp,
    operation_id: "op_1",
    context_id: "ctx_1",
    token: "buyer-token-0123456789",
    result: { media_buy_id: "mb_1" },
  });
  await waitFor(async () => (await delivery(relay, id)).status === "succeeded");
  const shown = await delivery(relay, id);
  assert.equal(shown.payload, hit.body);
  assert.equal(shown.attempts.length, 1);
  assert.equal(shown.attempts[0].status_code, 200);
  assert.equal(shown.attempts[0].response_body, "ok");
});

Deno.test("a 500 is retried with the same webhook-id and a fresh signature", async () => {
  await using store = await openTestKv();
  await using receiver = startReceiver((hit) =>
    new Response(hit.n < 3 ? "boom" : "ok", { status: hit.n < 3 ? 500 : 200 })
  );
  await using relay = startTestRelay(store.kv, {
    env: { RELAY_RETRY_SCHEDULE: "1,1,1" },
  });
  const id = await completeStep(relay, receiver.url);
  await waitFor(() => receiver.verified().length === 3, {
    what: "three attempts",
    timeoutMs: 8000,
  });
  const hits = receiver.verified();
  assert.deepEqual(hits.map((h) => h.headers.get("webhook-id")), [id, id, id]);
  assert.equal(
    new Set(hits.map((h) => h.body)).size,
    1,
    "same bytes every attempt",
  );
  const stamps = hits.map((h) => Number(h.headers.get("webhook-timestamp")));
  assert.ok(stamps[2]! > stamps[0]!, `timestamps advance: ${stamps}`);
  assert.equal(
    new Set(hits.map((h) => h.headers.get("webhook-signature"))).size,
    new Set(stamps).size,
    "a new timestamp is signed anew",
  );
  await waitFor(async () => (await delivery(relay, id)).status === "succeeded");
  const shown = await delivery(relay, id);
  assert.deepEqual(
    shown.attempts.map((a: { status_code: number }) => a.status_code),
    [500, 500, 200],
  );
  assert.equal(shown.attempts[0].response_body, "boom");
});

Deno.test("Retry-After delays the next attempt beyond the schedule", async () => {
  await using store = await openTestKv();
  await using receiver = startReceiver((hit) =>
    hit.n === 1
      ? new Response("busy", { status: 503, headers: { "retry-after": "2" } })
      : new Response("ok")
  );
  await using relay = startTestRelay(store.kv);
  const id = await completeStep(relay, receiver.url);
  const failed = await waitFor(async () => {
    const d = await delivery(relay, id);
    return d.status === "failed" && d;
  });
  const wait = Date.parse(failed.next_attempt_at) -
    Date.parse(failed.updated_at);
  assert.ok(
    wait >= 2000 && wait < 2100,
    `next attempt ${wait} ms later, schedule says 50 ms`,
  );
  await waitFor(() => receiver.verified().length === 2, { timeoutMs: 5000 });
  const gap = Number(receiver.verified()[1]!.headers.get("webhook-timestamp")) -
    Number(receiver.verified()[0]!.headers.get("webhook-timestamp"));
  assert.ok(gap >= 1, `second attempt came ${gap} s after the first`);
});

Deno.test("410 Gone kills the delivery and disables the target for later events", async () => {
  await using store = await openTestKv();
  await using receiver = startReceiver(() =>
    new Response("gone", { status: 410 })
  );
  await using relay = startTestRelay(store.kv);
  const id = await completeStep(relay, receiver.url);
  const dead = await waitFor(async () => {
    const d = await delivery(relay, id);
    return d.status === "dead" && d;
  });
  assert.match(dead.last_error, /410/);
  assert.equal(receiver.hits.length, 1, "no retry after 410");
  const later =
    await (await relay.post("/v1/events", stepUpdate({ status: "failed" })))
      .json();
  assert.equal(later.deliveries.length, 0);
  assert.equal(later.skipped[0].reason, "target_disabled");
  assert.equal(later.skipped[0].url, receiver.url);
});

Deno.test("other 4xx end the delivery as dead without retrying", async () => {
  await using store = await openTestKv();
  await using receiver = startReceiver(() =>
    new Response("nope", { status: 400 })
  );
  await using relay = startTestRelay(store.kv);
  const id = await completeStep(relay, receiver.url);
  const dead = await waitFor(async () => {
    const d = await delivery(relay, id);
    return d.status === "dead" && d;
  });
  assert.equal(dead.last_status_code, 400);
  assert.match(dead.last_error, /HTTP 400: rejected by receiver/);
  assert.equal(dead.attempts.length, 1);
});

Deno.test("a receiver that never answers times out and is retried until dead", async () => {
  await using store = await openTestKv();
  const release = Promise.withResolvers<void>();
  await using receiver = startReceiver(async () => {
    await release.promise;
    return new Response("late");
  });
  await using relay = startTestRelay(store.kv, {
    env: { RELAY_TIMEOUT_MS: "200", RELAY_RETRY_SCHEDULE: "0.05" },
  });
  const id = await completeStep(relay, receiver.url);
  const dead = await waitFor(async () => {
    const d = await delivery(relay, id);
    return d.status === "dead" && d;
  });
  release.resolve();
  assert.equal(dead.attempts.length, 2);
  for (const a of dead.attempts) {
    assert.equal(a.error, "timeout after 200 ms");
    assert.equal(a.status_code, null);
    assert.ok(
      a.duration_ms >= 190 && a.duration_ms < 1000,
      `took ${a.duration_ms} ms`,
    );
  }
  assert.match(dead.last_error, /retries exhausted after 2 attempts/);
});

Deno.test("HMAC-SHA256 and Bearer configs add AdCP's headers", async () => {
  await using store = await openTestKv();
  await using hmac = startReceiver(undefined, { adcpSecret: HMAC_SECRET });
  await using bearer = startReceiver();
  await using relay = startTestRelay(store.kv);
  await relay.post(
    "/v1/events",
    mediaBuy(hmac.url, {
      push_notification_config: {
        url: hmac.url,
        authentication: { schemes: ["hmac_sha256"], credentials: HMAC_SECRET },
      },
    }),
  );
  await relay.post(
    "/v1/events",
    mediaBuy(bearer.url, {
      media_buy_id: "mb_2",
      push_notification_config: {
        url: bearer.url,
        authentication: {
          schemes: ["Bearer"],
          credentials: "bearer-credential-0123456789abcdef",
        },
      },
    }),
  );
  const answer = await (await relay.post("/v1/events", stepUpdate())).json();
  assert.equal(answer.deliveries.length, 2);
  await waitFor(() =>
    hmac.verified().length === 1 && bearer.verified().length === 1
  );
  assert.match(
    hmac.verified()[0]!.headers.get("x-adcp-signature")!,
    /^sha256=[0-9a-f]{64}$/,
  );
  assert.equal(hmac.verified()[0]!.headers.get("authorization"), null);
  assert.equal(
    bearer.verified()[0]!.headers.get("authorization"),
    "Bearer bearer-credential-0123456789abcdef",
  );
  const shown = await delivery(relay, answer.deliveries[0].id);
  assert.equal(
    JSON.stringify(shown).includes(HMAC_SECRET),
    false,
    "credentials not shown",
  );
});

Deno.test("two objects on one URL make one delivery; the same step twice makes none", async () => {
  await using store = await openTestKv();
  await using receiver = startReceiver();
  await using relay = startTestRelay(store.kv);
  await relay.post("/v1/events", mediaBuy(receiver.url));
  await relay.post(
    "/v1/events",
    mediaBuy(receiver.url, { media_buy_id: "mb_2" }),
  );
  const first = await relay.post("/v1/events", stepUpdate());
  const again = await relay.post("/v1/events", stepUpdate());
  assert.deepEqual(await again.json(), await first.clone().json());
  assert.equal(again.headers.get("idempotent-replayed"), "true");
  await waitFor(() => receiver.verified().length === 1);
  const payload = receiver.verified()[0]!.verified!.payload as {
    result: unknown;
  };
  assert.deepEqual(payload.result, { media_buy_ids: ["mb_1", "mb_2"] });
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(receiver.hits.length, 1);
});

Deno.test("the sweeper alone delivers and retries when there is no queue", async () => {
  await using store = await openTestKv();
  await using receiver = startReceiver((hit) =>
    new Response(null, { status: hit.n === 1 ? 502 : 204 })
  );
  await using relay = startTestRelay(store.kv, { queue: false });
  const { sweepDue } = await import("../../relay/sweeper.ts");
  const id = await completeStep(relay, receiver.url);
  await waitFor(async () => (await delivery(relay, id)).status === "failed");
  await new Promise((r) => setTimeout(r, 80));
  const swept = await sweepDue({
    kv: store.kv,
    now: Date.now,
    worker: relay.worker,
    log: { info() {}, warn() {}, error() {} },
  });
  assert.equal(swept, 1);
  assert.equal((await delivery(relay, id)).status, "succeeded");
  assert.equal(receiver.verified().length, 2);
});

Deno.test("a step completed before its mapping is delivered when the mapping arrives", async () => {
  await using store = await openTestKv();
  await using receiver = startReceiver();
  await using relay = startTestRelay(store.kv);
  const early =
    await (await relay.post("/v1/events", stepUpdate({ result: { ok: true } })))
      .json();
  assert.deepEqual(early.skipped, [{
    reason: "no_mapping",
    step_id: "step_1",
  }]);
  const mapped = await (await relay.post("/v1/events", mediaBuy(receiver.url)))
    .json();
  assert.equal(mapped.deliveries.length, 1);
  await waitFor(() => receiver.verified().length === 1, {
    what: "late delivery",
  });
  const payload = receiver.verified()[0]!.verified!.payload as Record<
    string,
    unknown
  >;
  assert.equal(payload.status, "completed");
  assert.deepEqual(payload.result, { ok: true });
  // The agent resending the update is not a second webhook.
  const again =
    await (await relay.post("/v1/events", stepUpdate({ result: { ok: true } })))
      .json();
  assert.deepEqual(again.deliveries, []);
  assert.equal(again.skipped[0].reason, "already_delivered");
  await relay.worker.idle();
  assert.equal(receiver.hits.length, 1);
});

Deno.test("sweepDue() does not wait on a receiver that hangs", async () => {
  await using store = await openTestKv();
  const release = Promise.withResolvers<void>();
  await using hanging = startReceiver(async () => {
    await release.promise;
    return new Response("late");
  });
  await using relay = startTestRelay(store.kv, { queue: false });
  const { sweepDue } = await import("../../relay/sweeper.ts");
  await relay.post("/v1/events", mediaBuy(hanging.url));
  const answer = await (await relay.post("/v1/events", stepUpdate())).json();
  await waitFor(() => hanging.hits.length === 1, {
    what: "the fast path's attempt",
  });
  // Make the delivery due again while its attempt hangs: a second driver must not
  // block on it, nor send it twice.
  const swept = await sweepDue({
    kv: store.kv,
    now: () => Date.now() + 60_000,
    worker: relay.worker,
    log: { info() {}, warn() {}, error() {} },
  }, { pageWaitMs: 50 });
  assert.equal(swept, 1);
  assert.equal(
    hanging.hits.length,
    1,
    "no second request while the first is in flight",
  );
  release.resolve();
  await relay.worker.idle();
  const shown =
    await (await relay.get(`/v1/deliveries/${answer.deliveries[0].id}`)).json();
  assert.equal(shown.status, "succeeded");
});

Deno.test("early updates that map to one task status make one delivery when the mapping arrives", async () => {
  await using store = await openTestKv();
  await using receiver = startReceiver();
  await using relay = startTestRelay(store.kv);
  for (const status of ["working", "in_progress", "completed"]) {
    const early = await (await relay.post(
      "/v1/events",
      stepUpdate({ status }),
    )).json();
    assert.equal(early.skipped[0].reason, "no_mapping");
  }
  const mapped = await (await relay.post("/v1/events", mediaBuy(receiver.url)))
    .json();
  assert.deepEqual(
    mapped.deliveries.map((d: { status: string }) => d.status),
    ["pending", "pending"],
  );
  const [working] = mapped.deliveries;
  assert.deepEqual(
    mapped.skipped.map((
      s: Record<string, unknown>,
    ) => [s.reason, s.delivery_id]),
    [["already_delivered", working.id]],
  );
  await waitFor(() => receiver.verified().length === 2, {
    what: "working, then completed",
  });
  assert.deepEqual(
    receiver.verified().map((h) =>
      (h.verified!.payload as { status: string }).status
    ),
    ["working", "completed"],
  );
  const listed = await (await relay.get("/v1/deliveries?step_id=step_1"))
    .json();
  assert.equal(listed.items.length, 2);
});
