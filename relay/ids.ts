/** Sortable, prefixed identifiers (`msg_01J…`), free of `.` as Standard Webhooks asks. */
import { monotonicFactory } from "ulid";

const _next = monotonicFactory();

/**
 * Makes a new id: the prefix, `_`, then a monotonic ULID.
 *
 * @param prefix Short lowercase kind, e.g. `msg` for deliveries or `evt` for events.
 * @param now Milliseconds since the epoch to embed.
 * @returns The id, which sorts by creation time.
 */
export function newId(prefix: "msg" | "evt", now: number): string {
  return `${prefix}_${_next(now)}`;
}
