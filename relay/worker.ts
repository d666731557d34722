/**
 * The delivery worker: claims a due delivery with a lease, signs it for this attempt,
 * POSTs it, and records the outcome with the next wake-up, each step one checked
 * atomic. Safe to run for the same delivery from several drivers at once.
 */
import type { Config } from "../config.ts";
import { commitWrites, type GroupCommitter } from "./group_commit.ts";
import * as keys from "./keys.ts";
import type { Logger } from "./log.ts";
import type { Metrics } from "./metrics.ts";
import { earlierOpen, releaseNext } from "./ordering.ts";
import { type AttemptResult, settle } from "./plan.ts";
import { parseRetryAfter } from "./retry_policy.ts";
import { attemptHeaders, type Signer } from "./sign.ts";
import { getDelivery, readPayload, transition } from "./store.ts";
import { TargetBlockedError } from "./target_fetch.ts";
import { createTargetSlots } from "./target_slots.ts";
import {
  gate,
  type HealthConfig,
  recordTargetOutcome,
  type TargetOutcome,
} from "./targets.ts";
import {
  type AttemptRecord,
  type DeliveryRecord,
  dueAt,
  type TargetRecord,
} from "./types.ts";
import { WriteSet } from "./write_set.ts";

/** How much of a response body is kept in the attempt log. */
export const RESPONSE_BODY_CAP = 2048;
const LEASE_MARGIN_MS = 2000;

/** What the worker needs; every effect is injected. */
export interface WorkerDeps {
  kv: Deno.Kv;
  fetch: typeof fetch;
  now: () => number;
  random: () => number;
  config:
    & Pick<
      Config,
      | "retryScheduleMs"
      | "timeoutMs"
      | "retryAfterMaxMs"
      | "concurrency"
      | "targetConcurrency"
    >
    & HealthConfig;
  queue: boolean;
  signer: Signer;
  log: Logger;
  metrics: Metrics;
  /** Shares outcome commits between concurrent attempts; without it each commits alone. */
  committer?: GroupCommitter;
}

/** A delivery this process holds the lease of, as committed, with its body. */
export interface HeldDelivery {
  record: DeliveryRecord;
  payload: string;
  /** The versionstamp of the commit that set the lease. */
  versionstamp: string;
}

/** The worker's handle. */
export interface DeliveryWorker {
  /** How long a lease taken by this worker lasts (timeout + margin). */
  readonly leaseMs: number;
  /** Attempts the delivery if it is due and not leased; resolves when recorded. */
  run(id: string): Promise<void>;
  /** Starts {@link run} without waiting. */
  kick(id: string): void;
  /**
   * Attempts many due deliveries (a recovered backlog), at most `concurrency` at a
   * time, each waiting for its target's slot rather than being left to a later
   * wake-up. Only the ids are held in memory.
   */
  kickMany(ids: readonly string[]): void;
  /**
   * The fast path after intake: sends a delivery created already leased by this
   * process, without re-reading or claiming it. If no slot frees up while the lease
   * still covers a full attempt, it is left to the sweeper once the lease ends.
   */
  send(held: HeldDelivery): void;
  /** Resolves when no attempt is in flight. */
  idle(): Promise<void>;
  /**
   * Stops starting attempts (for shutdown): afterwards `run`, `kick`, `kickMany` and
   * `send` do nothing, and attempts still waiting for a slot end without a request.
   * Attempts already sending finish and record their outcome; {@link idle} awaits them.
   */
  close(): void;
}

/**
 * Creates the delivery worker.
 *
 * @param deps KV, fetch, clock, randomness, retry config, signer, logger and metrics.
 * @returns The worker.
 * @example
 * ```ts
 * const worker = createDeliveryWorker({ kv, fetch, now: Date.now, random: Math.random, config, queue: true, signer, log, metrics });
 * await worker.run("msg_01J…");
 * ```
 */
export function createDeliveryWorker(deps: WorkerDeps): DeliveryWorker {
  const inflight = new Map<string, Promise<void>>();
  const targets = createTargetSlots(deps.config.targetConcurrency);
  const waiting: (() => void)[] = [];
  let active = 0;
  let closed = false;

  async function slot<T>(fn: () => Promise<T>): Promise<T> {
    while (active >= deps.config.concurrency) {
      await new Promise<void>((r) => waiting.push(r));
    }
    active++;
    try {
      return await fn();
    } finally {
      active--;
      waiting.shift()?.();
    }
  }

  /**
   * Runs `work` once per id at a time, inside a per-target slot, then a global one.
   * `wait`: wait for the target's slot however long its line (see `TargetSlots`).
   * `work` gets a function that frees the target's slot early: once the HTTP
   * exchange is over, recording its outcome needs no request slot at the target.
   */
  function track<T>(
    id: string,
    opts: { wait: boolean },
    peek: () => Promise<{ target: string; value: T } | undefined>,
    work: (value: T, freeTarget: () => void) => Promise<string | undefined>,
  ): Promise<void> {
    if (closed) return Promise.resolve();
    const running = inflight.get(id);
    if (running) return running;
    const p = (async () => {
      const found = await peek();
      const leave = found === undefined
        ? undefined
        : await targets.enter(found.target, opts);
      if (!leave) return;
      let left = false;
      const freeTarget = () => {
        if (left) return;
        left = true;
        leave();
      };
      try {
        return await slot(() =>
          closed ? Promise.resolve(undefined) : work(found!.value, freeTarget)
        );
      } finally {
        freeTarget();
      }
    })().finally(() => inflight.delete(id)).then((released) => {
      // After the delete, so `id` itself can be run again (a released fresh cycle).
      if (released) kick(released);
    });
    inflight.set(id, p);
    return p;
  }

  const report = (id: string) => (err: unknown) =>
    deps.log.error("attempt failed to run", {
      delivery_id: id,
      error: String(err),
    });
  const run = (id: string, opts = { wait: false }) =>
    track(id, opts, async () => {
      const entry = await getDelivery(deps.kv, id);
      const due = entry.value ? dueAt(entry.value) : null;
      return entry.value && due !== null && due <= deps.now()
        ? {
          target: entry.value.target_id,
          value: entry as Deno.KvEntry<DeliveryRecord>,
        }
        : undefined;
    }, (entry, freeTarget) => _attempt(deps, entry, freeTarget));
  const kick = (id: string) => void run(id).catch(report(id));

  // kickMany's line: batches of ids, consumed front to back.
  const line: string[][] = [];
  let lineAt = 0;
  let pumping = 0;
  function pump() {
    if (closed) line.length = 0;
    while (pumping < deps.config.concurrency) {
      const batch = line[0];
      if (!batch) return;
      const id = batch[lineAt++]!;
      if (lineAt >= batch.length) {
        line.shift();
        lineAt = 0;
      }
      pumping++;
      run(id, { wait: true }).catch(report(id)).finally(() => {
        pumping--;
        pump();
      });
    }
  }

  return {
    leaseMs: deps.config.timeoutMs + LEASE_MARGIN_MS,
    run: (id) => run(id),
    kick,
    kickMany(ids) {
      if (closed || ids.length === 0) return;
      line.push([...ids]);
      pump();
    },
    send(held) {
      const id = held.record.id;
      const target = held.record.target_id;
      track(
        id,
        { wait: true },
        () => Promise.resolve({ target, value: held }),
        async (_held, freeTarget) => {
          if (deps.now() + deps.config.timeoutMs >= held.record.lease_until!) {
            return; // Too late for a full attempt: the sweeper takes it when the lease ends.
          }
          const entry = {
            key: keys.deliveryKey(id),
            value: held.record,
            versionstamp: held.versionstamp,
          };
          const admission = await _admit(deps, held.record, deps.now());
          if (admission.hold) return await _hold(deps, entry, admission.hold);
          if (admission.probe) {
            const probe = deps.kv.atomic().check(entry).check(admission.probe)
              .set(
                admission.probe.key,
                {
                  ...admission.probe.value,
                  circuit_open_until: held.record.lease_until,
                },
              );
            if (!(await probe.commit()).ok) return;
          }
          return await _send(deps, held, admission.probe ? _keep : freeTarget);
        },
      ).catch(report(id));
    },
    async idle() {
      while (inflight.size > 0) {
        await Promise.allSettled([...inflight.values()]);
      }
    },
    close() {
      closed = true;
      line.length = 0;
      lineAt = 0;
    },
  };
}

type Hold =
  | { kind: "disabled"; reason: string }
  | { kind: "wait"; until: number }
  | { kind: "ordered"; until: number; after: string };

/**
 * Whether a delivery may be attempted now: its target's health gate, then per-task
 * ordering. A half-open circuit's probe is returned for the caller to claim.
 */
async function _admit(
  deps: WorkerDeps,
  record: DeliveryRecord,
  now: number,
): Promise<{ hold?: Hold; probe?: Deno.KvEntry<TargetRecord> }> {
  const target = await deps.kv.get<TargetRecord>(
    keys.targetKey(record.target_id),
  );
  const admission = gate(target.value, now, deps.config);
  if (admission.kind === "disabled" || admission.kind === "wait") {
    return { hold: admission };
  }
  const earlier = await earlierOpen(deps.kv, record);
  if (earlier) {
    // Released as soon as the earlier one ends; this is only the fallback wake-up.
    const until = Math.max(dueAt(earlier) ?? now, now + 1000);
    return { hold: { kind: "ordered", until, after: earlier.id } };
  }
  return admission.kind === "probe" && target.value
    ? { probe: target as Deno.KvEntry<TargetRecord> }
    : {};
}

/**
 * Attempts one delivery as read (the claim fails if it changed since); returns the id
 * of a delivery its end made due, if any.
 */
async function _attempt(
  deps: WorkerDeps,
  entry: Deno.KvEntry<DeliveryRecord>,
  freeTarget: () => void,
): Promise<string | undefined> {
  const record = entry.value;
  const id = record.id;
  const now = deps.now();
  const due = dueAt(record);
  if (due === null || due > now) return;
  const admission = await _admit(deps, record, now);
  if (admission.hold) {
    return await _hold(deps, entry, admission.hold);
  }
  const leased: DeliveryRecord = {
    ...record,
    lease_until: now + deps.config.timeoutMs + LEASE_MARGIN_MS,
  };
  const claim = transition(new WriteSet().check(entry), record, leased, {
    queue: deps.queue,
    now,
  });
  if (admission.probe) {
    // Only one attempt probes a target whose circuit is half open.
    claim.check(admission.probe).set(admission.probe.key, {
      ...admission.probe.value,
      circuit_open_until: leased.lease_until,
    });
  }
  // The payload never changes: read it while the claim commits.
  const [claimed, payload] = await Promise.all([
    commitWrites(deps, claim),
    readPayload(deps.kv, id),
  ]);
  if (!claimed.ok) return;
  return await _send(deps, {
    record: leased,
    payload,
    versionstamp: claimed.versionstamp,
  }, admission.probe ? _keep : freeTarget);
}

/** A probe's success clears the circuit: the slot is kept until that is recorded. */
const _keep = () => {};

/**
 * Signs, POSTs and records the outcome of a delivery whose lease is held; calls
 * `freeTarget` as soon as the target's slot is no longer needed.
 */
async function _send(
  deps: WorkerDeps,
  held: HeldDelivery,
  freeTarget: () => void,
): Promise<string | undefined> {
  const { record, payload: body } = held;
  const id = record.id;
  const started = deps.now();
  const timestampS = Math.floor(started / 1000);
  const { result, responseBody } = await _post(deps, record, {
    body,
    headers: attemptHeaders(deps.signer, {
      id,
      timestampS,
      body,
      auth: record.auth,
    }),
  });
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
  if (verdict.kind === "success") freeTarget();
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
  deps.log.info("attempt", fields);
  await recordTargetOutcome(
    { kv: deps.kv, now: deps.now, cfg: deps.config, log: deps.log },
    record.target_id,
    _targetOutcome(verdict.kind, result),
  );
  if (next.status === "succeeded" || next.status === "dead") {
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
    value && dueAt(value) !== null && value.lease_until === leased.lease_until
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

/** Defers a delivery without an HTTP attempt, or ends it when its target is disabled. */
async function _hold(
  deps: WorkerDeps,
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
    if (earlier && dueAt(earlier) === null) {
      return await releaseNext(deps, earlier);
    }
  }
  if (hold.kind !== "disabled") return;
  deps.metrics.inc("relay_deliveries_total", { outcome: "dead" });
  return await releaseNext(deps, next);
}

async function _post(
  deps: WorkerDeps,
  record: DeliveryRecord,
  req: { body: string; headers: Record<string, string> },
): Promise<{ result: AttemptResult; responseBody: string }> {
  const signal = AbortSignal.timeout(deps.config.timeoutMs);
  let res: Response;
  try {
    res = await deps.fetch(record.url, {
      method: "POST",
      headers: req.headers,
      body: req.body,
      redirect: "manual",
      signal,
    });
  } catch (err) {
    if (err instanceof TargetBlockedError) {
      return {
        result: { status_code: null, error: err.message, blocked: true },
        responseBody: "",
      };
    }
    const error = signal.aborted
      ? `timeout after ${deps.config.timeoutMs} ms`
      : `network error: ${_describe(err)}`;
    return { result: { status_code: null, error }, responseBody: "" };
  }
  const responseBody = await _readCapped(res);
  return {
    result: {
      status_code: res.status,
      error: null,
      retry_after_ms: parseRetryAfter(
        res.headers.get("retry-after"),
        deps.now(),
      ),
    },
    responseBody,
  };
}

async function _readCapped(res: Response): Promise<string> {
  if (!res.body) return "";
  const reader = res.body.getReader();
  const bytes = new Uint8Array(RESPONSE_BODY_CAP);
  let size = 0;
  try {
    while (size < RESPONSE_BODY_CAP) {
      const { done, value } = await reader.read();
      if (done) break;
      const take = value.subarray(0, RESPONSE_BODY_CAP - size);
      bytes.set(take, size);
      size += take.length;
    }
  } catch {
    // The body stopped early (timeout or reset); keep what arrived.
  } finally {
    reader.cancel().catch(() => {});
  }
  return new TextDecoder().decode(bytes.subarray(0, size));
}

function _describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = err.cause instanceof Error ? `: ${err.cause.message}` : "";
  return `${err.message}${cause}`;
}
