/**
 * Real PostgreSQL for tests: `DATABASE_URL` when set, else a throwaway cluster
 * (initdb/pg_ctl). Each test gets a fresh database with the agent's tables. A missing
 * Postgres fails the test; it is never skipped.
 */
import type { Sql } from "postgres";
import { createAgentTables } from "../db/agent_schema.ts";
import { createSql } from "../db/client.ts";
import { type Cluster, startCluster } from "../db/cluster.ts";
import { createStepSource } from "../db/source.ts";
import { explainObject } from "../relay/explain.ts";
import { createPgSync, type PgSync } from "../relay/pg_sync.ts";
import type { StepSource } from "../relay/source.ts";
import { startTestRelay } from "./_helpers.ts";

/** A server to make databases on; dispose stops a cluster it started. */
export async function startTestPg(
  opts: { ownCluster?: boolean } = {},
): Promise<
  {
    url: string;
    cluster?: Cluster;
    newDb(o?: { webhookDeliveries?: boolean }): Promise<TestDb>;
  } & AsyncDisposable
> {
  const given = Deno.env.get("DATABASE_URL");
  const cluster = given && !opts.ownCluster ? undefined : await startCluster();
  const url = cluster?.url ?? given!;
  const admin = createSql(url, { max: 1 });
  return {
    url,
    cluster,
    async newDb(o = {}) {
      const name = `relay_t_${crypto.randomUUID().replaceAll("-", "")}`;
      await admin`create database ${admin(name)}`;
      const dbUrl = new URL(url);
      dbUrl.pathname = `/${name}`;
      const sql = createSql(dbUrl.href, { applicationName: "relay-test" });
      await createAgentTables(sql, o);
      return {
        sql,
        url: dbUrl.href,
        async [Symbol.asyncDispose]() {
          await sql.end({ timeout: 1 });
          await admin`drop database if exists ${admin(name)} with (force)`
            .catch(() => {});
        },
      };
    },
    async [Symbol.asyncDispose]() {
      await admin.end({ timeout: 1 });
      await cluster?.[Symbol.asyncDispose]();
    },
  };
}

/** A fresh database holding the agent's tables. */
export interface TestDb extends AsyncDisposable {
  sql: Sql;
  url: string;
}

/** A test relay with the sales agent sync wired as `main.ts` wires it. */
export function startPgRelay(
  kv: Deno.Kv,
  sql: Sql,
  opts: {
    env?: Record<string, string>;
    nullIsActive?: boolean;
    allowPrivate?: boolean;
  } = {},
) {
  const source: StepSource = createStepSource(sql);
  const resolveOpts = {
    nullIsActive: opts.nullIsActive ?? false,
    allowPrivate: opts.allowPrivate ?? true,
  };
  const relay = startTestRelay(kv, {
    env: opts.env,
    explain: (type, id) =>
      explainObject({ kv, source, ...resolveOpts }, type, id),
  });
  const sync: PgSync = createPgSync({
    kv,
    source,
    now: Date.now,
    log: relay.log,
    metrics: relay.metrics,
    queue: true,
    worker: relay.worker,
    overlapMs: 2000,
    pageSize: 3,
    ...resolveOpts,
  });
  return Object.assign(relay, { sync, source });
}

/** Ids and values for one media buy's rows; every field can be overridden. */
export interface AgentRows {
  tenant: string;
  principal: string;
  context: string;
  step: string;
  mediaBuy: string;
  url: string;
  requestDataUrl?: string | null;
  authType?: string | null;
  authToken?: string | null;
  isActive?: boolean | null;
  configs?: number;
  mappings?: number;
  withContext?: boolean;
  withMapping?: boolean;
  status?: string;
}

/**
 * Inserts a tenant, principal, context, a `working` step, its mapping(s) and config
 * row(s), the way `create_media_buy` leaves them.
 */
export async function seedAgent(sql: Sql, rows: AgentRows): Promise<void> {
  const ctx = rows.withContext === false ? "ctx_missing" : rows.context;
  await sql`insert into tenants (tenant_id, name) values (${rows.tenant}, 'T')
    on conflict do nothing`;
  await sql`insert into principals (tenant_id, principal_id, name)
    values (${rows.tenant}, ${rows.principal}, 'P') on conflict do nothing`;
  if (rows.withContext === false) {
    // A schema without the FK (e.g. hand-made or partly migrated) lets a step
    // point at a context that does not exist.
    await sql`alter table workflow_steps
      drop constraint if exists workflow_steps_context_id_fkey`;
  } else {
    await sql`insert into contexts (context_id, tenant_id, principal_id)
      values (${ctx}, ${rows.tenant}, ${rows.principal})`;
  }
  const rd = rows.requestDataUrl === null ? {} : {
    protocol: "mcp",
    push_notification_config: { url: rows.requestDataUrl ?? rows.url },
  };
  await sql`insert into workflow_steps (step_id, context_id, step_type, tool_name,
      request_data, status, owner)
    values (${rows.step}, ${ctx}, 'media_buy_creation', 'create_media_buy',
      ${JSON.stringify(rd)}::jsonb, ${rows.status ?? "working"}, 'principal')`;
  if (rows.withMapping !== false) {
    for (let i = 0; i < (rows.mappings ?? 1); i++) {
      await sql`insert into object_workflow_mapping (object_type, object_id,
          step_id, action) values ('media_buy', ${rows.mediaBuy}, ${rows.step}, 'create')`;
    }
  }
  for (let i = 0; i < (rows.configs ?? 1); i++) {
    await sql`insert into push_notification_configs (id, tenant_id,
        principal_id, url, authentication_type, authentication_token, is_active)
      values (${`pnc_${rows.step}_${i}`}, ${rows.tenant}, ${rows.principal},
        ${rows.url}, ${rows.authType ?? null}, ${rows.authToken ?? null},
        ${rows.isActive === undefined ? true : rows.isActive}::boolean)`;
  }
}

/** Completes a step with a plain SQL UPDATE, as raw SQL or an admin page would. */
export async function completeBySql(
  sql: Sql,
  stepId: string,
  status = "completed",
): Promise<void> {
  await sql`update workflow_steps set status = ${status}, completed_at = now()
    where step_id = ${stepId}`;
}

/** Unique ids for one test's rows. */
export function agentIds(n: string, url: string): AgentRows {
  return {
    tenant: `tenant_${n}`,
    principal: `principal_${n}`,
    context: `ctx_${n}`,
    step: `step_${n}`,
    mediaBuy: `mb_${n}`,
    url,
  };
}
