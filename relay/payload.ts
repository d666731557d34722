/** The AdCP task payload a receiver gets, serialised once and stored as sent. */

/** What a delivery's payload is made from. */
export interface PayloadInput {
  deliveryId: string;
  stepId: string;
  taskType: string;
  taskStatus: string;
  timestamp: string;
  operationId?: string;
  contextId?: string;
  token?: string;
  result?: unknown;
  objects: { object_type: string; object_id: string }[];
  message?: string;
  error?: unknown;
}

/**
 * Serialises the MCP webhook payload (compact JSON, fixed member order).
 *
 * `result` is the event's own when given, else it names the mapped objects:
 * `{ media_buy_id }` for one, `{ media_buy_ids: [...] }` for several of a type.
 *
 * @param input The delivery's facts.
 * @returns The exact body to sign and send on every attempt.
 */
export function buildPayload(input: PayloadInput): string {
  return JSON.stringify({
    idempotency_key: input.deliveryId,
    task_id: input.stepId,
    task_type: input.taskType,
    status: input.taskStatus,
    timestamp: input.timestamp,
    operation_id: input.operationId,
    context_id: input.contextId,
    token: input.token,
    result: input.result ?? _objectsResult(input.objects),
    message: input.message,
    error: input.error,
  });
}

function _objectsResult(objects: PayloadInput["objects"]) {
  const byType = new Map<string, string[]>();
  for (const o of objects) {
    byType.set(o.object_type, [
      ...(byType.get(o.object_type) ?? []),
      o.object_id,
    ]);
  }
  const result: Record<string, string | string[]> = {};
  for (const [type, ids] of byType) {
    if (ids.length === 1) result[`${type}_id`] = ids[0]!;
    else result[`${type}_ids`] = ids;
  }
  return result;
}
