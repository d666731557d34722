import assert from "node:assert/strict";
import { createLogger } from "../../relay/log.ts";
import { recoverDead } from "../../relay/replay.ts";
import { getDelivery } from "../../relay/store.ts";
import { sweepDue } from "../../relay/sweeper.ts";
import {
  mediaBuy,
  openTestKv,
  startReceiver,
  startTestRelay,
  stepUpdate,
  waitFor,
} from "../_helpers.ts";

const quiet = createLogger(() => {});

/** One sweep of the due index by `relay`'s worker. */
function _sweep(
  kv: Deno.Kv,
  relay: ReturnType<typeof startTestRelay>,
  opts?: Parameters<typeof sweepDue>[1],
) {
  return sweepDue(
    { kv, now: Date.now, worker: relay.worker, log: quiet },
    opts,
  );
}

/** Makes `n` deliveries that die at once (the receiver refuses them). */
async function _deadBacklog(
  relay: ReturnType<typeof startTestRelay>,
  url: string,
  n: number,
  deadHits: () => number,
  tag = "d",
): Promise<string[]> {
  const steps = Array.from({ length: n }, (_, i) => `step_${tag}${i}`);
  for (const [i, step_id] of steps.entries()) {
    await relay.post(
      "/v1/events",
      mediaBuy(url, { step_id, media_buy_id: `mb_${tag}${i}` }),
    );
  }
  const ids: string[] = [];
  for (const step_id of steps) {
    const answer = await (await relay.post(
      "/v1/events",
      stepUpdate({ step_id }),
    )).json();
    ids.push(answer.deliveries[0].id);
  }
  await waitFor(() => deadHits() === n, { what: "every first attempt" });
  await relay.worker.idle();
  return ids;
}

// More than one recover page (200), with KV queue wake-ups on and sweeps running
// beside the worker's line: every recovered delivery arrives once.
Deno.test("a recovered backlog over several pages arrives whole and once each, with sweeps running beside the line", async () => {
  await using store = await openTestKv();
  let accept = false;
  await using receiver = startReceiver(async () => {
    await new Promise((r) => setTimeout(r, 1));
    return new Response("", { status: accept ? 200 : 400 });
  });
  await using relay = startTestRelay(store.kv, {
    env: { RELAY_RETRY_SCHEDULE: "none", RELAY_TARGET_CONCURRENCY: "2" },
  });
  const n = 230;
  const ids = await _deadBacklog(
    relay,
    receiver.url,
    n,
    () => receiver.hits.length,
  );
  accept = true;
  const since = new Date(Date.now() - 60_000).toISOString();
  const res = await relay.post("/v1/deliveries/recover", { since });
  assert.deepEqual(new Set((await res.json()).ids), new Set(ids));
  const waiting = ids.filter((id) => relay.worker.inLine(id));
  assert.ok(waiting.length > 100, "the line holds the backlog");
  // A sweep passes over the ids waiting in the line.
  const swept = await _sweep(store.kv, relay, { pageSize: 10, pageWaitMs: 50 });
  assert.ok(swept <= n - waiting.length, `${swept} handed over`);
  const ok = () => receiver.hits.filter((h) => h.status === 200);
  await waitFor(async () => {
    await _sweep(store.kv, relay, {
      pageWaitMs: 50,
    });
    return ok().length >= n;
  }, { what: "every recovered delivery", timeoutMs: 20_000 });
  await relay.worker.idle();
  const sent = ok().map((h) => h.headers.get("webhook-id"));
  assert.equal(sent.length, n, "no delivery sent twice");
  assert.deepEqual(new Set(sent), new Set(ids));
  for (const id of ids) {
    assert.equal((await getDelivery(store.kv, id)).value!.status, "succeeded");
  }
  assert.ok(ids.every((id) => !relay.worker.inLine(id)));
});

// One slow target's backlog holds neither another target's share of the line nor
// the sweeper's view of the rest of the due index.
Deno.test("a recovered backlog to a slow target delays neither another target's deliveries nor what only the sweeper finds", async () => {
  await using store = await openTestKv();
  let accept = false;
  const gate = (delayMs: number) => async () => {
    if (accept) await new Promise((r) => setTimeout(r, delayMs));
    return new Response("", { status: accept ? 200 : 400 });
  };
  await using slow = startReceiver(gate(150));
  await using fast = startReceiver(gate(0));
  await using other = startReceiver(gate(0));
  await using relay = startTestRelay(store.kv, {
    queue: false,
    env: {
      RELAY_RETRY_SCHEDULE: "none",
      RELAY_CONCURRENCY: "4",
      RELAY_TARGET_CONCURRENCY: "1",
    },
  });
  const hits = () => slow.hits.length + fast.hits.length + other.hits.length;
  const slowIds = await _deadBacklog(relay, slow.url, 12, hits, "s");
  const fastIds = await _deadBacklog(
    relay,
    fast.url,
    2,
    () => hits() - 12,
    "f",
  );
  accept = true;
  // Recovered first and kicked: the slow target's twelve, then the fast one's two.
  const lined = await recoverDead(
    { kv: store.kv, now: Date.now },
    { since: 0 },
  );
  assert.deepEqual(
    new Set(lined.map((l) => l.id)),
    new Set([...slowIds, ...fastIds]),
  );
  // Recovered later and never kicked: only the sweeper can find it.
  const [otherId] = await _deadBacklog(
    relay,
    other.url,
    1,
    () => hits() - 14,
    "o",
  );
  await recoverDead({ kv: store.kv, now: Date.now }, { since: 0 });
  relay.worker.kickMany(lined);
  await waitFor(async () => {
    await _sweep(store.kv, relay, { pageSize: 4, pageWaitMs: 20 });
    const ok = (r: typeof fast) => r.hits.filter((h) => h.status === 200);
    return ok(fast).length === 2 && ok(other).length === 1;
  }, { what: "the fast target's and the swept delivery" });
  const ok = slow.hits.filter((h) => h.status === 200).length;
  assert.ok(ok < 6, `${ok} of the slow target's 12 went first`);
  assert.equal(
    other.hits.filter((h) => h.status === 200)[0]!.headers.get("webhook-id"),
    otherId,
  );
  await relay.worker.idle();
});

// Recover commits the fresh cycles without queue messages: if the process that
// recovered them never kicks them (it stopped), the sweeper finds them.
Deno.test("recovered deliveries nobody kicks are found by the sweeper through the due index", async () => {
  await using store = await openTestKv();
  let accept = false;
  await using receiver = startReceiver(() =>
    new Response("", { status: accept ? 200 : 400 })
  );
  await using relay = startTestRelay(store.kv, {
    queue: false,
    env: { RELAY_RETRY_SCHEDULE: "none" },
  });
  const ids = await _deadBacklog(
    relay,
    receiver.url,
    25,
    () => receiver.hits.length,
  );
  accept = true;
  const recovered = await recoverDead(
    { kv: store.kv, now: Date.now },
    { since: 0 },
  );
  assert.deepEqual(new Set(recovered.map((r) => r.id)), new Set(ids));
  assert.equal(receiver.hits.length, 25, "nothing sent without a driver");
  await waitFor(async () => {
    await _sweep(store.kv, relay);
    return receiver.hits.filter((h) => h.status === 200).length === 25;
  }, { what: "the sweeper's sends" });
  await relay.worker.idle();
  const sent = receiver.hits.filter((h) => h.status === 200)
    .map((h) => h.headers.get("webhook-id"));
  assert.deepEqual(new Set(sent), new Set(ids));
  assert.equal(sent.length, 25);
});
