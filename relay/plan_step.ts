/**
 * Planning a step update's deliveries: one per distinct target URL, deduplicated by
 * step, task status and target, each object or URL that gets nothing named.
 */
import { createHash } from "node:crypto";
import { getAll } from "./batch_get.ts";
import { newId } from "./ids.ts";
import type { StepUpdated } from "./intake.ts";
import * as keys from "./keys.ts";
import { buildPayload } from "./payload.ts";
import { toTaskStatus } from "./status.ts";
import { create } from "./store.ts";
import type { DeliveryRecord, StepObject, TargetRecord } from "./types.ts";
import { readTargets, type TargetCache } from "./target_cache.ts";
import type { AtomicWriter } from "./write_set.ts";

/** Why no delivery was made for part of an event; `reason` is machine-readable. */
export interface Skip {
  reason: string;
  [detail: string]: unknown;
}

/** What the relay answers for an event, and answers again for its duplicates. */
export interface Answer {
  event_id: string;
  deliveries: { id: string; url: string; status: string }[];
  skipped: Skip[];
}

/** A delivery planned by {@link planStep}, with the exact body to send. */
export interface Created {
  record: DeliveryRecord;
  payload: string;
}

/**
 * The stable id of a target URL.
 *
 * @param url The receiver URL.
 * @returns `tgt_` and 24 hex digits of its SHA-256.
 */
export function targetId(url: string): string {
  return `tgt_${createHash("sha256").update(url).digest("hex").slice(0, 24)}`;
}

/**
 * Plans the deliveries a step update owes, one per distinct target URL, and adds them
 * to `op` with checks that no delivery for the same step, status and target exists.
 * Every object or URL that gets nothing is named in `skipped`.
 *
 * With `optimistic`, the dedupe keys are not read, only checked: a duplicate (rare,
 * as the event itself is deduplicated first) makes the commit fail, and the caller
 * plans again without it, reading them (and the targets afresh) to name it.
 *
 * @param deps KV, clock, queue setting and the target cache, if any.
 * @param op The atomic operation (or write set) the caller commits.
 * @param input The event id, the update, the step's mapped objects, whether to
 *   skip reading dedupe keys, the deliveries earlier calls planned into `op`, and
 *   (to create the deliveries already leased by the caller) the lease length.
 * @returns The deliveries and skips (without the event id), and each new record
 *   with its payload in `created`.
 */
export async function planStep(
  deps: {
    kv: Deno.Kv;
    now: () => number;
    queue: boolean;
    targets?: TargetCache;
  },
  op: AtomicWriter,
  input: {
    eventId: string;
    update: StepUpdated;
    objects: StepObject[];
    optimistic?: boolean;
    /**
     * Deliveries already planned into `op` by earlier calls, by dedupe key: a
     * second update mapping to the same task status and target is skipped.
     */
    planned?: Map<string, string>;
    leaseMs?: number;
  },
): Promise<Omit<Answer, "event_id"> & { created: Created[] }> {
  const { update, objects, eventId } = input;
  const created: Created[] = [];
  const now = deps.now();
  const skipped: Skip[] = [];
  const taskStatus = toTaskStatus(update.status);
  if (taskStatus === undefined) {
    return {
      deliveries: [],
      skipped: [{ reason: "unmapped_status", status: update.status }],
      created,
    };
  }
  if (objects.length === 0) {
    return {
      deliveries: [],
      skipped: [{ reason: "no_mapping", step_id: update.step_id }],
      created,
    };
  }
  const byUrl = new Map<string, StepObject[]>();
  for (const o of objects) {
    if (!o.target?.url) {
      skipped.push({
        reason: "no_target",
        object_type: o.object_type,
        object_id: o.object_id,
      });
    } else byUrl.set(o.target.url, [...(byUrl.get(o.target.url) ?? []), o]);
  }
  const groups = [...byUrl].map(([url, objs]) => ({
    url,
    objs,
    tid: targetId(url),
  }));
  const dedupeKeys = groups.map((g) =>
    keys.dedupeKey(update.step_id, taskStatus, g.tid)
  );
  let [targets, dedupes] = await Promise.all([
    readTargets(deps, groups.map((g) => g.tid), {
      fresh: !input.optimistic,
    }),
    input.optimistic
      ? dedupeKeys.map((key) => ({ key, value: null, versionstamp: null }))
      : getAll<string>(deps.kv, dedupeKeys),
  ]);
  if (deps.targets && targets.some((t) => t.value?.disabled_at)) {
    // A skip is decided on the records as stored: another process may have
    // enabled the target within the cache's second.
    targets = await readTargets(deps, groups.map((g) => g.tid), {
      fresh: true,
    });
  }
  const deliveries: Answer["deliveries"] = [];
  groups.forEach(({ url, objs, tid }, i) => {
    const target = targets[i]!;
    const dedupe: Deno.KvEntryMaybe<string> = dedupes[i]!;
    if (target.value?.disabled_at) {
      skipped.push({
        reason: "target_disabled",
        url,
        target_id: tid,
        detail: target.value.disabled_reason,
      });
      return;
    }
    const plannedId = input.planned?.get(keys.keyId(dedupe.key));
    if (dedupe.value || plannedId) {
      skipped.push({
        reason: "already_delivered",
        url,
        delivery_id: dedupe.value ?? plannedId,
      });
      return;
    }
    const first = objs[0]!;
    const id = newId("msg", now);
    const record: DeliveryRecord = {
      id,
      event_id: eventId,
      url,
      target_id: tid,
      step_id: update.step_id,
      task_status: taskStatus,
      objects: objs.map((o) => ({
        object_type: o.object_type,
        object_id: o.object_id,
      })),
      auth: first.target!.auth,
      status: "pending",
      attempts: 0,
      cycle: 1,
      cycle_attempts: 0,
      next_attempt_at: now,
      lease_until: input.leaseMs === undefined ? null : now + input.leaseMs,
      created_at: now,
      updated_at: now,
      delivered_at: null,
      dead_at: null,
      last_error: null,
      last_status_code: null,
    };
    const payload = buildPayload({
      deliveryId: id,
      stepId: update.step_id,
      taskType: first.task_type,
      taskStatus,
      timestamp: update.completed_at ?? new Date(now).toISOString(),
      operationId: first.operation_id,
      contextId: first.context_id,
      token: first.target!.token,
      result: update.result,
      objects: record.objects,
      message: update.message,
      error: update.error,
    });
    if (!target.value) {
      const fresh: TargetRecord = {
        id: tid,
        url,
        disabled_at: null,
        disabled_reason: null,
      };
      op.check(target).set(keys.targetKey(tid), fresh);
    }
    op.check(dedupe).set(dedupe.key, id);
    input.planned?.set(keys.keyId(dedupe.key), id);
    create(op, record, payload, { queue: deps.queue, now });
    deliveries.push({ id, url, status: record.status });
    created.push({ record, payload });
  });
  return { deliveries, skipped, created };
}
