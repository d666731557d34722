/**
 * Turns events into durable deliveries. Everything an event causes (its idempotency
 * record, the mapping or the deliveries with their indexes and wake-ups) commits in
 * one checked atomic before the caller answers.
 */
import { createHash } from "node:crypto";
import * as keys from "./keys.ts";
import { newId } from "./ids.ts";
import {
  keepPendingUpdate,
  type PendingUpdate,
  pendingUpdates,
} from "./pending_updates.ts";
import type { Logger } from "./log.ts";
import type { Metrics } from "./metrics.ts";
import { buildPayload } from "./payload.ts";
import { toTaskStatus } from "./status.ts";
import { commitWrites, type GroupCommitter } from "./group_commit.ts";
import { create } from "./store.ts";
import type {
  DeliveryRecord,
  PushTarget,
  StepObject,
  TargetRecord,
} from "./types.ts";
import type { HeldDelivery } from "./worker.ts";
import { type AtomicWriter, WriteSet } from "./write_set.ts";

/** A media buy was created and mapped to a workflow step. */
export interface MediaBuyCreated {
  type: "media_buy.created";
  tenant_id: string;
  principal_id: string;
  media_buy_id: string;
  step_id: string;
  status: string;
  task_type: string;
  operation_id?: string;
  context_id?: string;
  target: PushTarget;
}

/** A workflow step changed status. */
export interface StepUpdated {
  type: "workflow_step.updated";
  step_id: string;
  status: string;
  completed_at?: string;
  result?: unknown;
  message?: string;
  error?: unknown;
}

/** An event the relay accepts. */
export type RelayEvent = MediaBuyCreated | StepUpdated;

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

/** What intake needs. */
export interface IntakeDeps {
  kv: Deno.Kv;
  now: () => number;
  log: Logger;
  metrics: Metrics;
  queue: boolean;
  /**
   * When set, deliveries are created already leased for this long by the accepting
   * process, which sends them at once (`worker.send`) without a claim commit.
   */
  leaseMs?: number;
  /** Shares KV commits between concurrent events; without it each commits alone. */
  committer?: GroupCommitter;
}

/** Thrown when an `Idempotency-Key` is reused for a different request body. */
export class IdempotencyConflictError extends Error {
  constructor(key: string) {
    super(
      `Cannot accept event: Idempotency-Key "${key}" was used for a different body`,
    );
    this.name = "IdempotencyConflictError";
  }
}

interface EventRecord {
  event_id: string;
  fingerprint: string;
  answer: Answer;
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
 * Accepts an event exactly once: a duplicate (same `Idempotency-Key`, or same type,
 * step, status and media buy) gets the first answer and creates nothing.
 *
 * @param deps KV, clock, logger, metrics and whether wake-ups are enqueued.
 * @param event The validated event.
 * @param opts The request's `Idempotency-Key` and a fingerprint of its body.
 * @returns The answer, whether it is a replay of an earlier one, and (with
 *   `deps.leaseMs`) the new deliveries whose lease the caller now holds.
 * @throws {IdempotencyConflictError} When the key was used for another body.
 */
export async function acceptEvent(
  deps: IntakeDeps,
  event: RelayEvent,
  opts: { idempotencyKey?: string; fingerprint: string },
): Promise<{ answer: Answer; replayed: boolean; held: HeldDelivery[] }> {
  const natural = event.type === "media_buy.created"
    ? `natural:${event.type}:${event.step_id}:${event.status}:${event.media_buy_id}`
    : `natural:${event.type}:${event.step_id}:${event.status}`;
  const eventKeys = opts.idempotencyKey === undefined
    ? [natural]
    : [`header:${opts.idempotencyKey}`, natural];
  for (let round = 0;; round++) {
    // Both reads at once: a step update's mapped objects are needed unless it is a
    // duplicate, which is rare.
    const [seen, objects, pending] = await Promise.all([
      deps.kv.getMany<EventRecord[]>(eventKeys.map(keys.eventKey)),
      _stepObjects(deps.kv, event.step_id),
      event.type === "media_buy.created"
        ? pendingUpdates(deps.kv, event.step_id)
        : [],
    ]);
    const [first] = seen;
    if (
      opts.idempotencyKey && first?.value &&
      first.value.fingerprint !== opts.fingerprint
    ) {
      throw new IdempotencyConflictError(opts.idempotencyKey);
    }
    const earlier = seen.find((e) => e.value)?.value;
    if (earlier) {
      deps.log.info("duplicate event", {
        trace_id: earlier.event_id,
        type: event.type,
      });
      return { answer: earlier.answer, replayed: true, held: [] };
    }
    const eventId = newId("evt", deps.now());
    const op = new WriteSet();
    const { created, ...answer } = event.type === "media_buy.created"
      ? await _recordMapping(deps, op, { eventId, event, objects, pending })
      : await planStep(deps, op, {
        eventId,
        update: event,
        objects,
        leaseMs: deps.leaseMs,
      });
    const unmapped = event.type === "workflow_step.updated" &&
      answer.skipped.some((s) => s.reason === "no_mapping");
    if (unmapped) keepPendingUpdate(op, { event_id: eventId, update: event });
    const record: EventRecord = {
      event_id: eventId,
      fingerprint: opts.fingerprint,
      answer: { event_id: eventId, ...answer },
    };
    // An answer that a later mapping or re-enabled target would change is not
    // remembered under the natural key, so the same event sent again is planned again.
    const retryable = answer.deliveries.length === 0 &&
      answer.skipped.some((s) => RETRYABLE_SKIPS.has(s.reason));
    for (const k of eventKeys) {
      if (retryable && k === natural) continue;
      op.check({ key: keys.eventKey(k), versionstamp: null }).set(
        keys.eventKey(k),
        record,
      );
    }
    const committed = await commitWrites(deps, op);
    if (committed.ok) {
      _logAccepted(deps, event, record.answer);
      const held = deps.leaseMs === undefined ? [] : created.map((c) => ({
        ...c,
        versionstamp: committed.versionstamp,
      }));
      return { answer: record.answer, replayed: false, held };
    }
    if (round >= 4) {
      throw new Error(`Cannot accept event: ${round + 1} write conflicts`);
    }
  }
}

const RETRYABLE_SKIPS = new Set(["no_mapping", "no_target", "target_disabled"]);

/**
 * Records a media buy's mapping; when updates for its step came before any mapping,
 * plans their deliveries now, oldest first, to the step's objects including this one.
 */
async function _recordMapping(
  deps: IntakeDeps,
  op: AtomicWriter,
  input: {
    eventId: string;
    event: MediaBuyCreated;
    objects: StepObject[];
    pending: PendingUpdate[];
  },
): Promise<Omit<Answer, "event_id"> & { created: Created[] }> {
  const { event, eventId } = input;
  const now = deps.now();
  const object: StepObject = {
    object_type: "media_buy",
    object_id: event.media_buy_id,
    step_id: event.step_id,
    tenant_id: event.tenant_id,
    principal_id: event.principal_id,
    task_type: event.task_type,
    operation_id: event.operation_id,
    context_id: event.context_id,
    target: event.target,
    created_at: now,
  };
  op.set(
    keys.stepObjectKey(event.step_id, "media_buy", event.media_buy_id),
    object,
  );
  const answer = { deliveries: [], skipped: [], created: [] } as
    & Omit<Answer, "event_id">
    & { created: Created[] };
  const objects = [
    ...input.objects.filter((o) =>
      o.object_type !== "media_buy" || o.object_id !== event.media_buy_id
    ),
    object,
  ];
  for (const { update } of input.pending) {
    const planned = await planStep(deps, op, {
      eventId,
      update,
      objects,
      leaseMs: deps.leaseMs,
    });
    answer.deliveries.push(...planned.deliveries);
    answer.skipped.push(...planned.skipped);
    answer.created.push(...planned.created);
  }
  return answer;
}

async function _stepObjects(
  kv: Deno.Kv,
  stepId: string,
): Promise<StepObject[]> {
  const out: StepObject[] = [];
  for await (
    const e of kv.list<StepObject>({ prefix: keys.stepObjectsPrefix(stepId) })
  ) {
    out.push(e.value);
  }
  return out;
}

/**
 * Plans the deliveries a step update owes, one per distinct target URL, and adds them
 * to `op` with checks that no delivery for the same step, status and target exists.
 * Every object or URL that gets nothing is named in `skipped`.
 *
 * @param deps KV, clock and queue setting.
 * @param op The atomic operation (or write set) the caller commits.
 * @param input The event id, the update, the step's mapped objects and, to create
 *   the deliveries already leased by the caller, the lease length.
 * @returns The deliveries and skips (without the event id), and each new record
 *   with its payload in `created`.
 */
export async function planStep(
  deps: Pick<IntakeDeps, "kv" | "now" | "queue">,
  op: AtomicWriter,
  input: {
    eventId: string;
    update: StepUpdated;
    objects: StepObject[];
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
  const read = await _getAll<unknown>(deps.kv, [
    ...groups.map((g) => keys.targetKey(g.tid)),
    ...groups.map((g) => keys.dedupeKey(update.step_id, taskStatus, g.tid)),
  ]);
  const targets = read.slice(0, groups.length) as Deno.KvEntryMaybe<
    TargetRecord
  >[];
  const dedupes = read.slice(groups.length) as Deno.KvEntryMaybe<string>[];
  const deliveries: Answer["deliveries"] = [];
  groups.forEach(({ url, objs, tid }, i) => {
    const target = targets[i]!;
    const dedupe = dedupes[i]!;
    if (target.value?.disabled_at) {
      skipped.push({
        reason: "target_disabled",
        url,
        target_id: tid,
        detail: target.value.disabled_reason,
      });
      return;
    }
    if (dedupe.value) {
      skipped.push({
        reason: "already_delivered",
        url,
        delivery_id: dedupe.value,
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
    op.check(dedupe).set(keys.dedupeKey(update.step_id, taskStatus, tid), id);
    create(op, record, payload, { queue: deps.queue, now });
    deliveries.push({ id, url, status: record.status });
    created.push({ record, payload });
  });
  return { deliveries, skipped, created };
}

async function _getAll<T>(
  kv: Deno.Kv,
  list: readonly (readonly Deno.KvKeyPart[])[],
): Promise<Deno.KvEntryMaybe<T>[]> {
  const out: Deno.KvEntryMaybe<T>[] = [];
  for (let i = 0; i < list.length; i += 10) {
    out.push(...await kv.getMany<T[]>(list.slice(i, i + 10) as Deno.KvKey[]));
  }
  return out;
}

function _logAccepted(deps: IntakeDeps, event: RelayEvent, answer: Answer) {
  deps.metrics.inc("relay_events_accepted_total", { type: event.type });
  deps.log.info("event accepted", {
    trace_id: answer.event_id,
    type: event.type,
    step_id: event.step_id,
    deliveries: answer.deliveries.map((d) => d.id),
  });
  for (const skip of answer.skipped) {
    deps.metrics.inc("relay_deliveries_skipped_total", { reason: skip.reason });
    deps.log.info("delivery skipped", {
      trace_id: answer.event_id,
      step_id: event.step_id,
      ...skip,
    });
  }
}
