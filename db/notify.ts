/**
 * The optional NOTIFY trigger on `workflow_steps` (`deno task db:install` /
 * `db:uninstall`, never automatic) and the listener for it.
 */
import type { Sql } from "postgres";
import type { Logger } from "../relay/log.ts";

/** The channel the trigger notifies on. */
export const STEP_CHANNEL = "relay_workflow_steps";

/** A status change announced by the trigger. */
export interface StepNotice {
  step_id: string;
  status: string;
}

/**
 * Installs (or replaces) the trigger that NOTIFYs `{step_id, status}` on every insert
 * and every status change of `workflow_steps`, delivered when the change commits.
 *
 * @param sql A connection allowed to create functions and triggers.
 */
export async function installTrigger(sql: Sql): Promise<void> {
  await sql.begin(async (tx) => {
    await tx`create or replace function relay_notify_workflow_step()
      returns trigger language plpgsql as $fn$
      begin
        if tg_op = 'UPDATE' and old.status is not distinct from new.status then
          return new;
        end if;
        perform pg_notify('relay_workflow_steps',
          json_build_object('step_id', new.step_id, 'status', new.status)::text);
        return new;
      end $fn$`;
    await tx`drop trigger if exists relay_notify_workflow_step on workflow_steps`;
    await tx`create trigger relay_notify_workflow_step
      after insert or update of status on workflow_steps
      for each row execute function relay_notify_workflow_step()`;
  });
}

/**
 * Removes the trigger and its function.
 *
 * @param sql A connection allowed to drop them.
 */
export async function uninstallTrigger(sql: Sql): Promise<void> {
  await sql.begin(async (tx) => {
    await tx`drop trigger if exists relay_notify_workflow_step on workflow_steps`;
    await tx`drop function if exists relay_notify_workflow_step()`;
  });
}

/**
 * Whether the trigger is installed.
 *
 * @param sql Any connection.
 * @returns True when `workflow_steps` has the relay's trigger.
 */
export async function triggerInstalled(sql: Sql): Promise<boolean> {
  const [row] = await sql`select exists (select 1 from pg_trigger
    where tgname = 'relay_notify_workflow_step') as present`;
  return row?.present === true;
}

/**
 * Listens for status changes; postgres.js reconnects the listener by itself.
 *
 * @param sql The instance.
 * @param onNotice Called for each well-formed notice.
 * @param onListen Called each time the LISTEN is (re)established, e.g. to catch up.
 * @returns Resolves once listening; `unlisten()` stops.
 */
export function listenSteps(
  sql: Sql,
  onNotice: (notice: StepNotice) => void,
  onListen: () => void,
): Promise<{ unlisten(): Promise<void> }> {
  return sql.listen(STEP_CHANNEL, (raw) => {
    try {
      const v = JSON.parse(raw);
      if (typeof v?.step_id === "string" && typeof v?.status === "string") {
        onNotice({ step_id: v.step_id, status: v.status });
      }
    } catch { /* not ours: ignored */ }
  }, onListen);
}

/** A LISTEN that is retried until it holds; see {@link keepListening}. */
export interface StepListener {
  /** Starts a LISTEN attempt unless one holds or is under way; never throws. */
  ensure(): void;
  /** Whether the LISTEN holds (postgres.js then re-establishes it by itself). */
  readonly listening: boolean;
  /** Stops listening; never throws. */
  stop(): Promise<void>;
}

/**
 * Listens for status changes like {@link listenSteps}, but a failed LISTEN (e.g.
 * Postgres down at start) is logged as a warning and tried again at the next
 * `ensure()` instead of rejecting; polling covers the gap as catch-up.
 *
 * @param sql The instance.
 * @param handlers `onNotice` and `onListen` as for {@link listenSteps}, and a logger.
 * @returns The listener; call `ensure()` now and on every loop tick.
 */
export function keepListening(
  sql: Sql,
  handlers: {
    onNotice: (notice: StepNotice) => void;
    onListen: () => void;
    log: Logger;
  },
): StepListener {
  let held: { unlisten(): Promise<void> } | undefined;
  let attempt: Promise<void> | undefined;
  let stopped = false;
  let failures = 0;
  return {
    get listening() {
      return held !== undefined;
    },
    ensure() {
      if (held || attempt || stopped) return;
      attempt = listenSteps(sql, handlers.onNotice, handlers.onListen).then(
        async (l) => {
          if (stopped) return void await l.unlisten().catch(() => {});
          held = l;
          handlers.log.info("listening for step notices", {
            channel: STEP_CHANNEL,
            failed_attempts: failures,
          });
        },
        (err) => {
          failures++;
          handlers.log.warn("LISTEN failed; retried on the next poll tick", {
            channel: STEP_CHANNEL,
            error: String(err),
            failures,
          });
        },
      ).finally(() => attempt = undefined);
    },
    async stop() {
      stopped = true;
      await attempt;
      await held?.unlisten().catch(() => {});
      held = undefined;
    },
  };
}
