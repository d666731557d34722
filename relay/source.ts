/**
 * What the relay reads from (and writes back to) the sales agent's database, as a
 * small interface: `db/source.ts` implements it over postgres.js, and the relay's
 * sync and explain code never sees `sql`.
 */

/** A `workflow_steps` row, times as epoch milliseconds (UTC). */
export interface StepRow {
  step_id: string;
  context_id: string;
  step_type: string;
  tool_name: string | null;
  status: string;
  request_data: unknown;
  response_data: unknown;
  error_message: string | null;
  created_at_ms: number | null;
  completed_at_ms: number | null;
}

/** An `object_workflow_mapping` row. */
export interface MappingRow {
  id: number;
  object_type: string;
  object_id: string;
  step_id: string;
  action: string;
  created_at_ms: number;
}

/** A `contexts` row: the only link from a step to its tenant and principal. */
export interface ContextRow {
  context_id: string;
  tenant_id: string;
  principal_id: string;
}

/** A `push_notification_configs` row (secrets included; never logged). */
export interface ConfigRow {
  id: string;
  tenant_id: string;
  principal_id: string;
  url: string;
  authentication_type: string | null;
  authentication_token: string | null;
  validation_token: string | null;
  webhook_secret: string | null;
  is_active: boolean | null;
  created_at_ms: number;
}

/** A step and every row the webhook decision depends on. */
export interface StepChain {
  step: StepRow;
  mappings: MappingRow[];
  context: ContextRow | null;
  /** Every config of the context's tenant and principal, active or not. */
  configs: ConfigRow[];
}

/** A step whose completion or mapping changed at `changed_at_ms`. */
export interface ChangedStep {
  step_id: string;
  status: string;
  changed_at_ms: number;
}

/** One row of the agent's `webhook_deliveries` table. */
export interface WriteBackRow {
  delivery_id: string;
  tenant_id: string;
  webhook_url: string;
  payload: string;
  event_type: string;
  object_id: string | null;
  status: string;
  attempts: number;
  last_attempt_at_ms: number | null;
  delivered_at_ms: number | null;
  last_error: string | null;
  response_code: number | null;
  created_at_ms: number;
}

/** The relay's view of the sales agent's database. */
export interface StepSource {
  /**
   * Lists completed steps whose completion or mapping changed after `after`, ordered
   * by (changed_at_ms, step_id).
   */
  listChanged(
    after: { ms: number; stepId: string },
    limit: number,
  ): Promise<ChangedStep[]>;
  /** Reads a step with its mappings, context and configs; null when the step is gone. */
  readChain(stepId: string): Promise<StepChain | null>;
  /** Every mapping row of an object, oldest first. */
  mappingsOf(objectType: string, objectId: string): Promise<MappingRow[]>;
  /** The database's clock, epoch milliseconds. */
  nowMs(): Promise<number>;
  /** Whether the agent's database has a `webhook_deliveries` table. */
  hasWriteBackTable(): Promise<boolean>;
  /** Inserts or updates `webhook_deliveries` rows by `delivery_id`. */
  writeBack(rows: WriteBackRow[]): Promise<void>;
}
