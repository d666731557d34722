import assert from "node:assert/strict";
import { createBatchGet } from "../../relay/batch_get.ts";
import * as keys from "../../relay/keys.ts";
import { readPayloadVia } from "../../relay/store.ts";
import { openTestKv } from "../_helpers.ts";

Deno.test("createBatchGet() answers each of many reads made in one turn with its own entry", async () => {
  await using store = await openTestKv();
  for (let i = 0; i < 25; i += 2) await store.kv.set(["k", i], `v${i}`);
  const get = createBatchGet<string>(store.kv);
  const entries = await Promise.all(
    Array.from({ length: 25 }, (_, i) => get(["k", i])),
  );
  assert.deepEqual(
    entries.map((e) => e.value),
    Array.from({ length: 25 }, (_, i) => i % 2 === 0 ? `v${i}` : null),
  );
  assert.deepEqual(entries[7]!.key, ["k", 7]);
  // A later turn reads again: nothing is remembered.
  await store.kv.set(["k", 1], "new");
  assert.equal((await get(["k", 1])).value, "new");
});

Deno.test("createBatchGet() rejects the reads of a failed getMany, and only those", async () => {
  await using store = await openTestKv();
  const get = createBatchGet<string>(store.kv);
  const bad = get(["k", 1, new Uint8Array(3000)]); // KV refuses keys over 2 KiB
  const others = Array.from({ length: 12 }, (_, i) => get(["ok", i]));
  await assert.rejects(bad);
  // The first ten share the bad key's getMany; the last two read apart.
  const settled = await Promise.allSettled(others);
  assert.deepEqual(
    settled.map((s) => s.status),
    [...Array(9).fill("rejected"), ...Array(3).fill("fulfilled")],
  );
});

Deno.test("readPayloadVia() reads a one-chunk payload from its first chunk and a longer one whole", async () => {
  await using store = await openTestKv();
  const enc = new TextEncoder();
  const long = "é".repeat(40_000); // 80,000 bytes: two chunks of 60,000 and 20,000
  const bytes = enc.encode(long);
  await store.kv.set(keys.payloadKey("a", 0), enc.encode('{"short":true}'));
  await store.kv.set(keys.payloadKey("b", 0), bytes.subarray(0, 60_000));
  await store.kv.set(keys.payloadKey("b", 1), bytes.subarray(60_000));
  const get = createBatchGet<Uint8Array>(store.kv);
  const [a, b, none] = await Promise.all([
    readPayloadVia(get, store.kv, "a"),
    readPayloadVia(get, store.kv, "b"),
    readPayloadVia(get, store.kv, "missing"),
  ]);
  assert.equal(a, '{"short":true}');
  assert.equal(b, long);
  assert.equal(none, "");
});
