/**
 * Step updates that arrived before any object was mapped to their step. The sales
 * agent can complete a step before it inserts the mapping (seed report, prebid #1378);
 * the update is kept here so that the mapping, when it comes, still gets its webhook.
 */
import type { StepUpdated } from "./intake.ts";
import * as keys from "./keys.ts";
import type { AtomicWriter } from "./write_set.ts";

/** How long an unmapped update waits for its mapping. */
export const PENDING_UPDATE_TTL_MS = 7 * 24 * 3600 * 1000;
const MAX_BYTES = 60_000;

/** An update waiting for a mapping, with the event that brought it. */
export interface PendingUpdate {
  event_id: string;
  update: StepUpdated;
}

const _encoder = new TextEncoder();
const _decoder = new TextDecoder();

/**
 * Keeps an unmapped update, one per step and status (a resent update replaces it).
 * An update too large for one KV value keeps its status and time but drops `result`,
 * `message` and `error`.
 *
 * @param op The write the caller commits.
 * @param pending The update and its event id.
 * @returns Whether the update was kept whole.
 */
export function keepPendingUpdate(
  op: AtomicWriter,
  pending: PendingUpdate,
): boolean {
  let bytes = _encoder.encode(JSON.stringify(pending));
  const whole = bytes.length <= MAX_BYTES;
  if (!whole) {
    const { result: _r, message: _m, error: _e, ...rest } = pending.update;
    bytes = _encoder.encode(JSON.stringify({ ...pending, update: rest }));
  }
  op.set(
    keys.pendingUpdateKey(pending.update.step_id, pending.update.status),
    bytes,
    { expireIn: PENDING_UPDATE_TTL_MS },
  );
  return whole;
}

/**
 * Reads a step's unmapped updates, oldest event first.
 *
 * @param kv The store.
 * @param stepId The workflow step.
 * @returns The updates waiting for a mapping.
 */
export async function pendingUpdates(
  kv: Deno.Kv,
  stepId: string,
): Promise<PendingUpdate[]> {
  const out: PendingUpdate[] = [];
  const prefix = keys.pendingUpdatesPrefix(stepId);
  for await (const e of kv.list<Uint8Array>({ prefix })) {
    out.push(JSON.parse(_decoder.decode(e.value)));
  }
  return out.sort((a, b) => a.event_id.localeCompare(b.event_id));
}
