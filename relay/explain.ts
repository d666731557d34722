/**
 * Explain: for one object, walks step → mapping → context → config → URL → delivery
 * → attempts and says, link by link, ok or the named cause, with the rows behind it
 * and the fix. The same document backs the API and `deno task explain`.
 */
import * as keys from "./keys.ts";
import type { PgStepRecord } from "./pg_sync.ts";
import type { Allowlist } from "./ip_ranges.ts";
import { type Finding, resolveStep } from "./resolve.ts";
import type { StepSource } from "./source.ts";
import { listAttempts, listDeliveries } from "./store.ts";
import type { AttemptRecord, DeliveryRecord, TargetRecord } from "./types.ts";

/** A delivery's link: what happened to it at the receiver. */
export interface DeliveryFinding extends Omit<Finding, "link"> {
  link: "delivery";
  delivery_id: string;
  url: string;
  status: string;
  attempts: AttemptRecord[];
}

/** One step mapped to the object. */
export interface StepExplanation {
  step_id: string;
  status: string;
  completed_at: string | null;
  /** The relay's trace id(s) for this step, one per processed status. */
  trace_ids: string[];
  findings: (Finding | DeliveryFinding)[];
}

/** The whole answer. */
export interface Explanation {
  object_type: string;
  object_id: string;
  /** `sent` when some webhook was delivered, `pending` while one is retrying. */
  verdict: "sent" | "pending" | "not_sent";
  /** Object-level findings (e.g. `no_mapping`). */
  findings: Finding[];
  steps: StepExplanation[];
}

/**
 * Explains why webhooks for an object were or were not sent.
 *
 * @param deps KV, the source and the resolution options the sync uses.
 * @param objectType e.g. `media_buy`.
 * @param objectId e.g. `mb_1`.
 * @returns The explanation.
 * @example
 * ```ts
 * const doc = await explainObject(deps, "media_buy", "mb_1");
 * doc.steps[0]?.findings.filter((f) => !f.ok).map((f) => f.cause);
 * ```
 */
export async function explainObject(
  deps: {
    kv: Deno.Kv;
    source: StepSource;
    nullIsActive: boolean;
    allowPrivate: boolean;
    allowlist?: Allowlist;
  },
  objectType: string,
  objectId: string,
): Promise<Explanation> {
  const mappings = await deps.source.mappingsOf(objectType, objectId);
  const doc: Explanation = {
    object_type: objectType,
    object_id: objectId,
    verdict: "not_sent",
    findings: [],
    steps: [],
  };
  if (mappings.length === 0) {
    doc.findings.push({
      link: "mapping",
      ok: false,
      cause: "no_mapping",
      detail:
        `no object_workflow_mapping row has object_type "${objectType}" and object_id "${objectId}"`,
      fix:
        "insert the mapping (link_workflow_to_object) before completing the step",
    });
    return doc;
  }
  const stepIds = [...new Set(mappings.map((m) => m.step_id))];
  for (const stepId of stepIds) {
    const chain = await deps.source.readChain(stepId);
    if (!chain) continue;
    const r = resolveStep(chain, {
      status: chain.step.status,
      nullIsActive: deps.nullIsActive,
      allowPrivate: deps.allowPrivate,
      allowlist: deps.allowlist,
    });
    const processed: PgStepRecord[] = [];
    for await (
      const e of deps.kv.list<PgStepRecord>({
        prefix: keys.pgStepsPrefix(stepId),
      })
    ) processed.push(e.value);
    const step: StepExplanation = {
      step_id: stepId,
      status: chain.step.status,
      completed_at: chain.step.completed_at_ms === null
        ? null
        : new Date(chain.step.completed_at_ms).toISOString(),
      trace_ids: processed.map((p) => p.event_id),
      findings: [...r.findings],
    };
    const { items } = await listDeliveries(deps.kv, {
      step_id: stepId,
      limit: 50,
    });
    for (const d of items) {
      step.findings.push(await _deliveryFinding(deps.kv, d));
    }
    for (const p of processed) {
      const failed = p.skipped.find((s) => s.reason === "commit_failed");
      if (!failed) continue;
      step.findings.push({
        link: "status",
        ok: false,
        cause: "commit_failed",
        detail:
          `status "${p.status}" was given up after repeated failures to record it (trace ${p.event_id}): ${failed.detail}`,
        fix:
          "remove the cause (e.g. fewer targets or a smaller response_data), then send the update through POST /v1/events",
      });
    }
    const blocked = r.findings.some((f) => !f.ok) && r.targets.length === 0;
    if (
      !blocked && items.length === 0 &&
      !step.findings.some((f) => f.cause === "commit_failed")
    ) {
      step.findings.push(
        processed.length === 0
          ? {
            link: "status",
            ok: false,
            cause: "not_seen_yet",
            detail:
              "the relay has not processed this step yet (poll mode sees only steps with completed_at)",
            fix:
              "wait one RELAY_PG_POLL_MS, or check that the relay runs with DATABASE_URL",
          }
          : {
            link: "status",
            ok: true,
            detail: `processed as "${processed[0]!.status}"; skipped: ${
              processed[0]!.skipped.map((s) => s.reason).join(", ") || "none"
            }`,
          },
      );
    }
    doc.steps.push(step);
    if (items.some((d) => d.status === "succeeded")) doc.verdict = "sent";
    else if (
      doc.verdict !== "sent" &&
      items.some((d) => d.status === "pending" || d.status === "failed")
    ) doc.verdict = "pending";
  }
  return doc;
}

async function _deliveryFinding(
  kv: Deno.Kv,
  d: DeliveryRecord,
): Promise<DeliveryFinding> {
  const attempts = await listAttempts(kv, d.id);
  const target = (await kv.get<TargetRecord>(keys.targetKey(d.target_id)))
    .value;
  const base = {
    link: "delivery" as const,
    delivery_id: d.id,
    url: d.url,
    status: d.status,
    attempts,
  };
  if (d.status === "succeeded") {
    return {
      ...base,
      ok: true,
      detail:
        `delivered after ${d.attempts} attempt(s), HTTP ${d.last_status_code}`,
    };
  }
  if (target?.disabled_at && d.status === "dead") {
    return {
      ...base,
      ok: false,
      cause: "target_disabled",
      detail: `target disabled: ${target.disabled_reason}`,
      fix:
        `enable the target: POST /v1/targets/${d.target_id}/enable, then POST /v1/deliveries/${d.id}/redeliver (or /v1/deliveries/recover for a window); while it is disabled a redelivery dies at once`,
    };
  }
  if (d.attempts === 0) {
    return { ...base, ok: true, detail: "queued, first attempt pending" };
  }
  const unreachable = d.last_status_code === null;
  return {
    ...base,
    ok: false,
    cause: unreachable ? "receiver_unreachable" : "receiver_rejected",
    detail: `${d.status} after ${d.attempts} attempt(s): ${d.last_error}${
      d.status === "failed" && d.next_attempt_at
        ? `; next attempt ${new Date(d.next_attempt_at).toISOString()}`
        : ""
    }`,
    fix: unreachable
      ? "check the receiver is up and reachable from the relay"
      : "check the receiver's answer (response_body of each attempt)",
  };
}
