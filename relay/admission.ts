/**
 * Admission: whether a due delivery may be attempted now (its target's health, then
 * per-task ordering), and deferring or ending it when not.
 */
import type { Logger } from "./log.ts";
import type { Metrics } from "./metrics.ts";
import { earlierOpen, releaseNext } from "./ordering.ts";
import { getDelivery, transition } from "./store.ts";
import { readTargets, type TargetCache } from "./target_cache.ts";
import { gate, type HealthConfig } from "./targets.ts";
import {
  type DeliveryRecord,
  dueAt,
  isOpen,
  type TargetRecord,
} from "./types.ts";

/** What admission needs; a subset of the worker's deps. */
export interface AdmissionDeps {
  kv: Deno.Kv;
  now: () => number;
  random: () => number;
  config: HealthConfig;
  queue: boolean;
  log: Logger;
  metrics: Metrics;
  /** Serves target reads from memory; without it they go to KV. */
  targets?: TargetCache;
}

/** Why a delivery is not attempted now. */
export type Hold =
  | { kind: "disabled"; reason: string }
  | { kind: "wait"; until: number }
  | { kind: "ordered"; until: number; after: string };

/**
 * Whether a delivery may be attempted now: its target's health gate, then per-task
 * ordering. A half-open circuit's probe is returned for the caller to claim.
 *
 * @param deps KV, the health config and the target cache, if any.
 * @param record The delivery about to be attempted.
 * @param now Milliseconds since the epoch.
 * @returns A hold, or the probe to claim, or neither (go ahead), with whether the
 *   target had no failures recorded (then a success has nothing to update).
 */
export async function admit(
  deps: Pick<AdmissionDeps, "kv" | "config" | "targets">,
  record: DeliveryRecord,
  now: number,
): Promise<
  { hold?: Hold; probe?: Deno.KvEntry<TargetRecord>; healthy?: boolean }
> {
  // Both reads at once: the ordering scan is wasted only when the gate holds.
  const [read, earlier] = await Promise.all([
    readTargets(deps, [record.target_id]),
    earlierOpen(deps.kv, record),
  ]);
  let target = read[0]!;
  let admission = gate(target.value, now, deps.config);
  if (admission.kind !== "go" && deps.targets) {
    // Holding or probing is decided on the record as stored, not as remembered.
    target = (await readTargets(deps, [record.target_id], { fresh: true }))[0]!;
    admission = gate(target.value, now, deps.config);
  }
  if (admission.kind === "disabled" || admission.kind === "wait") {
    return { hold: admission };
  }
  if (earlier) {
    // Released as soon as the earlier one ends; this is only the fallback wake-up.
    const until = Math.max(dueAt(earlier) ?? now, now + 1000);
    return { hold: { kind: "ordered", until, after: earlier.id } };
  }
  if (admission.kind === "probe" && target.value) {
    return { probe: target as Deno.KvEntry<TargetRecord> };
  }
  const t = target.value;
  return { healthy: !t?.consecutive_failures && !t?.circuit_open_until };
}

/**
 * Defers a delivery without an HTTP attempt, or ends it when its target is disabled.
 *
 * @param deps KV, clock, randomness, health config, queue flag, logger and metrics.
 * @param entry The delivery as read (the write fails if it changed since).
 * @param hold Why it waits.
 * @returns The id of a delivery made due by this (to run), if any.
 */
export async function holdDelivery(
  deps: AdmissionDeps,
  entry: Deno.KvEntry<DeliveryRecord>,
  hold: Hold,
): Promise<string | undefined> {
  const record = entry.value;
  const now = deps.now();
  const next: DeliveryRecord = hold.kind === "disabled"
    ? {
      ...record,
      status: "dead",
      lease_until: null,
      next_attempt_at: null,
      dead_at: now,
      updated_at: now,
      last_error: `target disabled: ${hold.reason}`,
    }
    : {
      ...record,
      lease_until: null,
      // Spread the wake-ups of a circuit's held deliveries over a fifth of its
      // cooldown, so they do not all come back at the same instant.
      next_attempt_at: hold.until + Math.round(
        deps.random() *
          (hold.kind === "wait" ? deps.config.circuitCooldownMs / 5 : 250),
      ),
      updated_at: now,
    };
  const op = transition(deps.kv.atomic().check(entry), record, next, {
    queue: deps.queue,
    now,
  });
  if (!(await op.commit()).ok) return;
  deps.log.info(hold.kind === "disabled" ? "delivery ended" : "delivery held", {
    trace_id: record.event_id,
    delivery_id: record.id,
    reason: hold.kind === "disabled"
      ? "target_disabled"
      : hold.kind === "wait"
      ? "circuit_open"
      : "earlier_notification_open",
    after: hold.kind === "ordered" ? hold.after : undefined,
    next_attempt_at: next.next_attempt_at,
  });
  if (hold.kind === "ordered") {
    // The earlier one may have ended since it was read, its release finding this one
    // still leased: release it now rather than at the fallback wake-up.
    const earlier = (await getDelivery(deps.kv, hold.after)).value;
    if (earlier && !isOpen(earlier)) {
      return await releaseNext(deps, earlier);
    }
  }
  if (hold.kind !== "disabled") return;
  deps.metrics.inc("relay_deliveries_total", { outcome: "dead" });
  return await releaseNext(deps, next);
}
