/** Sending a leased delivery and recording what came back, in one checked commit. */
import { postAttempt } from "./attempt_http.ts";
import { commitWrites } from "./group_commit.ts";
import * as keys from "./keys.ts";
import { releaseNext } from "./ordering.ts";
import { type AttemptResult, settle } from "./plan.ts";
import { attemptHeaders } from "./sign.ts";
import { getDelivery, transition } from "./store.ts";
import { recordTargetOutcome, type TargetOutcome } from "./targets.ts";
import {
  type AttemptRecord,
  type DeliveryRecord,
  isOpen,
  type TargetRecord,
} from "./types.ts";
import type { AttemptSlots, HeldDelivery, WorkerDeps } from "./worker.ts";
import { WriteSet } from "./write_set.ts";

/**
 * Signs, POSTs and records the outcome of a delivery whose lease is held; frees the
 * request slot when the exchange is over, and the target's slot as soon as it is no
 * longer needed.
 *
 * @param deps The worker's deps.
 * @param held The leased record, its payload and the lease's versionstamp.
 * @param opts `free` frees the slots; `targetHealthy` says admission
 *   saw no failures on the target, so a success leaves its health as it is.
 * @returns The id of a delivery its end made due, if any.
 */
export async function sendAndRecord(
  deps: WorkerDeps,
  held: HeldDelivery,
  opts: { free: AttemptSlots; targetHealthy: boolean },
): Promise<string | undefined> {
  const { free } = opts;
  const { record, payload: body } = held;
  const id = record.id;
  const started = deps.now();
  const timestampS = Math.floor(started / 1000);
  const { result, responseBody } = await postAttempt(deps, record, {
    body,
    headers: attemptHeaders(deps.signer, {
      id,
      timestampS,
      body,
      auth: record.auth,
    }),
  });
  free.request();
  const finished = deps.now();
  const { record: next, verdict } = settle(record, result, {
    now: finished,
    random: deps.random(),
    scheduleMs: deps.config.retryScheduleMs,
    retryAfterMaxMs: deps.config.retryAfterMaxMs,
  });
  // A success cannot change what the gate says to the next attempt (it only resets
  // failures below the circuit threshold), so the target's slot is free already; any
  // other outcome keeps it until the target's health is recorded.
  if (verdict.kind === "success") free.target();
  const attempt: AttemptRecord = {
    n: next.attempts,
    cycle: next.cycle,
    at: started,
    duration_ms: finished - started,
    status_code: result.status_code,
    error: result.error,
    response_body: responseBody,
  };
  deps.metrics.observeAttempt(attempt.duration_ms);
  deps.metrics.inc("relay_attempts_total", { result: verdict.kind });
  const outcome = transition(
    new WriteSet().check({
      key: keys.deliveryKey(id),
      versionstamp: held.versionstamp,
    }),
    record,
    next,
    { queue: deps.queue, now: finished },
  ).set(keys.attemptKey(id, attempt.n), attempt);
  if (verdict.kind === "gone") {
    const target = await deps.kv.get<TargetRecord>(
      keys.targetKey(record.target_id),
    );
    outcome.set(keys.targetKey(record.target_id), {
      id: record.target_id,
      url: record.url,
      ...target.value,
      disabled_at: finished,
      disabled_reason: `410 Gone answered to ${id}`,
    });
  }
  const fields = {
    trace_id: record.event_id,
    delivery_id: id,
    attempt: attempt.n,
    status_code: result.status_code,
    error: result.error,
    duration_ms: attempt.duration_ms,
    outcome: next.status,
    next_attempt_at: next.next_attempt_at,
  };
  if (!(await commitWrites(deps, outcome)).ok) {
    deps.log.warn("attempt outcome superseded", fields);
    return await _superseded(deps, record, attempt, finished);
  }
  if (verdict.kind === "gone") deps.targets?.forget(record.target_id);
  deps.log.info("attempt", fields);
  const unchanged = verdict.kind === "success" && opts.targetHealthy;
  if (!unchanged) {
    await recordTargetOutcome(
      {
        kv: deps.kv,
        now: deps.now,
        cfg: deps.config,
        log: deps.log,
        targets: deps.targets,
      },
      record.target_id,
      _targetOutcome(verdict.kind, result),
    );
  }
  if (!isOpen(next)) {
    deps.metrics.inc("relay_deliveries_total", { outcome: next.status });
    return await releaseNext(deps, next);
  }
}

/**
 * Records an attempt whose outcome commit lost to a change made while it ran. If the
 * lease is still this attempt's (a redelivery started a fresh cycle under it), the
 * attempt is counted and the fresh cycle made due now: returns its id to run.
 * Otherwise it is logged as superseded. Every request sent stays in the log.
 */
async function _superseded(
  deps: WorkerDeps,
  leased: DeliveryRecord,
  attempt: AttemptRecord,
  now: number,
): Promise<string | undefined> {
  const id = leased.id;
  const current = await getDelivery(deps.kv, id);
  const value = current.value;
  if (
    value && isOpen(value) && value.lease_until === leased.lease_until
  ) {
    const due: DeliveryRecord = {
      ...value,
      attempts: value.attempts + 1,
      lease_until: null,
      next_attempt_at: now,
      updated_at: now,
    };
    const logKey = keys.attemptKey(id, due.attempts);
    const op = transition(
      deps.kv.atomic().check(current).check({
        key: logKey,
        versionstamp: null,
      }),
      value,
      due,
      { queue: deps.queue, now },
    ).set(logKey, { ...attempt, n: due.attempts });
    if ((await op.commit()).ok) return id;
  }
  // Another attempt claimed the delivery after this one's lease ended and owns
  // number `n` (logged or about to be): log this request beside it, never over it.
  const logKey = keys.supersededAttemptKey(id, attempt.n, attempt.at);
  const logged = await deps.kv.atomic().check({
    key: logKey,
    versionstamp: null,
  })
    .set(logKey, { ...attempt, superseded: true }).commit();
  if (!logged.ok) {
    deps.log.warn("superseded attempt not logged", { delivery_id: id });
  }
}

function _targetOutcome(
  verdict: string,
  result: AttemptResult,
): TargetOutcome {
  if (verdict === "success") return { kind: "success" };
  if (verdict !== "retry") return { kind: "neutral" };
  return {
    kind: "failure",
    error: result.error ?? `HTTP ${result.status_code}`,
  };
}
