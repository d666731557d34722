/** The sales agent sync's decision log lines. */
import type { Answer } from "./plan_step.ts";
import type { Logger } from "./log.ts";
import type { Metrics } from "./metrics.ts";
import type { resolveStep } from "./resolve.ts";

/**
 * Logs one JSON line per decision of a processed step, all with its trace id, and
 * counts skips by reason.
 *
 * @param deps Logger and metrics.
 * @param d The step, status, driver, answer and resolution.
 */
export function logDecisions(
  deps: { log: Logger; metrics: Metrics },
  d: {
    stepId: string;
    status: string;
    via: string;
    answer: Answer;
    r: ReturnType<typeof resolveStep>;
  },
) {
  const trace = { trace_id: d.answer.event_id, step_id: d.stepId };
  deps.metrics.inc("relay_events_accepted_total", { type: `pg_${d.via}` });
  deps.log.info("step resolved", {
    ...trace,
    status: d.status,
    task_status: d.r.taskStatus ?? null,
    via: d.via,
    deliveries: d.answer.deliveries.map((x) => x.id),
  });
  for (const f of d.r.findings) {
    if (f.ok && !f.cause) continue;
    deps.log.info("resolution", {
      ...trace,
      link: f.link,
      ok: f.ok,
      cause: f.cause,
      detail: f.detail,
    });
  }
  for (const skip of d.answer.skipped) {
    deps.metrics.inc("relay_deliveries_skipped_total", { reason: skip.reason });
    deps.log.info("delivery skipped", { ...trace, ...skip });
  }
}
