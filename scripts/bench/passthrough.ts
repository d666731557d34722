/**
 * The passthrough phase: events posted to a server that stores nothing
 * (`passthrough_server.ts`), each answered with 202 and forwarded signed to the
 * receiver. The relay's ratio to it is the cost of durability and bookkeeping.
 */
import type { BaselineOptions, PhaseResult } from "./baselines.ts";
import { cpuTime, perDelivery } from "./cpu.ts";
import { measure } from "./measure.ts";
import type { BenchReceiver } from "./receiver.ts";
import { freePort, waitListening } from "./relay_process.ts";

const SERVER = new URL("./passthrough_server.ts", import.meta.url).pathname;

/**
 * Measures the passthrough: POST of an event → verified receipt.
 *
 * @param receiver The shared receiver.
 * @param opts Secret, sizes, concurrency and timeout.
 * @returns Light-load and loaded results.
 */
export async function runPassthrough(
  receiver: BenchReceiver,
  opts: BaselineOptions,
): Promise<PhaseResult & { cpu_ms_per_delivery: number }> {
  const port = freePort();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", SERVER, String(port), receiver.url, opts.secret],
    stdout: "null",
    stderr: "inherit",
  }).spawn();
  const url = `http://127.0.0.1:${port}/v1/events`;
  try {
    await waitListening(url);
    const run = (tag: string, n: number, concurrency: number) => {
      const keyOf = (i: number) => `passthrough_${tag}_${i}`;
      return measure(receiver, {
        n,
        concurrency,
        keyOf,
        timeoutMs: opts.timeoutMs,
        send: async (i) => {
          const res = await fetch(url, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({
              type: "workflow_step.updated",
              step_id: keyOf(i),
              status: "completed",
            }),
          });
          await res.body?.cancel();
          if (res.status !== 202) {
            throw new Error(`passthrough answered ${res.status}`);
          }
        },
      });
    };
    const light = await run("light", opts.light, 1);
    const before = await cpuTime(child.pid);
    const load = await run("load", opts.n, opts.concurrency);
    const cpu = perDelivery(before, await cpuTime(child.pid), opts.n);
    return { light, load, cpu_ms_per_delivery: cpu.total_ms };
  } finally {
    child.kill("SIGTERM");
    await child.status;
  }
}
