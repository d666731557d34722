/**
 * Checks and mutations recorded for a commit that may be shared with others (see
 * `group_commit.ts`). It offers the part of `Deno.AtomicOperation` the relay uses, so
 * the functions that fill an operation accept either.
 */
import { keyId } from "./keys.ts";

interface Enqueue {
  value: unknown;
  options?: Parameters<Deno.AtomicOperation["enqueue"]>[1];
}

/** The part of `Deno.AtomicOperation` the relay's writers use. */
export interface AtomicWriter {
  check(...checks: Deno.AtomicCheck[]): this;
  set(key: Deno.KvKey, value: unknown, options?: { expireIn?: number }): this;
  delete(key: Deno.KvKey): this;
  sum(key: Deno.KvKey, n: bigint): this;
  enqueue(value: unknown, options?: Enqueue["options"]): this;
}

/** A recorded atomic write: applied later to a real operation, alone or in a group. */
export class WriteSet implements AtomicWriter {
  readonly checks: Deno.AtomicCheck[] = [];
  readonly mutations: Deno.KvMutation[] = [];
  readonly enqueues: Enqueue[] = [];

  /** Records checks; the write fails unless each key has the given versionstamp. */
  check(...checks: Deno.AtomicCheck[]): this {
    this.checks.push(...checks);
    return this;
  }

  /** Records a set. */
  set(key: Deno.KvKey, value: unknown, options?: { expireIn?: number }): this {
    this.mutations.push({ type: "set", key, value, ...options });
    return this;
  }

  /** Records a delete. */
  delete(key: Deno.KvKey): this {
    this.mutations.push({ type: "delete", key });
    return this;
  }

  /** Records a sum on a `Deno.KvU64`. */
  sum(key: Deno.KvKey, n: bigint): this {
    this.mutations.push({ type: "sum", key, value: new Deno.KvU64(n) });
    return this;
  }

  /** Records a queue message. */
  enqueue(value: unknown, options?: Enqueue["options"]): this {
    this.enqueues.push({ value, options });
    return this;
  }

  /**
   * Adds everything recorded to `op`.
   *
   * @param op A real atomic operation.
   * @returns `op`, for chaining.
   */
  applyTo(op: Deno.AtomicOperation): Deno.AtomicOperation {
    op.check(...this.checks).mutate(...this.mutations);
    for (const e of this.enqueues) op.enqueue(e.value, e.options);
    return op;
  }
}

const U64 = 1n << 64n;

/**
 * One write set doing what all of `sets` do, for a shared commit. Sums on a key
 * that nothing else in the sets writes become one sum (a counter moved by every
 * delivery in a batch is written once, not once per delivery).
 *
 * @param sets The write sets, in order.
 * @returns Their union.
 */
export function mergeWriteSets(sets: readonly WriteSet[]): WriteSet {
  const merged = new WriteSet();
  const sums = new Map<string, { key: Deno.KvKey; total: bigint }>();
  for (const s of sets) {
    for (const m of s.mutations) {
      if (m.type === "sum") sums.set(keyId(m.key), { key: m.key, total: 0n });
    }
  }
  // A key that is also set or deleted keeps its sums as they are, in order.
  const heads = new Set([...sums.values()].map((s) => s.key[0]));
  for (const s of sets) {
    for (const m of s.mutations) {
      if (m.type !== "sum" && heads.has(m.key[0])) sums.delete(keyId(m.key));
    }
  }
  for (const s of sets) {
    merged.checks.push(...s.checks);
    merged.enqueues.push(...s.enqueues);
    for (const m of s.mutations) {
      const sum = m.type === "sum" ? sums.get(keyId(m.key)) : undefined;
      if (sum && m.type === "sum") {
        sum.total = (sum.total + m.value.value) % U64;
      } else merged.mutations.push(m);
    }
  }
  for (const { key, total } of sums.values()) {
    if (total !== 0n) merged.sum(key, total);
  }
  return merged;
}
