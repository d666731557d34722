import assert from "node:assert/strict";
import {
  mediaBuy,
  openTestKv,
  SECRET,
  startReceiver,
  stepUpdate,
  waitFor,
} from "./_helpers.ts";
import { spawnRelay as spawn } from "../scripts/relay_process.ts";

const spawnRelay = (env: Record<string, string>) =>
  spawn({ RELAY_SIGNING_SECRET: SECRET, ...env });

Deno.test("SIGKILL with deliveries pending loses nothing: a restart on the same KV delivers all", async () => {
  await using store = await openTestKv();
  store.kv.close();
  let healthy = false;
  await using receiver = startReceiver(() =>
    new Response("", { status: healthy ? 200 : 503 })
  );
  const env = {
    RELAY_KV_PATH: store.path,
    // An attempt cut off by the kill is retried when its lease (timeout + 2 s) ends.
    RELAY_TIMEOUT_MS: "1000",
    RELAY_RETRY_SCHEDULE: "0.3,0.3,0.3,0.3,0.3,0.3,0.3,0.3,0.3,0.3",
    // Every delivery must fail once before the kill: keep the circuit closed.
    RELAY_CIRCUIT_FAILURES: "1000",
  };
  const first = await spawnRelay(env);
  const post = (body: unknown) =>
    fetch(`${first.url}/v1/events`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    }).then((r) => r.json());
  const ids: string[] = [];
  for (let i = 0; i < 20; i++) {
    await post(
      mediaBuy(receiver.url, { step_id: `step_${i}`, media_buy_id: `mb_${i}` }),
    );
  }
  const answers = await Promise.all(
    Array.from(
      { length: 20 },
      (_, i) => post(stepUpdate({ step_id: `step_${i}` })),
    ),
  );
  for (const a of answers) ids.push(a.deliveries[0].id);
  await waitFor(
    () =>
      new Set(receiver.hits.map((h) => h.headers.get("webhook-id"))).size ===
        20,
    {
      what: "a first (failing) attempt of each delivery",
    },
  );
  first.child.kill("SIGKILL");
  assert.equal((await first.child.status).signal, "SIGKILL");
  assert.equal(
    receiver.verified().filter((h) => h.headers.get("webhook-id")).length,
    receiver.hits.length,
  );

  healthy = true;
  const second = await spawnRelay(env);
  try {
    const delivered = () => {
      const got = new Set(
        receiver.hits.filter((h) => h.status === 200).map((h) =>
          h.headers.get("webhook-id")
        ),
      );
      return ids.every((id) => got.has(id));
    };
    await waitFor(delivered, {
      timeoutMs: 10_000,
      what: "every delivery after restart",
    });
    // The receiver answers before the relay records the success: wait for that too.
    const succeeded = async () => {
      const res = await fetch(
        `${second.url}/v1/deliveries?status=succeeded&limit=100`,
      );
      return (await res.json()).items.length;
    };
    await waitFor(async () => await succeeded() === 20, {
      what: "20 succeeded deliveries",
    }).catch(() => {});
    assert.equal(await succeeded(), 20);
  } finally {
    second.child.kill("SIGTERM");
    assert.equal(
      (await second.child.status).code,
      0,
      "SIGTERM shuts down cleanly",
    );
  }
});
