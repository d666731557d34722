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
import { type DeliveryRecord, type DeliveryStatus, isOpen } from "./types.ts";

/** How relay statuses are written to `webhook_deliveries.status`. */
export const WRITE_BACK_STATUS: Record<DeliveryStatus, string> = {
  pending: "pending",
  failed: "retrying",
  succeeded: "delivered",
  dead: "failed",
};

/** Where a write-back pass stopped, and what it did. */
export interface WriteBackProgress {
  /** Rows written. */
  written: number;
  /** Entries dropped because their delivery record is gone. */
  dropped: number;
  /** The first row Postgres refused, if any (the pass stops there). */
  error?: string;
  /** Where the next pass starts; `""` means from the beginning. */
  cursor: string;
}

/**
 * Writes the changed deliveries of one page of the write-back index, forgets the
 * ones that have ended or whose delivery is gone, and says where the next page
 * starts, so passes walk the whole index however many entries wait. A row Postgres
 * refuses ends the pass after that entry: it is retried when the walk comes round.
 *
 * @param deps KV, the source and a logger.
 * @param opts `limit` bounds one pass (default 500); `cursor` continues a walk.
 * @returns What was done and the next cursor.
 */
export async function writeBackPass(
  deps: { kv: Deno.Kv; source: StepSource; log: Logger },
  opts: { limit?: number; cursor?: string } = {},
): Promise<WriteBackProgress> {
  const limit = opts.limit ?? 500;
  const iter = deps.kv.list<WriteBackEntry>({ prefix: keys.writeBackPrefix }, {
    limit,
    cursor: opts.cursor || undefined,
  });
  const done: WriteBackProgress = { written: 0, dropped: 0, cursor: "" };
  let seen = 0;
  for await (const entry of iter) {
    seen++;
    const id = entry.key[entry.key.length - 1] as string;
    const record = (await deps.kv.get<DeliveryRecord>(keys.deliveryKey(id)))
      .value;
    if (!record) {
      const res = await deps.kv.atomic().check(entry).delete(entry.key)
        .commit();
      if (res.ok) done.dropped++;
      continue;
    }
    if (record.updated_at === entry.value.written_updated_at) continue;
    const row = _row(id, entry.value, record, await readPayload(deps.kv, id));
    try {
      await deps.source.writeBack([row]);
    } catch (err) {
      done.error = String(err);
      deps.log.warn("write-back failed; retried on a later pass", {
        trace_id: record.event_id,
        delivery_id: id,
        error: done.error,
      });
      done.cursor = iter.cursor;
      return done;
    }
    done.written++;
    const ended = !isOpen(record);
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
  done.cursor = seen < limit ? "" : iter.cursor;
  return done;
}

function _row(
  id: string,
  entry: WriteBackEntry,
  record: DeliveryRecord,
  payload: string,
): WriteBackRow {
  return {
    delivery_id: id,
    tenant_id: entry.tenant_id,
    webhook_url: record.url,
    payload,
    event_type: `task.${record.task_status}`,
    object_id: entry.object_id,
    status: WRITE_BACK_STATUS[record.status],
    attempts: record.attempts,
    last_attempt_at_ms: record.attempts > 0 ? record.updated_at : null,
    delivered_at_ms: record.delivered_at,
    last_error: record.last_error,
    response_code: record.last_status_code,
    created_at_ms: record.created_at,
  };
}
