/**
 * Reading many keys in `getMany` calls of ten (Deno KV's limit), and coalesced point
 * reads: keys asked for in the same turn of the event loop are read together. A backlog drained 64 deliveries at a
 * time then costs 7 KV round trips for its records instead of 64.
 */

/** Reads one key; calls made in the same turn share `getMany` calls. */
export type BatchGet<T> = (key: Deno.KvKey) => Promise<Deno.KvEntryMaybe<T>>;

const GET_MANY_MAX = 10;

/**
 * Creates a coalescing reader over `kv`.
 *
 * @param kv The store.
 * @returns The reader.
 * @example
 * ```ts
 * const get = createBatchGet<DeliveryRecord>(kv);
 * const [a, b] = await Promise.all([get(["deliveries", "a"]), get(["deliveries", "b"])]);
 * ```
 */
export function createBatchGet<T>(kv: Deno.Kv): BatchGet<T> {
  type Waiter = {
    key: Deno.KvKey;
    done: PromiseWithResolvers<Deno.KvEntryMaybe<T>>;
  };
  let pending: Waiter[] = [];
  function flush() {
    const asked = pending;
    pending = [];
    for (let i = 0; i < asked.length; i += GET_MANY_MAX) {
      const part = asked.slice(i, i + GET_MANY_MAX);
      kv.getMany<T[]>(part.map((w) => w.key)).then(
        (entries) => part.forEach((w, j) => w.done.resolve(entries[j]!)),
        (err) => part.forEach((w) => w.done.reject(err)),
      );
    }
  }
  return (key) => {
    const done = Promise.withResolvers<Deno.KvEntryMaybe<T>>();
    if (pending.length === 0) queueMicrotask(flush);
    pending.push({ key, done });
    return done.promise;
  };
}

/**
 * Reads many keys, ten per `getMany`.
 *
 * @param kv The store.
 * @param list The keys.
 * @returns One entry per key, in order.
 */
export async function getAll<T>(
  kv: Deno.Kv,
  list: readonly Deno.KvKey[],
): Promise<Deno.KvEntryMaybe<T>[]> {
  const out: Deno.KvEntryMaybe<T>[] = [];
  for (let i = 0; i < list.length; i += GET_MANY_MAX) {
    out.push(...await kv.getMany<T[]>(list.slice(i, i + GET_MANY_MAX)));
  }
  return out;
}
