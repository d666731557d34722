/**
 * The {@link StepSource} over postgres.js: explicit columns from the agent's tables,
 * times as epoch milliseconds, every row parsed with zod at the boundary.
 */
import type { Sql } from "postgres";
import { z } from "zod";
import type {
  ChangedStep,
  ConfigRow,
  MappingRow,
  StepChain,
  StepSource,
  WriteBackRow,
} from "../relay/source.ts";

const ms = z.number().nullable();
const json = z.unknown().transform((v) => {
  if (typeof v !== "string") return v ?? null;
  try {
    return JSON.parse(v) as unknown;
  } catch {
    return v;
  }
});
const Step = z.object({
  step_id: z.string(),
  context_id: z.string(),
  step_type: z.string(),
  tool_name: z.string().nullable(),
  status: z.string(),
  request_data: json,
  response_data: json,
  error_message: z.string().nullable(),
  created_at_ms: ms,
  completed_at_ms: ms,
});
const Mapping = z.object({
  id: z.number(),
  object_type: z.string(),
  object_id: z.string(),
  step_id: z.string(),
  action: z.string(),
  created_at_ms: z.number(),
});
const Context = z.object({
  context_id: z.string(),
  tenant_id: z.string(),
  principal_id: z.string(),
});
const Config = z.object({
  id: z.string(),
  tenant_id: z.string(),
  principal_id: z.string(),
  url: z.string(),
  authentication_type: z.string().nullable(),
  authentication_token: z.string().nullable(),
  validation_token: z.string().nullable(),
  webhook_secret: z.string().nullable(),
  is_active: z.boolean().nullable(),
  created_at_ms: z.number(),
});
const Changed = z.object({
  step_id: z.string(),
  status: z.string(),
  changed_at_ms: z.number(),
});

/**
 * Creates the source over one `sql` instance.
 *
 * @param sql The postgres.js instance from `createSql`.
 * @returns The source the sync loop and explain use.
 */
export function createStepSource(sql: Sql): StepSource {
  const mappings = (where: ReturnType<Sql>) =>
    sql`select id, object_type, object_id, step_id, action,
      (extract(epoch from created_at) * 1000)::float8 as created_at_ms
      from object_workflow_mapping where ${where} order by created_at, id`;
  return {
    async listChanged(after, limit): Promise<ChangedStep[]> {
      const since =
        sql`to_timestamp(${after.ms}::float8 / 1000) - interval '1 millisecond'`;
      const rows = await sql`
        select step_id, status, max(changed_at_ms) as changed_at_ms from (
          select step_id, status, (extract(epoch from completed_at) * 1000)::float8 as changed_at_ms
            from workflow_steps where completed_at >= ${since}
          union all
          select m.step_id, s.status, (extract(epoch from m.created_at) * 1000)::float8
            from object_workflow_mapping m join workflow_steps s on s.step_id = m.step_id
            where m.created_at >= ${since} and s.completed_at is not null
        ) c group by step_id, status
        having (max(changed_at_ms), step_id::text) > (${after.ms}::float8, ${after.stepId}::text)
        order by 3, 1 limit ${limit}::int`;
      return rows.map((r) => Changed.parse(r));
    },
    readChain(stepId) {
      return sql.begin("read only", async (tx): Promise<StepChain | null> => {
        const [row] = await tx`select step_id, context_id, step_type, tool_name,
          status, request_data, response_data, error_message,
          (extract(epoch from created_at) * 1000)::float8 as created_at_ms,
          (extract(epoch from completed_at) * 1000)::float8 as completed_at_ms
          from workflow_steps where step_id = ${stepId}`;
        if (!row) return null;
        const step = Step.parse(row);
        const maps =
          (await tx`select id, object_type, object_id, step_id, action,
          (extract(epoch from created_at) * 1000)::float8 as created_at_ms
          from object_workflow_mapping where step_id = ${stepId}
          order by created_at, id`).map((r) => Mapping.parse(r));
        const [ctx] = await tx`select context_id, tenant_id, principal_id
          from contexts where context_id = ${step.context_id}`;
        const context = ctx ? Context.parse(ctx) : null;
        const configs: ConfigRow[] = context
          ? (await tx`select id, tenant_id, principal_id, url, authentication_type,
              authentication_token, validation_token, webhook_secret, is_active,
              (extract(epoch from created_at) * 1000)::float8 as created_at_ms
              from push_notification_configs
              where tenant_id = ${context.tenant_id}
                and principal_id = ${context.principal_id}
              order by created_at, id`).map((r) => Config.parse(r))
          : [];
        return { step, mappings: maps, context, configs };
      });
    },
    async mappingsOf(objectType, objectId): Promise<MappingRow[]> {
      const rows = await mappings(
        sql`object_type = ${objectType} and object_id = ${objectId}`,
      );
      return rows.map((r) => Mapping.parse(r));
    },
    async nowMs() {
      const [row] =
        await sql`select (extract(epoch from now()) * 1000)::float8 as ms`;
      return z.number().parse(row?.ms);
    },
    async hasWriteBackTable() {
      const [row] =
        await sql`select to_regclass('webhook_deliveries') is not null as present`;
      return row?.present === true;
    },
    async writeBack(rows: WriteBackRow[]) {
      const at = (v: number | null) =>
        sql`to_timestamp(${v}::float8 / 1000)::timestamp`;
      for (const r of rows) {
        await sql`insert into webhook_deliveries (delivery_id, tenant_id,
            webhook_url, payload, event_type, object_id, status, attempts,
            last_attempt_at, delivered_at, last_error, response_code, created_at)
          values (${r.delivery_id}, ${r.tenant_id}, ${r.webhook_url},
            ${r.payload}::text::jsonb, ${r.event_type}, ${r.object_id}, ${r.status},
            ${r.attempts}::int, ${at(r.last_attempt_at_ms)},
            ${at(r.delivered_at_ms)}, ${r.last_error}, ${r.response_code}::int,
            ${at(r.created_at_ms)})
          on conflict (delivery_id) do update set status = excluded.status,
            attempts = excluded.attempts, last_attempt_at = excluded.last_attempt_at,
            delivered_at = excluded.delivered_at, last_error = excluded.last_error,
            response_code = excluded.response_code`;
      }
    },
  };
}
