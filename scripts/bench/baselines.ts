/**
 * The two baselines the relay is compared with: `limit` POSTs pre-signed payloads
 * straight to the receiver (no store, no relay), and `naive` is the textbook Deno KV
 * design, one `kv.enqueue` per delivery and a `listenQueue` handler that signs with
 * the `standardwebhooks` package and POSTs.
 */
import { Webhook } from "standardwebhooks";
import { buildPayload } from "../../relay/payload.ts";
import { attemptHeaders, createSigner } from "../../relay/sign.ts";
import { measure, type RunStats } from "./measure.ts";
import type { BenchReceiver } from "./receiver.ts";

/** Sizes of a baseline run. */
export interface BaselineOptions {
  secret: string;
  n: number;
  light: number;
  concurrency: number;
  timeoutMs: number;
}

/** Light-load and loaded results of one design. */
export interface PhaseResult {
  light: RunStats;
  load: RunStats;
}

/** The payload every design sends for key `key` (what the relay would build). */
export function benchPayload(key: string, id: string): string {
  return buildPayload({
    deliveryId: id,
    stepId: key,
    taskType: "create_media_buy",
    taskStatus: "completed",
    timestamp: new Date().toISOString(),
    contextId: "ctx_bench",
    objects: [{ object_type: "media_buy", object_id: `mb_${key}` }],
  });
}

/**
 * Measures the limit: pre-signed POSTs straight to the receiver.
 *
 * @param receiver The shared receiver.
 * @param opts Secret, sizes and concurrency.
 * @returns Light-load and loaded results.
 */
export async function runLimit(
  receiver: BenchReceiver,
  opts: BaselineOptions,
): Promise<PhaseResult> {
  const signer = createSigner([opts.secret]);
  const run = (tag: string, n: number, concurrency: number) => {
    const keyOf = (i: number) => `limit_${tag}_${i}`;
    const requests = Array.from({ length: n }, (_, i) => {
      const id = `msg_limit_${tag}_${i}`;
      const body = benchPayload(keyOf(i), id);
      const timestampS = Math.floor(Date.now() / 1000);
      return {
        body,
        headers: attemptHeaders(signer, { id, timestampS, body }),
      };
    });
    return measure(receiver, {
      n,
      concurrency,
      keyOf,
      timeoutMs: opts.timeoutMs,
      send: async (i) => {
        const res = await fetch(receiver.url, {
          method: "POST",
          ...requests[i]!,
        });
        await res.body?.cancel();
      },
    });
  };
  const light = await run("light", opts.light, 1);
  const load = await run("load", opts.n, opts.concurrency);
  return { light, load };
}

interface NaiveMessage {
  id: string;
  body: string;
}

/**
 * Measures the naive design on its own temp KV: the handler signs and POSTs, and
 * throws on failure so KV retries.
 *
 * @param receiver The shared receiver.
 * @param opts Secret, sizes and concurrency (of the enqueuing loops).
 * @returns Light-load and loaded results, timed from `kv.enqueue`.
 */
export async function runNaive(
  receiver: BenchReceiver,
  opts: BaselineOptions,
): Promise<PhaseResult> {
  const dir = await Deno.makeTempDir({ prefix: "relay-bench-naive-" });
  const kv = await Deno.openKv(`${dir}/kv.sqlite3`);
  const wh = new Webhook(opts.secret);
  const listening = kv.listenQueue(async (msg: NaiveMessage) => {
    const at = new Date();
    const res = await fetch(receiver.url, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "webhook-id": msg.id,
        "webhook-timestamp": String(Math.floor(at.getTime() / 1000)),
        "webhook-signature": wh.sign(msg.id, at, msg.body),
      },
      body: msg.body,
    });
    await res.body?.cancel();
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
  });
  const run = (tag: string, n: number, concurrency: number) => {
    const keyOf = (i: number) => `naive_${tag}_${i}`;
    return measure(receiver, {
      n,
      concurrency,
      keyOf,
      timeoutMs: opts.timeoutMs,
      send: async (i) => {
        const id = `msg_naive_${tag}_${i}`;
        const msg: NaiveMessage = { id, body: benchPayload(keyOf(i), id) };
        await kv.enqueue(msg);
      },
    });
  };
  try {
    const light = await run("light", opts.light, 1);
    const load = await run("load", opts.n, opts.concurrency);
    return { light, load };
  } finally {
    kv.close();
    await listening;
    await Deno.remove(dir, { recursive: true });
  }
}
