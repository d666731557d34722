/**
 * The delivery worker: claims a due delivery with a lease, signs it for this attempt,
 * POSTs it, and records the outcome with the next wake-up, each step one checked
 * atomic. Safe to run for the same delivery from several drivers at once.
 */
import type { Config } from "../config.ts";
import { attemptDue, attemptLeased, LEASE_MARGIN_MS } from "./attempt.ts";
import type { GroupCommitter } from "./group_commit.ts";
import type { Logger } from "./log.ts";
import type { Metrics } from "./metrics.ts";
import type { Signer } from "./sign.ts";
import { readPayloadVia } from "./store.ts";
import { createBatchGet } from "./batch_get.ts";
import * as keys from "./keys.ts";
import type { TargetCache } from "./target_cache.ts";
import { createLine, type LineItem } from "./line.ts";
import { createTargetSlots } from "./target_slots.ts";
import type { HealthConfig } from "./targets.ts";
import { type DeliveryRecord, dueAt } from "./types.ts";

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
  /** Serves target reads from memory; without it they go to KV. */
  targets?: TargetCache;
}

/** A delivery this process holds the lease of, as committed, with its body. */
export interface HeldDelivery {
  record: DeliveryRecord;
  payload: string;
  /** The versionstamp of the commit that set the lease. */
  versionstamp: string;
}

/** Frees an attempt's slots early; each may be called more than once. */
export interface AttemptSlots {
  /** The target's slot, once nothing about the target is left to record. */
  target(): void;
  /** The global request slot, once the HTTP exchange is over. */
  request(): void;
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
   * Attempts many due deliveries (a recovered backlog): each target's in turn, at
   * most `targetConcurrency` of a target's at a time and `concurrency` in all, so a
   * slow target holds its own share and never the line. Only ids and target ids are
   * held in memory. While an id waits in this line, {@link run} and {@link kick}
   * leave it to the line (no read).
   */
  kickMany(items: readonly LineItem[]): void;
  /** Whether `id` waits in the {@link kickMany} line. */
  inLine(id: string): boolean;
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

  /** Takes a global request slot; the function returned frees it (once). */
  async function requestSlot(): Promise<() => void> {
    while (active >= deps.config.concurrency) {
      await new Promise<void>((r) => waiting.push(r));
    }
    active++;
    return _once(() => {
      active--;
      waiting.shift()?.();
    });
  }

  /**
   * Runs `work` once per id at a time, inside a per-target slot, then a global one.
   * `wait`: wait for the target's slot however long its line (see `TargetSlots`).
   * `work` gets functions that free the slots early: once the HTTP exchange is over,
   * recording its outcome is no request in flight (and, after a success, needs no
   * slot at the target either).
   */
  function track<T>(
    id: string,
    opts: { wait: boolean },
    peek: () => Promise<{ target: string; value: T } | undefined>,
    work: (value: T, free: AttemptSlots) => Promise<string | undefined>,
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
      const target = _once(leave);
      try {
        const request = await requestSlot();
        try {
          return closed ? undefined : await work(found!.value, {
            target,
            request,
          });
        } finally {
          request();
        }
      } finally {
        target();
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
  // kickMany's line; a wake-up for an id waiting in it is left to it.
  const line = createLine({
    concurrency: deps.config.concurrency,
    perTarget: deps.config.targetConcurrency,
    start: (id) => run(id, { wait: true }).catch(report(id)),
  });

  // Records and payloads read by attempts started together share KV reads.
  const getRecord = createBatchGet<DeliveryRecord>(deps.kv);
  const getChunk = createBatchGet<Uint8Array>(deps.kv);
  const body = (id: string) => readPayloadVia(getChunk, deps.kv, id);
  const run = (id: string, opts = { wait: false }) =>
    line.has(id) ? Promise.resolve() : track(id, opts, async () => {
      const entry = await getRecord(keys.deliveryKey(id));
      const due = entry.value ? dueAt(entry.value) : null;
      return entry.value && due !== null && due <= deps.now()
        ? {
          target: entry.value.target_id,
          value: entry as Deno.KvEntry<DeliveryRecord>,
        }
        : undefined;
    }, (entry, free) => attemptDue(deps, entry, free, body));
  const kick = (id: string) => void run(id).catch(report(id));

  return {
    leaseMs: deps.config.timeoutMs + LEASE_MARGIN_MS,
    run: (id) => run(id),
    kick,
    kickMany(items) {
      if (!closed) line.add(items);
    },
    inLine: (id) => line.has(id),
    send(held) {
      const id = held.record.id;
      const target = held.record.target_id;
      track(
        id,
        { wait: true },
        () => Promise.resolve({ target, value: held }),
        (_held, free) => attemptLeased(deps, held, free),
      ).catch(report(id));
    },
    async idle() {
      while (inflight.size > 0) {
        await Promise.allSettled([...inflight.values()]);
      }
    },
    close() {
      closed = true;
      line.clear();
    },
  };
}

function _once(fn: () => void): () => void {
  let done = false;
  return () => {
    if (done) return;
    done = true;
    fn();
  };
}
