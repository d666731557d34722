/**
 * KV I/O for deliveries: records, payloads, attempts and the indexes that must move
 * with every state change. Functions take `kv` (or an atomic operation) first.
 */
import type { BatchGet } from "./batch_get.ts";
import * as keys from "./keys.ts";
import type { DeliverMessage } from "./queue.ts";
import type { AtomicWriter } from "./write_set.ts";
import {
  type AttemptRecord,
  type DeliveryRecord,
  type DeliveryStatus,
  dueAt,
  isOpen,
} from "./types.ts";

const CHUNK = 60_000;
/**
 * Deno KV refuses a queue delay over 30 days (the whole atomic fails). A later due
 * time still gets its due index entry; its wake-up comes at 30 days and re-checks.
 */
export const MAX_WAKE_DELAY_MS = 30 * 24 * 3600 * 1000;
const _encoder = new TextEncoder();
const _decoder = new TextDecoder();
const _isOpen = (r: DeliveryRecord | null) => r !== null && isOpen(r);

/**
 * Adds to `op` every mutation that moves a delivery from `before` to `after`: the
 * record, its due and status index entries, the open-deliveries counter and, when a
 * queue is used, a wake-up message at the new due time. A lease's end gets no message:
 * the process holding it settles it, and should that process die, the sweeper finds
 * the lease's due entry once it ends (a message would cost two queue writes per
 * attempt, for a case the sweeper already covers).
 *
 * @param op The atomic operation (or write set) to extend; the caller checks and
 *   commits it.
 * @param before The record as read (null when creating).
 * @param after The new record.
 * @param opts `queue` to enqueue wake-ups; `now` to compute their delay (at most
 *   {@link MAX_WAKE_DELAY_MS}).
 */
export function transition<Op extends AtomicWriter>(
  op: Op,
  before: DeliveryRecord | null,
  after: DeliveryRecord,
  opts: { queue: boolean; now: number },
): Op {
  op.set(keys.deliveryKey(after.id), after);
  const [from, to] = [before ? dueAt(before) : null, dueAt(after)];
  if (from !== to) {
    if (from !== null) op.delete(keys.dueKey(from, after.id));
    if (to !== null) {
      op.set(keys.dueKey(to, after.id), after.id);
      if (opts.queue && after.lease_until === null) {
        const msg: DeliverMessage = { type: "deliver", v: 1, id: after.id };
        const delay = Math.min(MAX_WAKE_DELAY_MS, Math.max(0, to - opts.now));
        op.enqueue(msg, { delay });
      }
    }
  }
  if (before?.status !== after.status) {
    if (before) op.delete(keys.statusIndexKey(before.status, after.id));
    op.set(keys.statusIndexKey(after.status, after.id), after.id);
  }
  const delta = Number(_isOpen(after)) - Number(_isOpen(before));
  if (delta !== 0) {
    op.sum(keys.openCountKey, delta > 0 ? 1n : (1n << 64n) - 1n);
  }
  return op;
}

/**
 * Adds a new delivery, its payload and its lookup indexes to `op`.
 *
 * @param op The atomic operation to extend.
 * @param record The new record.
 * @param payload The exact body to send.
 * @param opts As for {@link transition}.
 */
export function create<Op extends AtomicWriter>(
  op: Op,
  record: DeliveryRecord,
  payload: string,
  opts: { queue: boolean; now: number },
): Op {
  const bytes = _encoder.encode(payload);
  for (let i = 0; i * CHUNK < bytes.length; i++) {
    op.set(
      keys.payloadKey(record.id, i),
      bytes.subarray(i * CHUNK, (i + 1) * CHUNK),
    );
  }
  for (const o of record.objects) {
    op.set(keys.objectIndexKey(o.object_id, record.id), record.id);
  }
  return transition(op, null, record, opts);
}

/**
 * Reads a delivery's stored payload.
 *
 * @param kv The store.
 * @param id The delivery id.
 * @returns The exact body that is signed and sent.
 */
export async function readPayload(kv: Deno.Kv, id: string): Promise<string> {
  const parts: Uint8Array[] = [];
  for await (
    const e of kv.list<Uint8Array>({ prefix: keys.payloadPrefix(id) })
  ) {
    parts.push(e.value);
  }
  const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  parts.reduce((at, p) => (all.set(p, at), at + p.length), 0);
  return _decoder.decode(all);
}

/**
 * Reads a delivery's payload through a coalescing reader: its first chunk shares a
 * `getMany` with other reads; a payload longer than one chunk is listed whole.
 *
 * @param get The coalescing reader.
 * @param kv The store, for payloads over one chunk.
 * @param id The delivery id.
 * @returns The exact body that is signed and sent.
 */
export async function readPayloadVia(
  get: BatchGet<Uint8Array>,
  kv: Deno.Kv,
  id: string,
): Promise<string> {
  const first = await get(keys.payloadKey(id, 0));
  if (first.value && first.value.length < CHUNK) {
    return _decoder.decode(first.value);
  }
  return await readPayload(kv, id);
}

/**
 * Reads a delivery.
 *
 * @param kv The store.
 * @param id The delivery id.
 * @returns The entry; `value` is null when unknown.
 */
export function getDelivery(
  kv: Deno.Kv,
  id: string,
): Promise<Deno.KvEntryMaybe<DeliveryRecord>> {
  return kv.get<DeliveryRecord>(keys.deliveryKey(id));
}

/**
 * Lists a delivery's attempts, oldest first.
 *
 * @param kv The store.
 * @param id The delivery id.
 * @returns Every attempt recorded.
 */
export async function listAttempts(
  kv: Deno.Kv,
  id: string,
): Promise<AttemptRecord[]> {
  const out: AttemptRecord[] = [];
  for await (
    const e of kv.list<AttemptRecord>({ prefix: keys.attemptsPrefix(id) })
  ) {
    out.push(e.value);
  }
  return out;
}

/** Filters for {@link listDeliveries}. */
export interface ListFilter {
  object_id?: string;
  step_id?: string;
  status?: DeliveryStatus;
  limit: number;
  /** The last id of the previous page. */
  cursor?: string;
}

/**
 * Lists deliveries newest first, through the narrowest index the filter allows.
 *
 * @param kv The store.
 * @param filter Object, step and status filters, page size and cursor.
 * @returns One page and the cursor of the next, if any.
 */
export async function listDeliveries(
  kv: Deno.Kv,
  filter: ListFilter,
): Promise<{ items: DeliveryRecord[]; next_cursor: string | null }> {
  const found = filter.object_id === undefined && filter.step_id !== undefined
    ? _byStep(kv, filter.step_id, filter.cursor)
    : _byIndex(
      kv,
      filter.object_id !== undefined
        ? keys.objectIndexPrefix(filter.object_id)
        : filter.status !== undefined
        ? keys.statusIndexPrefix(filter.status)
        : keys.deliveriesPrefix,
      filter.cursor,
    );
  const items: DeliveryRecord[] = [];
  for await (const record of found) {
    if (!record || !_matches(record, filter)) continue;
    items.push(record);
    if (items.length > filter.limit) break;
  }
  const more = items.length > filter.limit;
  if (more) items.pop();
  return { items, next_cursor: more ? items[items.length - 1]!.id : null };
}

/** Records newest first through an index keyed by id (or the records themselves). */
async function* _byIndex(
  kv: Deno.Kv,
  prefix: readonly string[],
  cursor: string | undefined,
): AsyncGenerator<DeliveryRecord | null> {
  const selector: Deno.KvListSelector = cursor
    ? { prefix, end: [...prefix, cursor] }
    : { prefix };
  for await (const e of kv.list(selector, { reverse: true, batchSize: 100 })) {
    const id = e.key[e.key.length - 1] as string;
    yield prefix === keys.deliveriesPrefix
      ? e.value as DeliveryRecord
      : (await getDelivery(kv, id)).value;
  }
}

/** A step's records newest first, found through its dedupe keys. */
async function* _byStep(
  kv: Deno.Kv,
  stepId: string,
  cursor: string | undefined,
): AsyncGenerator<DeliveryRecord | null> {
  const ids = (await stepDeliveries(kv, stepId)).map((d) => d.id).reverse();
  for (const id of ids) {
    if (cursor === undefined || id < cursor) {
      yield (await getDelivery(kv, id)).value;
    }
  }
}

/**
 * Every delivery made for a step, read from its dedupe keys (one per task status and
 * target, made with the delivery), without reading the deliveries.
 *
 * @param kv The store.
 * @param stepId The workflow step.
 * @returns Ids and targets, oldest first.
 */
export async function stepDeliveries(
  kv: Deno.Kv,
  stepId: string,
): Promise<{ id: string; target_id: string }[]> {
  const out: { id: string; target_id: string }[] = [];
  for await (
    const e of kv.list<string>({ prefix: keys.dedupePrefix(stepId) })
  ) {
    out.push({ id: e.value, target_id: String(e.key[e.key.length - 1]) });
  }
  return out.sort((a, b) => a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

function _matches(r: DeliveryRecord, f: ListFilter): boolean {
  return (f.status === undefined || r.status === f.status) &&
    (f.step_id === undefined || r.step_id === f.step_id) &&
    (f.object_id === undefined ||
      r.objects.some((o) => o.object_id === f.object_id));
}

/**
 * Counts deliveries not yet succeeded or dead.
 *
 * @param kv The store.
 * @returns The open count kept beside the records.
 */
export async function openCount(kv: Deno.Kv): Promise<number> {
  const entry = await kv.get<Deno.KvU64>(keys.openCountKey);
  return entry.value ? Number(entry.value.value) : 0;
}
