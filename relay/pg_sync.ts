/**
 * Sales agent sync: turns step status changes found in the agent's Postgres (by
 * polling `completed_at` past a KV cursor, or by NOTIFY) into durable deliveries, each
 * (step, status) processed once, every decision logged with its trace id.
 */
import { z } from "zod";
import { type Answer, planStep, type Skip } from "./intake.ts";
import { newId } from "./ids.ts";
import * as keys from "./keys.ts";
import type { Logger } from "./log.ts";
import type { Metrics } from "./metrics.ts";
import { logDecisions } from "./pg_decisions.ts";
import type { Allowlist } from "./ip_ranges.ts";
import { resolveStep } from "./resolve.ts";
import type { StepSource } from "./source.ts";
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
  /** Processes a step now; `undefined` when it was already processed or is gone. */
  processStep(
    stepId: string,
    opts: { via: "poll" | "notify"; status?: string; changedAtMs?: number },
  ): Promise<Answer | undefined>;
}

interface Cursor {
  ms: number;
  step_id: string;
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

  async function processStep(
    stepId: string,
    opts: { via: "poll" | "notify"; status?: string; changedAtMs?: number },
  ): Promise<Answer | undefined> {
    const chain = await deps.source.readChain(stepId);
    if (!chain) return undefined;
    const status = opts.status ?? chain.step.status;
    const changedAt = opts.changedAtMs ?? chain.step.completed_at_ms;
    const r = resolveStep(chain, {
      status,
      nullIsActive: deps.nullIsActive,
      allowPrivate: deps.allowPrivate,
      allowlist: deps.allowlist,
    });
    writeBackTable ??= await _checkWriteBack(deps);
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

  return {
    processStep,
    async notify(notice) {
      await processStep(notice.step_id, {
        via: "notify",
        status: notice.status,
      });
    },
    async poll() {
      const entry = await deps.kv.get<Cursor>(keys.pgCursorKey);
      const cursor = entry.value ??
        { ms: await deps.source.nowMs() - deps.overlapMs, step_id: "" };
      if (!entry.value) {
        deps.log.info("pg sync cursor initialised", { cursor_ms: cursor.ms });
      }
      const pageSize = deps.pageSize ?? 200;
      let after = { ms: cursor.ms - deps.overlapMs, stepId: "" };
      let newest = cursor.ms;
      let processed = 0;
      for (;;) {
        const page = await deps.source.listChanged(after, pageSize);
        for (const c of page) {
          const seen = await deps.kv.get<PgStepRecord>(
            keys.pgStepKey(c.step_id, c.status),
          );
          const known = seen.value &&
            c.changed_at_ms <= (seen.value.changed_at_ms ?? 0);
          if (
            !known &&
            await _guarded(deps, c.step_id, () =>
              processStep(c.step_id, {
                via: "poll",
                status: c.status,
                changedAtMs: c.changed_at_ms,
              }))
          ) processed++;
          newest = Math.max(newest, c.changed_at_ms);
        }
        const last = page[page.length - 1];
        if (page.length < pageSize || !last) break;
        after = { ms: last.changed_at_ms, stepId: last.step_id };
      }
      if (newest > cursor.ms || !entry.value) {
        const next: Cursor = { ms: newest, step_id: "" };
        await deps.kv.atomic().check(entry).set(keys.pgCursorKey, next)
          .commit();
      }
      return processed;
    },
  };
}

async function _checkWriteBack(deps: PgSyncDeps): Promise<boolean> {
  const present = await deps.source.hasWriteBackTable();
  if (!present) {
    deps.log.info(
      "webhook_deliveries table absent: write-back to the agent's database skipped",
    );
  }
  return present;
}

/** A row that does not parse is named and passed over; any other error ends the pass. */
async function _guarded<T>(
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
