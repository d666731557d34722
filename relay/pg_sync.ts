/**
 * Sales agent sync: turns step status changes found in the agent's Postgres (by
 * polling `completed_at` past a KV cursor, or by NOTIFY) into durable deliveries, each
 * (step, status) processed once, every decision logged with its trace id.
 */
import { z } from "zod";
import { type Answer, planStep, type Skip } from "./plan_step.ts";
import type { TargetCache } from "./target_cache.ts";
import { newId } from "./ids.ts";
import * as keys from "./keys.ts";
import type { Logger } from "./log.ts";
import type { Metrics } from "./metrics.ts";
import { logDecisions } from "./pg_decisions.ts";
import type { Allowlist } from "./ip_ranges.ts";
import { resolveStep } from "./resolve.ts";
import type { StepChain, StepSource } from "./source.ts";
import type { StepObject } from "./types.ts";
import type { DeliveryWorker } from "./worker.ts";

/** What the sync needs; every effect is injected. */
export interface PgSyncDeps {
  kv: Deno.Kv;
  source: StepSource;
  now: () => number;
  log: Logger;
  metrics: Metrics;
  queue: boolean;
  worker: DeliveryWorker;
  nullIsActive: boolean;
  allowPrivate: boolean;
  /** Private ranges and hosts allowed although `allowPrivate` is off. */
  allowlist?: Allowlist;
  /** How far behind the cursor each pass re-reads, for late commits. */
  overlapMs: number;
  pageSize?: number;
  /**
   * Passes a step may fail (KV commit too large, write conflicts, …) before it is
   * recorded as skipped (`commit_failed`) so the cursor moves on; default 3.
   */
  maxStepFailures?: number;
  /** Serves target reads from memory; without it they go to KV. */
  targets?: TargetCache;
}

/** What the relay remembers of one (step, status) it processed from Postgres. */
export interface PgStepRecord {
  step_id: string;
  status: string;
  changed_at_ms: number | null;
  event_id: string;
  via: "poll" | "notify";
  processed_at: number;
  deliveries: string[];
  skipped: Skip[];
}

/** What a write-back index entry remembers. */
export interface WriteBackEntry {
  tenant_id: string;
  object_id: string | null;
  written_updated_at: number | null;
}

/** The sync's handle. */
export interface PgSync {
  /** One pass over steps changed since the cursor; returns how many were new. */
  poll(): Promise<number>;
  /** Processes one NOTIFY'd status change. */
  notify(notice: { step_id: string; status: string }): Promise<void>;
  /**
   * Whether the agent's database has `webhook_deliveries`; while it has not, each
   * call looks again (absence is logged once), so a table created later is used.
   */
  writeBackEnabled(): Promise<boolean>;
  /** Processes a step now; `undefined` when it was already processed or is gone. */
  processStep(
    stepId: string,
    opts: { via: "poll" | "notify"; status?: string; changedAtMs?: number },
  ): Promise<Answer | undefined>;
}

interface Cursor {
  ms: number;
}

/**
 * Creates the sync.
 *
 * @param deps KV, the step source, clock, logger, metrics, worker and resolution options.
 * @returns The sync; {@link runPgLoop} drives its polling.
 * @example
 * ```ts
 * const sync = createPgSync({ kv, source: createStepSource(sql), now: Date.now, log, metrics, queue: true, worker, nullIsActive: false, allowPrivate: false, overlapMs: 30_000 });
 * await sync.poll();
 * ```
 */
export function createPgSync(deps: PgSyncDeps): PgSync {
  let writeBackTable: boolean | undefined;
  let absenceLogged = false;
  const failures = new Map<string, number>();

  async function writeBackEnabled(): Promise<boolean> {
    if (writeBackTable) return true;
    writeBackTable = await deps.source.hasWriteBackTable();
    if (writeBackTable && absenceLogged) {
      deps.log.info("webhook_deliveries table found: write-back on");
    } else if (!writeBackTable && !absenceLogged) {
      absenceLogged = true;
      deps.log.info(
        "webhook_deliveries table absent: write-back to the agent's database skipped until it exists",
      );
    }
    return writeBackTable;
  }

  async function processStep(
    stepId: string,
    opts: { via: "poll" | "notify"; status?: string; changedAtMs?: number },
  ): Promise<Answer | undefined> {
    const chain = await deps.source.readChain(stepId);
    if (!chain) return undefined;
    if (writeBackTable === undefined) await writeBackEnabled();
    return await recordStep(chain, opts);
  }

  async function recordStep(
    chain: StepChain,
    opts: { via: "poll" | "notify"; status?: string; changedAtMs?: number },
  ): Promise<Answer | undefined> {
    const stepId = chain.step.step_id;
    const status = opts.status ?? chain.step.status;
    const changedAt = opts.changedAtMs ?? chain.step.completed_at_ms;
    const r = resolveStep(chain, {
      status,
      nullIsActive: deps.nullIsActive,
      allowPrivate: deps.allowPrivate,
      allowlist: deps.allowlist,
    });
    for (let round = 0; round < 5; round++) {
      const seen = await deps.kv.get<PgStepRecord>(
        keys.pgStepKey(stepId, status),
      );
      if (seen.value && (changedAt ?? 0) <= (seen.value.changed_at_ms ?? 0)) {
        return undefined;
      }
      const eventId = newId("evt", deps.now());
      const objects: StepObject[] = r.targets.flatMap((t) =>
        r.objects.map((o) => ({
          ...o,
          step_id: stepId,
          tenant_id: chain.context!.tenant_id,
          principal_id: chain.context!.principal_id,
          task_type: r.taskType,
          context_id: chain.step.context_id,
          target: { url: t.url, token: t.token, auth: t.auth },
          created_at: deps.now(),
        }))
      );
      const skipped: Skip[] = r.findings.filter((f) => !f.ok).map((f) => ({
        reason: f.cause!,
        detail: f.detail,
      }));
      const op = deps.kv.atomic().check(seen);
      const failed = status.toLowerCase() === "failed";
      const planned = r.taskStatus === undefined || objects.length === 0
        ? { deliveries: [], skipped: [] }
        : await planStep(deps, op, {
          eventId,
          update: {
            type: "workflow_step.updated",
            step_id: stepId,
            status,
            completed_at: changedAt === null
              ? undefined
              : new Date(chain.step.completed_at_ms ?? changedAt).toISOString(),
            result: chain.step.response_data ?? undefined,
            message: chain.step.error_message ?? undefined,
            error: failed ? chain.step.error_message ?? undefined : undefined,
          },
          objects,
          optimistic: round === 0,
        });
      const answer: Answer = {
        event_id: eventId,
        deliveries: planned.deliveries,
        skipped: [...skipped, ...planned.skipped],
      };
      const record: PgStepRecord = {
        step_id: stepId,
        status,
        changed_at_ms: changedAt,
        event_id: eventId,
        via: opts.via,
        processed_at: deps.now(),
        deliveries: answer.deliveries.map((d) => d.id),
        skipped: answer.skipped,
      };
      op.set(keys.pgStepKey(stepId, status), record);
      if (writeBackTable && chain.context) {
        const entry: WriteBackEntry = {
          tenant_id: chain.context.tenant_id,
          object_id: r.objects[0]?.object_id ?? null,
          written_updated_at: null,
        };
        for (const d of answer.deliveries) {
          op.set(keys.writeBackKey(d.id), entry);
        }
      }
      if (!(await op.commit()).ok) continue;
      for (const d of answer.deliveries) deps.worker.kick(d.id);
      logDecisions(deps, { stepId, status, via: opts.via, answer, r });
      return answer;
    }
    throw new Error(`Cannot process step "${stepId}": 5 write conflicts`);
  }

  /** Records a step that kept failing as skipped, so later steps are not held up. */
  async function giveUp(
    c: { step_id: string; status: string; changed_at_ms: number },
    seen: Deno.KvEntryMaybe<PgStepRecord>,
    err: unknown,
  ) {
    const skip: Skip = { reason: "commit_failed", detail: String(err) };
    const record: PgStepRecord = {
      step_id: c.step_id,
      status: c.status,
      changed_at_ms: c.changed_at_ms,
      event_id: newId("evt", deps.now()),
      via: "poll",
      processed_at: deps.now(),
      deliveries: [],
      skipped: [skip],
    };
    const res = await deps.kv.atomic().check(seen).set(
      keys.pgStepKey(c.step_id, c.status),
      record,
    ).commit();
    // A NOTIFY processed it meanwhile: nothing to skip.
    if (!res.ok) return;
    deps.metrics.inc("relay_deliveries_skipped_total", { reason: skip.reason });
    deps.log.error("delivery skipped", {
      trace_id: record.event_id,
      step_id: c.step_id,
      status: c.status,
      ...skip,
    });
  }

  return {
    processStep,
    writeBackEnabled,
    async notify(notice) {
      await processStep(notice.step_id, {
        via: "notify",
        status: notice.status,
      });
    },
    async poll() {
      const entry = await deps.kv.get<Cursor>(keys.pgCursorKey);
      const cursor = entry.value ??
        { ms: await deps.source.nowMs() - deps.overlapMs };
      if (!entry.value) {
        deps.log.info("pg sync cursor initialised", { cursor_ms: cursor.ms });
      }
      if (writeBackTable === undefined) await writeBackEnabled();
      const pageSize = deps.pageSize ?? 200;
      const maxFailures = deps.maxStepFailures ?? 3;
      let after = { ms: cursor.ms - deps.overlapMs, stepId: "" };
      let newest = cursor.ms;
      let held = Infinity;
      let processed = 0;
      for (;;) {
        const page = await deps.source.listChanged(after, pageSize);
        for (const c of page) {
          newest = Math.max(newest, c.changed_at_ms);
          const seen = await deps.kv.get<PgStepRecord>(
            keys.pgStepKey(c.step_id, c.status),
          );
          if (
            seen.value && c.changed_at_ms <= (seen.value.changed_at_ms ?? 0)
          ) {
            continue;
          }
          // Postgres errors end the pass (the loop backs off); a row that does
          // not parse is passed over.
          const chain = await _unlessUnreadable(
            deps,
            c.step_id,
            () => deps.source.readChain(c.step_id),
          );
          if (!chain) continue;
          const k = `${c.step_id}\u0000${c.status}`;
          try {
            const answer = await _unlessUnreadable(
              deps,
              c.step_id,
              () =>
                recordStep(chain, {
                  via: "poll",
                  status: c.status,
                  changedAtMs: c.changed_at_ms,
                }),
            );
            failures.delete(k);
            if (answer) processed++;
          } catch (err) {
            const n = (failures.get(k) ?? 0) + 1;
            if (n >= maxFailures) {
              failures.delete(k);
              await giveUp(c, seen, err);
              continue;
            }
            failures.set(k, n);
            held = Math.min(held, c.changed_at_ms);
            deps.log.warn("step processing failed; retried next pass", {
              step_id: c.step_id,
              status: c.status,
              failures: n,
              error: String(err),
            });
          }
        }
        const last = page[page.length - 1];
        if (page.length < pageSize || !last) break;
        after = { ms: last.changed_at_ms, stepId: last.step_id };
      }
      // The cursor never passes a step that is still to be retried.
      const next: Cursor = { ms: Math.min(newest, held) };
      if (next.ms > cursor.ms || !entry.value) {
        await deps.kv.atomic().check(entry).set(keys.pgCursorKey, {
          ms: Math.max(next.ms, cursor.ms),
        }).commit();
      }
      return processed;
    },
  };
}

/** A row that does not parse is named and passed over; any other error is thrown. */
async function _unlessUnreadable<T>(
  deps: PgSyncDeps,
  stepId: string,
  fn: () => Promise<T>,
): Promise<T | undefined> {
  try {
    return await fn();
  } catch (err) {
    if (!(err instanceof z.ZodError)) throw err;
    deps.log.error("step row unreadable: passed over", {
      step_id: stepId,
      issues: err.issues.map((i) => `${i.path.join(".")}: ${i.message}`),
    });
    return undefined;
  }
}
