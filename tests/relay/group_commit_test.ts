import assert from "node:assert/strict";
import { createGroupCommitter } from "../../relay/group_commit.ts";
import { WriteSet } from "../../relay/write_set.ts";
import { openTestKv } from "../_helpers.ts";

const stamps = (results: { ok: boolean; versionstamp?: string }[]) =>
  new Set(results.map((r) => r.versionstamp)).size;

Deno.test("createGroupCommitter() commits the first write set at once and the ones that queue behind it together", async () => {
  await using store = await openTestKv();
  const committer = createGroupCommitter(store.kv);
  const results = await Promise.all(
    Array.from(
      { length: 20 },
      (_, i) => committer.commit(new WriteSet().set(["k", i], i)),
    ),
  );
  assert.ok(results.every((r) => r.ok));
  assert.equal(stamps(results), 2, "one commit alone, then one for the rest");
  const read = await Array.fromAsync(store.kv.list({ prefix: ["k"] }));
  assert.deepEqual(read.map((e) => e.value), [...Array(20).keys()]);
});

Deno.test("createGroupCommitter() never shares a commit between write sets checking the same key", async () => {
  await using store = await openTestKv();
  const committer = createGroupCommitter(store.kv);
  const results = await Promise.all(
    Array.from({ length: 10 }, (_, i) =>
      committer.commit(
        new WriteSet().check({ key: ["once"], versionstamp: null }).set(
          ["once"],
          i,
        ),
      )),
  );
  assert.equal(results.filter((r) => r.ok).length, 1);
  const winner = results.findIndex((r) => r.ok);
  assert.equal((await store.kv.get(["once"])).value, winner);
});

Deno.test("createGroupCommitter() fails only the write set whose check fails in a shared commit", async () => {
  await using store = await openTestKv();
  await store.kv.set(["taken"], "already");
  const committer = createGroupCommitter(store.kv);
  const [first, bad, good] = await Promise.all([
    committer.commit(new WriteSet().set(["a"], 1)),
    committer.commit(
      new WriteSet().check({ key: ["taken"], versionstamp: null }).set(
        ["taken"],
        "mine",
      ).set(["b"], 2),
    ),
    committer.commit(new WriteSet().set(["c"], 3).sum(["n"], 2n)),
  ]);
  assert.deepEqual([first.ok, bad.ok, good.ok], [true, false, true]);
  assert.equal((await store.kv.get(["taken"])).value, "already");
  assert.equal((await store.kv.get(["b"])).value, null);
  assert.equal((await store.kv.get(["c"])).value, 3);
  assert.equal((await store.kv.get<Deno.KvU64>(["n"])).value?.value, 2n);
});

Deno.test("createGroupCommitter() keeps shared commits within its limits and falls back when KV refuses one", async () => {
  await using store = await openTestKv();
  const three = (i: number) =>
    new WriteSet().set(["m", i, 0], 0).set(["m", i, 1], 1).delete(["gone"]);
  const limited = createGroupCommitter(store.kv, { maxMutations: 5 });
  const split = await Promise.all(
    [0, 1, 2, 3].map((i) => limited.commit(three(i))),
  );
  assert.ok(split.every((r) => r.ok));
  assert.equal(stamps(split), 4, "no two write sets of 3 mutations fit in 5");

  // Told KV takes 1000 checks, the committer groups 60 + 60; KV refuses 120 checks,
  // so each write set is committed on its own instead.
  const lax = createGroupCommitter(store.kv, { maxChecks: 1000 });
  const checks = (i: number) => {
    const w = new WriteSet().set(["c", i], i);
    for (let j = 0; j < 60; j++) {
      w.check({ key: ["free", i, j], versionstamp: null });
    }
    return w;
  };
  const alone = await Promise.all([0, 1, 2].map((i) => lax.commit(checks(i))));
  assert.ok(alone.every((r) => r.ok));
  assert.equal(stamps(alone), 3);

  // A write set KV refuses even alone rejects its own caller only.
  const tooBig = new WriteSet();
  for (let j = 0; j < 1001; j++) tooBig.set(["big", j], j);
  const [ok, refused] = await Promise.allSettled([
    lax.commit(new WriteSet().set(["fine"], 1)),
    lax.commit(tooBig),
  ]);
  assert.equal(ok.status, "fulfilled");
  assert.equal(refused.status, "rejected");
  assert.equal((await store.kv.get(["fine"])).value, 1);
});
