/**
 * Per-target concurrency: at most `limit` attempts in flight to one target URL in
 * this process, so a receiver that hangs holds a few slots and never all of them.
 */

/** Hands out per-target slots. */
export interface TargetSlots {
  /**
   * Waits for a slot for `targetId`. Resolves to `undefined` without waiting when
   * the target already has `limit × 4` attempts waiting: the delivery stays due
   * and a later wake-up picks it up. With `wait`, the caller (which already holds
   * the delivery in memory, or bounds its own callers) waits however long the line.
   *
   * @returns A function that frees the slot.
   */
  enter(
    targetId: string,
    opts?: { wait?: boolean },
  ): Promise<(() => void) | undefined>;
}

/**
 * Creates the per-target slots.
 *
 * @param limit Attempts in flight per target.
 * @returns The slots.
 */
export function createTargetSlots(limit: number): TargetSlots {
  const state = new Map<string, { active: number; waiting: (() => void)[] }>();
  return {
    async enter(targetId, opts = {}) {
      let s = state.get(targetId);
      if (!s) state.set(targetId, s = { active: 0, waiting: [] });
      if (s.active >= limit) {
        if (!opts.wait && s.waiting.length >= limit * 4) return undefined;
        await new Promise<void>((r) => s!.waiting.push(r));
      } else s.active++;
      const slot = s;
      return () => {
        const next = slot.waiting.shift();
        if (next) return next();
        slot.active--;
        if (slot.active === 0) state.delete(targetId);
      };
    },
  };
}
