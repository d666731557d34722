/**
 * The `db` phase: a completed step committed by plain SQL in the sales agent's
 * Postgres → verified receipt, one step at a time, with the relay (`main.ts dev`, its
 * own process) in `notify` mode (trigger installed first, as `deno task db:install`
 * does) and in `poll` mode. Uses `DATABASE_URL`'s server when set, else a throwaway
 * cluster; each mode gets a fresh database that is dropped afterwards.
 */
import type { Sql } from "postgres";
import { createAgentTables } from "../../db/agent_schema.ts";
import { createSql } from "../../db/client.ts";
import { type Cluster, startCluster } from "../../db/cluster.ts";
import { installTrigger } from "../../db/notify.ts";
import { agentIds, completeBySql, seedAgent } from "../../tests/_pg.ts";
import { measure, pool, type RunStats } from "./measure.ts";
import type { BenchReceiver } from "./receiver.ts";
import { spawnRelay } from "./relay_process.ts";

/** Sizes of the db phase. */
export interface DbOptions {
  secret: string;
  /** Steps completed in notify mode. */
  notify: number;
  /** Steps completed in poll mode. */
  poll: number;
  pollMs: number;
  timeoutMs: number;
}

/** SQL commit → receipt latency in both modes. */
export interface DbResult {
  server: "DATABASE_URL" | "throwaway cluster";
  notify: RunStats;
  poll: RunStats & { poll_ms: number };
}

/**
 * Runs both modes.
 *
 * @param receiver The shared receiver.
 * @param opts Secret, sample sizes, poll interval, timeout.
 * @returns Latency (and, for context, rate) per mode.
 */
export async function runDb(
  receiver: BenchReceiver,
  opts: DbOptions,
): Promise<DbResult> {
  const given = Deno.env.get("DATABASE_URL");
  let cluster: Cluster | undefined;
  const serverUrl = given ?? (cluster = await startCluster()).url;
  const admin = createSql(serverUrl, {
    applicationName: "relay-bench",
    max: 1,
  });
  try {
    const notify = await _mode(receiver, admin, serverUrl, {
      ...opts,
      mode: "notify",
      n: opts.notify,
    });
    const poll = await _mode(receiver, admin, serverUrl, {
      ...opts,
      mode: "poll",
      n: opts.poll,
    });
    return {
      server: given ? "DATABASE_URL" : "throwaway cluster",
      notify,
      poll: { ...poll, poll_ms: opts.pollMs },
    };
  } finally {
    await admin.end({ timeout: 5 });
    await cluster?.[Symbol.asyncDispose]();
  }
}

async function _mode(
  receiver: BenchReceiver,
  admin: Sql,
  serverUrl: string,
  opts: DbOptions & { mode: "notify" | "poll"; n: number },
): Promise<RunStats> {
  const name = `relay_bench_${opts.mode}_${crypto.randomUUID().slice(0, 8)}`;
  await admin`create database ${admin(name)}`;
  const dbUrl = new URL(serverUrl);
  dbUrl.pathname = `/${name}`;
  const sql = createSql(dbUrl.href, { applicationName: "relay-bench" });
  try {
    await createAgentTables(sql);
    if (opts.mode === "notify") await installTrigger(sql);
    const keyOf = (i: number) => `step_db_${opts.mode}_${i}`;
    // Steps are seeded `working` (and so notified, in notify mode) before the relay
    // starts: only the completion is measured.
    await pool(opts.n, 4, (i) =>
      seedAgent(sql, {
        ...agentIds(`db_${opts.mode}_${i}`, receiver.url),
        step: keyOf(i),
      }));
    const relay = await spawnRelay({
      RELAY_SIGNING_SECRET: opts.secret,
      DATABASE_URL: dbUrl.href,
      RELAY_PG_MODE: opts.mode,
      RELAY_PG_POLL_MS: String(opts.pollMs),
    });
    try {
      // Let the first poll pass (which finds nothing completed) go by.
      await new Promise((r) => setTimeout(r, opts.pollMs + 500));
      return await measure(receiver, {
        n: opts.n,
        concurrency: 1,
        keyOf,
        timeoutMs: opts.timeoutMs,
        send: (i) => completeBySql(sql, keyOf(i)),
      });
    } finally {
      await relay.stop();
    }
  } finally {
    await sql.end({ timeout: 5 });
    await admin`drop database if exists ${admin(name)} with (force)`;
  }
}
