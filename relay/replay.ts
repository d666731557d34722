/** Manual replay: redeliver one delivery, or recover the dead ones of a time window. */
import { commitWrites, type GroupCommitter } from "./group_commit.ts";
import * as keys from "./keys.ts";
import { getDelivery, transition } from "./store.ts";
import type { DeliveryRecord } from "./types.ts";
import type { LineItem } from "./line.ts";
import { WriteSet } from "./write_set.ts";

/** Thrown when a delivery id is unknown. */
export class DeliveryNotFoundError extends Error {
  constructor(id: string) {
    super(`Cannot find delivery "${id}"`);
    this.name = "DeliveryNotFoundError";
  }
}

/** The most dead deliveries one recover call re-queues. */
export const RECOVER_LIMIT = 10_000;

/**
 * The record re-queued for a fresh cycle. An attempt in flight keeps its lease, so no
 * second request goes out beside it: its outcome commit (checked on the claim) is
 * superseded, and the worker holding the lease then makes the fresh cycle due at once
 * (or the sweeper does when the lease ends).
 */
function _fresh(record: DeliveryRecord, now: number): DeliveryRecord {
  const leased = record.lease_until !== null && record.lease_until > now;
  return {
    ...record,
    status: "pending",
    cycle: record.cycle + 1,
    cycle_attempts: 0,
    next_attempt_at: leased ? record.lease_until : now,
    lease_until: leased ? record.lease_until : null,
    dead_at: null,
    updated_at: now,
  };
}

/**
 * Starts a fresh attempt cycle for a delivery, due now (or, while an attempt is in
 * flight, once that attempt ends), with the same `webhook-id`.
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
 * Records re-queued per checked write: 10 checks and ~50 mutations, within every Deno
 * KV's limits (remote KV allows fewer checks per commit than local SQLite's 100; the
 * group committer merges chunks up to the local limits).
 */
export const RECOVER_CHUNK = 10;
const RECOVER_PAGE = 200;

/**
 * Re-queues every dead delivery that died within `[since, until]`, a chunk of
 * {@link RECOVER_CHUNK} records per checked commit and a page of chunks at once (so a
 * group committer can share commits). A chunk that fails its checks (a record changed
 * meanwhile) is retried one record at a time.
 *
 * The records are made due now with no queue wake-up: the caller hands the ids to
 * `worker.kickMany`, and the sweeper finds any that process does not reach (it
 * stopped) through the due index. A message per record would cost a dequeue, a
 * handler run and a record read each, for deliveries the line attempts anyway.
 *
 * @param deps KV, clock and an optional committer.
 * @param window Milliseconds since the epoch; `until` defaults to now.
 * @returns The deliveries re-queued, with their targets (at most
 *   {@link RECOVER_LIMIT}).
 */
export async function recoverDead(
  deps: { kv: Deno.Kv; now: () => number; committer?: GroupCommitter },
  window: { since: number; until?: number },
): Promise<LineItem[]> {
  const until = window.until ?? deps.now();
  const requeued: LineItem[] = [];
  const iter = deps.kv.list<string>(
    { prefix: keys.statusIndexPrefix("dead") },
    { batchSize: RECOVER_PAGE },
  );
  let page: string[] = [];
  const flush = async () => {
    const chunks: string[][] = [];
    for (let i = 0; i < page.length; i += RECOVER_CHUNK) {
      chunks.push(page.slice(i, i + RECOVER_CHUNK));
    }
    page = [];
    const done = await Promise.all(
      chunks.map((c) => _requeue(deps, c, window.since, until)),
    );
    for (const d of done) requeued.push(...d);
  };
  for await (const e of iter) {
    if (requeued.length + page.length >= RECOVER_LIMIT) break;
    page.push(e.value);
    if (page.length >= RECOVER_PAGE) await flush();
  }
  await flush();
  return requeued;
}

/** Re-queues the chunk's records that are dead within the window, in one commit. */
async function _requeue(
  deps: Parameters<typeof recoverDead>[0],
  chunk: string[],
  since: number,
  until: number,
): Promise<LineItem[]> {
  const entries = await deps.kv.getMany<DeliveryRecord[]>(
    chunk.map((id) => keys.deliveryKey(id)),
  );
  const now = deps.now();
  const picked = entries.filter((e): e is Deno.KvEntry<DeliveryRecord> => {
    const r = e.value;
    return r !== null && r.status === "dead" && r.dead_at !== null &&
      r.dead_at >= since && r.dead_at <= until;
  });
  const op = new WriteSet();
  for (const e of picked) {
    transition(op.check(e), e.value, _fresh(e.value, now), {
      queue: false,
      now,
    });
  }
  if (picked.length === 0) return [];
  const item = (r: DeliveryRecord) => ({ id: r.id, target_id: r.target_id });
  if ((await commitWrites(deps, op)).ok) {
    return picked.map((e) => item(e.value));
  }
  const one = await Promise.all(picked.map(async (e) => {
    const single = transition(
      deps.kv.atomic().check(e),
      e.value,
      _fresh(e.value, now),
      { queue: false, now },
    );
    return (await single.commit()).ok ? item(e.value) : undefined;
  }));
  return one.filter((i) => i !== undefined);
}
