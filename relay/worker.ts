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
import { type AttemptResult, settle } from "./plan.ts";
import { parseRetryAfter } from "./retry_policy.ts";
import { attemptHeaders, type Signer } from "./sign.ts";
import { getDelivery, readPayload, transition } from "./store.ts";
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
  config: Pick<
    Config,
    "retryScheduleMs" | "timeoutMs" | "retryAfterMaxMs" | "concurrency"
  >;
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
   * The fast path after intake: sends a delivery created already leased by this
   * process, without re-reading or claiming it. If no slot frees up while the lease
   * still covers a full attempt, it is left to the sweeper once the lease ends.
   */
  send(held: HeldDelivery): void;
  /** Resolves when no attempt is in flight. */
  idle(): Promise<void>;
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
  const waiting: (() => void)[] = [];
  let active = 0;

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

  function track(id: string, work: () => Promise<void>): Promise<void> {
    const running = inflight.get(id);
    if (running) return running;
    const p = slot(work).finally(() => inflight.delete(id));
    inflight.set(id, p);
    return p;
  }

  const run = (id: string) => track(id, () => _attempt(deps, id));
  const report = (id: string) => (err: unknown) =>
    deps.log.error("attempt failed to run", {
      delivery_id: id,
      error: String(err),
    });

  return {
    leaseMs: deps.config.timeoutMs + LEASE_MARGIN_MS,
    run,
    kick(id) {
      run(id).catch(report(id));
    },
    send(held) {
      const id = held.record.id;
      track(id, async () => {
        if (deps.now() + deps.config.timeoutMs < held.record.lease_until!) {
          await _send(deps, held);
        }
      }).catch(report(id));
    },
    async idle() {
      while (inflight.size > 0) {
        await Promise.allSettled([...inflight.values()]);
      }
    },
  };
}

async function _attempt(deps: WorkerDeps, id: string): Promise<void> {
  const entry = await getDelivery(deps.kv, id);
  const record = entry.value;
  const now = deps.now();
  const due = record ? dueAt(record) : null;
  if (!record || due === null || due > now) return;
  const leased: DeliveryRecord = {
    ...record,
    lease_until: now + deps.config.timeoutMs + LEASE_MARGIN_MS,
  };
  const claim = transition(deps.kv.atomic().check(entry), record, leased, {
    queue: deps.queue,
    now,
  });
  const claimed = await claim.commit();
  if (!claimed.ok) return;
  await _send(deps, {
    record: leased,
    payload: await readPayload(deps.kv, id),
    versionstamp: claimed.versionstamp,
  });
}

/** Signs, POSTs and records the outcome of a delivery whose lease is held. */
async function _send(deps: WorkerDeps, held: HeldDelivery): Promise<void> {
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
    await deps.kv.set(keys.attemptKey(id, attempt.n), attempt);
    deps.log.warn("attempt outcome superseded", fields);
    return;
  }
  if (next.status === "succeeded" || next.status === "dead") {
    deps.metrics.inc("relay_deliveries_total", { outcome: next.status });
  }
  deps.log.info("attempt", fields);
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
