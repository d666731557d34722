import assert from "node:assert/strict";
import { loadConfig } from "../../config.ts";
import { afterAttempt, gate, targetState } from "../../relay/targets.ts";
import type { TargetRecord } from "../../relay/types.ts";
import {
  mediaBuy,
  openTestKv,
  startReceiver,
  startTestRelay,
  stepUpdate,
  waitFor,
} from "../_helpers.ts";

const cfg = loadConfig({}, "dev");
const fresh: TargetRecord = {
  id: "tgt_000000000000000000000000",
  url: "https://buyer.example/hook",
  disabled_at: null,
  disabled_reason: null,
};
const fail = { kind: "failure", error: "HTTP 503" } as const;

Deno.test("afterAttempt() opens the circuit after N failures and a success closes it", () => {
  let t = fresh;
  for (let i = 1; i < cfg.circuitFailures; i++) {
    t = afterAttempt(t, fail, { now: 1000 * i, cfg })!;
    assert.equal(t.circuit_open_until, null);
    assert.deepEqual(gate(t, 1000 * i, cfg), { kind: "go" });
  }
  t = afterAttempt(t, fail, { now: 10_000, cfg })!;
  assert.equal(t.consecutive_failures, cfg.circuitFailures);
  assert.equal(t.circuit_open_until, 10_000 + cfg.circuitCooldownMs);
  assert.equal(targetState(t, 10_001), "circuit_open");
  assert.deepEqual(gate(t, 10_001, cfg), {
    kind: "wait",
    until: 10_000 + cfg.circuitCooldownMs,
  });
  assert.deepEqual(gate(t, 10_000 + cfg.circuitCooldownMs, cfg), {
    kind: "probe",
  });
  const healed = afterAttempt(t, { kind: "success" }, { now: 99_000, cfg })!;
  assert.equal(healed.consecutive_failures, 0);
  assert.equal(healed.failing_since, null);
  assert.equal(targetState(healed, 99_000), "healthy");
  assert.equal(
    afterAttempt(healed, { kind: "success" }, { now: 99_001, cfg }),
    null,
    "a success on a healthy target writes nothing",
  );
  assert.equal(afterAttempt(t, { kind: "neutral" }, { now: 1, cfg }), null);
});

Deno.test("afterAttempt() disables a target failing continuously for 5 days", () => {
  const day = 24 * 3600 * 1000;
  let t = fresh;
  for (let i = 0; i < cfg.circuitFailures - 1; i++) {
    t = afterAttempt(t, fail, { now: i, cfg })!;
  }
  t = afterAttempt(t, fail, { now: 5 * day - 1, cfg })!;
  assert.equal(t.disabled_at, null);
  t = afterAttempt(t, fail, { now: 5 * day, cfg })!;
  assert.equal(t.disabled_at, 5 * day);
  assert.match(t.disabled_reason!, /failing continuously since 1970-01-01/);
  assert.equal(gate(t, 5 * day, cfg).kind, "disabled");
});

Deno.test("afterAttempt() does not disable a quiet target for a few failures days apart", () => {
  const day = 24 * 3600 * 1000;
  let t = afterAttempt(fresh, fail, { now: 0, cfg })!;
  t = afterAttempt(t, fail, { now: 5 * day, cfg })!;
  assert.equal(t.consecutive_failures, 2);
  assert.equal(t.disabled_at, null, "2 failures are not enough");
  for (let i = 3; i < cfg.circuitFailures; i++) {
    t = afterAttempt(t, fail, { now: i * day, cfg })!;
    assert.equal(t.disabled_at, null, `${i} failures`);
  }
  t = afterAttempt(t, fail, { now: 9 * day, cfg })!;
  assert.equal(t.consecutive_failures, cfg.circuitFailures);
  assert.equal(t.disabled_at, 9 * day);
});

async function json(res: Response) {
  return await res.json();
}

Deno.test("the circuit stops hammering a failing target, probes once, then drains", async () => {
  await using store = await openTestKv();
  let healthy = false;
  await using receiver = startReceiver(() =>
    new Response("", { status: healthy ? 200 : 503 })
  );
  await using relay = startTestRelay(store.kv, {
    env: {
      RELAY_CIRCUIT_FAILURES: "2",
      RELAY_CIRCUIT_COOLDOWN_S: "1",
      RELAY_RETRY_SCHEDULE: "0.05,0.05,0.05,0.05,0.05,0.05,0.05,0.05",
      RELAY_TARGET_CONCURRENCY: "1",
    },
  });
  const ids: string[] = [];
  for (let i = 0; i < 4; i++) {
    await relay.post(
      "/v1/events",
      mediaBuy(receiver.url, { step_id: `s${i}`, media_buy_id: `mb_${i}` }),
    );
    const a = await json(
      await relay.post("/v1/events", stepUpdate({ step_id: `s${i}` })),
    );
    ids.push(a.deliveries[0].id);
  }
  const listed = await waitFor(async () => {
    const list = await json(await relay.get("/v1/targets"));
    return list.items[0]?.state === "circuit_open" && list;
  }, { what: "circuit open" });
  assert.equal(listed.items.length, 1);
  assert.equal(listed.items[0].url, receiver.url);
  // An attempt admitted just before the circuit opened may still land (health is
  // written after each outcome), so count from the moment it is seen open.
  assert.ok(listed.items[0].consecutive_failures >= 2);
  assert.equal(listed.items[0].last_error, "HTTP 503");
  await relay.worker.idle();
  const atOpen = receiver.hits.length;
  assert.ok(atOpen >= 2 && atOpen <= 4, `${atOpen} attempts before opening`);
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(
    receiver.hits.length,
    atOpen,
    "no attempts while the circuit is open",
  );
  const held = relay.logs().filter((l) => l.reason === "circuit_open");
  assert.ok(held.length >= 1, "held deliveries are logged");
  healthy = true;
  await waitFor(
    () => receiver.verified().filter((h) => h.status === 200).length === 4,
    {
      timeoutMs: 8000,
      what: "all four after the probe",
    },
  );
  // The first request after the cool-down was the single probe.
  assert.equal(receiver.hits[atOpen]!.status, 200);
  const after = await json(await relay.get("/v1/targets"));
  assert.equal(after.items[0].state, "healthy");
  for (const id of ids) {
    const d = await json(await relay.get(`/v1/deliveries/${id}`));
    assert.equal(d.status, "succeeded");
  }
});

Deno.test("a target failing for the disable period is disabled, its deliveries end, and enable brings it back", async () => {
  await using store = await openTestKv();
  let healthy = false;
  await using receiver = startReceiver(() =>
    new Response("", { status: healthy ? 200 : 500 })
  );
  await using relay = startTestRelay(store.kv, {
    env: {
      // Disabled once failing for 1 s and at least 3 times.
      RELAY_DISABLE_AFTER_S: "1",
      RELAY_CIRCUIT_FAILURES: "3",
      RELAY_CIRCUIT_COOLDOWN_S: "1",
      RELAY_RETRY_SCHEDULE: "0.3,0.3,0.3,0.3,0.3,0.3,0.3,0.3,0.3,0.3",
    },
  });
  await relay.post("/v1/events", mediaBuy(receiver.url));
  const first = await json(await relay.post("/v1/events", stepUpdate()));
  const id = first.deliveries[0].id;
  const dead = await waitFor(async () => {
    const d = await json(await relay.get(`/v1/deliveries/${id}`));
    return d.status === "dead" && d;
  }, { timeoutMs: 5000, what: "delivery ended by the disable" });
  assert.match(dead.last_error, /failing continuously since/);
  const [target] = (await json(await relay.get("/v1/targets"))).items;
  assert.equal(target.state, "disabled");
  const skipped = await json(
    await relay.post("/v1/events", stepUpdate({ status: "failed" })),
  );
  assert.equal(skipped.skipped[0].reason, "target_disabled");
  const unknown = await relay.post(
    "/v1/targets/tgt_000000000000000000000000/enable",
    {},
  );
  assert.equal(unknown.status, 404);
  const malformed = await relay.post("/v1/targets/nope/enable", {});
  assert.equal(malformed.status, 400);
  assert.equal((await malformed.json()).error.issues[0].path, "param.id");
  healthy = true;
  const enabled = await relay.post(`/v1/targets/${target.id}/enable`, {});
  assert.equal(enabled.status, 200);
  assert.equal((await enabled.json()).state, "healthy");
  const later = await json(
    await relay.post("/v1/events", stepUpdate({ status: "canceled" })),
  );
  assert.equal(later.deliveries.length, 1);
  await waitFor(() => receiver.hits.some((h) => h.status === 200));
});

Deno.test("410 disables the target until it is enabled through the API", async () => {
  await using store = await openTestKv();
  let gone = true;
  await using receiver = startReceiver(() =>
    new Response("", { status: gone ? 410 : 200 })
  );
  await using relay = startTestRelay(store.kv);
  await relay.post("/v1/events", mediaBuy(receiver.url));
  const first = await json(await relay.post("/v1/events", stepUpdate()));
  const d = await waitFor(async () => {
    const d = await json(
      await relay.get(`/v1/deliveries/${first.deliveries[0].id}`),
    );
    return d.status === "dead" && d;
  });
  assert.equal(d.next_attempt_at, null);
  assert.equal(d.attempts.length, 1);
  assert.equal(d.attempts[0].status_code, 410);
  const [target] = (await json(await relay.get("/v1/targets"))).items;
  assert.equal(target.state, "disabled");
  assert.match(target.disabled_reason, /410 Gone/);
  const skipped = await json(
    await relay.post("/v1/events", stepUpdate({ status: "failed" })),
  );
  assert.equal(skipped.skipped[0].reason, "target_disabled");
  gone = false;
  await relay.post(`/v1/targets/${target.id}/enable`, {});
  const later = await json(
    await relay.post("/v1/events", stepUpdate({ status: "canceled" })),
  );
  assert.equal(later.deliveries.length, 1);
  await waitFor(() => receiver.hits.some((h) => h.status === 200));
});

Deno.test("a hanging receiver holds only its own slots: another target is served promptly", async () => {
  await using store = await openTestKv();
  const release = Promise.withResolvers<void>();
  let concurrent = 0;
  let peak = 0;
  await using hanging = startReceiver(async () => {
    peak = Math.max(peak, ++concurrent);
    await release.promise;
    concurrent--;
    return new Response("late");
  });
  await using healthy = startReceiver();
  await using relay = startTestRelay(store.kv, {
    env: {
      RELAY_CONCURRENCY: "4",
      RELAY_TARGET_CONCURRENCY: "2",
      RELAY_TIMEOUT_MS: "5000",
    },
  });
  for (let i = 0; i < 6; i++) {
    await relay.post(
      "/v1/events",
      mediaBuy(hanging.url, { step_id: `h${i}`, media_buy_id: `mh_${i}` }),
    );
    await relay.post("/v1/events", stepUpdate({ step_id: `h${i}` }));
  }
  try {
    await waitFor(() => hanging.hits.length >= 2, {
      what: "two hung attempts",
    });
    const started = Date.now();
    for (let i = 0; i < 3; i++) {
      await relay.post(
        "/v1/events",
        mediaBuy(healthy.url, { step_id: `g${i}`, media_buy_id: `mg_${i}` }),
      );
      await relay.post("/v1/events", stepUpdate({ step_id: `g${i}` }));
    }
    await waitFor(() => healthy.verified().length === 3, {
      timeoutMs: 2000,
      what: "the healthy receiver's deliveries while the other hangs",
    });
    const took = Date.now() - started;
    assert.ok(took < 2000, `served in ${took} ms`);
    assert.equal(
      peak,
      2,
      "at most RELAY_TARGET_CONCURRENCY requests to one target",
    );
  } finally {
    release.resolve();
  }
});

Deno.test("completed is never delivered before an earlier working for the same task and URL", async () => {
  await using store = await openTestKv();
  await using receiver = startReceiver((hit) => {
    const status = (hit.verified?.payload as { status: string }).status;
    // The first `working` attempt fails, so `completed` is ready first.
    const fails = status === "working" &&
      receiver.hits.filter((h) => h.body === hit.body).length === 1;
    return new Response("", { status: fails ? 503 : 200 });
  });
  await using relay = startTestRelay(store.kv, {
    env: { RELAY_RETRY_SCHEDULE: "0.3,0.3" },
  });
  await relay.post("/v1/events", mediaBuy(receiver.url));
  const working = await json(
    await relay.post("/v1/events", stepUpdate({ status: "working" })),
  );
  const completed = await json(await relay.post("/v1/events", stepUpdate()));
  assert.equal(working.deliveries.length, 1);
  assert.equal(completed.deliveries.length, 1);
  await waitFor(
    () => receiver.hits.filter((h) => h.status === 200).length === 2,
    {
      what: "both delivered",
    },
  );
  const order = receiver.hits.map((h) =>
    `${(h.verified?.payload as { status: string }).status}:${h.status}`
  );
  assert.deepEqual(order, ["working:503", "working:200", "completed:200"]);
  const held = relay.logs().find((l) =>
    l.reason === "earlier_notification_open"
  );
  assert.equal(held?.after, working.deliveries[0].id);
});
