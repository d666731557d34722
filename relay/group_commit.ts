/**
 * Group commit: write sets that arrive while a KV commit is in flight are committed
 * together in the next one. A KV commit costs about the same for one delivery as for
 * twenty (the store serialises commits), so under load this multiplies write
 * throughput; alone, a write set is committed at once, so light load waits for nothing.
 *
 * Each caller keeps its own guarantees: write sets whose checked keys meet another's
 * keys never share a commit, and when a shared commit fails a check (or a KV limit),
 * each of its write sets is committed again on its own and gets its own answer.
 */
import { keyId } from "./keys.ts";
import { mergeWriteSets, type WriteSet } from "./write_set.ts";

/** Commits write sets, sharing commits between concurrent callers. */
export interface GroupCommitter {
  /**
   * Commits `writes` atomically, possibly in one commit with others.
   *
   * @param writes The checks, mutations and messages to commit.
   * @returns As `Deno.AtomicOperation.commit()` would for `writes` alone.
   */
  commit(writes: WriteSet): Promise<Deno.KvCommitResult | Deno.KvCommitError>;
}

/** Bounds of one shared commit, below Deno KV's per-commit limits. */
export interface GroupLimits {
  /** Deno KV allows 100. */
  maxChecks: number;
  /** Deno KV allows 1000. */
  maxMutations: number;
  /** Estimated value bytes; Deno KV allows 800 KiB of mutations in all. */
  maxBytes: number;
}

const DEFAULT_LIMITS: GroupLimits = {
  maxChecks: 100,
  maxMutations: 1000,
  maxBytes: 400 * 1024,
};

interface Pending {
  writes: WriteSet;
  checked: string[];
  written: string[];
  bytes: number;
  done: PromiseWithResolvers<Deno.KvCommitResult | Deno.KvCommitError>;
}

/**
 * Creates a group committer over `kv`.
 *
 * @param kv The store.
 * @param limits Bounds for one shared commit.
 * @returns The committer.
 * @example
 * ```ts
 * const committer = createGroupCommitter(kv);
 * const res = await committer.commit(new WriteSet().set(["a"], 1));
 * ```
 */
export function createGroupCommitter(
  kv: Deno.Kv,
  limits: Partial<GroupLimits> = {},
): GroupCommitter {
  const bounds = { ...DEFAULT_LIMITS, ...limits };
  let queue: Pending[] = [];
  let draining = false;

  function take(): Pending[] {
    const batch: Pending[] = [];
    const checked = new Set<string>();
    const written = new Set<string>();
    const rest: Pending[] = [];
    let [checks, mutations, bytes] = [0, 0, 0];
    for (const p of queue) {
      const fits = batch.length === 0 ||
        (checks + p.checked.length <= bounds.maxChecks &&
          mutations + p.written.length <= bounds.maxMutations &&
          bytes + p.bytes <= bounds.maxBytes);
      const clash = p.checked.some((k) => checked.has(k) || written.has(k)) ||
        p.written.some((k) => checked.has(k));
      if (!fits || clash) {
        rest.push(p);
        continue;
      }
      batch.push(p);
      p.checked.forEach((k) => checked.add(k));
      p.written.forEach((k) => written.add(k));
      [checks, mutations, bytes] = [
        checks + p.checked.length,
        mutations + p.written.length,
        bytes + p.bytes,
      ];
    }
    queue = rest;
    return batch;
  }

  async function drain() {
    draining = true;
    try {
      while (queue.length > 0) {
        const batch = take();
        try {
          await _commitBatch(kv, batch);
        } catch (err) {
          // _commitBatch answers every member itself; this is only a last guard.
          for (const p of batch) p.done.reject(err);
        }
      }
    } finally {
      draining = false;
    }
  }

  return {
    commit(writes) {
      const done = Promise.withResolvers<
        Deno.KvCommitResult | Deno.KvCommitError
      >();
      queue.push({
        writes,
        checked: writes.checks.map((c) => keyId(c.key)),
        written: writes.mutations.map((m) => keyId(m.key)),
        bytes: writes.mutations.reduce((n, m) => n + _size(m), 0),
        done,
      });
      if (!draining) drain().catch(() => {}); // every caller gets its own answer
      return done.promise;
    },
  };
}

async function _commitBatch(kv: Deno.Kv, batch: Pending[]): Promise<void> {
  if (batch.length > 1) {
    // A write set KV refuses while it is built (e.g. a queue delay over 30 days)
    // throws in applyTo: then, as on any failure, each is committed on its own.
    const res = await Promise.resolve().then(() =>
      mergeWriteSets(batch.map((p) => p.writes)).applyTo(kv.atomic()).commit()
    ).catch(() => null);
    if (res?.ok) {
      for (const p of batch) p.done.resolve(res);
      return;
    }
  }
  // Alone, or the shared commit failed: each write set gets its own answer.
  for (const p of batch) {
    try {
      p.done.resolve(await p.writes.applyTo(kv.atomic()).commit());
    } catch (err) {
      p.done.reject(err);
    }
  }
}

function _size(m: Deno.KvMutation): number {
  if (!("value" in m)) return 64;
  const v = m.value;
  if (v instanceof Uint8Array) return v.length + 64;
  if (typeof v === "string") return v.length * 3 + 64;
  return 2048;
}

/**
 * Commits `writes` through `deps.committer` when there is one, else alone.
 *
 * @param deps The store and the optional committer.
 * @param writes What to commit.
 * @returns The commit's answer for `writes`.
 */
export function commitWrites(
  deps: { kv: Deno.Kv; committer?: GroupCommitter },
  writes: WriteSet,
): Promise<Deno.KvCommitResult | Deno.KvCommitError> {
  return deps.committer
    ? deps.committer.commit(writes)
    : writes.applyTo(deps.kv.atomic()).commit();
}
