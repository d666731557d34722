import assert from "node:assert/strict";
import type { Explanation } from "../../relay/explain.ts";
import * as keys from "../../relay/keys.ts";
import { runPgLoop } from "../../relay/pg_loop.ts";
import { writeBackPass } from "../../relay/write_back.ts";
import { openTestKv, startReceiver, waitFor } from "../_helpers.ts";
import {
  agentIds,
  completeBySql,
  seedAgent,
  startPgRelay,
  startTestPg,
} from "../_pg.ts";

const causes = (doc: Explanation) =>
  doc.steps.flatMap((s) => s.findings.map((f) => f.cause));

Deno.test("one step that cannot be recorded does not stall the others", async (t) => {
  await using pg = await startTestPg();

  await t.step(
    "payload_too_large: a response_data over 64 KiB is a named skip",
    async () => {
      await using db = await pg.newDb();
      await using store = await openTestKv();
      await using receiver = startReceiver();
      await using relay = startPgRelay(store.kv, db.sql);
      const r = agentIds("big", receiver.url);
      await seedAgent(db.sql, r);
      const big = { blob: "x".repeat(70 * 1024) };
      await db.sql`update workflow_steps set response_data = ${
        JSON.stringify(big)
      }::jsonb where step_id = ${r.step}`;
      await completeBySql(db.sql, r.step);
      const answer = await relay.sync.processStep(r.step, { via: "poll" });
      assert.deepEqual(answer!.deliveries, []);
      assert.deepEqual(answer!.skipped.map((s) => s.reason), [
        "payload_too_large",
      ]);
      const doc = await (await relay.get(`/v1/explain/media_buy/${r.mediaBuy}`))
        .json();
      assert.ok(causes(doc).includes("payload_too_large"));
      assert.equal(receiver.hits.length, 0);
    },
  );

  await t.step(
    "commit_failed: a step whose write KV refuses is retried, then skipped by name, and later steps are sent meanwhile",
    async () => {
      await using db = await pg.newDb();
      await using store = await openTestKv();
      await using receiver = startReceiver();
      await using relay = startPgRelay(store.kv, db.sql);
      // 16 distinct URLs × a 60 KiB result: > 800 KiB in one atomic write.
      const bad = { ...agentIds("wide", receiver.url), requestDataUrl: null };
      await seedAgent(db.sql, bad);
      for (let i = 1; i < 16; i++) {
        await db.sql`insert into push_notification_configs (id, tenant_id,
            principal_id, url, is_active)
          values (${`pnc_wide_${i}`}, ${bad.tenant}, ${bad.principal},
            ${`${receiver.url}/${i}`}, true)`;
      }
      await db.sql`update workflow_steps set response_data = ${
        JSON.stringify({ blob: "y".repeat(60 * 1024) })
      }::jsonb where step_id = ${bad.step}`;
      await completeBySql(db.sql, bad.step);
      const good = agentIds("after", receiver.url);
      await seedAgent(db.sql, good);
      await db.sql`update workflow_steps set status = 'completed',
        completed_at = now() + interval '1 second' where step_id = ${good.step}`;

      assert.equal(await relay.sync.poll(), 1, "the later step goes out");
      await waitFor(() => receiver.verified().length === 1, { what: "hook" });
      const held = (await store.kv.get<{ ms: number }>(keys.pgCursorKey))
        .value!.ms;
      assert.equal(await relay.sync.poll(), 0);
      assert.equal(
        (await store.kv.get<{ ms: number }>(keys.pgCursorKey)).value!.ms,
        held,
        "the cursor waits at the failing step",
      );
      assert.equal(await relay.sync.poll(), 0, "third failure: given up");
      const record = await store.kv.get<{ skipped: { reason: string }[] }>(
        keys.pgStepKey(bad.step, "completed"),
      );
      assert.deepEqual(record.value!.skipped.map((s) => s.reason), [
        "commit_failed",
      ]);
      const moved = (await store.kv.get<{ ms: number }>(keys.pgCursorKey))
        .value!.ms;
      assert.ok(moved > held, `cursor ${moved} moved past ${held}`);
      assert.equal(
        relay.logs().filter((l) =>
          l.msg === "step processing failed; retried next pass"
        )
          .length,
        2,
      );
      const doc =
        await (await relay.get(`/v1/explain/media_buy/${bad.mediaBuy}`))
          .json();
      assert.ok(
        causes(doc).includes("commit_failed"),
        JSON.stringify(causes(doc)),
      );
      await relay.worker.idle();
      assert.equal(receiver.hits.length, 1, "nothing of the failed step sent");
    },
  );
});

Deno.test("write-back walks the whole index page by page (not just the first 500), drops orphans, and its errors never slow polling", async (t) => {
  await using pg = await startTestPg();

  await t.step("paged: every entry is written, however many wait", async () => {
    await using db = await pg.newDb();
    await using store = await openTestKv();
    await using receiver = startReceiver();
    await using relay = startPgRelay(store.kv, db.sql);
    const ids: string[] = [];
    for (const n of ["p1", "p2", "p3", "p4", "p5"]) {
      const r = agentIds(n, receiver.url);
      await seedAgent(db.sql, r);
      await completeBySql(db.sql, r.step);
      const answer = await relay.sync.processStep(r.step, { via: "poll" });
      ids.push(answer!.deliveries[0]!.id);
    }
    await waitFor(() => receiver.verified().length === 5, { what: "hooks" });
    await relay.worker.idle();
    // An entry whose delivery record is gone (e.g. removed by hand).
    await store.kv.set(keys.writeBackKey("msg_gone"), {
      tenant_id: "t",
      object_id: null,
      written_updated_at: null,
    });
    const deps = { kv: store.kv, source: relay.source, log: relay.log };
    let cursor = "";
    const written: number[] = [];
    let dropped = 0;
    for (let pass = 0; pass < 4; pass++) {
      const done = await writeBackPass(deps, { limit: 2, cursor });
      written.push(done.written);
      dropped += done.dropped;
      cursor = done.cursor;
    }
    assert.deepEqual(written, [2, 2, 1, 0]);
    assert.equal(dropped, 1);
    const rows = await db.sql`select delivery_id from webhook_deliveries
      order by delivery_id`;
    assert.deepEqual(rows.map((r) => r.delivery_id), ids.toSorted());
    const left = [];
    for await (const e of store.kv.list({ prefix: keys.writeBackPrefix })) {
      left.push(e.key);
    }
    assert.deepEqual(left, [], "ended and orphaned entries are forgotten");
  });

  await t.step(
    "a refused write-back row is logged; polling keeps its pace",
    async () => {
      await using db = await pg.newDb();
      await using store = await openTestKv();
      await using receiver = startReceiver();
      await using relay = startPgRelay(store.kv, db.sql);
      const first = agentIds("wb1", receiver.url);
      await seedAgent(db.sql, first);
      await completeBySql(db.sql, first.step);
      await relay.sync.processStep(first.step, { via: "poll" });
      await waitFor(() => receiver.verified().length === 1, { what: "wb1" });
      await relay.worker.idle();
      // Every write-back insert now fails in Postgres.
      await db.sql`alter table webhook_deliveries
        add constraint refuse_all check (false) not valid`;
      const loop = runPgLoop({
        sync: relay.sync,
        kv: store.kv,
        source: relay.source,
        log: relay.log,
        pollMs: 30,
        maxBackoffMs: 5_000,
      });
      try {
        await waitFor(
          () =>
            relay.logs().some((l) =>
              l.msg === "write-back failed; retried on a later pass"
            ),
          { what: "the refused row, logged" },
        );
        const later = agentIds("wb2", receiver.url);
        await seedAgent(db.sql, later);
        await completeBySql(db.sql, later.step);
        // A backed-off loop would wait seconds; the normal pace takes one tick.
        await waitFor(() => receiver.verified().length === 2, {
          timeoutMs: 2_000,
          what: "the next step polled at the normal pace",
        });
        assert.ok(
          !relay.logs().some((l) =>
            l.msg === "postgres pass failed; retrying with backoff"
          ),
        );
      } finally {
        await loop.stop();
      }
      await relay.worker.idle();
    },
  );
});
