/**
 * `deno task flow`: the bug report's test, runnable against a real Postgres.
 *
 * Creates the sales agent's tables in a fresh database (on `DATABASE_URL`'s server, or
 * on a throwaway cluster it starts), runs the relay (`main.ts dev`) beside it, starts
 * a verifying receiver on port 3001 (`FLOW_RECEIVER_PORT`) at
 * `/webhooks/creative-status/…`, inserts a media buy with its step, mapping, context
 * and config, completes the step with a plain SQL UPDATE, and prints the report's
 * eight steps with ✅/❌ and timings. Exits 0 only when the webhook arrived verified.
 * With `RELAY_PG_MODE=notify` it installs the trigger in its database first.
 */
import { createAgentTables } from "../db/agent_schema.ts";
import { createSql } from "../db/client.ts";
import { type Cluster, startCluster } from "../db/cluster.ts";
import { installTrigger } from "../db/notify.ts";
import { verifyWebhook } from "../receiver/verify.ts";

const t0 = performance.now();
const results: boolean[] = [];
function report(n: number, what: string, ok: boolean, note = "") {
  results.push(ok);
  const ms = (performance.now() - t0).toFixed(0).padStart(6);
  _out(
    `${ok ? "✅" : "❌"} ${n}. ${what} (${ms} ms)${note ? `: ${note}` : ""}`,
  );
}
function _out(line: string) {
  // deno-lint-ignore no-console
  console.log(line);
}

const secretBytes = crypto.getRandomValues(new Uint8Array(32));
const secret = `whsec_${btoa(String.fromCharCode(...secretBytes))}`;
const id = crypto.randomUUID().slice(0, 8);
const [mediaBuy, step, ctx] = [`buy_TEST-${id}`, `step_${id}`, `ctx_${id}`];
const port = Number(Deno.env.get("FLOW_RECEIVER_PORT") ?? 3001);

let cluster: Cluster | undefined;
const serverUrl = Deno.env.get("DATABASE_URL") ??
  (cluster = await startCluster()).url;
const admin = createSql(serverUrl, { applicationName: "relay-flow", max: 1 });
const dbName = `relay_flow_${id}`;
await admin`create database ${admin(dbName)}`;
const dbUrl = new URL(serverUrl);
dbUrl.pathname = `/${dbName}`;
const sql = createSql(dbUrl.href, { applicationName: "relay-flow" });
const kvDir = await Deno.makeTempDir({ prefix: "relay-flow-" });

const arrived = Promise.withResolvers<Record<string, unknown>>();
const receiver = Deno.serve(
  { hostname: "127.0.0.1", port, onListen() {} },
  async (req) => {
    const body = await req.text();
    try {
      const hook = verifyWebhook(body, req.headers, { secrets: [secret] });
      const payload = hook.payload as Record<string, unknown>;
      if (payload.status === "completed" || payload.status === "failed") {
        arrived.resolve(payload);
      } else _out(`   interim webhook received: ${payload.status}`);
      return new Response("ok");
    } catch (err) {
      _out(`   receiver rejected a request: ${err}`);
      return new Response("bad signature", { status: 401 });
    }
  },
);
const hookUrl =
  `http://127.0.0.1:${receiver.addr.port}/webhooks/creative-status/123/creative_${id}`;

const relay = new Deno.Command(Deno.execPath(), {
  args: ["run", "-A", "main.ts", "dev"],
  env: {
    PORT: "0",
    DATABASE_URL: dbUrl.href,
    RELAY_KV_PATH: `${kvDir}/kv.sqlite3`,
    RELAY_SIGNING_SECRET: secret,
    RELAY_PG_POLL_MS: "200",
    NO_COLOR: "1",
  },
  stdout: "piped",
  stderr: "inherit",
}).spawn();
const logs: Record<string, unknown>[] = [];
const listening = Promise.withResolvers<string>();
(async () => {
  let buf = "";
  for await (const chunk of relay.stdout.pipeThrough(new TextDecoderStream())) {
    buf += chunk;
    const lines = buf.split("\n");
    buf = lines.pop()!;
    for (const line of lines) {
      const parsed = JSON.parse(line);
      logs.push(parsed);
      if (parsed.msg === "relay listening") listening.resolve(parsed.url);
    }
  }
})();

async function until<T>(fn: () => T | Promise<T>, ms: number) {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    const v = await fn();
    if (v) return v;
    await new Promise((r) => setTimeout(r, 20));
  }
  return undefined;
}

let code = 1;
try {
  await createAgentTables(sql);
  const mode = Deno.env.get("RELAY_PG_MODE") ?? "poll";
  if (mode === "notify") await installTrigger(sql);
  _out(`relay sync mode: ${mode}`);
  const relayUrl = await listening.promise;
  await until(
    () => logs.some((l) => l.msg === "pg sync cursor initialised"),
    5000,
  );

  const pnc = { url: hookUrl, authentication: null };
  await sql`insert into tenants (tenant_id, name) values ('default', 'Default')`;
  await sql`insert into principals (tenant_id, principal_id, name)
    values ('default', 'activation_api', 'Activation API')`;
  await sql`insert into contexts (context_id, tenant_id, principal_id)
    values (${ctx}, 'default', 'activation_api')`;
  await sql`insert into workflow_steps (step_id, context_id, step_type, tool_name,
      request_data, status, owner)
    values (${step}, ${ctx}, 'media_buy_creation', 'create_media_buy',
      ${
    JSON.stringify({ protocol: "mcp", push_notification_config: pnc })
  }::jsonb,
      'working', 'principal')`;
  await sql`insert into push_notification_configs (id, tenant_id, principal_id,
      url, is_active) values (${`mcp_${id}`}, 'default', 'activation_api',
      ${hookUrl}, true)`;
  await sql`insert into media_buys (media_buy_id, tenant_id, principal_id,
      buyer_ref, order_name, advertiser_name, status, raw_request)
    values (${mediaBuy}, 'default', 'activation_api', ${`ref_${id}`}, 'Flow',
      'Flow', 'pending_approval',
      ${JSON.stringify({ push_notification_config: pnc })}::jsonb)`;
  report(1, "Create media buy with webhook_url", true, hookUrl);
  const [buy] =
    await sql`select status from media_buys where media_buy_id = ${mediaBuy}`;
  report(2, "Media buy created successfully", !!buy, mediaBuy);
  await sql`insert into object_workflow_mapping (object_type, object_id,
    step_id, action) values ('media_buy', ${mediaBuy}, ${step}, 'create')`;
  report(3, "Workflow mapping inserted", true, "action='create'");
  await sql`update workflow_steps set status = 'completed', completed_at = now()
    where step_id = ${step}`;
  report(4, "Workflow step completes (plain SQL UPDATE)", true, step);

  const resolved = await until(
    () =>
      logs.find((l) =>
        l.msg === "step resolved" && l.step_id === step &&
        (l.deliveries as unknown[]).length > 0
      ),
    10_000,
  );
  report(
    5,
    "Push notification service triggers",
    !!resolved,
    resolved ? `trace ${resolved.trace_id}` : "no delivery planned",
  );
  const attempt = await until(
    () =>
      logs.find((l) =>
        l.msg === "attempt" && l.trace_id === resolved?.trace_id
      ),
    10_000,
  );
  report(
    6,
    "HTTP POST sent to webhook_url",
    !!attempt,
    attempt ? `HTTP ${attempt.status_code ?? attempt.error}` : "no attempt",
  );
  const payload = await Promise.race([
    arrived.promise,
    new Promise<undefined>((r) => setTimeout(() => r(undefined), 10_000)),
  ]);
  report(
    7,
    "Activation API receives webhook (signature verified)",
    !!payload,
    payload
      ? `task_id ${payload.task_id}, status ${payload.status}`
      : "timed out",
  );
  report(
    8,
    "Action marked as completed",
    payload?.status === "completed" && payload.task_id === step,
  );
  const explain = await fetch(`${relayUrl}/v1/explain/media_buy/${mediaBuy}`);
  _out(`\nexplain: ${(await explain.json()).verdict}`);
  code = results.every(Boolean) ? 0 : 1;
} catch (err) {
  _out(`❌ flow aborted: ${err}`);
} finally {
  relay.kill("SIGTERM");
  await relay.status;
  await receiver.shutdown();
  await sql.end({ timeout: 2 });
  await admin`drop database if exists ${admin(dbName)} with (force)`.catch(
    () => {},
  );
  await admin.end({ timeout: 2 });
  await cluster?.[Symbol.asyncDispose]();
  await Deno.remove(kvDir, { recursive: true });
}
Deno.exit(code);
