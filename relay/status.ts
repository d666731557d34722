/**
 * Maps the statuses the sales agent stores to AdCP task statuses.
 *
 * | internal | AdCP |
 * | --- | --- |
 * | submitted, pending, pending_approval, requires_approval, approval | submitted |
 * | working, in_progress, approved | working |
 * | input-required, input_required | input-required |
 * | completed | completed |
 * | failed | failed |
 * | rejected | rejected |
 * | canceled, cancelled | canceled |
 * | auth-required, auth_required | auth-required |
 *
 * Anything else has no AdCP equivalent and is reported by name, never turned into `unknown`.
 */

/** AdCP task statuses (`enums/task-status.json`). */
export const TASK_STATUSES = [
  "submitted",
  "working",
  "input-required",
  "completed",
  "canceled",
  "failed",
  "rejected",
  "auth-required",
  "unknown",
] as const;

const _MAP: Record<string, string> = {
  submitted: "submitted",
  pending: "submitted",
  pending_approval: "submitted",
  requires_approval: "submitted",
  approval: "submitted",
  working: "working",
  in_progress: "working",
  approved: "working",
  "input-required": "input-required",
  input_required: "input-required",
  completed: "completed",
  failed: "failed",
  rejected: "rejected",
  canceled: "canceled",
  cancelled: "canceled",
  "auth-required": "auth-required",
  auth_required: "auth-required",
};

/**
 * Translates a status to its AdCP task status.
 *
 * @param status The status as stored or sent (case-insensitive).
 * @returns The AdCP status, or `undefined` when there is no equivalent.
 */
export function toTaskStatus(status: string): string | undefined {
  return _MAP[status.trim().toLowerCase()];
}

/** Whether an AdCP task status ends the task. */
export function isTerminal(taskStatus: string): boolean {
  return ["completed", "failed", "rejected", "canceled"].includes(taskStatus);
}
