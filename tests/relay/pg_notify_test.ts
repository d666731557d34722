import assert from "node:assert/strict";
import {
  installTrigger,
  listenSteps,
  triggerInstalled,
  uninstallTrigger,
} from "../../db/notify.ts";
import { runPgLoop } from "../../relay/pg_loop.ts";
import {
  mediaBuy,
  openTestKv,
  startReceiver,
  stepUpdate,
  waitFor,
} from "../_helpers.ts";
import {
  agentIds,
  completeBySql,
  seedAgent,
  startPgRelay,
  startTestPg,
} from "../_pg.ts";

Deno.test("notify mode: the trigger announces every status change", async (t) => {
  await using pg = await startTestPg();

  await t.step(
    "SQL-only completion and interim statuses arrive without a poll",
    async () => {
      await using db = await pg.newDb();
      await using store = await openTestKv();
      await using receiver = startReceiver();
      await using relay = startPgRelay(store.kv, db.sql);
      assert.equal(await triggerInstalled(db.sql), false, "never automatic");
      const rows = agentIds("n", receiver.url);
      await seedAgent(db.sql, rows);
      await installTrigger(db.sql);
      assert.equal(await triggerInstalled(db.sql), true);
      const pending: Promise<void>[] = [];
      const listening = await listenSteps(
        db.sql,
        (n) => void pending.push(relay.sync.notify(n)),
        () => {},
      );
      await db.sql`update workflow_steps set status = 'input-required'
      where step_id = ${rows.step}`;
      await completeBySql(db.sql, rows.step);
      await waitFor(() => receiver.verified().length === 2, {
        what: "2 hooks",
      });
      await Promise.all(pending);
      await relay.worker.idle();
      const statuses = receiver.verified().map((h) =>
        (h.verified!.payload as { status: string }).status
      ).sort();
      assert.deepEqual(statuses, ["completed", "input-required"]);
      assert.equal(
        await relay.sync.poll(),
        0,
        "the catch-up poll re-sends nothing",
      );
      await listening.unlisten();
      await uninstallTrigger(db.sql);
      assert.equal(await triggerInstalled(db.sql), false);
    },
  );

  await t.step(
    "Postgres stopped and started mid-run loses nothing and sends nothing twice",
    async () => {
      await using own = await startTestPg({ ownCluster: true });
      await using db = await own.newDb();
      await using store = await openTestKv();
      await using receiver = startReceiver();
      await using relay = startPgRelay(store.kv, db.sql);
      const loop = runPgLoop({
        sync: relay.sync,
        kv: store.kv,
        source: relay.source,
        log: relay.log,
        pollMs: 50,
        maxBackoffMs: 200,
      });
      try {
        const first = agentIds("r1", receiver.url);
        await seedAgent(db.sql, first);
        await completeBySql(db.sql, first.step);
        await waitFor(() => receiver.verified().length === 1, { what: "r1" });
        // Completed just before Postgres goes away: possibly not polled yet.
        const before = ["r2", "r3"].map((n) => agentIds(n, receiver.url));
        for (const r of before) await seedAgent(db.sql, r);
        for (const r of before) await completeBySql(db.sql, r.step);
        await own.cluster!.stop();
        await waitFor(
          () => relay.logs().some((l) => String(l.msg).includes("pass failed")),
          { what: "a failed pass while Postgres is down" },
        );
        // HTTP events keep working meanwhile.
        const http = { push_notification_config: { url: receiver.url } };
        assert.equal(
          (await relay.post("/v1/events", mediaBuy(receiver.url, http))).status,
          202,
        );
        assert.equal(
          (await relay.post("/v1/events", stepUpdate())).status,
          202,
        );
        await own.cluster!.start();
        await waitFor(
          () => db.sql`select 1`.then(() => true, () => false),
          { what: "Postgres back" },
        );
        const after = ["r4", "r5"].map((n) => agentIds(n, receiver.url));
        for (const r of after) await seedAgent(db.sql, r);
        for (const r of after) await completeBySql(db.sql, r.step);
        await waitFor(() => receiver.verified().length === 6, {
          timeoutMs: 15_000,
          what: "all six webhooks",
        });
        await loop.tick();
        await relay.worker.idle();
        const ids = receiver.hits.map((h) => JSON.parse(h.body).task_id).sort();
        assert.deepEqual(ids, [
          "step_1",
          "step_r1",
          "step_r2",
          "step_r3",
          "step_r4",
          "step_r5",
        ]);
        assert.ok(
          relay.logs().some((l) => String(l.msg).includes("caught up")),
        );
      } finally {
        await loop.stop();
      }
    },
  );
});
