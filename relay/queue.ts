/** The single `listenQueue` handler: tiny versioned messages that point at a delivery. */
import { z } from "zod";
import type { Logger } from "./log.ts";
import type { DeliveryWorker } from "./worker.ts";

const Message = z.discriminatedUnion("type", [
  z.object({ type: z.literal("deliver"), v: z.literal(1), id: z.string() }),
]);

/** The one queue message the relay sends itself: "look at this delivery". */
export type DeliverMessage = z.infer<typeof Message>;

/**
 * Creates the handler `main.ts` passes to `kv.listenQueue` once.
 *
 * A message that does not parse is logged and dropped (throwing would only bring it
 * back). The worker re-reads the record, so duplicates and stale wake-ups are no-ops.
 *
 * @param deps The worker and a logger.
 * @returns The handler; it throws only on infrastructure faults, so KV retries them.
 */
export function createQueueHandler(
  deps: { worker: DeliveryWorker; log: Logger },
): (msg: unknown) => Promise<void> {
  return async (msg) => {
    const parsed = Message.safeParse(msg);
    if (!parsed.success) {
      deps.log.warn("unknown queue message dropped", {
        issues: parsed.error.issues.length,
      });
      return;
    }
    await deps.worker.run(parsed.data.id);
  };
}
