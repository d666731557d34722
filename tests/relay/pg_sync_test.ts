import assert from "node:assert/strict";
import { openTestKv, startReceiver, waitFor } from "../_helpers.ts";
import {
  agentIds,
  completeBySql,
  seedAgent,
  startPgRelay,
  startTestPg,
} from "../_pg.ts";
import { writeBackPass } from "../../relay/write_back.ts";
import { createWriteBackTable } from "../../db/agent_schema.ts";

type Payload = Record<string, unknown>;

Deno.test("pg sync (poll mode) against a real PostgreSQL", async (t) => {
  await using pg = await startTestPg();

  await t.step(
    "a step completed by plain SQL is delivered, verified, once",
    async () => {
      await using db = await pg.newDb();
      await using store = await openTestKv();
      await using receiver = startReceiver();
      await using relay = startPgRelay(store.kv, db.sql);
      await relay.sync.poll();
      const rows = agentIds("a", receiver.url);
      await seedAgent(db.sql, rows);
      await completeBySql(db.sql, rows.step);
      assert.equal(await relay.sync.poll(), 1);
      await waitFor(() => receiver.verified().length === 1, {
        what: "webhook",
      });
      const payload = receiver.verified()[0]!.verified!.payload as Payload;
      assert.equal(payload.task_id, rows.step);
      assert.equal(payload.status, "completed");
      assert.equal(payload.task_type, "create_media_buy");
      assert.deepEqual(payload.result, { media_buy_id: rows.mediaBuy });
      assert.equal(await relay.sync.poll(), 0, "nothing processed twice");
      await relay.worker.idle();
      assert.equal(receiver.hits.length, 1);
      const resolved = relay.logs().find((l) => l.msg === "step resolved")!;
      const attempt = relay.logs().find((l) => l.msg === "attempt")!;
      assert.equal(attempt.trace_id, resolved.trace_id, "one trace id");
    },
  );

  await t.step(
    "the poll cursor survives a restart: no re-send, later steps still found",
    async () => {
      await using db = await pg.newDb();
      await using store = await openTestKv();
      await using receiver = startReceiver();
      const first = startPgRelay(store.kv, db.sql);
      await first.sync.poll();
      const a = agentIds("c1", receiver.url);
      await seedAgent(db.sql, a);
      await completeBySql(db.sql, a.step);
      // More steps than one page (pageSize 3) to exercise keyset paging.
      const more = ["c2", "c3", "c4", "c5"].map((n) =>
        agentIds(n, receiver.url)
      );
      for (const r of more) await seedAgent(db.sql, r);
      for (const r of more) await completeBySql(db.sql, r.step);
      assert.equal(await first.sync.poll(), 5);
      await waitFor(() => receiver.verified().length === 5, {
        what: "5 hooks",
      });
      await first.worker.idle();
      const path = store.path;
      await first[Symbol.asyncDispose]();
      const kv = await Deno.openKv(path);
      await using second = startPgRelay(kv, db.sql);
      assert.equal(await second.sync.poll(), 0, "restart re-sends nothing");
      const b = agentIds("c6", receiver.url);
      await seedAgent(db.sql, b);
      await completeBySql(db.sql, b.step);
      assert.equal(await second.sync.poll(), 1);
      await waitFor(() => receiver.verified().length === 6, { what: "6th" });
      await second.worker.idle();
      const ids = receiver.hits.map((h) =>
        (JSON.parse(h.body) as Payload).task_id
      );
      assert.equal(new Set(ids).size, 6, "each step exactly once");
    },
  );

  await t.step(
    "a mapping created after the completion is still delivered",
    async () => {
      await using db = await pg.newDb();
      await using store = await openTestKv();
      await using receiver = startReceiver();
      await using relay = startPgRelay(store.kv, db.sql);
      await relay.sync.poll();
      const rows = { ...agentIds("m", receiver.url), withMapping: false };
      await seedAgent(db.sql, rows);
      await completeBySql(db.sql, rows.step);
      await relay.sync.poll();
      assert.equal(receiver.hits.length, 0);
      await db.sql`insert into object_workflow_mapping (object_type, object_id,
      step_id, action) values ('media_buy', ${rows.mediaBuy}, ${rows.step}, 'create')`;
      assert.equal(await relay.sync.poll(), 1);
      await waitFor(() => receiver.verified().length === 1, {
        what: "webhook",
      });
      const causes = relay.logs().filter((l) => l.msg === "resolution")
        .map((l) => l.cause);
      assert.ok(causes.includes("no_mapping"));
      assert.ok(causes.includes("mapping_after_status_change"));
    },
  );

  await t.step(
    "duplicate config and mapping rows give one delivery per URL",
    async () => {
      await using db = await pg.newDb();
      await using store = await openTestKv();
      await using receiver = startReceiver();
      await using relay = startPgRelay(store.kv, db.sql);
      const rows = { ...agentIds("d", receiver.url), configs: 3, mappings: 2 };
      await seedAgent(db.sql, rows);
      await completeBySql(db.sql, rows.step);
      const answer = await relay.sync.processStep(rows.step, { via: "poll" });
      assert.equal(answer!.deliveries.length, 1);
      await waitFor(() => receiver.verified().length === 1, {
        what: "webhook",
      });
      await relay.worker.idle();
      assert.equal(receiver.hits.length, 1);
      const payload = JSON.parse(receiver.hits[0]!.body) as Payload;
      assert.deepEqual(payload.result, { media_buy_id: rows.mediaBuy });
      const causes = relay.logs().map((l) => l.cause);
      assert.ok(causes.includes("duplicate_configs"));
      assert.ok(causes.includes("duplicate_mappings"));
    },
  );

  await t.step(
    "mixed-case auth types: hmac_sha256 signs X-ADCP-Signature, bearer sends Authorization",
    async () => {
      await using db = await pg.newDb();
      await using store = await openTestKv();
      const secret = "hmac-secret-from-config-row-0123456789";
      await using hmacReceiver = startReceiver(undefined, {
        adcpSecret: secret,
      });
      await using bearerReceiver = startReceiver();
      await using relay = startPgRelay(store.kv, db.sql);
      const h = {
        ...agentIds("h", hmacReceiver.url),
        requestDataUrl: null,
        authType: "hmac_sha256",
        authToken: secret,
      };
      const b = {
        ...agentIds("b", bearerReceiver.url),
        requestDataUrl: null,
        authType: "bearer",
        authToken: "bearer-token-0123456789abcdef012345",
      };
      await seedAgent(db.sql, h);
      await seedAgent(db.sql, b);
      await completeBySql(db.sql, h.step);
      await completeBySql(db.sql, b.step);
      await relay.sync.processStep(h.step, { via: "poll" });
      await relay.sync.processStep(b.step, { via: "poll" });
      await waitFor(() => hmacReceiver.verified().length === 1, {
        what: "hmac",
      });
      await waitFor(() => bearerReceiver.verified().length === 1, {
        what: "bearer",
      });
      assert.match(
        hmacReceiver.hits[0]!.headers.get("x-adcp-signature")!,
        /^sha256=[0-9a-f]{64}$/,
      );
      assert.equal(
        bearerReceiver.hits[0]!.headers.get("authorization"),
        "Bearer bearer-token-0123456789abcdef012345",
      );
    },
  );

  await t.step("request_data's URL wins over the config row's", async () => {
    await using db = await pg.newDb();
    await using store = await openTestKv();
    await using fromRequest = startReceiver();
    await using fromConfig = startReceiver();
    await using relay = startPgRelay(store.kv, db.sql);
    const rows = {
      ...agentIds("u", fromConfig.url),
      requestDataUrl: fromRequest.url.replace("/123", "/from-request"),
    };
    await seedAgent(db.sql, rows);
    await completeBySql(db.sql, rows.step);
    const answer = await relay.sync.processStep(rows.step, { via: "poll" });
    assert.equal(answer!.deliveries[0]!.url, rows.requestDataUrl);
    await waitFor(() => fromRequest.verified().length === 1, { what: "hook" });
    await relay.worker.idle();
    assert.equal(fromConfig.hits.length, 0);
  });

  await t.step(
    "write-back: webhook_deliveries rows match the delivery",
    async () => {
      await using db = await pg.newDb();
      await using store = await openTestKv();
      let n = 0;
      await using receiver = startReceiver(() =>
        new Response("busy", { status: ++n === 1 ? 503 : 200 })
      );
      await using relay = startPgRelay(store.kv, db.sql);
      const rows = agentIds("w", receiver.url);
      await seedAgent(db.sql, rows);
      await completeBySql(db.sql, rows.step);
      const answer = await relay.sync.processStep(rows.step, { via: "poll" });
      const id = answer!.deliveries[0]!.id;
      await waitFor(async () => {
        const r = await relay.get(`/v1/deliveries/${id}`);
        return (await r.json()).status === "succeeded";
      }, { what: "success after a retry" });
      const deps = { kv: store.kv, source: relay.source, log: relay.log };
      assert.equal((await writeBackPass(deps)).written, 1);
      assert.equal(
        (await writeBackPass(deps)).written,
        0,
        "ended entries are forgotten",
      );
      const shown = await (await relay.get(`/v1/deliveries/${id}`)).json();
      const [row] = await db.sql`select delivery_id, tenant_id, webhook_url,
      payload::text as payload, object_id, status, attempts, response_code,
      last_error, (extract(epoch from delivered_at) * 1000)::float8 as delivered_ms
      from webhook_deliveries`;
      assert.equal(row!.delivery_id, id);
      assert.equal(row!.tenant_id, rows.tenant);
      assert.equal(row!.webhook_url, receiver.url);
      assert.deepEqual(JSON.parse(row!.payload), JSON.parse(shown.payload));
      assert.equal(row!.object_id, rows.mediaBuy);
      assert.equal(row!.status, "delivered");
      assert.equal(row!.attempts, 2);
      assert.equal(row!.response_code, 200);
      assert.equal(row!.last_error, null);
      assert.equal(
        Math.round(row!.delivered_ms),
        Date.parse(shown.delivered_at),
      );
    },
  );

  await t.step(
    "no webhook_deliveries table: skipped, said once, used once created",
    async () => {
      await using db = await pg.newDb({ webhookDeliveries: false });
      await using store = await openTestKv();
      await using receiver = startReceiver();
      await using relay = startPgRelay(store.kv, db.sql);
      for (const n of ["x1", "x2"]) {
        const rows = agentIds(n, receiver.url);
        await seedAgent(db.sql, rows);
        await completeBySql(db.sql, rows.step);
        await relay.sync.processStep(rows.step, { via: "poll" });
      }
      await waitFor(() => receiver.verified().length === 2, { what: "hooks" });
      const deps = { kv: store.kv, source: relay.source, log: relay.log };
      assert.equal((await writeBackPass(deps)).written, 0);
      assert.equal(await relay.sync.writeBackEnabled(), false);
      assert.equal(await relay.sync.poll(), 0);
      const said = relay.logs().filter((l) =>
        String(l.msg).startsWith("webhook_deliveries table absent")
      );
      assert.equal(said.length, 1);

      // Created while the relay runs: the next check finds it, no restart.
      await createWriteBackTable(db.sql);
      assert.equal(await relay.sync.writeBackEnabled(), true);
      const later = agentIds("x3", receiver.url);
      await seedAgent(db.sql, later);
      await completeBySql(db.sql, later.step);
      await relay.sync.processStep(later.step, { via: "poll" });
      await waitFor(() => receiver.verified().length === 3, { what: "x3" });
      await relay.worker.idle();
      assert.equal((await writeBackPass(deps)).written, 1);
      const [row] = await db.sql`select count(*)::int as n,
        min(tenant_id) as tenant from webhook_deliveries`;
      assert.deepEqual({ ...row }, { n: 1, tenant: later.tenant });
    },
  );
});
