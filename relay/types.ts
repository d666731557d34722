/** The relay's records as they are stored in KV and shown by the API. */

/** The authentication a push notification config asks for (AdCP shape). */
export interface PushAuth {
  scheme: "HMAC-SHA256" | "Bearer";
  credentials: string;
}

/** Where and how one buyer wants to be told. */
export interface PushTarget {
  url: string;
  token?: string;
  auth?: PushAuth;
}

/** One object mapped to a workflow step, with its owner and webhook target. */
export interface StepObject {
  object_type: string;
  object_id: string;
  step_id: string;
  tenant_id: string;
  principal_id: string;
  task_type: string;
  operation_id?: string;
  context_id?: string;
  target?: PushTarget;
  created_at: number;
}

/** Delivery state: `failed` means the last attempt failed and another is scheduled. */
export type DeliveryStatus = "pending" | "failed" | "succeeded" | "dead";

/** A webhook owed to one URL for one step status. The payload is stored apart. */
export interface DeliveryRecord {
  id: string;
  event_id: string;
  url: string;
  target_id: string;
  step_id: string;
  task_status: string;
  objects: { object_type: string; object_id: string }[];
  auth?: PushAuth;
  status: DeliveryStatus;
  attempts: number;
  cycle: number;
  cycle_attempts: number;
  next_attempt_at: number | null;
  lease_until: number | null;
  created_at: number;
  updated_at: number;
  delivered_at: number | null;
  dead_at: number | null;
  last_error: string | null;
  last_status_code: number | null;
}

/** One HTTP attempt and what came back. */
export interface AttemptRecord {
  n: number;
  cycle: number;
  at: number;
  duration_ms: number;
  status_code: number | null;
  error: string | null;
  response_body: string;
  /** Its outcome lost to a change made while it ran (another process's claim). */
  superseded?: boolean;
}

/** A receiver URL's health, shared by every delivery to it. */
export interface TargetRecord {
  id: string;
  url: string;
  disabled_at: number | null;
  disabled_reason: string | null;
  /** Failed attempts since the last success (absent: none). */
  consecutive_failures?: number;
  /** When the current run of failures began. */
  failing_since?: number | null;
  last_failure_at?: number | null;
  last_error?: string | null;
  /** While in the future, attempts wait; afterwards one probe goes first. */
  circuit_open_until?: number | null;
}

/**
 * Whether a delivery is still open (neither succeeded nor dead).
 *
 * @param record The delivery.
 * @returns True while more attempts may be made.
 */
export function isOpen(record: DeliveryRecord): boolean {
  return record.status !== "succeeded" && record.status !== "dead";
}

/**
 * Due time of a delivery: its lease while in flight, else its next attempt.
 *
 * @param record The delivery.
 * @returns Milliseconds since the epoch, or null once it has ended.
 */
export function dueAt(record: DeliveryRecord): number | null {
  if (!isOpen(record)) return null;
  return record.lease_until ?? record.next_attempt_at;
}
