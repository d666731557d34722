/**
 * Write-back: mirrors each Postgres-sourced delivery's outcome into the agent's own
 * `webhook_deliveries` table, so the agent's SQL sees what happened. Entries wait in
 * a KV index until their delivery ends and its final row is written.
 */
import * as keys from "./keys.ts";
import type { Logger } from "./log.ts";
import type { WriteBackEntry } from "./pg_sync.ts";
import type { StepSource, WriteBackRow } from "./source.ts";
import { readPayload } from "./store.ts";
import type { DeliveryRecord, DeliveryStatus } from "./types.ts";

/** How relay statuses are written to `webhook_deliveries.status`. */
export const WRITE_BACK_STATUS: Record<DeliveryStatus, string> = {
  pending: "pending",
  failed: "retrying",
  succeeded: "delivered",
  dead: "failed",
};

/**
 * Writes every changed delivery that waits for write-back, then forgets the ones
 * that have ended.
 *
 * @param deps KV, the source and a logger.
 * @param opts `limit` bounds one pass (default 500).
 * @returns How many rows were written.
 */
export async function writeBackPass(
  deps: { kv: Deno.Kv; source: StepSource; log: Logger },
  opts: { limit?: number } = {},
): Promise<number> {
  const entries: Deno.KvEntry<WriteBackEntry>[] = [];
  for await (
    const e of deps.kv.list<WriteBackEntry>({ prefix: keys.writeBackPrefix }, {
      limit: opts.limit ?? 500,
    })
  ) entries.push(e);
  let written = 0;
  for (const entry of entries) {
    const id = entry.key[entry.key.length - 1] as string;
    const record = (await deps.kv.get<DeliveryRecord>(keys.deliveryKey(id)))
      .value;
    if (!record || record.updated_at === entry.value.written_updated_at) {
      continue;
    }
    const row: WriteBackRow = {
      delivery_id: id,
      tenant_id: entry.value.tenant_id,
      webhook_url: record.url,
      payload: await readPayload(deps.kv, id),
      event_type: `task.${record.task_status}`,
      object_id: entry.value.object_id,
      status: WRITE_BACK_STATUS[record.status],
      attempts: record.attempts,
      last_attempt_at_ms: record.attempts > 0 ? record.updated_at : null,
      delivered_at_ms: record.delivered_at,
      last_error: record.last_error,
      response_code: record.last_status_code,
      created_at_ms: record.created_at,
    };
    await deps.source.writeBack([row]);
    written++;
    const ended = record.status === "succeeded" || record.status === "dead";
    const op = deps.kv.atomic().check(entry);
    if (ended) op.delete(entry.key);
    else {
      op.set(entry.key, {
        ...entry.value,
        written_updated_at: record.updated_at,
      });
    }
    if (!(await op.commit()).ok) {
      deps.log.warn("write-back entry changed meanwhile", { delivery_id: id });
    }
    deps.log.info("write-back", {
      trace_id: record.event_id,
      delivery_id: id,
      status: row.status,
    });
  }
  return written;
}
