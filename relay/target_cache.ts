/**
 * A short-lived view of existing target records in memory. Intake and admission read a
 * target for every delivery, and nearly always find it unchanged: served from here,
 * those reads cost no KV round trip. This process forgets a target as soon as it
 * writes it; a change made by another process is seen within `ttlMs`.
 */
import { getAll } from "./batch_get.ts";
import * as keys from "./keys.ts";
import type { TargetRecord } from "./types.ts";

/** Target records, read through memory. */
export interface TargetCache {
  /**
   * Reads targets: from memory when read within the TTL, else from KV.
   *
   * @param ids Target ids.
   * @param opts `fresh` to read KV whatever memory holds (and remember the result).
   * @returns One entry per id, in order; `value` is null when there is no record.
   */
  read(
    ids: readonly string[],
    opts?: { fresh?: boolean },
  ): Promise<Deno.KvEntryMaybe<TargetRecord>[]>;
  /** Drops a target, so the next read goes to KV; call after writing it. */
  forget(id: string): void;
}

/** How long a target read from KV is served from memory. */
export const TARGET_CACHE_TTL_MS = 1000;
const MAX_ENTRIES = 10_000;

interface Cached {
  at: number;
  entry: Promise<Deno.KvEntryMaybe<TargetRecord>>;
}

/**
 * Creates a target cache over `kv`.
 *
 * @param kv The store.
 * @param opts Clock and time to live.
 * @returns The cache.
 * @example
 * ```ts
 * const targets = createTargetCache(kv, { now: Date.now });
 * const [entry] = await targets.read(["tgt_0123"]);
 * ```
 */
export function createTargetCache(
  kv: Deno.Kv,
  opts: { now: () => number; ttlMs?: number },
): TargetCache {
  const ttl = opts.ttlMs ?? TARGET_CACHE_TTL_MS;
  const cached = new Map<string, Cached>();

  function load(ids: string[], at: number) {
    const reads = getAll<TargetRecord>(kv, ids.map((id) => keys.targetKey(id)));
    const loaded = new Map(ids.map((id, i) => {
      const entry = reads.then((all) => all[i]!);
      // Neither a failed read nor a missing target is remembered: a target is
      // created by the first delivery to it, and must be seen at once.
      const drop = () => cached.get(id)?.entry === entry && cached.delete(id);
      entry.then((e) => e.value === null && drop(), drop);
      cached.delete(id);
      cached.set(id, { at, entry });
      return [id, entry];
    }));
    while (cached.size > MAX_ENTRIES) {
      cached.delete(cached.keys().next().value!);
    }
    return loaded;
  }

  return {
    read(ids, readOpts = {}) {
      const now = opts.now();
      const hits = ids.map((id) => {
        const c = cached.get(id);
        return !readOpts.fresh && c && now - c.at < ttl ? c.entry : undefined;
      });
      const misses = ids.filter((_, i) => !hits[i]);
      const loaded = misses.length > 0 ? load([...new Set(misses)], now) : null;
      return Promise.all(ids.map((id, i) => hits[i] ?? loaded!.get(id)!));
    },
    forget(id) {
      cached.delete(id);
    },
  };
}

/**
 * Reads targets through `deps.targets` when there is one, else from KV.
 *
 * @param deps The store and the cache, if any.
 * @param ids Target ids.
 * @param opts `fresh` to read KV whatever the cache holds.
 * @returns One entry per id, in order.
 */
export function readTargets(
  deps: { kv: Deno.Kv; targets?: TargetCache },
  ids: readonly string[],
  opts: { fresh?: boolean } = {},
): Promise<Deno.KvEntryMaybe<TargetRecord>[]> {
  return deps.targets
    ? deps.targets.read(ids, opts)
    : getAll<TargetRecord>(deps.kv, ids.map((id) => keys.targetKey(id)));
}
