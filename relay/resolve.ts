/**
 * Resolves a workflow step to the webhooks it owes, walking the chain the sales agent
 * walks (step → mappings → context → configs) but naming every reason it would have
 * skipped silently. Pure: the rows come in, findings and targets come out.
 */
import type { StepChain } from "./source.ts";
import { isTerminal, toTaskStatus } from "./status.ts";
import { targetUrlProblem } from "./target_url.ts";
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
 * Normalises an authentication type as the agent stores it (`HMAC-SHA256`,
 * `hmac_sha256`, `Bearer`, `bearer`, …).
 *
 * @param raw The stored value.
 * @returns The AdCP scheme, `null` for none, or `undefined` when unknown.
 */
export function normaliseScheme(
  raw: string | null | undefined,
): PushAuth["scheme"] | null | undefined {
  const v = (raw ?? "").trim().toLowerCase().replace(/[-_\s]/g, "");
  if (v === "" || v === "none") return null;
  if (v === "hmacsha256" || v === "hmac") return "HMAC-SHA256";
  if (v === "bearer") return "Bearer";
  return undefined;
}

function _pnc(requestData: unknown): Record<string, unknown> | undefined {
  const pnc = (requestData as { push_notification_config?: unknown } | null)
    ?.push_notification_config;
  return pnc && typeof pnc === "object"
    ? pnc as Record<string, unknown>
    : undefined;
}

function _str(v: unknown): string | undefined {
  return typeof v === "string" && v !== "" ? v : undefined;
}

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
  opts: { status: string; nullIsActive: boolean; allowPrivate: boolean },
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
  return _targets(chain, out, opts);
}

function _targets(
  chain: StepChain,
  out: Resolution,
  opts: { nullIsActive: boolean; allowPrivate: boolean },
): Resolution {
  const { step, configs, context } = chain;
  const findings = out.findings;
  const shown = configs.map((
    { authentication_token: _t, webhook_secret: _s, ...c },
  ) => c);
  if (configs.length === 0) {
    findings.push({
      link: "config",
      ok: false,
      cause: "no_config",
      detail: `no push_notification_configs row for tenant "${
        context!.tenant_id
      }" and principal "${context!.principal_id}"`,
      fix: "register the webhook (push_notification_config) for this principal",
    });
    return out;
  }
  const usable = configs.filter((c) =>
    c.is_active === true || (c.is_active === null && opts.nullIsActive)
  );
  for (const c of configs) {
    if (c.is_active === false) {
      findings.push({
        link: "config",
        ok: usable.length > 0,
        cause: "config_inactive",
        detail: `config "${c.id}" has is_active = false`,
        fix: "set is_active = true if the buyer still wants webhooks",
        rows: shown.filter((s) => s.id === c.id),
      });
    } else if (c.is_active === null && !opts.nullIsActive) {
      findings.push({
        link: "config",
        ok: usable.length > 0,
        cause: "config_is_active_null",
        detail:
          `config "${c.id}" has is_active NULL (raw SQL insert; the column has no server default)`,
        fix:
          "set is_active = true, or run the relay with RELAY_NULL_IS_ACTIVE=1",
        rows: shown.filter((s) => s.id === c.id),
      });
    }
  }
  if (usable.length === 0) return out;

  const pnc = _pnc(step.request_data);
  const rdAuth = pnc?.authentication as
    | { schemes?: unknown; credentials?: unknown }
    | undefined;
  const byUrl = new Map<string, ResolvedTarget>();
  for (const c of usable) {
    const url = _str(pnc?.url) ?? _str(c.url);
    if (!url) {
      findings.push({
        link: "url",
        ok: false,
        cause: "no_url",
        detail:
          `neither request_data.push_notification_config.url nor config "${c.id}" has a URL`,
        fix: "store the buyer's push_notification_config with its url",
      });
      continue;
    }
    const rawScheme = rdAuth
      ? (Array.isArray(rdAuth.schemes) ? _str(rdAuth.schemes[0]) : undefined)
      : c.authentication_type;
    const scheme = normaliseScheme(rawScheme);
    if (scheme === undefined) {
      findings.push({
        link: "auth",
        ok: false,
        cause: "unknown_auth_scheme",
        detail:
          `authentication "${rawScheme}" (config "${c.id}") is neither HMAC-SHA256 nor Bearer`,
        fix: "use HMAC-SHA256 or Bearer",
      });
      continue;
    }
    const credentials = rdAuth
      ? _str(rdAuth.credentials)
      : _str(c.authentication_token) ?? _str(c.webhook_secret);
    const problem = targetUrlProblem(url, { allowPrivate: opts.allowPrivate });
    if (problem) {
      findings.push({
        link: "url",
        ok: false,
        cause: problem === "not a valid URL" || problem.startsWith("scheme")
          ? "url_invalid"
          : "url_blocked",
        detail: `${url}: ${problem}`,
        fix: "register a public http(s) URL",
      });
      continue;
    }
    const existing = byUrl.get(url);
    if (existing) {
      existing.config_ids.push(c.id);
      continue;
    }
    byUrl.set(url, {
      url,
      token: _str(pnc?.token) ?? _str(c.validation_token),
      auth: scheme && credentials ? { scheme, credentials } : undefined,
      config_ids: [c.id],
      url_from: _str(pnc?.url) ? "request_data" : "config",
    });
  }
  out.targets = [...byUrl.values()];
  for (const t of out.targets) {
    findings.push({
      link: "url",
      ok: true,
      detail: `${t.url} (from ${t.url_from}, auth ${t.auth?.scheme ?? "none"})`,
      rows: shown.filter((s) => t.config_ids.includes(s.id)),
    });
    if (t.config_ids.length > 1) {
      findings.push({
        link: "config",
        ok: true,
        cause: "duplicate_configs",
        detail:
          `${t.config_ids.length} config rows give ${t.url}: deduplicated to one webhook (the agent sends ${t.config_ids.length})`,
      });
    }
  }
  return out;
}
