/**
 * The sales agent's webhook-related tables, as its migrations leave them (see
 * `salesagent.md` §1): used by `deno task flow` and the tests to stand up a real copy.
 * The relay itself never creates these tables in the agent's database.
 */
import type { Sql } from "postgres";

/**
 * Creates tenants, principals, contexts, workflow_steps, object_workflow_mapping,
 * push_notification_configs, media_buys and, optionally, webhook_deliveries.
 *
 * @param sql A connection to an empty database.
 * @param opts `webhookDeliveries: false` leaves out the write-back table.
 * @example
 * ```ts
 * await createAgentTables(sql);
 * ```
 */
export async function createAgentTables(
  sql: Sql,
  opts: { webhookDeliveries?: boolean } = {},
): Promise<void> {
  await sql`create table tenants (
    tenant_id varchar(50) primary key, name varchar(200) not null,
    subdomain varchar(100) unique, is_active boolean default true,
    created_at timestamp not null default now(), updated_at timestamp not null default now())`;
  await sql`create table principals (
    tenant_id varchar(50) not null references tenants on delete cascade,
    principal_id varchar(50) not null, name varchar(200) not null,
    platform_mappings jsonb not null default '{}', access_token varchar(255) unique,
    created_at timestamp not null default now(), updated_at timestamp not null default now(),
    primary key (tenant_id, principal_id))`;
  await sql`create table contexts (
    context_id varchar(100) primary key,
    tenant_id varchar(50) not null references tenants on delete cascade,
    principal_id varchar(50) not null,
    conversation_history jsonb not null default '[]',
    created_at timestamp not null default now(),
    last_activity_at timestamp not null default now())`;
  await sql`create table workflow_steps (
    step_id varchar(100) primary key,
    context_id varchar(100) not null references contexts on delete cascade,
    step_type varchar(50) not null, tool_name varchar(100),
    request_data jsonb, response_data jsonb,
    status varchar(20) not null default 'pending', owner varchar(20) not null,
    assigned_to varchar(255), created_at timestamp default now(),
    completed_at timestamp, error_message text, transaction_details jsonb,
    comments jsonb not null default '[]')`;
  await sql`create index idx_workflow_steps_completed on workflow_steps (completed_at)`;
  await sql`create table object_workflow_mapping (
    id serial primary key, object_type varchar(50) not null,
    object_id varchar(100) not null,
    step_id varchar(100) not null references workflow_steps on delete cascade,
    action varchar(50) not null, created_at timestamp not null default now())`;
  await sql`create index idx_object_workflow_type_id on object_workflow_mapping (object_type, object_id)`;
  await sql`create index idx_object_workflow_step on object_workflow_mapping (step_id)`;
  await sql`create index idx_object_workflow_created on object_workflow_mapping (created_at)`;
  await sql`create table push_notification_configs (
    id varchar(50) primary key,
    tenant_id varchar(50) not null references tenants on delete cascade,
    principal_id varchar(50) not null, session_id varchar(100), url text not null,
    authentication_type varchar(50), authentication_token text,
    validation_token text, webhook_secret varchar(500),
    created_at timestamp not null default now(),
    updated_at timestamp not null default now(), is_active boolean,
    foreign key (tenant_id, principal_id) references principals on delete cascade)`;
  await sql`create table media_buys (
    media_buy_id varchar(100) primary key,
    tenant_id varchar(50) not null references tenants on delete cascade,
    principal_id varchar(50) not null, buyer_ref varchar(100),
    order_name varchar(255) not null, advertiser_name varchar(255) not null,
    budget numeric(15,2), currency varchar(3), start_date date, end_date date,
    status varchar(20) not null default 'draft', raw_request jsonb not null,
    created_at timestamp default now(), updated_at timestamp default now(),
    unique (tenant_id, principal_id, buyer_ref))`;
  if (opts.webhookDeliveries === false) return;
  await createWriteBackTable(sql);
}

/**
 * Creates the agent's `webhook_deliveries` table (the write-back target).
 *
 * @param sql A connection to the agent's database.
 */
export async function createWriteBackTable(sql: Sql): Promise<void> {
  await sql`create table webhook_deliveries (
    delivery_id varchar(100) primary key,
    tenant_id varchar(50) not null references tenants on delete cascade,
    webhook_url varchar(500) not null, payload jsonb not null,
    event_type varchar(100) not null, object_id varchar(100),
    status varchar(20) not null default 'pending', attempts integer not null default 0,
    last_attempt_at timestamp, delivered_at timestamp, last_error text,
    response_code integer, created_at timestamp not null default now())`;
}
