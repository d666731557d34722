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

/** Makes `n` deliveries that die at once (the receiver refuses them). */
async function _deadBacklog(
  relay: ReturnType<typeof startTestRelay>,
  url: string,
  n: number,
  deadHits: () => number,
): Promise<string[]> {
  const steps = Array.from({ length: n }, (_, i) => `step_d${i}`);
  for (const [i, step_id] of steps.entries()) {
    await relay.post(
      "/v1/events",
      mediaBuy(url, { step_id, media_buy_id: `mb_d${i}` }),
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
  assert.ok(relay.worker.lined() > 0, "the line holds the backlog");
  // While the line is long, a sweep hands over one page only.
  const swept = await sweepDue({
    kv: store.kv,
    now: Date.now,
    worker: relay.worker,
    log: quiet,
  }, { pageSize: 10, pageWaitMs: 50 });
  assert.equal(swept, 10);
  const ok = () => receiver.hits.filter((h) => h.status === 200);
  await waitFor(async () => {
    await sweepDue({
      kv: store.kv,
      now: Date.now,
      worker: relay.worker,
      log: quiet,
    }, {
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
  assert.equal(relay.worker.lined(), 0);
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
  assert.deepEqual(new Set(recovered), new Set(ids));
  assert.equal(receiver.hits.length, 25, "nothing sent without a driver");
  await waitFor(async () => {
    await sweepDue({
      kv: store.kv,
      now: Date.now,
      worker: relay.worker,
      log: quiet,
    });
    return receiver.hits.filter((h) => h.status === 200).length === 25;
  }, { what: "the sweeper's sends" });
  await relay.worker.idle();
  const sent = receiver.hits.filter((h) => h.status === 200)
    .map((h) => h.headers.get("webhook-id"));
  assert.deepEqual(new Set(sent), new Set(ids));
  assert.equal(sent.length, 25);
});
