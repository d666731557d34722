/**
 * Turns events into durable deliveries. Everything an event causes (its idempotency
 * record, the mapping or the deliveries with their indexes and wake-ups) commits in
 * one checked atomic before the caller answers.
 */
import * as keys from "./keys.ts";
import { newId } from "./ids.ts";
import {
  keepPendingUpdate,
  type PendingUpdate,
  pendingUpdates,
} from "./pending_updates.ts";
import type { Logger } from "./log.ts";
import type { Metrics } from "./metrics.ts";
import { commitWrites, type GroupCommitter } from "./group_commit.ts";
import type { PushTarget, StepObject } from "./types.ts";
import { type Answer, type Created, planStep } from "./plan_step.ts";
import type { TargetCache } from "./target_cache.ts";
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
  /** Serves target reads from memory; without it they go to KV. */
  targets?: TargetCache;
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
    // The first round only checks dedupe keys; a conflict means reading them.
    const optimistic = round === 0;
    const op = new WriteSet();
    const { created, ...answer } = event.type === "media_buy.created"
      ? await _recordMapping(deps, op, {
        eventId,
        event,
        objects,
        pending,
        optimistic,
      })
      : await planStep(deps, op, {
        eventId,
        update: event,
        objects,
        optimistic,
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
    optimistic: boolean;
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
  // Two early updates may map to one task status (`working`, `in_progress`): the
  // first makes the delivery, the second is named a duplicate of it.
  const plannedKeys = new Map<string, string>();
  for (const { update } of input.pending) {
    const planned = await planStep(deps, op, {
      eventId,
      update,
      objects,
      optimistic: input.optimistic,
      planned: plannedKeys,
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
