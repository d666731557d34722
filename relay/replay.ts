/** Manual replay: redeliver one delivery, or recover the dead ones of a time window. */
import * as keys from "./keys.ts";
import { getDelivery, transition } from "./store.ts";
import type { DeliveryRecord } from "./types.ts";

/** Thrown when a delivery id is unknown. */
export class DeliveryNotFoundError extends Error {
  constructor(id: string) {
    super(`Cannot find delivery "${id}"`);
    this.name = "DeliveryNotFoundError";
  }
}

/** The most dead deliveries one recover call re-queues. */
export const RECOVER_LIMIT = 10_000;

function _fresh(record: DeliveryRecord, now: number): DeliveryRecord {
  return {
    ...record,
    status: "pending",
    cycle: record.cycle + 1,
    cycle_attempts: 0,
    next_attempt_at: now,
    lease_until: null,
    dead_at: null,
    updated_at: now,
  };
}

/**
 * Starts a fresh attempt cycle for a delivery, due now, with the same `webhook-id`.
 *
 * @param deps KV, clock and whether wake-ups are enqueued.
 * @param id The delivery id.
 * @returns The record as re-queued.
 * @throws {DeliveryNotFoundError} When no such delivery exists.
 */
export async function redeliver(
  deps: { kv: Deno.Kv; now: () => number; queue: boolean },
  id: string,
): Promise<DeliveryRecord> {
  for (;;) {
    const entry = await getDelivery(deps.kv, id);
    if (!entry.value) throw new DeliveryNotFoundError(id);
    const now = deps.now();
    const next = _fresh(entry.value, now);
    const op = transition(deps.kv.atomic().check(entry), entry.value, next, {
      queue: deps.queue,
      now,
    });
    if ((await op.commit()).ok) return next;
  }
}

/**
 * Re-queues every dead delivery that died within `[since, until]`.
 *
 * @param deps KV, clock and whether wake-ups are enqueued.
 * @param window Milliseconds since the epoch; `until` defaults to now.
 * @returns The ids re-queued (at most {@link RECOVER_LIMIT}).
 */
export async function recoverDead(
  deps: { kv: Deno.Kv; now: () => number; queue: boolean },
  window: { since: number; until?: number },
): Promise<string[]> {
  const until = window.until ?? deps.now();
  const ids: string[] = [];
  const iter = deps.kv.list<string>({ prefix: keys.statusIndexPrefix("dead") });
  for await (const e of iter) {
    if (ids.length >= RECOVER_LIMIT) break;
    const entry = await getDelivery(deps.kv, e.value);
    const r = entry.value;
    if (!r || r.status !== "dead" || r.dead_at === null) continue;
    if (r.dead_at < window.since || r.dead_at > until) continue;
    const now = deps.now();
    const op = transition(deps.kv.atomic().check(entry), r, _fresh(r, now), {
      queue: deps.queue,
      now,
    });
    if ((await op.commit()).ok) ids.push(r.id);
  }
  return ids;
}
