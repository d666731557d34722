import assert from "node:assert/strict";
import { createGroupCommitter } from "../../relay/group_commit.ts";
import { mergeWriteSets, WriteSet } from "../../relay/write_set.ts";
import { openTestKv } from "../_helpers.ts";

const stamps = (results: { ok: boolean; versionstamp?: string }[]) =>
  new Set(results.map((r) => r.versionstamp)).size;

Deno.test("createGroupCommitter() commits the first write set at once and the ones that queue behind it together", async () => {
  await using store = await openTestKv();
  const committer = createGroupCommitter(store.kv);
  // All 20 calls are made in one synchronous turn: the first starts a commit at
  // once, so the other 19 are queued before that commit can finish, and all of
  // them fit in the next one. No timing is involved.
  const first = committer.commit(new WriteSet().set(["k", 0], 0));
  const rest = Array.from(
    { length: 19 },
    (_, i) => committer.commit(new WriteSet().set(["k", i + 1], i + 1)),
  );
  const [alone, ...together] = await Promise.all([first, ...rest]);
  assert.ok(alone.ok && together.every((r) => r.ok));
  assert.equal(stamps(together), 1, "the 19 queued ones share one commit");
  assert.notEqual(alone.versionstamp, together[0]!.versionstamp);
  assert.ok(
    alone.versionstamp < together[0]!.versionstamp!,
    "first goes first",
  );
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

Deno.test("createGroupCommitter() answers every caller when one write set cannot even be built (queue delay over 30 days)", async () => {
  await using store = await openTestKv();
  const committer = createGroupCommitter(store.kv);
  const tooLate = () =>
    new WriteSet().set(["late"], 1).enqueue("x", {
      delay: 31 * 24 * 3600 * 1000,
    });
  const unhandled: unknown[] = [];
  const onUnhandled = (e: PromiseRejectionEvent) => {
    unhandled.push(e.reason);
    e.preventDefault();
  };
  globalThis.addEventListener("unhandledrejection", onUnhandled);
  try {
    // The first commits alone; the next three share a batch that KV refuses to
    // build, so each is committed on its own and gets its own answer.
    const [a, b, bad, c] = await Promise.allSettled([
      committer.commit(new WriteSet().set(["a"], 1)),
      committer.commit(new WriteSet().set(["b"], 1)),
      committer.commit(tooLate()),
      committer.commit(new WriteSet().set(["c"], 1)),
    ]);
    assert.deepEqual(
      [a.status, b.status, bad.status, c.status],
      ["fulfilled", "fulfilled", "rejected", "fulfilled"],
    );
    assert.match(String((bad as PromiseRejectedResult).reason), /30 days/);
    // Alone, too: the caller gets the error and the committer keeps working.
    await assert.rejects(committer.commit(tooLate()), /30 days/);
    assert.ok((await committer.commit(new WriteSet().set(["d"], 1))).ok);
    await new Promise((r) => setTimeout(r, 0));
    assert.deepEqual(unhandled, []);
  } finally {
    globalThis.removeEventListener("unhandledrejection", onUnhandled);
  }
  const values = await Promise.all(
    ["a", "b", "c", "d", "late"].map(async (k) =>
      (await store.kv.get([k])).value
    ),
  );
  assert.deepEqual(values, [1, 1, 1, 1, null]);
});

Deno.test("createGroupCommitter() adds up every write set's sums on a shared counter", async () => {
  await using store = await openTestKv();
  const committer = createGroupCommitter(store.kv);
  const minusOne = (1n << 64n) - 1n;
  // 1 alone, then 30 together: 20 up and 10 down, each with its own record.
  const results = await Promise.all(
    Array.from({ length: 31 }, (_, i) =>
      committer.commit(
        new WriteSet().set(["rec", i], i).sum(
          ["count"],
          i > 0 && i % 3 === 0 ? minusOne : 1n,
        ),
      )),
  );
  assert.ok(results.every((r) => r.ok));
  assert.equal(stamps(results.slice(1)), 1);
  const count = await store.kv.get<Deno.KvU64>(["count"]);
  assert.equal(count.value?.value, 21n - 10n);
  assert.equal(
    (await Array.fromAsync(store.kv.list({ prefix: ["rec"] }))).length,
    31,
  );
});

Deno.test("mergeWriteSets() turns sums on a key nothing else writes into one sum, and keeps the rest in order", () => {
  const merged = mergeWriteSets([
    new WriteSet().check({ key: ["a"], versionstamp: null }).set(["a"], 1)
      .sum(["count"], 1n),
    new WriteSet().sum(["count"], 2n).sum(["mixed"], 1n),
    new WriteSet().delete(["mixed"]).sum(["count"], (1n << 64n) - 3n),
  ]);
  assert.deepEqual(merged.checks, [{ key: ["a"], versionstamp: null }]);
  assert.deepEqual(
    merged.mutations.map((m) => [m.type, m.key]),
    [["set", ["a"]], ["sum", ["mixed"]], ["delete", ["mixed"]]],
    "the count's sums add up to 0: no mutation at all",
  );
  const two = mergeWriteSets([
    new WriteSet().sum(["count"], 1n),
    new WriteSet().sum(["count"], 1n),
  ]);
  assert.deepEqual(
    two.mutations.map((
      m,
    ) => [m.type, m.key, (m as { value: Deno.KvU64 }).value.value]),
    [["sum", ["count"], 2n]],
  );
});
