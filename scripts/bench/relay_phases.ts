/**
 * The relay's phases: `relay` (events in through `POST /v1/events`, one delivery each,
 * light load and under load) and `backlog` (deliveries piled up while the receiver is
 * down, then released with `POST /v1/deliveries/recover`).
 */
import type { BaselineOptions, PhaseResult } from "./baselines.ts";
import { type CpuTime, cpuTime, perDelivery } from "./cpu.ts";
import { lastReceipt, measure, pool, round } from "./measure.ts";
import type { BenchReceiver } from "./receiver.ts";
import { type RelayProcess, spawnRelay } from "./relay_process.ts";

async function _post(relay: RelayProcess, path: string, body: unknown) {
  const res = await fetch(`${relay.url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const answer = await res.json();
  if (res.status !== 202) {
    throw new Error(
      `${path} answered ${res.status}: ${JSON.stringify(answer)}`,
    );
  }
  return answer;
}

/** Maps step `key` to a media buy whose buyer wants webhooks at `url`. */
function _map(relay: RelayProcess, key: string, url: string) {
  return _post(relay, "/v1/events", {
    type: "media_buy.created",
    tenant_id: "t_bench",
    principal_id: "p_bench",
    media_buy_id: `mb_${key}`,
    step_id: key,
    status: "working",
    context_id: "ctx_bench",
    push_notification_config: { url },
  });
}

/** Completes step `key`; the relay must answer with exactly one delivery. */
async function _complete(relay: RelayProcess, key: string) {
  const answer = await _post(relay, "/v1/events", {
    type: "workflow_step.updated",
    step_id: key,
    status: "completed",
  });
  if (answer.deliveries.length !== 1) {
    throw new Error(
      `expected one delivery for ${key}: ${JSON.stringify(answer)}`,
    );
  }
}

/**
 * Measures the relay end to end: POST of the event → verified receipt.
 *
 * @param receiver The shared receiver.
 * @param opts Secret, sizes, concurrency, and where to write a CPU profile.
 * @returns Light-load and loaded results, and the relay's peak RSS.
 */
export async function runRelay(
  receiver: BenchReceiver,
  opts: BaselineOptions & { cpuProfDir?: string },
): Promise<
  PhaseResult & {
    peak_rss_mb: number;
    cpu_per_delivery: CpuTime;
    bench_cpu_per_delivery: number;
  }
> {
  const relay = await spawnRelay({
    RELAY_SIGNING_SECRET: opts.secret,
    RELAY_TARGET_CONCURRENCY: String(opts.concurrency),
  }, opts);
  try {
    let cpu: CpuTime = { total_ms: NaN, kv_ms: NaN };
    let benchCpu = NaN;
    const run = async (tag: string, n: number, concurrency: number) => {
      const keyOf = (i: number) => `relay_${tag}_${i}`;
      await pool(n, 8, (i) => _map(relay, keyOf(i), receiver.url));
      const [before, self] = [await relay.cpu(), await cpuTime("self")];
      const stats = await measure(receiver, {
        n,
        concurrency,
        keyOf,
        timeoutMs: opts.timeoutMs,
        send: (i) => _complete(relay, keyOf(i)),
      });
      cpu = perDelivery(before, await relay.cpu(), n);
      benchCpu = perDelivery(self, await cpuTime("self"), n).total_ms;
      return stats;
    };
    const light = await run("light", opts.light, 1);
    const load = await run("load", opts.n, opts.concurrency);
    return {
      light,
      load,
      peak_rss_mb: await relay.peakRssMb(),
      cpu_per_delivery: cpu,
      bench_cpu_per_delivery: benchCpu,
    };
  } finally {
    await relay.stop();
  }
}

/** What the backlog phase measured. */
export interface BacklogResult {
  n: number;
  accumulate_s: number;
  /** The relay's peak RSS once the backlog had piled up, before the drain. */
  accumulate_peak_rss_mb: number;
  drain_s: number;
  drain_per_second: number;
  /** The relay's CPU per delivery drained. */
  drain_cpu_per_delivery: CpuTime;
  /** Over the whole phase. */
  peak_rss_mb: number;
}

async function _openDeliveries(relay: RelayProcess): Promise<number> {
  const text = await (await fetch(`${relay.url}/metrics`)).text();
  return Number(/^relay_queue_depth (\d+)$/m.exec(text)?.[1]);
}

/** Producer loops per `--concurrency` while the backlog piles up (set-up, untimed). */
const ACCUMULATE_FANOUT = 4;

/**
 * Piles up `n` deliveries while the receiver is down (each is attempted once, fails
 * and dies: the relay runs with `RELAY_RETRY_SCHEDULE=none`), then brings the
 * receiver back and re-queues them all with the recover API.
 *
 * @param receiver The shared receiver; it is taken down and back up.
 * @param opts Secret, backlog size, concurrency of the producers, timeout.
 * @returns Accumulation and drain times, drain rate and the relay's peak RSS.
 */
export async function runBacklog(
  receiver: BenchReceiver,
  opts: Omit<BaselineOptions, "light">,
): Promise<BacklogResult> {
  // The circuit breaker is kept shut: with it, a down receiver's deliveries wait
  // behind the open circuit (pending) instead of dying, and there is nothing to recover.
  const relay = await spawnRelay({
    RELAY_SIGNING_SECRET: opts.secret,
    RELAY_RETRY_SCHEDULE: "none",
    RELAY_CIRCUIT_FAILURES: String(2 * opts.n + 10),
    RELAY_TARGET_CONCURRENCY: String(opts.concurrency),
  });
  try {
    await receiver.down();
    const since = new Date().toISOString();
    const started = performance.now();
    const keyOf = (i: number) => `backlog_${i}`;
    await pool(opts.n, opts.concurrency * ACCUMULATE_FANOUT, async (i) => {
      await _map(relay, keyOf(i), receiver.url);
      await _complete(relay, keyOf(i));
    });
    const deadline = Date.now() + opts.timeoutMs;
    while (await _openDeliveries(relay) > 0) {
      if (Date.now() > deadline) throw new Error("backlog never settled");
      await new Promise((r) => setTimeout(r, 200));
    }
    const accumulated = performance.now();
    const accumulatePeak = await relay.peakRssMb();
    receiver.reset();
    receiver.up();
    const released = performance.now();
    const cpuBefore = await relay.cpu();
    let requeued = 0;
    for (;;) {
      const answer = await _post(relay, "/v1/deliveries/recover", { since });
      if (answer.requeued === 0) break;
      requeued += answer.requeued;
    }
    if (requeued !== opts.n) {
      throw new Error(`recover re-queued ${requeued} of ${opts.n}`);
    }
    await receiver.waitFor(opts.n, opts.timeoutMs);
    const drainS = (lastReceipt(receiver) - released) / 1000;
    const drainCpu = perDelivery(cpuBefore, await relay.cpu(), opts.n);
    return {
      n: opts.n,
      accumulate_s: round((accumulated - started) / 1000, 1),
      accumulate_peak_rss_mb: accumulatePeak,
      drain_s: round(drainS, 2),
      drain_per_second: Math.round(opts.n / drainS),
      drain_cpu_per_delivery: drainCpu,
      peak_rss_mb: await relay.peakRssMb(),
    };
  } finally {
    await relay.stop();
  }
}
