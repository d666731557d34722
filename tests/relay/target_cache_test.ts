import assert from "node:assert/strict";
import * as keys from "../../relay/keys.ts";
import { createTargetCache } from "../../relay/target_cache.ts";
import { planStep, targetId } from "../../relay/plan_step.ts";
import type { StepObject, TargetRecord } from "../../relay/types.ts";
import { WriteSet } from "../../relay/write_set.ts";
import { openTestKv } from "../_helpers.ts";

const record = (reason: string | null): TargetRecord => ({
  id: "tgt_a",
  url: "http://127.0.0.1:9/hooks",
  disabled_at: reason ? 1 : null,
  disabled_reason: reason,
});

Deno.test("createTargetCache() serves a target from memory until its TTL ends, then reads KV again", async () => {
  await using store = await openTestKv();
  let now = 0;
  const cache = createTargetCache(store.kv, { now: () => now, ttlMs: 1000 });
  await store.kv.set(keys.targetKey("tgt_a"), record(null));
  assert.equal((await cache.read(["tgt_a"]))[0]!.value?.disabled_at, null);
  // Another process disables it: this one sees it within the TTL, not before.
  await store.kv.set(keys.targetKey("tgt_a"), record("410"));
  now = 999;
  assert.equal((await cache.read(["tgt_a"]))[0]!.value?.disabled_at, null);
  now = 1000;
  const [entry] = await cache.read(["tgt_a"]);
  assert.equal(entry!.value?.disabled_reason, "410");
  const stored = await store.kv.get(keys.targetKey("tgt_a"));
  assert.equal(entry!.versionstamp, stored.versionstamp);
});

Deno.test("createTargetCache() reads KV after forget() and with fresh, and never remembers a missing target", async () => {
  await using store = await openTestKv();
  const cache = createTargetCache(store.kv, { now: () => 0, ttlMs: 60_000 });
  assert.deepEqual(
    (await cache.read(["tgt_a", "tgt_b"])).map((e) => e.value),
    [null, null],
  );
  await store.kv.set(keys.targetKey("tgt_a"), record(null));
  assert.equal((await cache.read(["tgt_a"]))[0]!.value?.id, "tgt_a");
  await store.kv.set(keys.targetKey("tgt_a"), record("gone"));
  assert.equal((await cache.read(["tgt_a"]))[0]!.value?.disabled_reason, null);
  assert.equal(
    (await cache.read(["tgt_a"], { fresh: true }))[0]!.value?.disabled_reason,
    "gone",
  );
  await store.kv.set(keys.targetKey("tgt_a"), record(null));
  cache.forget("tgt_a");
  assert.equal((await cache.read(["tgt_a"]))[0]!.value?.disabled_reason, null);
});

Deno.test("createTargetCache() answers in the order asked, across more ids than one KV read takes", async () => {
  await using store = await openTestKv();
  const cache = createTargetCache(store.kv, { now: () => 0 });
  const ids = Array.from({ length: 23 }, (_, i) => `tgt_${i}`);
  for (const id of ids.filter((_, i) => i % 2 === 0)) {
    await store.kv.set(keys.targetKey(id), { ...record(null), id });
  }
  await cache.read(ids.slice(0, 5));
  const read = await cache.read([...ids].reverse());
  assert.deepEqual(
    read.map((e) => e.value?.id ?? null),
    [...ids].reverse().map((id, i) => (22 - i) % 2 === 0 ? id : null),
  );
});

Deno.test("planStep() re-reads a target remembered as disabled before skipping it (another process enabled it)", async () => {
  await using store = await openTestKv();
  const url = "http://127.0.0.1:9/hooks";
  const tid = targetId(url);
  const disabled = { id: tid, url, disabled_at: 1, disabled_reason: "410" };
  await store.kv.set(keys.targetKey(tid), disabled);
  const cache = createTargetCache(store.kv, { now: () => 0, ttlMs: 60_000 });
  assert.equal((await cache.read([tid]))[0]!.value?.disabled_reason, "410");
  await store.kv.set(keys.targetKey(tid), {
    ...disabled,
    disabled_at: null,
    disabled_reason: null,
  });
  const object: StepObject = {
    object_type: "media_buy",
    object_id: "mb_1",
    step_id: "step_1",
    tenant_id: "t",
    principal_id: "p",
    task_type: "create_media_buy",
    target: { url },
    created_at: 0,
  };
  const planned = await planStep(
    { kv: store.kv, now: () => 0, queue: false, targets: cache },
    new WriteSet(),
    {
      eventId: "evt_1",
      update: {
        type: "workflow_step.updated",
        step_id: "step_1",
        status: "completed",
      },
      objects: [object],
      optimistic: true,
    },
  );
  assert.deepEqual(planned.skipped, []);
  assert.equal(planned.deliveries.length, 1);
});
