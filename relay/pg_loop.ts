/**
 * Drives the sales agent sync: a poll pass and a write-back pass every `pollMs`; while
 * Postgres is unreachable, backs off (doubling, capped) and catches up once it is back.
 */
import type { Logger } from "./log.ts";
import type { PgSync } from "./pg_sync.ts";
import type { StepSource } from "./source.ts";
import { writeBackPass } from "./write_back.ts";

/** The loop's handle. */
export interface PgLoop {
  /** Runs one pass now (also what each timer tick does). */
  tick(): Promise<void>;
  /** Stops the timer and waits for a pass in progress. */
  stop(): Promise<void>;
}

/**
 * Starts the loop. Only a failed poll backs off: write-back has its own error
 * handling and never slows polling down.
 *
 * @param deps The sync, KV, source, logger, poll interval and backoff cap;
 *   `beforePass` runs first on every pass (main uses it to (re)try LISTEN);
 *   `writeBackLimit` bounds one write-back pass (default 500 entries).
 * @returns The loop.
 */
export function runPgLoop(deps: {
  sync: PgSync;
  kv: Deno.Kv;
  source: StepSource;
  log: Logger;
  pollMs: number;
  maxBackoffMs?: number;
  beforePass?: () => void;
  writeBackLimit?: number;
}): PgLoop {
  let failures = 0;
  let stopped = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let running: Promise<void> = Promise.resolve();
  let writeBackCursor = "";

  async function pass() {
    deps.beforePass?.();
    try {
      await deps.sync.poll();
      if (failures > 0) {
        deps.log.info("postgres reachable again: caught up", { failures });
      }
      failures = 0;
    } catch (err) {
      failures++;
      deps.log.warn("postgres pass failed; retrying with backoff", {
        error: String(err),
        failures,
        retry_in_ms: _delay(),
      });
      return;
    }
    try {
      if (!(await deps.sync.writeBackEnabled())) return;
      const done = await writeBackPass(deps, {
        limit: deps.writeBackLimit,
        cursor: writeBackCursor,
      });
      writeBackCursor = done.cursor;
    } catch (err) {
      deps.log.warn("write-back pass failed", { error: String(err) });
    }
  }

  function _delay() {
    if (failures === 0) return deps.pollMs;
    return Math.min(
      deps.pollMs * 2 ** Math.min(failures, 16),
      deps.maxBackoffMs ?? 30_000,
    );
  }

  function tick(): Promise<void> {
    running = running.then(pass);
    return running;
  }

  const loop = async () => {
    await tick();
    if (!stopped) timer = setTimeout(loop, _delay());
  };
  loop();
  return {
    tick,
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
  };
}
