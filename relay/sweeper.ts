/**
 * The sweeper: reads the due-time index and runs every delivery that is due. It is the
 * driver that works where KV queues do not (new Deno Deploy, remote KV) and the safety
 * net where they do (a lost message, a crash mid-attempt).
 */
import * as keys from "./keys.ts";
import type { Logger } from "./log.ts";
import type { DeliveryWorker } from "./worker.ts";

/**
 * Runs every delivery due by `now`, a page at a time. Each page is waited for at
 * most `pageWaitMs`, so one hanging receiver cannot hold the sweep: attempts still
 * running go on in the background (the worker never runs one delivery twice at once).
 * Ids waiting in the worker's own line (a recovered backlog it works through) are
 * passed over without a read: the line attempts them.
 *
 * @param deps KV, clock, worker and logger.
 * @param opts `pageSize` bounds each read (default 200); `pageWaitMs` (default 1000).
 * @returns How many due deliveries were handed to the worker.
 */
export async function sweepDue(
  deps: { kv: Deno.Kv; now: () => number; worker: DeliveryWorker; log: Logger },
  opts: { pageSize?: number; pageWaitMs?: number } = {},
): Promise<number> {
  const pageSize = opts.pageSize ?? 200;
  const pageWaitMs = opts.pageWaitMs ?? 1000;
  let handled = 0;
  let start: Deno.KvKey = [...keys.duePrefix];
  for (;;) {
    const end = [...keys.duePrefix, deps.now() + 1];
    const ids: string[] = [];
    let last: Deno.KvKey | undefined;
    let listed = 0;
    for await (
      const e of deps.kv.list<string>({ start, end }, { limit: pageSize })
    ) {
      if (!deps.worker.inLine(e.value)) ids.push(e.value);
      last = e.key;
      listed++;
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      Promise.allSettled(ids.map((id) => deps.worker.run(id))),
      new Promise((r) => timer = setTimeout(r, pageWaitMs)),
    ]);
    clearTimeout(timer);
    handled += ids.length;
    if (listed < pageSize || !last) break;
    start = [...last, ""];
  }
  if (handled > 0) deps.log.info("sweep", { due: handled });
  return handled;
}
