import { targetId } from "../../relay/plan_step.ts";
import assert from "node:assert/strict";
import { acceptEvent } from "../../relay/intake.ts";
import * as keys from "../../relay/keys.ts";
import { createLogger } from "../../relay/log.ts";
import { Metrics } from "../../relay/metrics.ts";
import { createSigner } from "../../relay/sign.ts";
import { createTargetFetch } from "../../relay/target_fetch.ts";
import { createDeliveryWorker } from "../../relay/worker.ts";
import { getDelivery, listAttempts } from "../../relay/store.ts";
import type { AttemptRecord, DeliveryRecord } from "../../relay/types.ts";
import {
  mediaBuy,
  openTestKv,
  SECRET,
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
    relay.worker.kickMany(
      ids.map((id) => ({ id, target_id: targetId(receiver.url) })),
    );
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

Deno.test("a later notification held behind one that ends meanwhile is released at once, not at the fallback wake-up", async () => {
  await using store = await openTestKv();
  const release = Promise.withResolvers<void>();
  await using receiver = startReceiver(async (hit) => {
    if (hit.n === 1) await release.promise;
    return new Response("ok");
  });
  // Leases of 7 s: the fallback wake-up (the earlier one's lease end) is far beyond
  // the wait below.
  const env = { RELAY_TIMEOUT_MS: "5000" };
  await using relay = startTestRelay(store.kv, { queue: false, env });
  await relay.post("/v1/events", mediaBuy(receiver.url));
  const working = (await (await relay.post(
    "/v1/events",
    stepUpdate({ status: "working" }),
  )).json()).deliveries[0].id as string;
  let later = "";
  try {
    await waitFor(() => receiver.hits.length === 1, { what: "working sent" });
    // `completed` accepted by a second process, leased by it on its fast path.
    const quiet = createLogger(() => {});
    const { held } = await acceptEvent(
      {
        kv: store.kv,
        now: Date.now,
        log: quiet,
        metrics: new Metrics(),
        queue: false,
        leaseMs: 7000,
      },
      { type: "workflow_step.updated", step_id: "step_1", status: "completed" },
      { fingerprint: "f" },
    );
    later = held[0]!.record.id;
    // That process's hold commit waits until `working` has ended (its release saw
    // `completed` still leased): the race the hold must close.
    let armed = true;
    const kv = new Proxy(store.kv, {
      get(target, prop) {
        if (prop === "atomic") {
          return () => {
            const op = target.atomic();
            const commit = op.commit.bind(op);
            op.commit = async () => {
              if (armed) {
                armed = false;
                release.resolve();
                await waitFor(async () =>
                  (await getDelivery(store.kv, working)).value!.status ===
                    "succeeded"
                );
              }
              return await commit();
            };
            return op;
          };
        }
        const value = Reflect.get(target, prop);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
    const worker = createDeliveryWorker({
      kv,
      fetch: createTargetFetch({
        policy: { allowPrivate: true },
      }),
      now: Date.now,
      random: Math.random,
      config: relay.config,
      queue: false,
      signer: createSigner([SECRET]),
      log: quiet,
      metrics: new Metrics(),
    });
    worker.send(held[0]!);
    await waitFor(
      async () =>
        (await getDelivery(store.kv, later)).value!.status === "succeeded",
      { timeoutMs: 3000, what: "completed released at once" },
    );
    await worker.idle();
  } finally {
    release.resolve();
  }
  const order = receiver.hits.map((h) =>
    (h.verified?.payload as { status: string }).status
  );
  assert.deepEqual(order, ["working", "completed"]);
});

Deno.test("deliveries held by an open circuit come back spread over a fifth of the cooldown", async () => {
  await using store = await openTestKv();
  await using receiver = startReceiver();
  await using relay = startTestRelay(store.kv, {
    queue: false,
    env: { RELAY_CIRCUIT_COOLDOWN_S: "10" },
  });
  await relay.post("/v1/events", mediaBuy(receiver.url));
  const quiet = createLogger(() => {});
  const { answer } = await acceptEvent(
    {
      kv: store.kv,
      now: Date.now,
      log: quiet,
      metrics: new Metrics(),
      queue: false,
    },
    { type: "workflow_step.updated", step_id: "step_1", status: "completed" },
    { fingerprint: "f" },
  );
  const id = answer.deliveries[0]!.id;
  const record = (await getDelivery(store.kv, id)).value!;
  const until = Date.now() + 10_000;
  await store.kv.set(keys.targetKey(record.target_id), {
    id: record.target_id,
    url: record.url,
    disabled_at: null,
    disabled_reason: null,
    consecutive_failures: 5,
    circuit_open_until: until,
  });
  const worker = createDeliveryWorker({
    kv: store.kv,
    fetch: createTargetFetch({ policy: { allowPrivate: true } }),
    now: Date.now,
    random: () => 0.99,
    config: relay.config,
    queue: false,
    signer: createSigner([SECRET]),
    log: quiet,
    metrics: new Metrics(),
  });
  await worker.run(id);
  const next = (await getDelivery(store.kv, id)).value!.next_attempt_at!;
  assert.equal(receiver.hits.length, 0);
  assert.equal(next, until + Math.round(0.99 * 2000));
});
