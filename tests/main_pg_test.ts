import assert from "node:assert/strict";
import { installTrigger } from "../db/notify.ts";
import { spawnRelay } from "../scripts/relay_process.ts";
import {
  mediaBuy,
  openTestKv,
  SECRET,
  startReceiver,
  stepUpdate,
  waitFor,
} from "./_helpers.ts";
import { agentIds, completeBySql, seedAgent, startTestPg } from "./_pg.ts";

Deno.test("notify mode with Postgres down at start: the relay serves HTTP, LISTENs once Postgres is up, and stops cleanly", async () => {
  await using own = await startTestPg({ ownCluster: true });
  await using db = await own.newDb();
  await using store = await openTestKv();
  store.kv.close();
  await using receiver = startReceiver();
  const rows = agentIds("down", receiver.url);
  await seedAgent(db.sql, rows);
  await installTrigger(db.sql);
  await own.cluster!.stop();

  const relay = await spawnRelay({
    RELAY_SIGNING_SECRET: SECRET,
    RELAY_KV_PATH: store.path,
    DATABASE_URL: db.url,
    RELAY_PG_MODE: "notify",
    RELAY_PG_POLL_MS: "50",
  });
  const logged = (msg: string) =>
    relay.lines.some((l) => JSON.parse(l).msg === msg);
  try {
    await waitFor(
      () => logged("LISTEN failed; retried on the next poll tick"),
      {
        what: "the failed LISTEN, logged",
      },
    );
    const post = (body: unknown) =>
      fetch(`${relay.url}/v1/events`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      });
    const http = { push_notification_config: { url: receiver.url } };
    assert.equal((await post(mediaBuy(receiver.url, http))).status, 202);
    assert.equal((await post(stepUpdate())).status, 202);
    await waitFor(() => receiver.verified().length === 1, {
      what: "HTTP hook",
    });

    await own.cluster!.start();
    await waitFor(() => logged("listening for step notices"), {
      timeoutMs: 15_000,
      what: "LISTEN established after Postgres started",
    });
    // An interim status without completed_at: only the NOTIFY path sees it.
    await db.sql`update workflow_steps set status = 'input-required'
      where step_id = ${rows.step}`;
    await completeBySql(db.sql, rows.step);
    await waitFor(() => receiver.verified().length === 3, {
      timeoutMs: 10_000,
      what: "both SQL status changes delivered",
    });
    const fromSql = receiver.verified()
      .map((h) => h.verified!.payload as { task_id: string; status: string })
      .filter((p) => p.task_id === rows.step)
      .map((p) => p.status)
      .sort();
    assert.deepEqual(fromSql, ["completed", "input-required"]);
  } finally {
    try {
      relay.child.kill("SIGTERM");
    } catch { /* already exited: the status below says how */ }
  }
  const status = await relay.child.status;
  assert.equal(status.code, 0, relay.lines.slice(-5).join("\n"));
});
