/**
 * Resolves a workflow step to the webhooks it owes, walking the chain the sales agent
 * walks (step → mappings → context → configs) but naming every reason it would have
 * skipped silently. Pure: the rows come in, findings and targets come out.
 */
import type { StepChain } from "./source.ts";
import { isTerminal, toTaskStatus } from "./status.ts";
import type { Allowlist } from "./ip_ranges.ts";
import { MAX_RESULT_BYTES, resultBytes } from "./payload.ts";
import { resolveTargets } from "./resolve_targets.ts";
import type { PushAuth } from "./types.ts";

/** One link of the chain: ok, or the named cause with the rows and the fix. */
export interface Finding {
  link: "status" | "mapping" | "context" | "config" | "url" | "auth";
  ok: boolean;
  /** Machine-readable cause; also the skip reason when `ok` is false. */
  cause?: string;
  detail: string;
  fix?: string;
  rows?: unknown[];
}

/** One distinct URL the step's webhook goes to. */
export interface ResolvedTarget {
  url: string;
  token?: string;
  auth?: PushAuth;
  config_ids: string[];
  url_from: "request_data" | "config";
}

/** The outcome of {@link resolveStep}. */
export interface Resolution {
  taskStatus?: string;
  taskType: string;
  objects: { object_type: string; object_id: string }[];
  targets: ResolvedTarget[];
  findings: Finding[];
}

const _TASK_TYPES = new Set([
  "create_media_buy",
  "update_media_buy",
  "sync_creatives",
  "activate_signal",
  "get_signals",
]);

/**
 * Walks the chain for one status of a step.
 *
 * @param chain The step and its rows.
 * @param opts The status to notify (the row's, or the one a NOTIFY carried), whether
 *   NULL `is_active` counts as active, and whether private target URLs are allowed.
 * @returns Findings in chain order, the distinct targets and the objects.
 * @example
 * ```ts
 * const r = resolveStep(chain, { status: "completed", nullIsActive: false, allowPrivate: false });
 * r.findings.filter((f) => !f.ok).map((f) => f.cause); // e.g. ["config_is_active_null"]
 * ```
 */
export function resolveStep(
  chain: StepChain,
  opts: {
    status: string;
    nullIsActive: boolean;
    allowPrivate: boolean;
    allowlist?: Allowlist;
  },
): Resolution {
  const { step, mappings, context } = chain;
  const findings: Finding[] = [];
  const seen = new Set<string>();
  const objects = mappings.filter((m) => {
    const k = `${m.object_type}\u0000${m.object_id}`;
    return seen.has(k) ? false : (seen.add(k), true);
  }).map((m) => ({ object_type: m.object_type, object_id: m.object_id }));
  const tool = step.tool_name ?? "";
  const taskType = _TASK_TYPES.has(tool)
    ? tool
    : objects[0]?.object_type === "creative"
    ? "sync_creatives"
    : "create_media_buy";
  const out: Resolution = { taskType, objects, targets: [], findings };
  const stop = (
    f: Omit<Finding, "ok">,
  ) => (findings.push({ ...f, ok: false }), out);

  const taskStatus = toTaskStatus(opts.status);
  if (taskStatus === undefined) {
    return stop({
      link: "status",
      cause: "unmapped_status",
      detail:
        `status "${opts.status}" has no AdCP task status; the agent would send "unknown"`,
      fix:
        "use a status from the mapping table in relay/status.ts, or add this one there",
      rows: [{ step_id: step.step_id, status: opts.status }],
    });
  }
  out.taskStatus = taskStatus;
  findings.push(
    isTerminal(taskStatus)
      ? {
        link: "status",
        ok: true,
        detail: `"${opts.status}" maps to AdCP "${taskStatus}"`,
      }
      : {
        link: "status",
        ok: true,
        cause: "step_not_terminal",
        detail:
          `"${opts.status}" maps to AdCP "${taskStatus}": the step is not terminal yet; a final webhook follows when it completes`,
        fix:
          "interim statuses are only seen in notify mode (deno task db:install)",
      },
  );
  const bytes = resultBytes(step.response_data, step.error_message);
  if (bytes > MAX_RESULT_BYTES) {
    return stop({
      link: "status",
      cause: "payload_too_large",
      detail:
        `response_data and error_message are ${bytes} bytes as JSON; a webhook carries at most ${MAX_RESULT_BYTES}`,
      fix:
        "keep response_data small (store large results elsewhere and reference them)",
    });
  }
  if (isTerminal(taskStatus) && step.completed_at_ms === null) {
    findings.push({
      link: "status",
      ok: true,
      cause: "changed_outside_agent",
      detail:
        "status is terminal but completed_at is NULL: it was set outside update_workflow_step (raw SQL or a direct ORM assignment), so the agent sent nothing; the relay caught it",
      fix:
        "poll mode only sees completed_at; run deno task db:install for notify mode",
      rows: [{
        step_id: step.step_id,
        status: step.status,
        completed_at: null,
      }],
    });
  }

  if (mappings.length === 0) {
    return stop({
      link: "mapping",
      cause: "no_mapping",
      detail:
        `no object_workflow_mapping row has step_id "${step.step_id}"; nothing names the object the webhook is about`,
      fix:
        "insert the mapping (link_workflow_to_object) before completing the step",
    });
  }
  const late = mappings.filter((m) =>
    step.completed_at_ms !== null && m.created_at_ms > step.completed_at_ms
  );
  findings.push({
    link: "mapping",
    ok: true,
    detail: `${objects.length} object(s) mapped to the step`,
    rows: mappings,
  });
  if (late.length > 0) {
    findings.push({
      link: "mapping",
      ok: true,
      cause: "mapping_after_status_change",
      detail:
        "the mapping was created after the status change, so the agent's hook found no mapping and sent nothing; the relay re-reads steps when a mapping appears",
      fix: "insert the mapping before update_workflow_step (prebid PR #1461)",
      rows: late,
    });
  }
  if (objects.length < mappings.length) {
    findings.push({
      link: "mapping",
      ok: true,
      cause: "duplicate_mappings",
      detail:
        `${mappings.length} mapping rows for ${objects.length} object(s): deduplicated, one webhook per URL`,
    });
  }

  if (!context) {
    return stop({
      link: "context",
      cause: "no_context",
      detail:
        `no contexts row for context_id "${step.context_id}": tenant and principal are unknown`,
      fix: "create the context row the step points at",
    });
  }
  findings.push({
    link: "context",
    ok: true,
    detail:
      `tenant "${context.tenant_id}", principal "${context.principal_id}"`,
    rows: [context],
  });
  return resolveTargets(chain, out, opts);
}
