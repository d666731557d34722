/**
 * Relay configuration: parsed once from the environment with zod, then passed in.
 * `main.ts` is the only caller; everything else receives the frozen {@link Config}.
 */
import { z } from "zod";
import { type Allowlist, parseAllowlist } from "./relay/ip_ranges.ts";

/** How the relay runs: `dev` is forgiving and local, `start` is production. */
export type Mode = "dev" | "start";

/** The Standard Webhooks retry schedule, in seconds between attempts. */
export const DEFAULT_RETRY_SCHEDULE_S = [
  5,
  300,
  1800,
  7200,
  18000,
  36000,
  50400,
  72000,
  86400,
];

/** The longest wait a setting may ask for: Deno KV queues delay at most 30 days. */
export const MAX_DELAY_S = 30 * 24 * 3600;
const TOO_LONG = `expected at most ${MAX_DELAY_S} seconds (30 days)`;

/** Everything the relay reads from its environment, validated. */
export interface Config {
  readonly mode: Mode;
  readonly host: string;
  readonly port: number;
  readonly kvPath: string | undefined;
  readonly apiToken: string | undefined;
  /** `whsec_` secrets, current first; empty in dev until one is generated. */
  readonly signingSecrets: readonly string[];
  readonly allowPrivateTargets: boolean;
  /**
   * Milliseconds to wait before each retry; attempts = length + 1 (`none`: empty,
   * one attempt per cycle).
   */
  readonly retryScheduleMs: readonly number[];
  readonly timeoutMs: number;
  /** Upper bound applied to a receiver's `Retry-After`. */
  readonly retryAfterMaxMs: number;
  readonly queue: "kv" | "off";
  readonly sweepMs: number;
  readonly concurrency: number;
  /** Private ranges and hosts production may still call. */
  readonly targetAllowlist: Allowlist;
  /** Attempts in flight per target URL, so one slow receiver cannot starve others. */
  readonly targetConcurrency: number;
  /** Consecutive failures that open a target's circuit. */
  readonly circuitFailures: number;
  /** How long an open circuit waits before one probe attempt. */
  readonly circuitCooldownMs: number;
  /** Continuous failure after which a target is disabled. */
  readonly disableAfterMs: number;
  /** The sales agent's Postgres; unset means HTTP events only. */
  readonly databaseUrl: string | undefined;
  /** `poll` reads `completed_at` only; `notify` also listens to the installed trigger. */
  readonly pgMode: "poll" | "notify";
  readonly pgPollMs: number;
  /** How far behind its cursor each poll re-reads, for transactions committing late. */
  readonly pgOverlapMs: number;
  /** Treat `push_notification_configs.is_active IS NULL` as active. */
  readonly nullIsActive: boolean;
}

/** Thrown when the environment is invalid; `problems` names each variable. */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n  ${problems.join("\n  ")}`);
    this.name = "ConfigError";
  }
}

const SECRET = /^whsec_([A-Za-z0-9+/]+={0,2})$/;

function _secretProblem(secret: string): string | undefined {
  const match = SECRET.exec(secret);
  if (!match) return "expected whsec_ followed by base64";
  let bytes: number;
  try {
    bytes = atob(match[1]!).length;
  } catch {
    return "expected whsec_ followed by base64";
  }
  if (bytes < 24 || bytes > 64) {
    return `expected 24 to 64 bytes of key, got ${bytes}`;
  }
}

const flag = z.enum(["0", "1", "true", "false"]).transform((v) =>
  v === "1" || v === "true"
);
const positiveInt = z.coerce.number({ error: "expected a number" })
  .int("expected a whole number").positive("expected a positive number");

const envSchema = z.object({
  HOST: z.string().min(1).optional(),
  PORT: z.coerce.number({ error: "expected a number" }).int().min(0).max(65535)
    .default(8000),
  RELAY_KV_PATH: z.string().min(1).optional(),
  RELAY_API_TOKEN: z.string().min(16, "expected at least 16 characters")
    .optional(),
  RELAY_SIGNING_SECRET: z.string().optional().transform((raw, ctx) => {
    const secrets = (raw ?? "").split(",").map((s) => s.trim()).filter(
      Boolean,
    );
    secrets.forEach((secret, i) => {
      const problem = _secretProblem(secret);
      if (problem) {
        ctx.addIssue({ code: "custom", message: `#${i + 1}: ${problem}` });
      }
    });
    return secrets;
  }),
  RELAY_ALLOW_PRIVATE_TARGETS: flag.optional(),
  RELAY_RETRY_SCHEDULE: z.string().optional().transform((raw, ctx) => {
    if (raw === undefined) return DEFAULT_RETRY_SCHEDULE_S.map((s) => s * 1000);
    if (raw.trim() === "none") return [];
    const parts = raw.split(",").map((s) => s.trim());
    const ms = parts.map((s) => Math.round(Number(s) * 1000));
    if (
      parts.some((s, i) => s === "" || !Number.isFinite(ms[i]!) || ms[i]! < 0)
    ) {
      ctx.addIssue({
        code: "custom",
        message: `expected comma-separated seconds, got "${raw}"`,
      });
    } else if (ms.some((m) => m > MAX_DELAY_S * 1000)) {
      ctx.addIssue({ code: "custom", message: `each entry ${TOO_LONG}` });
    }
    return ms;
  }),
  RELAY_TIMEOUT_MS: positiveInt.default(10_000),
  RELAY_RETRY_AFTER_MAX_S: positiveInt.max(MAX_DELAY_S, TOO_LONG).default(
    3600,
  ),
  RELAY_QUEUE: z.enum(["kv", "off"]).optional(),
  RELAY_SWEEP_MS: positiveInt.default(1000),
  RELAY_CONCURRENCY: positiveInt.default(64),
  RELAY_TARGET_ALLOWLIST: z.string().optional().transform((raw, ctx) => {
    const { allowlist, bad } = parseAllowlist(raw ?? "");
    for (const entry of bad) {
      ctx.addIssue({
        code: "custom",
        message:
          `expected CIDR ranges, addresses or host names, got "${entry}"`,
      });
    }
    return allowlist;
  }),
  RELAY_TARGET_CONCURRENCY: positiveInt.default(8),
  RELAY_CIRCUIT_FAILURES: positiveInt.default(5),
  RELAY_CIRCUIT_COOLDOWN_S: positiveInt.max(MAX_DELAY_S, TOO_LONG).default(60),
  RELAY_DISABLE_AFTER_S: positiveInt.default(5 * 24 * 3600),
  DATABASE_URL: z.string().regex(
    /^postgres(ql)?:\/\//,
    "expected a postgres:// URL",
  ).optional(),
  RELAY_PG_MODE: z.enum(["poll", "notify"]).default("poll"),
  RELAY_PG_POLL_MS: positiveInt.default(1000),
  RELAY_PG_OVERLAP_MS: z.coerce.number({ error: "expected a number" }).int()
    .min(0).default(30_000),
  RELAY_NULL_IS_ACTIVE: flag.default(false),
});

/**
 * Parses the relay's configuration from environment variables.
 *
 * @param env The variables, e.g. `Deno.env.toObject()`.
 * @param mode `dev` (local defaults) or `start` (production rules).
 * @returns A frozen {@link Config}.
 * @throws {ConfigError} Listing every invalid or missing variable by name.
 * @example
 * ```ts
 * const config = loadConfig({ RELAY_TIMEOUT_MS: "5000" }, "dev");
 * ```
 */
export function loadConfig(
  env: Record<string, string | undefined>,
  mode: Mode,
): Config {
  const blanksRemoved = Object.fromEntries(
    Object.entries(env).filter(([, v]) => v !== undefined && v !== ""),
  );
  const parsed = envSchema.safeParse(blanksRemoved);
  const problems = parsed.success
    ? []
    : parsed.error.issues.map((issue) =>
      `${issue.path.join(".")}: ${issue.message}${
        issue.path[0] && env[String(issue.path[0])] !== undefined &&
          !String(issue.path[0]).includes("SECRET") &&
          !String(issue.path[0]).includes("TOKEN") &&
          issue.path[0] !== "DATABASE_URL"
          ? ` (got "${env[String(issue.path[0])]}")`
          : ""
      }`
    );
  if (mode === "start") {
    for (const name of ["RELAY_API_TOKEN", "RELAY_SIGNING_SECRET"]) {
      if (!blanksRemoved[name]) {
        problems.push(`${name}: required when running with "start"`);
      }
    }
  }
  if (!parsed.success || problems.length > 0) throw new ConfigError(problems);
  const e = parsed.data;
  return Object.freeze({
    mode,
    host: e.HOST ?? (mode === "dev" ? "127.0.0.1" : "0.0.0.0"),
    port: e.PORT,
    kvPath: e.RELAY_KV_PATH ??
      (mode === "dev" ? ".relay/relay.sqlite3" : undefined),
    apiToken: e.RELAY_API_TOKEN,
    signingSecrets: Object.freeze(e.RELAY_SIGNING_SECRET),
    allowPrivateTargets: e.RELAY_ALLOW_PRIVATE_TARGETS ?? mode === "dev",
    retryScheduleMs: Object.freeze(e.RELAY_RETRY_SCHEDULE),
    timeoutMs: e.RELAY_TIMEOUT_MS,
    retryAfterMaxMs: e.RELAY_RETRY_AFTER_MAX_S * 1000,
    queue: e.RELAY_QUEUE ?? (env.DENO_DEPLOYMENT_ID ? "off" : "kv"),
    sweepMs: e.RELAY_SWEEP_MS,
    concurrency: e.RELAY_CONCURRENCY,
    targetAllowlist: e.RELAY_TARGET_ALLOWLIST,
    targetConcurrency: e.RELAY_TARGET_CONCURRENCY,
    circuitFailures: e.RELAY_CIRCUIT_FAILURES,
    circuitCooldownMs: e.RELAY_CIRCUIT_COOLDOWN_S * 1000,
    disableAfterMs: e.RELAY_DISABLE_AFTER_S * 1000,
    databaseUrl: e.DATABASE_URL,
    pgMode: e.RELAY_PG_MODE,
    pgPollMs: e.RELAY_PG_POLL_MS,
    pgOverlapMs: e.RELAY_PG_OVERLAP_MS,
    nullIsActive: e.RELAY_NULL_IS_ACTIVE,
  });
}
