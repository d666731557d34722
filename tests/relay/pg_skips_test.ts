import assert from "node:assert/strict";
import type { Explanation } from "../../relay/explain.ts";
import {
  openTestKv,
  startReceiver,
  startTestRelay,
  waitFor,
} from "../_helpers.ts";
import {
  agentIds,
  type AgentRows,
  completeBySql,
  seedAgent,
  startPgRelay,
  startTestPg,
} from "../_pg.ts";

function causes(doc: Explanation): (string | undefined)[] {
  return [
    ...doc.findings.map((f) => f.cause),
    ...doc.steps.flatMap((s) => s.findings.map((f) => f.cause)),
  ];
}

Deno.test("every skip is named, from real rows, in the sync and in explain", async (t) => {
  await using pg = await startTestPg();
  await using db = await pg.newDb();
  await using store = await openTestKv();
  await using receiver = startReceiver();
  await using relay = startPgRelay(store.kv, db.sql);

  async function explain(id: string): Promise<Explanation> {
    const res = await relay.get(`/v1/explain/media_buy/${id}`);
    assert.equal(res.status, 200);
    return await res.json();
  }

  async function skipCase(
    name: string,
    rows: Partial<AgentRows>,
    reason: string,
    status = "completed",
  ) {
    await t.step(`${reason}: ${name}`, async () => {
      const r = { ...agentIds(reason, receiver.url), ...rows };
      await seedAgent(db.sql, r);
      await completeBySql(db.sql, r.step, status);
      const answer = await relay.sync.processStep(r.step, { via: "poll" });
      assert.deepEqual(answer!.deliveries, []);
      assert.ok(
        answer!.skipped.some((s) => s.reason === reason),
        JSON.stringify(answer!.skipped),
      );
      const doc = await explain(r.mediaBuy);
      assert.equal(doc.verdict, "not_sent");
      assert.ok(causes(doc).includes(reason), JSON.stringify(causes(doc)));
    });
  }

  await skipCase("no mapping row", { withMapping: false }, "no_mapping");
  await skipCase("no context row", { withContext: false }, "no_context");
  await skipCase("no config row", { configs: 0 }, "no_config");
  await skipCase("is_active false", { isActive: false }, "config_inactive");
  await skipCase("is_active NULL", { isActive: null }, "config_is_active_null");
  await skipCase(
    "no URL anywhere",
    { url: "", requestDataUrl: null },
    "no_url",
  );
  await skipCase("internal status", {}, "unmapped_status", "archived");
  await skipCase(
    "basic auth",
    { requestDataUrl: null, authType: "basic", authToken: "x" },
    "unknown_auth_scheme",
  );
  await skipCase(
    "HMAC-SHA256 asked for, no token or secret stored",
    { requestDataUrl: null, authType: "HMAC-SHA256", authToken: null },
    "missing_credentials",
  );
  await skipCase(
    "Bearer with a token under 32 characters",
    { requestDataUrl: null, authType: "bearer", authToken: "short-token" },
    "short_credentials",
  );
  await skipCase(
    "unparseable URL",
    { url: "not a url", requestDataUrl: null },
    "url_invalid",
  );

  await t.step("url_blocked: a loopback URL in production rules", async () => {
    await using kv2 = await openTestKv();
    await using strict = startPgRelay(kv2.kv, db.sql, { allowPrivate: false });
    const r = agentIds("blocked", receiver.url);
    await seedAgent(db.sql, r);
    await completeBySql(db.sql, r.step);
    const answer = await strict.sync.processStep(r.step, { via: "poll" });
    assert.deepEqual(answer!.skipped.map((s) => s.reason), ["url_blocked"]);
  });

  await t.step(
    "RELAY_NULL_IS_ACTIVE=1 delivers a NULL is_active config",
    async () => {
      await using kv2 = await openTestKv();
      await using lenient = startPgRelay(kv2.kv, db.sql, {
        nullIsActive: true,
      });
      const answer = await lenient.sync.processStep(
        "step_config_is_active_null",
        {
          via: "poll",
        },
      );
      assert.equal(answer!.deliveries.length, 1);
      await lenient.worker.idle();
    },
  );

  await t.step(
    "changed_outside_agent: terminal status with NULL completed_at is caught and sent",
    async () => {
      const r = agentIds("outside", receiver.url);
      await seedAgent(db.sql, r);
      await db.sql`update workflow_steps set status = 'completed'
      where step_id = ${r.step}`;
      const answer = await relay.sync.processStep(r.step, { via: "notify" });
      assert.equal(answer!.deliveries.length, 1);
      await waitFor(async () => (await explain(r.mediaBuy)).verdict === "sent");
      assert.ok(
        causes(await explain(r.mediaBuy)).includes("changed_outside_agent"),
      );
    },
  );

  await t.step("step_not_terminal: a working step, not seen yet", async () => {
    const r = agentIds("working", receiver.url);
    await seedAgent(db.sql, r);
    const c = causes(await explain(r.mediaBuy));
    assert.ok(c.includes("step_not_terminal"));
    assert.ok(c.includes("not_seen_yet"));
  });

  await t.step(
    "receiver_rejected, receiver_unreachable and target_disabled, with attempts",
    async () => {
      await using rejecting = startReceiver(() =>
        new Response("no", { status: 400 })
      );
      await using gone = startReceiver(() =>
        new Response("gone", { status: 410 })
      );
      const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const deadUrl = `http://127.0.0.1:${closed.addr.port}/hooks`;
      closed.close();
      const cases: [string, string, string][] = [
        ["rejected", rejecting.url, "receiver_rejected"],
        ["unreachable", deadUrl, "receiver_unreachable"],
        ["gone", gone.url, "target_disabled"],
      ];
      for (const [n, url, reason] of cases) {
        const r = agentIds(n, url);
        await seedAgent(db.sql, r);
        await completeBySql(db.sql, r.step);
        await relay.sync.processStep(r.step, { via: "poll" });
        const doc = await waitFor(async () => {
          const d = await explain(r.mediaBuy);
          return causes(d).includes(reason) ? d : undefined;
        }, { what: reason });
        const f = doc!.steps[0]!.findings.find((x) => x.cause === reason)!;
        assert.ok(
          "attempts" in f && f.attempts.length >= 1,
          JSON.stringify(doc),
        );
        if (reason === "target_disabled") {
          assert.match(
            f.fix!,
            /^enable the target: POST \/v1\/targets\/[^/]+\/enable, then/,
          );
        }
      }
      const again = agentIds("gone_again", gone.url);
      await seedAgent(db.sql, again);
      await completeBySql(db.sql, again.step);
      const answer = await relay.sync.processStep(again.step, { via: "poll" });
      assert.deepEqual(answer!.skipped.map((s) => s.reason), [
        "target_disabled",
      ]);
      await relay.worker.idle();
    },
  );

  await t.step("explain without Postgres answers 503, named", async () => {
    await using kv2 = await openTestKv();
    await using plain = startTestRelay(kv2.kv);
    const res = await plain.get("/v1/explain/media_buy/x");
    assert.equal(res.status, 503);
    assert.equal((await res.json()).error.code, "postgres_not_configured");
  });
});
