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
 * The largest step result (`response_data` plus `error_message`, as JSON) the sync
 * turns into a webhook: the HTTP API's 64 KiB body cap, which also keeps a step with
 * several targets well inside Deno KV's 800 KiB per atomic write.
 */
export const MAX_RESULT_BYTES = 64 * 1024;

/**
 * Measures what a step's result adds to its payload.
 *
 * @param result The step's `response_data`.
 * @param message The step's `error_message`.
 * @returns UTF-8 bytes of both as JSON.
 */
export function resultBytes(result: unknown, message: string | null): number {
  return new TextEncoder().encode(JSON.stringify([result ?? null, message]))
    .length;
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
