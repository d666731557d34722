/** The one postgres.js instance the relay uses for the sales agent's database. */
import postgres, { type Sql } from "postgres";

/**
 * Creates the `sql` instance: small pool, `application_name` set, UTC session time
 * zone (the agent's `timestamp` columns hold UTC wall time), notices dropped.
 *
 * @param url A `postgres://` URL (`DATABASE_URL`).
 * @param opts `applicationName` (default `webhook-relay`) and pool size `max` (default 4).
 * @returns The instance; `main.ts` ends it on shutdown.
 * @example
 * ```ts
 * const sql = createSql("postgres://agent@db/salesagent");
 * ```
 */
export function createSql(
  url: string,
  opts: { applicationName?: string; max?: number } = {},
): Sql {
  return postgres(url, {
    max: opts.max ?? 4,
    idle_timeout: 60,
    connect_timeout: 5,
    onnotice: false,
    connection: {
      application_name: opts.applicationName ?? "webhook-relay",
      TimeZone: "UTC",
    },
  });
}
