/** The last links of a step's chain: configs, their URL and their authentication. */
import type { Resolution, ResolvedTarget } from "./resolve.ts";
import type { StepChain } from "./source.ts";
import type { Allowlist } from "./ip_ranges.ts";
import { targetUrlProblem } from "./target_url.ts";
import { MIN_CREDENTIAL_CHARS, normaliseAuthScheme } from "./auth_scheme.ts";

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
 * The config, URL and auth links: which configs count, where each URL and its auth
 * come from, and one target per distinct URL. Adds findings and targets to `out`.
 *
 * @param chain The step's rows (context present).
 * @param out The resolution so far; extended and returned.
 * @param opts Whether NULL `is_active` counts and whether private URLs are allowed.
 * @returns `out`.
 */
export function resolveTargets(
  chain: StepChain,
  out: Resolution,
  opts: { nullIsActive: boolean; allowPrivate: boolean; allowlist?: Allowlist },
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
    const scheme = normaliseAuthScheme(rawScheme);
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
    const from = rdAuth
      ? "request_data.push_notification_config.authentication.credentials"
      : `config "${c.id}" (authentication_token, webhook_secret)`;
    if (scheme && !credentials) {
      findings.push({
        link: "auth",
        ok: false,
        cause: "missing_credentials",
        detail:
          `${scheme} asked for but ${from} has no credentials: the webhook would go unauthenticated`,
        fix:
          `store the buyer's ${scheme} credentials (≥ ${MIN_CREDENTIAL_CHARS} characters)`,
      });
      continue;
    }
    if (scheme && credentials!.length < MIN_CREDENTIAL_CHARS) {
      findings.push({
        link: "auth",
        ok: false,
        cause: "short_credentials",
        detail: `${scheme} credentials from ${from} are ${
          credentials!.length
        } characters; at least ${MIN_CREDENTIAL_CHARS} are required (as over HTTP)`,
        fix:
          `store credentials of at least ${MIN_CREDENTIAL_CHARS} characters for this buyer`,
      });
      continue;
    }
    const problem = targetUrlProblem(url, {
      allowPrivate: opts.allowPrivate,
      allowlist: opts.allowlist,
    });
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
