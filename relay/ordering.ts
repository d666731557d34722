/**
 * Per-task ordering: a later notification for a step (say `completed`) waits while an
 * earlier one for the same step and target URL (say `working`) is still open, and is
 * released the moment the earlier one ends.
 */
import { getDelivery, stepDeliveries, transition } from "./store.ts";
import { type DeliveryRecord, dueAt, isOpen } from "./types.ts";

const _open = (r: DeliveryRecord | null): r is DeliveryRecord =>
  r !== null && isOpen(r);

async function _siblings(
  kv: Deno.Kv,
  record: DeliveryRecord,
  side: "before" | "after",
): Promise<Deno.KvEntryMaybe<DeliveryRecord>[]> {
  const ids = (await stepDeliveries(kv, record.step_id)).filter((d) =>
    d.target_id === record.target_id &&
    (side === "before" ? d.id < record.id : d.id > record.id)
  );
  const out: Deno.KvEntryMaybe<DeliveryRecord>[] = [];
  for (const { id } of ids) out.push(await getDelivery(kv, id));
  return out;
}

/**
 * Finds the earliest still-open delivery created before `record` for the same step
 * and target.
 *
 * @param kv The store.
 * @param record The delivery about to be attempted.
 * @returns The earlier open delivery, if any.
 */
export async function earlierOpen(
  kv: Deno.Kv,
  record: DeliveryRecord,
): Promise<DeliveryRecord | undefined> {
  const before = await _siblings(kv, record, "before");
  return before.map((e) => e.value).find(_open);
}

/**
 * When `record` has ended, makes the next open delivery for the same step and target
 * due now instead of at its deferred time.
 *
 * @param deps KV, clock and whether wake-ups are enqueued.
 * @param record The delivery that just succeeded or died.
 * @returns The id made due, if any, for the caller to run.
 */
export async function releaseNext(
  deps: { kv: Deno.Kv; now: () => number; queue: boolean },
  record: DeliveryRecord,
): Promise<string | undefined> {
  const after = await _siblings(deps.kv, record, "after");
  const next = after.find((e) => _open(e.value));
  const value = next?.value;
  if (!next || !value || value.lease_until !== null) return undefined;
  const now = deps.now();
  if ((dueAt(value) ?? 0) <= now) return value.id;
  const due: DeliveryRecord = {
    ...value,
    next_attempt_at: now,
    updated_at: now,
  };
  const op = transition(deps.kv.atomic().check(next), value, due, {
    queue: deps.queue,
    now,
  });
  return (await op.commit()).ok ? value.id : undefined;
}
