/** The whole KV key space. Nothing else writes an inline key array. */

export const deliveryKey = (id: string) => ["deliveries", id] as const;
export const deliveriesPrefix = ["deliveries"] as const;
export const payloadKey = (id: string, chunk: number) =>
  ["payloads", id, chunk] as const;
export const payloadPrefix = (id: string) => ["payloads", id] as const;
export const attemptKey = (id: string, n: number) =>
  ["attempts", id, n] as const;
/** An attempt whose outcome lost to another's: listed right after attempt `n`. */
export const supersededAttemptKey = (id: string, n: number, at: number) =>
  ["attempts", id, n, at] as const;
export const attemptsPrefix = (id: string) => ["attempts", id] as const;
export const dueKey = (at: number, id: string) =>
  ["deliveries_by_due", at, id] as const;
export const duePrefix = ["deliveries_by_due"] as const;
export const statusIndexKey = (status: string, id: string) =>
  ["deliveries_by_status", status, id] as const;
export const statusIndexPrefix = (status: string) =>
  ["deliveries_by_status", status] as const;
export const objectIndexKey = (objectId: string, id: string) =>
  ["deliveries_by_object", objectId, id] as const;
export const objectIndexPrefix = (objectId: string) =>
  ["deliveries_by_object", objectId] as const;
export const dedupeKey = (
  stepId: string,
  taskStatus: string,
  targetId: string,
) => ["deliveries_by_dedupe", stepId, taskStatus, targetId] as const;
/** Every delivery of a step: the dedupe keys double as the step's index. */
export const dedupePrefix = (stepId: string) =>
  ["deliveries_by_dedupe", stepId] as const;
export const stepObjectKey = (stepId: string, type: string, objectId: string) =>
  ["step_objects", stepId, type, objectId] as const;
export const stepObjectsPrefix = (stepId: string) =>
  ["step_objects", stepId] as const;
export const pendingUpdateKey = (stepId: string, status: string) =>
  ["pending_updates", stepId, status] as const;
export const pendingUpdatesPrefix = (stepId: string) =>
  ["pending_updates", stepId] as const;
export const targetKey = (targetId: string) => ["targets", targetId] as const;
export const targetsPrefix = ["targets"] as const;
export const eventKey = (idempotencyKey: string) =>
  ["events_by_key", idempotencyKey] as const;
export const openCountKey = ["stats", "open_deliveries"] as const;
export const settingKey = (name: string) => ["settings", name] as const;
export const pgCursorKey = ["pg_sync", "cursor"] as const;
export const pgStepKey = (stepId: string, status: string) =>
  ["pg_steps", stepId, status] as const;
export const pgStepsPrefix = (stepId: string) => ["pg_steps", stepId] as const;
export const writeBackKey = (deliveryId: string) =>
  ["pg_write_back", deliveryId] as const;
export const writeBackPrefix = ["pg_write_back"] as const;

/**
 * A string naming a key, equal for equal keys (parts of different types differ).
 *
 * @param key A KV key.
 * @returns Its identity, for maps and sets.
 */
export function keyId(key: Deno.KvKey): string {
  return key.map((part) => `${typeof part}:${String(part)}`).join("\u0000");
}
