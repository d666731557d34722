/**
 * Target health: a circuit breaker per receiver URL and automatic disabling after
 * continuous failure. The decisions are pure; {@link recordTargetOutcome} applies one
 * to KV with a checked read-modify-write.
 */
import type { Config } from "../config.ts";
import * as keys from "./keys.ts";
import type { Logger } from "./log.ts";
import type { TargetCache } from "./target_cache.ts";
import type { TargetRecord } from "./types.ts";

/** The settings health decisions use. */
export type HealthConfig = Pick<
  Config,
  "circuitFailures" | "circuitCooldownMs" | "disableAfterMs"
>;

/** What an attempt says about its target. */
export type TargetOutcome =
  | { kind: "success" }
  | { kind: "failure"; error: string }
  | { kind: "neutral" };

/** Whether a delivery to this target may be attempted now. */
export type Gate =
  | { kind: "go" }
  /** The circuit's cool-down is over: this attempt is the probe and holds it. */
  | { kind: "probe" }
  | { kind: "wait"; until: number }
  | { kind: "disabled"; reason: string };

/** A target's health as the API shows it. */
export type TargetState = "healthy" | "failing" | "circuit_open" | "disabled";

/**
 * Decides whether a delivery to the target may be attempted at `now`.
 *
 * @param target The target record, if any.
 * @param now Milliseconds since the epoch.
 * @param cfg The circuit threshold.
 * @returns The gate.
 */
export function gate(
  target: TargetRecord | null,
  now: number,
  cfg: HealthConfig,
): Gate {
  if (!target) return { kind: "go" };
  if (target.disabled_at) {
    return { kind: "disabled", reason: target.disabled_reason ?? "disabled" };
  }
  const open = target.circuit_open_until ?? null;
  if (open !== null && open > now) return { kind: "wait", until: open };
  return (target.consecutive_failures ?? 0) >= cfg.circuitFailures
    ? { kind: "probe" }
    : { kind: "go" };
}

/**
 * The target after an attempt, or `null` when nothing changes (a success on a
 * healthy target writes nothing).
 *
 * @param target The target as read.
 * @param outcome Success, failure (5xx, 408, 429, 3xx, network, timeout) or neutral.
 * @param opts Clock and thresholds. A target is disabled once it has failed for
 *   `disableAfterMs` without a success and at least `circuitFailures` times.
 * @returns The new record, or `null`.
 */
export function afterAttempt(
  target: TargetRecord,
  outcome: TargetOutcome,
  opts: { now: number; cfg: HealthConfig },
): TargetRecord | null {
  const { now, cfg } = opts;
  if (outcome.kind === "neutral") return null;
  if (outcome.kind === "success") {
    if (!target.consecutive_failures && !target.circuit_open_until) return null;
    return {
      ...target,
      consecutive_failures: 0,
      failing_since: null,
      circuit_open_until: null,
    };
  }
  const failures = (target.consecutive_failures ?? 0) + 1;
  const since = target.failing_since ?? now;
  const next: TargetRecord = {
    ...target,
    consecutive_failures: failures,
    failing_since: since,
    last_failure_at: now,
    last_error: outcome.error,
    circuit_open_until: failures >= cfg.circuitFailures
      ? now + cfg.circuitCooldownMs
      : null,
  };
  // Both a long failure run and enough failures: a quiet target failing twice five
  // days apart has not shown it is gone.
  if (
    !target.disabled_at && now - since >= cfg.disableAfterMs &&
    failures >= cfg.circuitFailures
  ) {
    next.disabled_at = now;
    next.disabled_reason = `failing continuously since ${
      new Date(since).toISOString()
    } (${failures} attempts)`;
  }
  return next;
}

/**
 * Applies an attempt's outcome to its target, retrying on write conflicts.
 *
 * @param deps KV, clock, thresholds, logger and the target cache to update.
 * @param targetId The target.
 * @param outcome What the attempt said about it.
 */
export async function recordTargetOutcome(
  deps: {
    kv: Deno.Kv;
    now: () => number;
    cfg: HealthConfig;
    log: Logger;
    targets?: TargetCache;
  },
  targetId: string,
  outcome: TargetOutcome,
): Promise<void> {
  for (let round = 0; round < 10; round++) {
    const entry = await deps.kv.get<TargetRecord>(keys.targetKey(targetId));
    if (!entry.value) return;
    const next = afterAttempt(entry.value, outcome, {
      now: deps.now(),
      cfg: deps.cfg,
    });
    if (!next) return;
    const res = await deps.kv.atomic().check(entry).set(entry.key, next)
      .commit();
    if (!res.ok) continue;
    deps.targets?.forget(targetId);
    if (next.disabled_at && !entry.value.disabled_at) {
      deps.log.warn("target disabled", {
        target_id: targetId,
        reason: next.disabled_reason,
      });
    } else if (
      next.circuit_open_until && !entry.value.circuit_open_until
    ) {
      deps.log.warn("target circuit opened", {
        target_id: targetId,
        consecutive_failures: next.consecutive_failures,
        probe_at: new Date(next.circuit_open_until).toISOString(),
      });
    }
    return;
  }
  deps.log.warn("target health not updated: too many write conflicts", {
    target_id: targetId,
  });
}

/**
 * Names a target's state.
 *
 * @param target The record.
 * @param now Milliseconds since the epoch.
 * @returns `disabled`, `circuit_open`, `failing` or `healthy`.
 */
export function targetState(target: TargetRecord, now: number): TargetState {
  if (target.disabled_at) return "disabled";
  if ((target.circuit_open_until ?? 0) > now) return "circuit_open";
  return target.consecutive_failures ? "failing" : "healthy";
}

/**
 * The target re-enabled with a clean health record.
 *
 * @param target The record.
 * @returns The record with no disablement, failures or open circuit.
 */
export function enabled(target: TargetRecord): TargetRecord {
  return {
    ...target,
    disabled_at: null,
    disabled_reason: null,
    consecutive_failures: 0,
    failing_since: null,
    circuit_open_until: null,
  };
}
